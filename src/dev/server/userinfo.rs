//! Userinfo endpoint (OpenID Connect Core §5.3).

use std::sync::atomic::Ordering;

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use serde_json::{json, Value};

use super::response::{fixed_answer, json_response};
use super::{now, token_key, Fault, St};

fn bearer_error(status: StatusCode, error: Option<&str>, description: &str) -> Response {
    let challenge = match error {
        Some(e) => format!(
            "Bearer realm=\"tower-oidc dev provider\", error=\"{e}\", error_description=\"{description}\""
        ),
        None => "Bearer realm=\"tower-oidc dev provider\"".to_owned(),
    };
    let mut response = status.into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// A `401` with a `DPoP` challenge (RFC 9449 §7.1), and `DPoP-Nonce` when given.
fn dpop_error(nonce: Option<String>, error: &str, description: &str) -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    let challenge = format!(
        "DPoP error=\"{error}\", error_description=\"{description}\", algs=\"ES256 PS256 RS256 EdDSA\""
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some(nonce) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert("dpop-nonce", nonce);
    }
    response
}

pub(super) async fn userinfo(AxState(s): St, headers: HeaderMap) -> Response {
    s.stats.userinfo.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = s.gate().await {
        return r;
    }
    if let Some(Fault::UserinfoStatus(code)) = s.fault(|f| matches!(f, Fault::UserinfoStatus(_))) {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return bearer_error(
            status,
            Some("invalid_token"),
            "injected by the development provider",
        );
    }
    if let Some(Fault::UserinfoAnswer {
        status,
        content_type,
        body,
    }) = s.fault(|f| matches!(f, Fault::UserinfoAnswer { .. }))
    {
        return fixed_answer(status, content_type, body);
    }
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return bearer_error(StatusCode::UNAUTHORIZED, None, "");
    };
    let scheme_token = value.to_str().ok().and_then(|v| v.split_once(' '));
    let dpop = scheme_token.is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("dpop"));
    let token = scheme_token
        .filter(|(scheme, _)| dpop || scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = token else {
        return bearer_error(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "expected a Bearer or DPoP token",
        );
    };
    let proof_jkt = if dpop {
        match s.dpop_jkt(&headers, "GET", &s.endpoint("userinfo"), Some(token)) {
            Ok(Some(jkt)) => Some(jkt),
            Ok(None) => return dpop_error(None, "invalid_dpop_proof", "the DPoP proof is missing"),
            Err(e) => return dpop_error(e.dpop_nonce, &e.error, &e.description),
        }
    } else {
        None
    };
    let now = now();
    let (sub, scope, mismatch) = {
        let state = s.state();
        let Some(record) = state.access.get(&token_key(token)) else {
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "unknown access token",
            );
        };
        if record.jkt != proof_jkt {
            // A bound token as Bearer, a proof by another key, or an unbound token as DPoP.
            return dpop_error(
                None,
                "invalid_token",
                "the token's DPoP binding does not match the request",
            );
        }
        if record.exp < now {
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "the access token has expired",
            );
        }
        if state.revoked_grants.contains(&record.grant) {
            return bearer_error(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "the access token was revoked",
            );
        }
        (
            record.sub.clone(),
            record.scope.clone(),
            state.faults.contains(&Fault::UserinfoSubMismatch),
        )
    };
    let (signed, broken, overrides) = {
        let state = s.state();
        let overrides = state.faults.iter().find_map(|f| match f {
            Fault::SignedUserinfoClaims(Value::Object(claims)) => Some(claims.clone()),
            _ => None,
        });
        (
            state.faults.contains(&Fault::SignedUserinfo) || overrides.is_some(),
            state.faults.contains(&Fault::SignedUserinfoBadSignature),
            overrides,
        )
    };
    if !scope.iter().any(|s| s == "openid") {
        return bearer_error(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "the openid scope is required",
        );
    }
    let mut claims = json!({ "sub": if mismatch { format!("not-{sub}") } else { sub.clone() } });
    s.user_claims(&mut claims, &sub, &scope);
    if signed || broken {
        let client_id = s
            .state()
            .access
            .get(&token_key(token))
            .map(|r| r.client_id.clone())
            .unwrap_or_default();
        let (issuer, tid) = s.token_issuer(&s.state());
        claims["iss"] = json!(issuer);
        if let Some(tid) = tid {
            claims["tid"] = json!(tid);
        }
        claims["aud"] = json!(client_id);
        for (name, value) in overrides.into_iter().flatten() {
            claims[name] = value;
        }
        let Some(mut jwt) = s.sign_jwt("JWT", &claims) else {
            return bearer_error(StatusCode::INTERNAL_SERVER_ERROR, None, "signing failed");
        };
        if broken {
            jwt.truncate(jwt.len() - 4);
            jwt.push_str("AAAA");
        }
        let mut res = (StatusCode::OK, jwt).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/jwt"),
        );
        return res;
    }
    json_response(StatusCode::OK, &claims)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::Value;

    use super::*;
    use crate::dev::server::issue::Issue;
    use crate::dev::server::tests::{shared, verified_claims, CONF_ID, ISSUER};
    use crate::dev::server::Shared;

    /// Mints tokens for alice with `scope` and returns the access token.
    fn access_token(s: &Shared, scope: &str) -> String {
        let scope: Vec<String> = scope.split(' ').map(str::to_owned).collect();
        let mut state = s.state();
        let issue = Issue {
            client_id: CONF_ID,
            sub: "alice",
            scope: &scope,
            auth_time: now(),
            sid: "sid",
            nonce: None,
            grant: 1,
            jkt: None,
        };
        let response = s.issue(&mut state, issue).ok().expect("tokens");
        response["access_token"].as_str().unwrap().to_owned()
    }

    async fn call(s: &Arc<Shared>, authorization: &[&str]) -> Response {
        let mut headers = HeaderMap::new();
        for value in authorization {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        userinfo(AxState(s.clone()), headers).await
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    fn challenge(response: &Response) -> &str {
        response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
    }

    #[test]
    fn bearer_errors_carry_a_challenge() {
        let response = bearer_error(StatusCode::UNAUTHORIZED, Some("invalid_token"), "expired");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&response),
            "Bearer realm=\"tower-oidc dev provider\", error=\"invalid_token\", \
             error_description=\"expired\""
        );
        let response = bearer_error(StatusCode::UNAUTHORIZED, None, "ignored");
        assert_eq!(
            challenge(&response),
            "Bearer realm=\"tower-oidc dev provider\""
        );
    }

    #[tokio::test]
    async fn claims_follow_the_scope_of_the_access_token() {
        let s = Arc::new(shared());
        let token = access_token(&s, "openid email");
        let response = call(&s, &[&format!("bearer {token}")]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let claims: Value = serde_json::from_slice(&body(response).await).unwrap();
        assert_eq!(
            claims,
            json!({ "sub": "alice", "email": "alice@example.test", "email_verified": true })
        );
        assert_eq!(s.stats.userinfo.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn missing_unknown_revoked_or_unscoped_tokens_are_refused() {
        let s = Arc::new(shared());
        let response = call(&s, &[]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&response),
            "Bearer realm=\"tower-oidc dev provider\""
        );

        let token = access_token(&s, "openid");
        let bearer = format!("Bearer {token}");
        let twice = call(&s, &[&bearer, &bearer]).await;
        assert_eq!(twice.status(), StatusCode::UNAUTHORIZED);
        let basic = call(&s, &["Basic abc"]).await;
        assert_eq!(basic.status(), StatusCode::BAD_REQUEST);
        let unknown = call(&s, &["Bearer not-a-token"]).await;
        assert!(challenge(&unknown).contains("invalid_token"));

        let no_openid = access_token(&s, "profile");
        let response = call(&s, &[&format!("Bearer {no_openid}")]).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(challenge(&response).contains("insufficient_scope"));

        assert_eq!(call(&s, &[&bearer]).await.status(), StatusCode::OK);
        s.state().revoked_grants.insert(1);
        let revoked = call(&s, &[&bearer]).await;
        assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
        assert!(challenge(&revoked).contains("revoked"));
    }

    #[tokio::test]
    async fn signed_userinfo_faults() {
        let s = Arc::new(shared());
        let token = access_token(&s, "openid profile");
        let bearer = format!("Bearer {token}");
        s.state().faults.push(Fault::SignedUserinfo);
        let response = call(&s, &[&bearer]).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/jwt");
        let jwt = String::from_utf8(body(response).await).unwrap();
        let claims = verified_claims(&s, &jwt).expect("signed with the current key");
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["aud"], CONF_ID);
        assert_eq!(claims["name"], "Alice Example");

        s.state().faults = vec![
            Fault::SignedUserinfoBadSignature,
            Fault::UserinfoSubMismatch,
        ];
        let response = call(&s, &[&bearer]).await;
        let jwt = String::from_utf8(body(response).await).unwrap();
        assert!(jwt.ends_with("AAAA"));
        assert!(verified_claims(&s, &jwt).is_none());
        s.state().faults = vec![Fault::UserinfoSubMismatch];
        let claims: Value =
            serde_json::from_slice(&body(call(&s, &[&bearer]).await).await).unwrap();
        assert_eq!(claims["sub"], "not-alice");
    }
}
