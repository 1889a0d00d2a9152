//! Calls to the provider's token and userinfo endpoints (authenticated as the client where
//! needed), with the checks a careful client makes on the answers.

use serde::Deserialize;
use serde_json::{Map, Value};

use std::sync::Arc;

use crate::dpop::key::DpopKey;
use crate::error::{AuthError, AuthErrorKind};
use crate::identity::roles_in;
use crate::jwt::{JwtError, Unverified};
use crate::provider::{read_limited, VerifyError};
use crate::shared::Shared;

/// OAuth error codes that say "not now" (RFC 6749 §4.1.2.1), whatever the HTTP status: the
/// provider is unavailable, the grant is not refused.
const NOT_NOW: &[&str] = &["temporarily_unavailable", "server_error"];

/// A successful token response (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Debug)]
pub(crate) struct Tokens {
    pub(crate) access_token: String,
    pub(crate) scope: Option<String>,
    pub(crate) expires_in: Option<u64>,
    pub(crate) refresh_token: Option<String>,
    pub(crate) id_token: Option<String>,
    /// The roles in the access token, when it is a JWT the layer verified.
    pub(crate) access_roles: Option<AccessRoles>,
    /// The key the tokens are DPoP-bound to (`token_type: DPoP`).
    pub(crate) dpop_key: Option<Arc<DpopKey>>,
}

/// Roles found in a verified JWT access token, and whose they are.
#[derive(Debug)]
pub(crate) struct AccessRoles {
    pub(crate) sub: Option<String>,
    pub(crate) roles: Vec<String>,
}

/// The roles in an access token that is a JWT signed with the provider's keys and naming it
/// as issuer (Keycloak puts roles only there). Anything else (an opaque token, a token for
/// another API whose signature cannot be checked here, as Entra's for Graph) has none.
async fn access_roles(shared: &Shared, token: &str) -> Option<AccessRoles> {
    Unverified::parse(token).ok()?;
    let (_, payload) = match shared
        .provider
        .verify_jwt(token, &shared.provider.metadata.id_token_algs)
        .await
    {
        Ok(verified) => verified,
        Err(e) => {
            tracing::debug!(reason = ?e, "the access token is a JWT the layer cannot verify; its roles are not used");
            return None;
        }
    };
    let claims: Map<String, Value> = serde_json::from_slice(&payload).ok()?;
    let (iss, tid) = (
        claims.get("iss").and_then(Value::as_str),
        claims.get("tid").and_then(Value::as_str),
    );
    if shared
        .provider
        .metadata
        .issuer_rule
        .check_token(iss, tid)
        .is_err()
    {
        tracing::debug!("the access token names another issuer or tenant; its roles are not used");
        return None;
    }
    // Roles count only from a live token issued to this client (or for this API): not from
    // a token the provider minted for another party (Keycloak: `azp` is the client).
    let skew = shared.config.clock_skew.as_secs() as f64;
    let live = claims
        .get("exp")
        .and_then(Value::as_f64)
        .is_some_and(|exp| shared.now() as f64 <= exp + skew);
    if !live {
        tracing::debug!("the access token has no expiry or has expired; its roles are not used");
        return None;
    }
    let config = &shared.config;
    let ours = |v: &str| v == config.client_id || config.api_audiences.iter().any(|a| a == v);
    let names_us = match claims.get("aud") {
        Some(Value::String(a)) => ours(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(ours),
        _ => false,
    } || ["azp", "client_id"]
        .iter()
        .any(|c| claims.get(*c).and_then(Value::as_str).is_some_and(ours));
    if !names_us {
        tracing::debug!(
            "the access token names neither this client nor its API; its roles are not used"
        );
        return None;
    }
    let mut roles = Vec::new();
    roles_in(&claims, &shared.config.compat.roles, &mut roles);
    Some(AccessRoles {
        sub: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
        roles,
    })
}

#[derive(Deserialize)]
struct RawTokens {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct RawError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Whether an HTTP status says "not now" (a server error, `429`, `408`): the request may
/// succeed later, so nothing is concluded from it.
pub(crate) fn status_not_now(status: http::StatusCode) -> bool {
    status.is_server_error()
        || status == http::StatusCode::TOO_MANY_REQUESTS
        || status == http::StatusCode::REQUEST_TIMEOUT
}

/// What an OAuth endpoint's error answer (not 2xx, not [`status_not_now`]) says.
pub(crate) enum OAuthError {
    /// `temporarily_unavailable` or `server_error`: try again later.
    NotNow(String),
    /// Any other OAuth error: the provider refuses the request.
    Refused {
        code: String,
        description: Option<String>,
    },
    /// No OAuth error object.
    Unreadable,
}

impl OAuthError {
    pub(crate) fn of(body: &[u8]) -> Self {
        match serde_json::from_slice::<RawError>(body) {
            Ok(e) if NOT_NOW.contains(&e.error.as_str()) => Self::NotNow(e.error),
            Ok(e) => Self::Refused {
                code: e.error,
                description: e.error_description,
            },
            Err(_) => Self::Unreadable,
        }
    }
}

fn unavailable(message: String) -> AuthError {
    AuthError::new(AuthErrorKind::ProviderUnavailable, message)
}

/// A token endpoint request that gave no tokens, by what it says about the grant.
#[derive(Debug)]
pub(crate) enum TokenFailure {
    /// No answer, a server error, `429 Too Many Requests`, `408`, or an OAuth error
    /// `temporarily_unavailable` or `server_error`: try again later.
    Unavailable(AuthError),
    /// An OAuth error answer (RFC 6749 §5.2) with this `error` code.
    Refused { code: String, error: AuthError },
    /// An answer that is neither tokens nor an OAuth error (a proxy's or firewall's page, a
    /// body that is not JSON, a token type we cannot use).
    Garbled(AuthError),
}

impl TokenFailure {
    /// The error as the login callback reports it (its kind is already the callback's).
    fn into_callback_error(self) -> AuthError {
        match self {
            Self::Unavailable(e) | Self::Garbled(e) | Self::Refused { error: e, .. } => e,
        }
    }
}

/// Exchanges an authorization code (with its PKCE verifier) for tokens, DPoP-bound to
/// `dpop` when given.
pub(crate) async fn exchange_code(
    shared: &Shared,
    code: &str,
    pkce_verifier: &str,
    dpop: Option<Arc<DpopKey>>,
) -> Result<Tokens, AuthError> {
    let tokens = token_request(
        shared,
        dpop,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", shared.config.redirect_url.as_str()),
            ("code_verifier", pkce_verifier),
        ],
    )
    .await
    .map_err(TokenFailure::into_callback_error)?;
    if tokens.id_token.is_none() {
        return Err(AuthError::new(
            AuthErrorKind::InvalidCallback,
            "the token response has no ID token",
        ));
    }
    Ok(tokens)
}

/// Uses a refresh token (RFC 6749 §6). The answer may omit the ID token and the refresh
/// token (then the previous ones stay).
pub(crate) async fn refresh_grant(
    shared: &Shared,
    refresh_token: &str,
    dpop: Option<Arc<DpopKey>>,
) -> Result<Tokens, TokenFailure> {
    token_request(
        shared,
        dpop,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// The `DPoP-Nonce` an answer asks for (RFC 9449 §8): a `400`/`401` with the error
/// `use_dpop_nonce` and the header.
fn nonce_asked(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    error: Option<&str>,
) -> Option<String> {
    let asked = (status == http::StatusCode::BAD_REQUEST
        || status == http::StatusCode::UNAUTHORIZED)
        && error == Some("use_dpop_nonce");
    let nonce = headers.get("dpop-nonce")?.to_str().ok()?;
    (asked && !nonce.is_empty() && nonce.len() <= 512).then(|| nonce.to_owned())
}

/// A token endpoint request with client authentication, and a DPoP proof by `dpop` when
/// given (sent once more with the provider's nonce when it asks for one).
async fn token_request(
    shared: &Shared,
    dpop: Option<Arc<DpopKey>>,
    params: &[(&str, &str)],
) -> Result<Tokens, TokenFailure> {
    let endpoint = &shared.provider.metadata.token_endpoint;
    let post = |nonce: Option<String>| {
        let dpop = dpop.clone();
        async move {
            let proof = match &dpop {
                Some(key) => Some(
                    key.proof(
                        "POST",
                        endpoint.as_str(),
                        None,
                        nonce.as_deref(),
                        shared.now(),
                    )
                    .ok_or_else(|| {
                        AuthError::new(AuthErrorKind::Internal, "the DPoP proof could not be made")
                    })?,
                ),
                None => None,
            };
            shared
                .provider
                .authenticated_post_with(
                    &shared.config,
                    shared.now(),
                    endpoint,
                    params,
                    proof.as_deref(),
                )
                .await
        }
    };
    let failure = |e: AuthError| match e.kind() {
        AuthErrorKind::ProviderUnavailable => TokenFailure::Unavailable(e),
        // The client assertion or proof could not be made: a fault here, not the grant's.
        _ => TokenFailure::Garbled(e),
    };
    let (mut status, headers, mut body) = post(None).await.map_err(failure)?;
    if dpop.is_some() {
        let error = serde_json::from_slice::<RawError>(&body)
            .ok()
            .map(|e| e.error);
        if let Some(nonce) = nonce_asked(status, &headers, error.as_deref()) {
            tracing::debug!("the token endpoint asked for a DPoP nonce; sending the request again");
            (status, _, body) = post(Some(nonce)).await.map_err(failure)?;
        }
    }
    let garbled = |message: String| {
        TokenFailure::Garbled(AuthError::new(AuthErrorKind::InvalidCallback, message))
    };
    if status_not_now(status) {
        return Err(TokenFailure::Unavailable(unavailable(format!(
            "token endpoint answered HTTP {status}"
        ))));
    }
    if !status.is_success() {
        return Err(match OAuthError::of(&body) {
            OAuthError::NotNow(code) => TokenFailure::Unavailable(unavailable(format!(
                "the token endpoint is unavailable: {} (HTTP {status})",
                printable(&code)
            ))),
            OAuthError::Refused { code, .. } => TokenFailure::Refused {
                error: AuthError::new(
                    AuthErrorKind::InvalidCallback,
                    format!(
                        "the token endpoint refused the request: {}",
                        printable(&code)
                    ),
                ),
                code,
            },
            OAuthError::Unreadable => garbled(format!(
                "the token endpoint refused the request: HTTP {status}"
            )),
        });
    }
    let raw: RawTokens = serde_json::from_slice(&body)
        .map_err(|e| garbled(format!("the token response is not valid: {e}")))?;
    // RFC 9449 §5: `DPoP` for a bound token, only when a proof was sent.
    let bound = dpop.is_some() && raw.token_type.eq_ignore_ascii_case("dpop");
    if !bound && !raw.token_type.eq_ignore_ascii_case("bearer") {
        return Err(garbled(format!(
            "the token response has token_type `{}`, not `Bearer`{}",
            printable(&raw.token_type),
            if dpop.is_some() { " or `DPoP`" } else { "" }
        )));
    }
    if dpop.is_some() && !bound {
        tracing::warn!("the provider did not DPoP-bind the tokens (token_type Bearer)");
    }
    // A lifetime beyond ten years is nonsense; clamp it so time arithmetic stays sane.
    const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;
    let expires_in = match raw.expires_in {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .map(|s| s.min(MAX_EXPIRES_IN));
    let access_roles = access_roles(shared, &raw.access_token).await;
    Ok(Tokens {
        dpop_key: dpop.filter(|_| bound),
        access_roles,
        access_token: raw.access_token,
        expires_in,
        refresh_token: raw.refresh_token,
        id_token: raw.id_token,
        scope: raw.scope,
    })
}

/// Why userinfo gave no claims.
#[derive(Debug)]
pub(crate) enum UserinfoFailure {
    /// No usable answer: unreachable, an HTTP error (Entra's Graph answers `401` to an access
    /// token for another API), a body that is not a JSON object. Enrichment is then missing.
    Unusable(AuthError),
    /// An answer that must not be trusted: about another user, or a signed answer that does
    /// not verify. Always a failure.
    Rejected(AuthError),
}

impl UserinfoFailure {
    pub(crate) fn into_error(self) -> AuthError {
        match self {
            Self::Unusable(e) | Self::Rejected(e) => e,
        }
    }
}

/// Fetches userinfo; its `sub` must be `subject` (OpenID Connect Core §5.3.2).
///
/// Failures are [`UserinfoFailure::Unusable`] (no answer, a server error, `429`, `408`, an HTTP
/// refusal such as Entra's Graph answering `401` to a token for another API, a `200` that is no
/// JSON object, the provider's keys unavailable for a signed answer) or
/// [`UserinfoFailure::Rejected`] (another user's claims, a signed answer that does not verify).
pub(crate) async fn fetch_userinfo(
    shared: &Shared,
    access_token: &str,
    dpop: Option<&DpopKey>,
    subject: &str,
) -> Result<Map<String, Value>, UserinfoFailure> {
    let unusable = UserinfoFailure::Unusable;
    let Some(url) = &shared.provider.metadata.userinfo_endpoint else {
        return Ok(Map::new());
    };
    let send = |nonce: Option<String>| async move {
        let mut req = shared
            .provider
            .http
            .get(url.clone())
            .header("accept", "application/json");
        match dpop {
            Some(key) => {
                let proof = key
                    .proof(
                        "GET",
                        url.as_str(),
                        Some(access_token),
                        nonce.as_deref(),
                        shared.now(),
                    )
                    .ok_or_else(|| {
                        unusable(AuthError::new(
                            AuthErrorKind::Internal,
                            "the DPoP proof could not be made",
                        ))
                    })?;
                req = req
                    .header("authorization", format!("DPoP {access_token}"))
                    .header("dpop", proof);
            }
            None => req = req.bearer_auth(access_token),
        }
        req.send()
            .await
            .map_err(|e| unusable(unavailable(format!("userinfo endpoint unreachable: {e}"))))
    };
    let mut res = send(None).await?;
    if dpop.is_some() {
        // RFC 9449 §9: a resource server asks for its nonce with a `DPoP` challenge.
        let asks = res
            .headers()
            .get_all("www-authenticate")
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("use_dpop_nonce")));
        let error = asks.then_some("use_dpop_nonce");
        if let Some(nonce) = nonce_asked(res.status(), res.headers(), error) {
            res = send(Some(nonce)).await?;
        }
    }
    let status = res.status();
    let is_jwt = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/jwt"));
    let body = read_limited(res)
        .await
        .map_err(|e| unusable(unavailable(format!("userinfo answer unreadable: {e}"))))?;
    if status_not_now(status) {
        return Err(unusable(unavailable(format!(
            "userinfo endpoint answered HTTP {status}"
        ))));
    }
    if !status.is_success() {
        return Err(unusable(AuthError::new(
            AuthErrorKind::InvalidCallback,
            format!("the userinfo endpoint refused the access token (HTTP {status})"),
        )));
    }
    let claims: Map<String, Value> = if is_jwt {
        signed_userinfo(shared, &body).await.map_err(|e| {
            // The keys unavailable: no usable answer now; anything else: untrusted.
            if e.kind() == AuthErrorKind::ProviderUnavailable {
                UserinfoFailure::Unusable(e)
            } else {
                UserinfoFailure::Rejected(e)
            }
        })?
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            unusable(AuthError::new(
                AuthErrorKind::InvalidCallback,
                "the userinfo answer is not a JSON object",
            ))
        })?
    };
    if claims.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(UserinfoFailure::Rejected(AuthError::new(
            AuthErrorKind::InvalidCallback,
            "userinfo `sub` differs from the ID token's",
        )));
    }
    Ok(claims)
}

/// A signed userinfo answer: verified like an ID token's signature; `iss` and `aud` must
/// match when present (OpenID Connect Core §5.3.2).
async fn signed_userinfo(shared: &Shared, body: &[u8]) -> Result<Map<String, Value>, AuthError> {
    let invalid = |m: String| AuthError::new(AuthErrorKind::InvalidCallback, m);
    let text = std::str::from_utf8(body)
        .map_err(|_| invalid("signed userinfo is not text".into()))?
        .trim();
    let (_, payload) = shared
        .provider
        .verify_jwt(text, &shared.provider.metadata.id_token_algs)
        .await
        .map_err(|e| match e {
            // The key set cannot be fetched now, or a new key cannot be fetched yet (refetches
            // are rate limited): the provider's keys are unavailable, not the answer wrong.
            VerifyError::Unavailable(e) => {
                unavailable(format!("could not fetch the provider's keys: {e}"))
            }
            VerifyError::Jwt(JwtError::UnknownKey) => unavailable(
                "signed userinfo uses a key the layer does not have yet (refetch limited)".into(),
            ),
            VerifyError::Jwt(e) => invalid(format!("signed userinfo rejected: {e:?}")),
        })?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| invalid("signed userinfo claims are not a JSON object".into()))?;
    if let Some(iss) = claims.get("iss") {
        let rule = &shared.provider.metadata.issuer_rule;
        if !iss.as_str().is_some_and(|iss| rule.accepts(iss)) {
            return Err(invalid("signed userinfo `iss` is not the provider".into()));
        }
    }
    if let Some(aud) = claims.get("aud") {
        let ours = match aud {
            Value::String(a) => *a == shared.config.client_id,
            Value::Array(list) => list
                .iter()
                .any(|a| a.as_str() == Some(&shared.config.client_id)),
            _ => false,
        };
        if !ours {
            return Err(invalid("signed userinfo `aud` is another client".into()));
        }
    }
    Ok(claims)
}

/// Keeps provider-supplied text short and printable before it reaches logs or pages.
pub(crate) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}
