//! Userinfo endpoint (OpenID Connect Core §5.3).

use std::sync::atomic::Ordering;

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use serde_json::json;

use super::response::json_response;
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

pub(super) async fn userinfo(AxState(s): St, headers: HeaderMap) -> Response {
    s.stats.userinfo.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = s.gate().await {
        return r;
    }
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return bearer_error(StatusCode::UNAUTHORIZED, None, "");
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = token else {
        return bearer_error(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "expected a Bearer token",
        );
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
    let (signed, broken) = {
        let state = s.state();
        (
            state.faults.contains(&Fault::SignedUserinfo),
            state.faults.contains(&Fault::SignedUserinfoBadSignature),
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
        claims["iss"] = json!(s.issuer);
        claims["aud"] = json!(client_id);
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
