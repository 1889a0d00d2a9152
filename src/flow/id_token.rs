//! ID token validation (OpenID Connect Core §3.1.3.7): signature against the provider's
//! JWKS with the algorithms it advertises, then `iss`, `aud`/`azp` (every audience trusted:
//! the client or a configured trusted audience), `exp`, `iat`, `nbf`,
//! `nonce` and `at_hash`, with the configured clock skew.

use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::error::{AuthError, AuthErrorKind};
use crate::issuer::IssuerRefusal;
use crate::jwt::JwtError;
use crate::provider::VerifyError;
use crate::shared::Shared;

/// What the ID token must match besides the provider and client.
#[derive(Debug, Default)]
pub(crate) struct Expect<'a> {
    /// The nonce sent in the authorization request; `None` only for refreshed tokens.
    pub(crate) nonce: Option<&'a str>,
    /// The access token issued with it, for `at_hash`.
    pub(crate) access_token: Option<&'a str>,
    /// The authorization code it came with (hybrid flow): `c_hash` is then required.
    pub(crate) code: Option<&'a str>,
    /// The request's `max_age`: `auth_time` is then required and must be recent enough.
    pub(crate) max_age: Option<u64>,
    /// A signing key the layer does not know, even after the refetch allowed now, means
    /// "the provider's keys are unavailable" rather than "invalid": for refreshed ID tokens,
    /// which come straight from the token endpoint, while refetches are rate limited (anyone
    /// can keep the limit engaged with bearer tokens naming random keys).
    pub(crate) unknown_key_unavailable: bool,
}

fn invalid(message: impl Into<std::borrow::Cow<'static, str>>) -> AuthError {
    AuthError::new(AuthErrorKind::InvalidCallback, message)
}

/// Validates an ID token; returns its claims.
pub(crate) async fn validate(
    shared: &Shared,
    token: &str,
    expect: Expect<'_>,
) -> Result<Map<String, Value>, AuthError> {
    let meta = &shared.provider.metadata;
    let (alg, payload) = shared
        .provider
        .verify_jwt(token, &meta.id_token_algs)
        .await
        .map_err(|e| match e {
            VerifyError::Jwt(JwtError::UnknownKey) if expect.unknown_key_unavailable => {
                AuthError::new(
                    AuthErrorKind::ProviderUnavailable,
                    "ID token signed with a key the layer cannot fetch yet",
                )
            }
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
    check_claims(shared, &claims, &expect)?;
    if let (Some(at_hash), Some(access_token)) = (claims.get("at_hash"), expect.access_token) {
        if !hash_matches(at_hash, &alg.half_hash(access_token.as_bytes())) {
            return Err(invalid(
                "ID token `at_hash` does not match the access token",
            ));
        }
    }
    if let Some(code) = expect.code {
        // OpenID Connect Core §3.3.2.11: required with `response_type=code id_token`.
        let c_hash = claims
            .get("c_hash")
            .ok_or_else(|| invalid("front-channel ID token has no `c_hash`"))?;
        if !hash_matches(c_hash, &alg.half_hash(code.as_bytes())) {
            return Err(invalid("ID token `c_hash` does not match the code"));
        }
    }
    Ok(claims)
}

fn hash_matches(claim: &Value, expected: &str) -> bool {
    claim
        .as_str()
        .is_some_and(|h| bool::from(h.as_bytes().ct_eq(expected.as_bytes())))
}

fn check_claims(
    shared: &Shared,
    claims: &Map<String, Value>,
    expect: &Expect<'_>,
) -> Result<(), AuthError> {
    let config = &shared.config;
    let now = shared.now();
    let skew = config.clock_skew.as_secs();

    let iss = claims.get("iss").and_then(Value::as_str);
    let tid = claims.get("tid").and_then(Value::as_str);
    match shared.provider.metadata.issuer_rule.check_token(iss, tid) {
        Ok(()) => {}
        Err(IssuerRefusal::Issuer) => {
            return Err(invalid("ID token issuer (`iss`) is not the provider"))
        }
        Err(IssuerRefusal::Tenant) => {
            return Err(invalid(
                "ID token tenant (`tid`) is missing or not an allowed tenant",
            ))
        }
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() => {}
        _ => return Err(invalid("ID token has no subject (`sub`)")),
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        // A list with anything but strings names no audience we know.
        Some(Value::Array(list)) => list
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
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
    // Core §3.1.3.7 step 3: refused when `aud` lists an audience the client does not trust
    // (checked after the `azp` rules of steps 4 and 5, which name the more specific mistake).
    let untrusted = audiences.iter().any(|a| {
        *a != config.client_id && !config.hardening.trusted_audiences.iter().any(|t| t == a)
    });
    if untrusted {
        return Err(invalid(
            "ID token audience (`aud`) lists an audience this client does not trust",
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
    if let Some(max_age) = expect.max_age {
        let auth_time = claims
            .get("auth_time")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("ID token has no `auth_time`, but `max_age` was requested"))?;
        if now > auth_time.saturating_add(max_age).saturating_add(skew) {
            return Err(invalid("the login is older than the requested `max_age`"));
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
