//! ID token validation (OpenID Connect Core §3.1.3.7): signature against the provider's
//! JWKS with the algorithms it advertises, then `iss`, `aud`/`azp`, `exp`, `iat`, `nbf`,
//! `nonce` and `at_hash`, with the configured clock skew.

use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::error::{AuthError, AuthErrorKind};
use crate::jwt::JwtError;
use crate::layer::Inner;
use crate::provider::VerifyError;

/// What the ID token must match besides the provider and client.
#[derive(Debug, Default)]
pub(crate) struct Expect<'a> {
    /// The nonce sent in the authorization request; `None` only for refreshed tokens.
    pub(crate) nonce: Option<&'a str>,
    /// The access token issued with it, for `at_hash`.
    pub(crate) access_token: Option<&'a str>,
}

fn invalid(message: impl Into<std::borrow::Cow<'static, str>>) -> AuthError {
    AuthError::new(AuthErrorKind::InvalidCallback, message)
}

/// Validates an ID token; returns its claims.
pub(crate) async fn validate(
    inner: &Inner,
    token: &str,
    expect: Expect<'_>,
) -> Result<Map<String, Value>, AuthError> {
    let meta = &inner.provider.metadata;
    let (alg, payload) = inner
        .provider
        .verify_jwt(token, &meta.id_token_algs)
        .await
        .map_err(|e| match e {
            VerifyError::Jwt(JwtError::UnknownKey) => {
                invalid("ID token signed with a key the provider does not publish")
            }
            VerifyError::Jwt(e) => invalid(format!("ID token rejected: {e}")),
            VerifyError::Unavailable(e) => AuthError::new(
                AuthErrorKind::ProviderUnavailable,
                format!("could not fetch the provider's keys: {e}"),
            ),
        })?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| invalid("ID token claims are not a JSON object"))?;
    check_claims(inner, &claims, &expect)?;
    if let (Some(at_hash), Some(access_token)) = (claims.get("at_hash"), expect.access_token) {
        let expected = alg.half_hash(access_token.as_bytes());
        let matches = at_hash
            .as_str()
            .is_some_and(|h| bool::from(h.as_bytes().ct_eq(expected.as_bytes())));
        if !matches {
            return Err(invalid(
                "ID token `at_hash` does not match the access token",
            ));
        }
    }
    Ok(claims)
}

fn check_claims(
    inner: &Inner,
    claims: &Map<String, Value>,
    expect: &Expect<'_>,
) -> Result<(), AuthError> {
    let config = &inner.config;
    let now = config.now();
    let skew = config.clock_skew.as_secs();

    let iss = claims.get("iss").and_then(Value::as_str);
    if iss != Some(inner.provider.metadata.issuer.as_str()) {
        return Err(invalid("ID token issuer (`iss`) is not the provider"));
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => {}
        _ => return Err(invalid("ID token has no subject (`sub`)")),
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&config.client_id.as_str()) {
        return Err(invalid(
            "ID token audience (`aud`) does not include this client",
        ));
    }
    let azp = claims.get("azp").and_then(Value::as_str);
    if audiences.len() > 1 && azp.is_none() {
        return Err(invalid(
            "ID token has several audiences but no authorized party (`azp`)",
        ));
    }
    if azp.is_some_and(|azp| azp != config.client_id) {
        return Err(invalid(
            "ID token authorized party (`azp`) is another client",
        ));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("ID token has no expiry (`exp`)"))?;
    if now > exp.saturating_add(skew) {
        return Err(invalid("ID token has expired"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("ID token has no issue time (`iat`)"))?;
    if iat > now.saturating_add(skew) {
        return Err(invalid("ID token is issued in the future (`iat`)"));
    }
    if let Some(nbf) = claims.get("nbf") {
        match nbf.as_u64() {
            Some(nbf) if nbf <= now.saturating_add(skew) => {}
            _ => return Err(invalid("ID token is not yet valid (`nbf`)")),
        }
    }
    match (expect.nonce, claims.get("nonce")) {
        (Some(want), Some(Value::String(got)))
            if bool::from(want.as_bytes().ct_eq(got.as_bytes())) => {}
        (Some(_), _) => return Err(invalid("ID token `nonce` does not match the login")),
        (None, _) => {}
    }
    Ok(())
}
