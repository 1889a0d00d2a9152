//! Token endpoint: the authorization code and refresh token grants (RFC 6749 §3.2).

use std::sync::atomic::Ordering;

use axum::extract::State as AxState;
use axum::response::Response;
use bytes::Bytes;
use http::header::HeaderMap;
use http::StatusCode;
use serde_json::Value;
use subtle::ConstantTimeEq as _;

use super::authorize::is_pkce_value;
use super::issue::Issue;
use super::keys;
use super::params::{is_form, Params};
use super::response::{fixed_answer, json_response, TokenError};
use super::{now, token_key, ChallengeMethod, DevClient, Fault, Shared, St};

/// Lifetime of authorization codes.
const CODE_TTL: u64 = 60;

pub(super) async fn token(AxState(s): St, headers: HeaderMap, body: Bytes) -> Response {
    s.stats.token.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = s.gate().await {
        return r;
    }
    if let Some(Fault::TokenAnswer {
        status,
        content_type,
        body,
    }) = s.fault(|f| matches!(f, Fault::TokenAnswer { .. }))
    {
        return fixed_answer(status, content_type, body);
    }
    match token_inner(&s, &headers, &body) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

fn token_inner(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Value, TokenError> {
    if let Some(Fault::TokenError(code)) = s.fault(|f| matches!(f, Fault::TokenError(_))) {
        return Err(TokenError::new(&code, ""));
    }
    if !is_form(headers) {
        return Err(TokenError::new(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let p = Params::parse(body);
    if let Some(name) = p.repeated.first() {
        return Err(TokenError::new(
            "invalid_request",
            format!("parameter {name} is repeated"),
        ));
    }
    let client = s.authenticate_client(headers, &p)?;
    let jkt = s.dpop_jkt(headers, "POST", &s.endpoint("token"), None)?;
    match p.get("grant_type") {
        None => Err(TokenError::new("invalid_request", "grant_type is missing")),
        Some("authorization_code") => s.code_grant(client, &p, jkt),
        Some("refresh_token") if s.refresh_tokens => s.refresh_grant(client, &p, jkt),
        Some(_) => Err(TokenError::new(
            "unsupported_grant_type",
            "supported grant types: authorization_code, refresh_token",
        )),
    }
}

impl Shared {
    fn code_grant(
        &self,
        client: &DevClient,
        p: &Params,
        jkt: Option<String>,
    ) -> Result<Value, TokenError> {
        let Some(code_text) = p.get("code") else {
            return Err(TokenError::new("invalid_request", "code is missing"));
        };
        let Some(redirect_uri) = p.get("redirect_uri") else {
            return Err(TokenError::new(
                "invalid_request",
                "redirect_uri is missing",
            ));
        };
        let verifier = p.get("code_verifier");
        let now = now();
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(code) = state.codes.get(code_text) else {
            return Err(TokenError::new("invalid_grant", "unknown or expired code"));
        };
        if let Some(grant) = code.redeemed {
            state.revoked_grants.insert(grant);
            tracing::debug!("authorization code replayed; tokens issued from it are revoked");
            return Err(TokenError::new(
                "invalid_grant",
                "the code was already used; tokens issued from it are revoked",
            ));
        }
        if code.created + CODE_TTL < now {
            return Err(TokenError::new("invalid_grant", "the code has expired"));
        }
        if code.client_id != client.id {
            return Err(TokenError::new(
                "invalid_grant",
                "the code was issued to another client",
            ));
        }
        if code.redirect_uri != redirect_uri {
            return Err(TokenError::new(
                "invalid_grant",
                "redirect_uri differs from the authorization request",
            ));
        }
        match (&code.challenge, verifier) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(TokenError::new(
                    "invalid_grant",
                    "code_verifier sent but the authorization request had no code_challenge",
                ))
            }
            (Some(_), None) => {
                return Err(TokenError::new("invalid_grant", "code_verifier is missing"))
            }
            (Some((challenge, method)), Some(verifier)) => {
                let computed = match method {
                    ChallengeMethod::S256 => keys::encode(
                        ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref(),
                    ),
                    ChallengeMethod::Plain => verifier.to_owned(),
                };
                let ok = is_pkce_value(verifier)
                    && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()));
                if !ok {
                    return Err(TokenError::new(
                        "invalid_grant",
                        "code_verifier does not match the code_challenge",
                    ));
                }
            }
        }
        let grant = state.next_grant;
        state.next_grant += 1;
        let Some(code) = state.codes.get_mut(code_text) else {
            return Err(TokenError::new("invalid_grant", "unknown or expired code"));
        };
        code.redeemed = Some(grant);
        let (sub, scope, auth_time, sid, nonce) = (
            code.sub.clone(),
            code.scope.clone(),
            code.auth_time,
            code.sid.clone(),
            code.nonce.clone(),
        );
        self.issue(
            state,
            Issue {
                client_id: &client.id,
                sub: &sub,
                scope: &scope,
                auth_time,
                sid: &sid,
                nonce: nonce.as_deref(),
                grant,
                jkt: jkt.as_deref(),
            },
        )
    }

    fn refresh_grant(
        &self,
        client: &DevClient,
        p: &Params,
        jkt: Option<String>,
    ) -> Result<Value, TokenError> {
        let Some(token) = p.get("refresh_token") else {
            return Err(TokenError::new(
                "invalid_request",
                "refresh_token is missing",
            ));
        };
        let key = token_key(token);
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(record) = state.refresh.get(&key) else {
            return Err(TokenError::new("invalid_grant", "unknown refresh token"));
        };
        if record.client_id != client.id {
            return Err(TokenError::new(
                "invalid_grant",
                "the refresh token was issued to another client",
            ));
        }
        if record.jkt.is_some() && record.jkt != jkt {
            return Err(TokenError::new(
                "invalid_grant",
                "the refresh token is DPoP-bound to another key",
            ));
        }
        let grant = record.grant;
        if record.used {
            state.revoked_grants.insert(grant);
            tracing::debug!("rotated refresh token reused; its family is revoked");
            return Err(TokenError::new(
                "invalid_grant",
                "the refresh token was already used; the token family is revoked",
            ));
        }
        if state.revoked_grants.contains(&grant) {
            return Err(TokenError::new(
                "invalid_grant",
                "the refresh token was revoked",
            ));
        }
        let scope = match p.get("scope") {
            None => record.scope.clone(),
            Some(requested) => {
                let requested: Vec<String> = requested.split(' ').map(str::to_owned).collect();
                if requested
                    .iter()
                    .any(|s| !s.is_empty() && !record.scope.contains(s))
                {
                    return Err(TokenError::new(
                        "invalid_scope",
                        "the scope exceeds the originally granted scope",
                    ));
                }
                record
                    .scope
                    .iter()
                    .filter(|s| requested.contains(s))
                    .cloned()
                    .collect()
            }
        };
        if self.user(&record.sub).is_none() {
            return Err(TokenError::new(
                "invalid_grant",
                "the user no longer exists",
            ));
        }
        let (sub, auth_time, sid) = (record.sub.clone(), record.auth_time, record.sid.clone());
        if let Some(record) = state.refresh.get_mut(&key) {
            record.used = true;
        }
        self.issue(
            state,
            Issue {
                client_id: &client.id,
                sub: &sub,
                scope: &scope,
                auth_time,
                sid: &sid,
                nonce: None,
                grant,
                jkt: jkt.as_deref(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::server::tests::{shared, CONF_REDIRECT, PUBLIC_ID};
    use crate::dev::server::Code;
    use http::header::{self, HeaderValue};
    use serde_json::json;

    /// The code verifier and S256 challenge of RFC 7636, appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const LOOPBACK: &str = "http://localhost/cb";

    fn form() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers
    }

    fn put_code(s: &Shared, code: &str, client_id: &str, redirect_uri: &str, age: u64) {
        let challenge =
            (client_id == PUBLIC_ID).then(|| (CHALLENGE.to_owned(), ChallengeMethod::S256));
        s.state().codes.insert(
            code.to_owned(),
            Code {
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                scope: vec!["openid".into(), "offline_access".into()],
                nonce: Some("n".into()),
                challenge,
                sub: "alice".into(),
                auth_time: now() - age,
                sid: "sid".into(),
                created: now() - age,
                redeemed: None,
            },
        );
    }

    fn post(s: &Shared, body: &str) -> Result<Value, TokenError> {
        token_inner(s, &form(), body.as_bytes())
    }

    fn error_of(result: Result<Value, TokenError>) -> String {
        match result {
            Ok(body) => panic!("tokens issued: {body}"),
            Err(e) => e.error,
        }
    }

    fn redeem_public(s: &Shared, code: &str) -> Result<Value, TokenError> {
        post(
            s,
            &format!(
                "grant_type=authorization_code&client_id=pub&code={code}\
                 &redirect_uri=http%3A%2F%2Flocalhost%2Fcb&code_verifier={VERIFIER}"
            ),
        )
    }

    #[tokio::test]
    async fn token_errors_are_json_with_a_basic_challenge_when_basic_was_used() {
        let response = TokenError::invalid_client("wrong client secret", true).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"tower-oidc dev provider\""
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({ "error": "invalid_client", "error_description": "wrong client secret" })
        );

        let response = TokenError::new("invalid_grant", "").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({ "error": "invalid_grant" }),
            "no empty description"
        );
    }

    #[test]
    fn malformed_requests_are_refused_before_authentication() {
        let s = shared();
        let json_body = token_inner(&s, &HeaderMap::new(), b"grant_type=authorization_code");
        assert_eq!(error_of(json_body), "invalid_request");
        assert_eq!(
            error_of(post(&s, "client_id=pub&grant_type=a&grant_type=b")),
            "invalid_request"
        );
        assert_eq!(error_of(post(&s, "client_id=pub")), "invalid_request");
        assert_eq!(
            error_of(post(&s, "client_id=pub&grant_type=password")),
            "unsupported_grant_type"
        );
        assert_eq!(
            error_of(post(&s, "grant_type=authorization_code")),
            "invalid_client"
        );
        s.state().faults.push(Fault::TokenError("slow_down".into()));
        assert_eq!(error_of(post(&s, "client_id=pub")), "slow_down");
    }

    #[test]
    fn a_code_is_redeemed_once_and_a_replay_revokes_its_grant() {
        let s = shared();
        put_code(&s, "c1", PUBLIC_ID, LOOPBACK, 0);
        let response = redeem_public(&s, "c1").ok().expect("tokens");
        assert!(response["id_token"].is_string());
        let access = token_key(response["access_token"].as_str().unwrap());
        let grant = s.state().access[&access].grant;
        assert_eq!(s.state().codes["c1"].redeemed, Some(grant));
        assert!(!s.state().revoked_grants.contains(&grant));

        assert_eq!(error_of(redeem_public(&s, "c1")), "invalid_grant");
        assert!(s.state().revoked_grants.contains(&grant));
    }

    #[test]
    fn expired_unknown_or_mismatched_codes_and_wrong_verifiers_are_invalid_grant() {
        let s = shared();
        put_code(&s, "old", PUBLIC_ID, LOOPBACK, CODE_TTL + 1);
        assert_eq!(error_of(redeem_public(&s, "old")), "invalid_grant");
        assert_eq!(error_of(redeem_public(&s, "unknown")), "invalid_grant");

        put_code(&s, "other-uri", PUBLIC_ID, "http://localhost/other", 0);
        assert_eq!(error_of(redeem_public(&s, "other-uri")), "invalid_grant");

        put_code(&s, "conf-code", "conf", CONF_REDIRECT, 0);
        assert_eq!(error_of(redeem_public(&s, "conf-code")), "invalid_grant");

        put_code(&s, "c", PUBLIC_ID, LOOPBACK, 0);
        let base = "grant_type=authorization_code&client_id=pub&code=c";
        assert_eq!(
            error_of(post(&s, &format!("{base}&code_verifier={VERIFIER}"))),
            "invalid_request",
            "redirect_uri is required"
        );
        let uri = "redirect_uri=http%3A%2F%2Flocalhost%2Fcb";
        assert_eq!(
            error_of(post(&s, &format!("{base}&{uri}"))),
            "invalid_grant"
        );
        let wrong = "x".repeat(43);
        assert_eq!(
            error_of(post(&s, &format!("{base}&{uri}&code_verifier={wrong}"))),
            "invalid_grant"
        );
        assert_eq!(
            error_of(post(&s, &format!("{base}&{uri}&code_verifier={CHALLENGE}"))),
            "invalid_grant",
            "the challenge itself is not the verifier"
        );
        assert!(
            s.state().codes["c"].redeemed.is_none(),
            "failed attempts keep the code"
        );
        assert!(redeem_public(&s, "c").is_ok());
    }

    #[test]
    fn a_verifier_without_a_challenge_is_refused() {
        let s = shared();
        put_code(&s, "c", "conf", CONF_REDIRECT, 0);
        let body = format!(
            "grant_type=authorization_code&client_id=conf&client_secret=s3cret&code=c\
             &redirect_uri=https%3A%2F%2Frp.test%2Fcb&code_verifier={VERIFIER}"
        );
        assert_eq!(error_of(post(&s, &body)), "invalid_grant");
        let body = "grant_type=authorization_code&client_id=conf&client_secret=s3cret&code=c\
                    &redirect_uri=https%3A%2F%2Frp.test%2Fcb";
        assert!(post(&s, body).is_ok());
    }

    #[test]
    fn refresh_tokens_rotate_and_a_reuse_revokes_the_family() {
        let s = shared();
        put_code(&s, "c", PUBLIC_ID, LOOPBACK, 0);
        let first = redeem_public(&s, "c").ok().expect("tokens");
        let r1 = first["refresh_token"].as_str().unwrap().to_owned();
        let refresh = |token: &str, scope: &str| {
            post(
                &s,
                &format!("grant_type=refresh_token&client_id=pub&refresh_token={token}{scope}"),
            )
        };
        let second = refresh(&r1, "&scope=openid").ok().expect("refreshed");
        assert_eq!(second["scope"], "openid", "the scope may narrow");
        assert!(second["id_token"].is_string());
        assert!(
            second.get("refresh_token").is_none(),
            "offline_access was dropped"
        );

        let third = refresh(&r1, "").map(|_| ());
        assert!(third.is_err(), "the first refresh token was used");
        let grant = s.state().refresh[&token_key(&r1)].grant;
        assert!(s.state().revoked_grants.contains(&grant));

        assert_eq!(error_of(refresh("unknown", "")), "invalid_grant");
    }

    #[test]
    fn refresh_scope_cannot_grow_and_the_grant_can_be_disabled() {
        let mut s = shared();
        put_code(&s, "c", PUBLIC_ID, LOOPBACK, 0);
        let tokens = redeem_public(&s, "c").ok().expect("tokens");
        let r = tokens["refresh_token"].as_str().unwrap().to_owned();
        let body = format!("grant_type=refresh_token&client_id=pub&refresh_token={r}");
        assert_eq!(
            error_of(post(&s, &format!("{body}&scope=openid+email"))),
            "invalid_scope"
        );
        assert_eq!(
            error_of(post(
                &s,
                &format!("grant_type=refresh_token&client_id=conf&client_secret=s3cret&refresh_token={r}")
            )),
            "invalid_grant",
            "issued to another client"
        );
        s.refresh_tokens = false;
        assert_eq!(error_of(post(&s, &body)), "unsupported_grant_type");
        s.refresh_tokens = true;
        let rotated = post(&s, &body).ok().expect("refreshed");
        assert!(rotated["refresh_token"].is_string());
    }
}
