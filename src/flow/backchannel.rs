//! `POST {prefix}/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0. The provider
//! posts a signed logout token; the sessions it names are recorded as revoked and refused
//! from their next request on.

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Map, Value};

use crate::backchannel::{check_logout_claims, check_logout_header_typ, Revocation};
use crate::jwt::Unverified;
use std::sync::Arc;

use crate::layer::{Inner, Tenants};
use crate::provider::VerifyError;
use crate::response::Answer;

/// Logout tokens older than this are refused (and their `jti` remembered this long).
const MAX_TOKEN_AGE: u64 = 600;

/// Handles the form body of a back-channel logout request.
pub(crate) async fn handle(inner: &Arc<Inner>, form: &str) -> Answer {
    match logout(inner, form).await {
        Ok(()) => answer(StatusCode::OK, None),
        Err((status, reason)) => {
            tracing::info!(reason, "back-channel logout refused");
            answer(status, Some(reason))
        }
    }
}

async fn logout(inner: &Arc<Inner>, form: &str) -> Result<(), (StatusCode, &'static str)> {
    let bad = |reason| (StatusCode::BAD_REQUEST, reason);
    let mut tokens = form_urlencoded::parse(form.as_bytes())
        .filter(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned());
    let token = tokens.next().ok_or(bad("no logout_token"))?;
    if tokens.next().is_some() {
        return Err(bad("logout_token is repeated"));
    }
    let typ = Unverified::parse(&token)
        .map_err(|_| bad("logout token is malformed"))?
        .header
        .typ;
    if !check_logout_header_typ(typ.as_deref()) {
        return Err(bad("logout token has the wrong type (typ)"));
    }
    // With several providers, the one the token names (its keys then decide).
    let inner = &inner.for_jwt(&token);
    let meta = &inner.provider.metadata;
    let (_, payload) = inner
        .provider
        .verify_jwt(&token, &meta.id_token_algs)
        .await
        .map_err(|e| match e {
            VerifyError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the provider's keys could not be fetched",
            ),
            VerifyError::Jwt(_) => bad("logout token signature is invalid"),
        })?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| bad("logout token claims are not an object"))?;
    let config = &inner.config;
    let now = config.now();
    let skew = config.clock_skew.as_secs();
    let checked = check_logout_claims(
        &claims,
        &meta.issuer,
        &config.client_id,
        now,
        skew,
        MAX_TOKEN_AGE,
    )
    .map_err(bad)?;
    let store = &config.revocations;
    let jti_until = now
        .saturating_add(MAX_TOKEN_AGE)
        .saturating_add(skew.saturating_mul(2));
    if !store.first_use_of_jti(&meta.issuer, &checked.jti, jti_until, now) {
        return Err(bad("logout token was already used (jti)"));
    }
    tracing::info!(
        sid = checked.sid.as_deref().unwrap_or("-"),
        subject = checked.sub.as_deref().unwrap_or("-"),
        "back-channel logout"
    );
    store.revoke(
        Revocation {
            issuer: meta.issuer.clone(),
            sid: checked.sid,
            sub: checked.sub,
            // A provider clock behind ours must not spare a session created just before.
            at: checked.iat.max(now),
        },
        now.saturating_add(config.session_lifetime.as_secs())
            .saturating_add(skew),
    );
    Ok(())
}

fn answer(status: StatusCode, error: Option<&str>) -> Answer {
    let body = error
        .map(|reason| {
            serde_json::json!({"error": "invalid_request", "error_description": reason}).to_string()
        })
        .unwrap_or_default();
    let mut res = Response::new(bytes::Bytes::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if error.is_some() {
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    res
}
