//! `Authorization: Bearer` validation: JWT access tokens verified against the provider's JWKS
//! (RFC 9068 claims), opaque tokens through the introspection endpoint (RFC 7662). Results go
//! into the provider's token cache (see `cache`), so a token seen before costs a lookup, not a
//! signature check.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::HeaderMap;
use serde::Deserialize;

use crate::cache::{BearerKey, Entry};
use crate::error::{AuthError, AuthErrorKind};
use crate::identity::{confirmation_jkt, scope_of, Identity, RoleSource, Source};
use crate::issuer::IssuerRefusal;
use crate::jwt::{Alg, JwtError, Unverified};
use crate::provider::VerifyError;
use crate::response::Answer;
use crate::shared::Shared;

/// Every asymmetric algorithm this crate verifies.
const ACCESS_TOKEN_ALGS: &[Alg] = &[
    Alg::Rs256,
    Alg::Rs384,
    Alg::Rs512,
    Alg::Ps256,
    Alg::Ps384,
    Alg::Ps512,
    Alg::Es256,
    Alg::Es384,
    Alg::EdDsa,
];

/// Why a token whose header has `crit` is refused (RFC 7515 §4.1.11: no extension is
/// understood here).
const CRITICAL: &str = "the token names critical header extensions (crit)";

/// Tokens longer than this are refused without further work.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// How long an "inactive" introspection answer is remembered, so a flood of bogus opaque
/// tokens does not become a flood of introspection calls for the same token.
const NEGATIVE_TTL: u64 = 30;

/// The bearer token of a request, if it has an `Authorization: Bearer` header.
/// `Some(Err(()))` for a bearer header that is malformed.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(AUTHORIZATION)?;
    let text = value.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    // RFC 6750 b64token characters.
    let valid = !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|b| B64TOKEN[usize::from(b)]);
    Some(if valid { Ok(token) } else { Err(()) })
}

/// The bytes after `Bearer ` (any case), trimmed, not checked any further: for looking up a
/// token seen before by its exact bytes (it was checked by [`bearer_token`] when first seen),
/// without reading it byte by byte on every request.
pub(crate) fn bearer_candidate(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let scheme_end = memchr::memchr(b' ', value).unwrap_or(value.len());
    if !value[..scheme_end].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    Some(value[scheme_end..].trim_ascii()).filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
}

/// Which bytes may appear in an RFC 6750 `b64token` (checked when a token is first seen).
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        b += 1;
    }
    table
};

/// A `503` answer to a bearer caller gets `Retry-After: 1`: the provider may be back, and an
/// introspection budget (see `ConfigBuilder::introspection_per_second`) refills, by then.
pub(crate) fn retry_later(mut answer: Answer) -> Answer {
    if answer.status() == http::StatusCode::SERVICE_UNAVAILABLE {
        answer.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
    }
    answer
}

fn invalid(reason: &'static str) -> AuthError {
    AuthError::new(AuthErrorKind::InvalidToken, reason)
}

/// Why a bearer JWT is not accepted: refused, or signed with a key (`kid`) the provider does
/// not publish (which introspection may still vouch for, when configured).
enum JwtFailure {
    Refused(AuthError),
    UnpublishedKey(AuthError),
}

impl From<AuthError> for JwtFailure {
    fn from(err: AuthError) -> Self {
        JwtFailure::Refused(err)
    }
}

/// `aud` as one string or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    #[serde(borrow)]
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    fn contains_any(&self, wanted: &[String]) -> bool {
        match self {
            Audience::One(a) => wanted.iter().any(|w| w == a),
            Audience::Many(list) => list.iter().any(|a| wanted.iter().any(|w| w == a)),
        }
    }
}

/// A claim that is a string, or something else (ignored).
#[derive(Deserialize)]
#[serde(untagged)]
enum Text<'a> {
    #[serde(borrow)]
    Str(Cow<'a, str>),
    Other(serde::de::IgnoredAny),
}

impl Text<'_> {
    fn is(&self, value: &str) -> bool {
        matches!(self, Text::Str(s) if s.eq_ignore_ascii_case(value))
    }

    /// The string, or `None` for another JSON value.
    fn as_str(&self) -> Option<&str> {
        match self {
            Text::Str(s) => Some(s),
            Text::Other(_) => None,
        }
    }
}

impl AccessClaims<'_> {
    /// Claims that say the token is another kind of token (whatever the settings): ID-token
    /// claims, a logout event, Keycloak's `typ` and Cognito's `token_use` of other tokens.
    fn names_another_kind(&self) -> bool {
        self.nonce.is_some()
            || self.at_hash.is_some()
            || self.c_hash.is_some()
            || self.events.is_some()
            || self.typ.as_ref().is_some_and(|t| {
                ["ID", "Refresh", "Offline", "Logout"]
                    .iter()
                    .any(|k| t.is(k))
            })
            || self.token_use.as_ref().is_some_and(|t| t.is("id"))
    }

    /// Claims only access tokens carry, at mainstream providers (RFC 9068 `client_id`,
    /// `scope`; Entra `scp`, `azpacr`, `appidacr`, `idtyp`; Okta `cid`, `scp`; Keycloak
    /// `typ: Bearer`; Cognito `token_use: access`).
    fn marks_an_access_token(&self) -> bool {
        self.scope.is_some()
            || self.scp.is_some()
            || self.client_id.is_some()
            || self.cid.is_some()
            || self.azpacr.is_some()
            || self.appidacr.is_some()
            || self.idtyp.is_some()
            || self.typ.as_ref().is_some_and(|t| t.is("Bearer"))
            || self.token_use.as_ref().is_some_and(|t| t.is("access"))
    }
}

/// The claims of an access token that validation looks at.
#[derive(Deserialize)]
struct AccessClaims<'a> {
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    sub: Option<Cow<'a, str>>,
    /// The tenant of a multi-tenant provider (Entra).
    #[serde(borrow, default)]
    tid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    aud: Option<Audience<'a>>,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    iat: Option<f64>,
    #[serde(default)]
    nonce: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    at_hash: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    c_hash: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    events: Option<serde::de::IgnoredAny>,
    /// Access-token markers (see `ConfigBuilder::accept_unmarked_access_tokens`).
    #[serde(default)]
    scope: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    scp: Option<serde::de::IgnoredAny>,
    /// Okta's client id claim.
    #[serde(borrow, default)]
    cid: Option<Text<'a>>,
    /// The authorized party (the client the token was issued to).
    #[serde(borrow, default)]
    azp: Option<Text<'a>>,
    /// Entra v1's client id claim.
    #[serde(borrow, default)]
    appid: Option<Text<'a>>,
    #[serde(default)]
    azpacr: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    appidacr: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    idtyp: Option<serde::de::IgnoredAny>,
    /// Keycloak's token type claim: `Bearer`, `ID`, `Refresh`, `Offline`, `Logout`.
    #[serde(borrow, default)]
    typ: Option<Text<'a>>,
    /// Cognito's token type claim: `access` or `id`.
    #[serde(borrow, default)]
    token_use: Option<Text<'a>>,
    /// Introspection only.
    #[serde(default)]
    active: Option<bool>,
    /// Introspection only (RFC 7662 §2.2): the kind of token the provider found.
    #[serde(borrow, default)]
    token_type: Option<Text<'a>>,
}

impl Shared {
    /// The cached result for a token, if any.
    pub(crate) fn bearer_cached(&self, token: &str) -> Option<Result<Identity, AuthError>> {
        let cached = self.bearer_cached_by_key(&self.bearer_cache.key(token.as_bytes()));
        self.counters.bearer_cache(cached.is_some());
        cached
    }

    /// The identity of a valid token seen before, found by the token's exact bytes (`raw`,
    /// from [`bearer_candidate`]): the hot path of bearer requests. Only an identity usable
    /// as plain Bearer is returned: a token bound to a DPoP key (`cnf.jkt`) is `None` here,
    /// so the full path refuses it as it does when the token is first seen. Anything else (a
    /// token not cached, or known to be invalid) is `None` too, for the full path (which
    /// counts the lookup itself).
    pub(crate) fn bearer_hit(&self, raw: &[u8]) -> Option<Identity> {
        let key = self.bearer_cache.key(raw);
        let identity = self.bearer_cache.get(&key, self.now())??;
        if identity.dpop_jkt().is_some() {
            return None;
        }
        self.counters.bearer_cache(true);
        Some(identity)
    }

    /// Validates a bearer token (JWT or, through introspection, opaque) and caches the result.
    /// Introspection is bounded (see `introspection_limits`): one call per token at a time,
    /// and capped calls in flight and per second.
    pub(crate) async fn validate_bearer(
        self: &Arc<Self>,
        token: &str,
    ) -> Result<Identity, AuthError> {
        let key = self.bearer_cache.key(token.as_bytes());
        let now = self.now();
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            if self.introspection_endpoint().is_none() {
                return Err(invalid("opaque tokens are not accepted (no introspection)"));
            }
            return self.introspect_bounded(token, key, now).await;
        }
        let result = match self.validate_jwt(token, now).await {
            Ok(valid) => Ok(valid),
            // Okta's org authorization server: only introspection can vouch for its JWTs.
            Err(JwtFailure::UnpublishedKey(_))
                if self.config.bearer_compat.introspect_unverifiable_jwts
                    && self.introspection_endpoint().is_some() =>
            {
                return self.introspect_bounded(token, key, now).await;
            }
            Err(JwtFailure::Refused(err) | JwtFailure::UnpublishedKey(err)) => Err(err),
        };
        if let Ok((identity, exp)) = &result {
            let entry = Entry {
                expires_at: *exp,
                identity: Some(identity.clone()),
            };
            self.bearer_cache.insert(key, entry, now);
        }
        result.map(|(identity, _)| identity)
    }

    /// Introspection of `token`, bounded (one call per token at a time, capped calls in
    /// flight and per second) and cached.
    async fn introspect_bounded(
        self: &Arc<Self>,
        token: &str,
        key: BearerKey,
        now: u64,
    ) -> Result<Identity, AuthError> {
        let this = self.clone();
        let token = token.to_owned();
        self.introspections
            .run(
                key,
                now,
                || self.bearer_cached_by_key(&key),
                move || async move { this.introspect_and_cache(&token, key).await },
            )
            .await
    }

    fn bearer_cached_by_key(&self, key: &BearerKey) -> Option<Result<Identity, AuthError>> {
        let hit = self.bearer_cache.get(key, self.now())?;
        Some(hit.ok_or_else(|| invalid("the token is not active")))
    }

    /// Introspects `token` and caches the answer: active ones until they expire, inactive
    /// ones for a short while (apart from the active ones, so they never evict them).
    async fn introspect_and_cache(
        &self,
        token: &str,
        key: BearerKey,
    ) -> Result<Identity, AuthError> {
        let now = self.now();
        let result = self.introspect(token, now).await;
        match &result {
            Ok((identity, exp)) => {
                let entry = Entry {
                    expires_at: *exp,
                    identity: Some(identity.clone()),
                };
                self.bearer_cache.insert(key, entry, now);
            }
            Err(err) if err.kind() == AuthErrorKind::InvalidToken => {
                let entry = Entry {
                    expires_at: now + NEGATIVE_TTL,
                    identity: None,
                };
                self.bearer_cache.insert(key, entry, now);
            }
            Err(_) => {}
        }
        result.map(|(identity, _)| identity)
    }

    async fn validate_jwt(&self, token: &str, now: u64) -> Result<(Identity, u64), JwtFailure> {
        let jwt = Unverified::parse(token).map_err(|e| match e {
            JwtError::Critical => invalid(CRITICAL),
            _ => invalid("the token is malformed"),
        })?;
        let typ_ok = jwt.header.typ.as_deref().map(str::to_ascii_lowercase);
        let is_at_jwt = matches!(typ_ok.as_deref(), Some("at+jwt" | "application/at+jwt"));
        if self.config.require_access_token_type && !is_at_jwt {
            return Err(invalid("the token is not an access token (typ at+jwt)").into());
        }
        // Other explicit types (logout+jwt, secevent+jwt, ...) are other kinds of token.
        if !is_at_jwt && !matches!(typ_ok.as_deref(), None | Some("jwt" | "application/jwt")) {
            return Err(invalid("the token is not an access token").into());
        }
        let (_, payload) = self
            .provider
            .verify_parsed(jwt, ACCESS_TOKEN_ALGS)
            .await
            .map_err(|e| match e {
                VerifyError::Jwt(JwtError::Malformed) => invalid("the token is malformed").into(),
                VerifyError::Jwt(JwtError::Critical) => invalid(CRITICAL).into(),
                VerifyError::Jwt(JwtError::DisallowedAlg(_)) => {
                    invalid("the token's signature algorithm is not allowed").into()
                }
                VerifyError::Jwt(JwtError::UnknownKey) => {
                    JwtFailure::UnpublishedKey(invalid("the token's signature is invalid"))
                }
                VerifyError::Jwt(JwtError::BadSignature) => {
                    invalid("the token's signature is invalid").into()
                }
                VerifyError::Unavailable(e) => AuthError::new(
                    AuthErrorKind::ProviderUnavailable,
                    format!("could not fetch the provider's keys: {e}"),
                )
                .into(),
            })?;
        let claims: AccessClaims<'_> =
            serde_json::from_slice(&payload).map_err(|_| invalid("the token is malformed"))?;
        if claims.names_another_kind() {
            // An ID token (claims only ID tokens have), a logout/event token, or a token whose
            // provider-specific type claim names another kind is not an access token.
            return Err(invalid("the token is not an access token").into());
        }
        // An ID token has the client id as audience (the default API audience), is signed by
        // the same keys, and one issued on refresh has no nonce or at_hash: only a token that
        // shows it is an access token is one.
        if !is_at_jwt
            && !claims.marks_an_access_token()
            && !self.config.hardening.accept_unmarked_access_tokens
        {
            return Err(invalid(
                "the token is not an access token (no at+jwt type or access-token claim)",
            )
            .into());
        }
        let exp = self.check_access_claims(&claims, now, true)?;
        let identity = self.bearer_identity(&claims, payload.clone())?;
        Ok((identity, exp))
    }

    /// With an allow-list of clients, the token names the client it was issued to (`azp`,
    /// `client_id`, `cid`, `appid`), and every such claim names an allowed one.
    fn check_allowed_client(&self, claims: &AccessClaims<'_>) -> Result<(), AuthError> {
        let allowed = &self.config.bearer_compat.allowed_clients;
        if allowed.is_empty() {
            return Ok(());
        }
        let named = [&claims.azp, &claims.cid, &claims.appid]
            .into_iter()
            .flatten()
            .map(|t| t.as_str())
            .chain(claims.client_id.as_deref().map(Some));
        let mut any = false;
        for client in named {
            match client {
                Some(client) if allowed.iter().any(|a| a == client) => any = true,
                _ => {
                    return Err(invalid(
                        "the token was issued to a client that is not allowed",
                    ))
                }
            }
        }
        if !any {
            return Err(invalid("the token names no client (azp, client_id)"));
        }
        Ok(())
    }

    /// Shared claim checks; returns the cache expiry (the token's `exp`).
    fn check_access_claims(
        &self,
        claims: &AccessClaims<'_>,
        now: u64,
        jwt: bool,
    ) -> Result<u64, AuthError> {
        let skew = self.config.clock_skew.as_secs() as f64;
        let now_f = now as f64;
        match (&claims.iss, jwt) {
            (Some(_), _) => self.check_bearer_issuer(claims)?,
            (None, false) => {}
            (None, true) => return Err(invalid("the token is from another issuer")),
        }
        let exp = match (claims.exp, jwt) {
            (Some(exp), _) => exp,
            (None, true) => return Err(invalid("the token has no expiry")),
            (None, false) => now_f + 300.0,
        };
        if now_f > exp + skew {
            return Err(invalid("the token has expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now_f + skew) {
            return Err(invalid("the token is not yet valid"));
        }
        if claims.iat.is_some_and(|iat| iat > now_f + skew) {
            return Err(invalid("the token is issued in the future"));
        }
        let audiences = &self.config.api_audiences;
        match &claims.aud {
            Some(aud) if aud.contains_any(audiences) => {}
            // Cognito: no `aud`, the `client_id` claim stands for it (when asked for).
            None if jwt
                && self.config.bearer_compat.client_id_as_audience
                && claims
                    .client_id
                    .as_deref()
                    .is_some_and(|c| audiences.iter().any(|a| a == c)) => {}
            // An introspection answer without `aud`: the token must have been issued to this
            // client (RFC 7662 `client_id`), unless the application opts out.
            None if !jwt
                && (claims.client_id.as_deref() == Some(self.config.client_id.as_str())
                    || self
                        .config
                        .hardening
                        .accept_introspected_tokens_of_any_client) => {}
            _ => return Err(invalid("the token is for another audience")),
        }
        self.check_allowed_client(claims)?;
        // Cache no longer than the token lives (and at most the introspection cache time).
        let exp = exp.max(0.0) as u64;
        Ok(if jwt {
            exp
        } else {
            exp.min(now + self.config.introspection_cache_ttl.as_secs())
        })
    }

    /// The token's `iss` (with its `tid`) is the provider's (for a multi-tenant provider: the
    /// template filled with the token's own, allowed tenant).
    fn check_bearer_issuer(&self, claims: &AccessClaims<'_>) -> Result<(), AuthError> {
        let (iss, tid) = (claims.iss.as_deref(), claims.tid.as_deref());
        // The provider's issuer, else one of the extra bearer issuers (Entra v1, custom
        // domains); a tenant refusal by any of them is the more telling reason.
        let rules = std::iter::once(&self.provider.metadata.issuer_rule)
            .chain(&self.config.bearer_compat.issuer_rules);
        let mut refusal = IssuerRefusal::Issuer;
        for rule in rules {
            match rule.check_token(iss, tid) {
                Ok(()) => return Ok(()),
                Err(IssuerRefusal::Tenant) => refusal = IssuerRefusal::Tenant,
                Err(IssuerRefusal::Issuer) => {}
            }
        }
        Err(match refusal {
            IssuerRefusal::Tenant => {
                invalid("the token's tenant (tid) is missing or not an allowed tenant")
            }
            IssuerRefusal::Issuer => invalid("the token is from another issuer"),
        })
    }

    fn bearer_identity(
        &self,
        claims: &AccessClaims<'_>,
        claims_json: Vec<u8>,
    ) -> Result<Identity, AuthError> {
        let subject = claims
            .sub
            .as_deref()
            .or(claims.client_id.as_deref())
            .ok_or_else(|| invalid("the token names no subject"))?;
        let issuer = claims
            .iss
            .as_deref()
            .unwrap_or(&self.provider.metadata.issuer);
        let scope = scope_of(&claims_json);
        let bound = confirmation_jkt(&claims_json);
        Ok(Identity::from_parts(
            subject.to_owned(),
            issuer.into(),
            claims_json.into(),
            scope,
            Source::Bearer,
            None,
            RoleSource {
                claims: self.config.compat.roles.clone(),
                granted: bytes::Bytes::new(),
            },
        )
        .with_dpop_jkt(bound))
    }

    /// RFC 7662 introspection, authenticated as this client.
    async fn introspect(&self, token: &str, now: u64) -> Result<(Identity, u64), AuthError> {
        let Some(endpoint) = self.introspection_endpoint() else {
            return Err(invalid("opaque tokens are not accepted (no introspection)"));
        };
        let params = [("token", token), ("token_type_hint", "access_token")];
        let (status, body) = match &self.config.bearer_compat.introspection_client {
            // Credentials of its own (Zitadel: an API application introspects).
            Some((id, secret)) => {
                self.provider
                    .basic_post(endpoint, id, &secret.0, &params)
                    .await?
            }
            None => {
                self.provider
                    .authenticated_post(&self.config, self.now(), endpoint, &params)
                    .await?
            }
        };
        if status.is_server_error() {
            return Err(AuthError::new(
                AuthErrorKind::ProviderUnavailable,
                format!("introspection answered HTTP {status}"),
            ));
        }
        if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
            // Our client is refused (wrong secret, no right to introspect): nothing the caller
            // did, and nothing a caller can fix; the provider is unusable for us.
            tracing::error!(%status, "the introspection endpoint refused this client");
            return Err(AuthError::new(
                AuthErrorKind::ProviderUnavailable,
                format!("introspection refused this client (HTTP {status})"),
            ));
        }
        if !status.is_success() {
            // Any other refusal (`400 invalid_request`...) is about the token the caller sent.
            return Err(invalid("the introspection endpoint refused the token"));
        }
        let claims: AccessClaims<'_> = serde_json::from_slice(&body).map_err(|_| {
            AuthError::new(
                AuthErrorKind::ProviderUnavailable,
                "introspection answered something that is not JSON",
            )
        })?;
        if claims.active != Some(true) {
            return Err(invalid("the token is not active"));
        }
        // The provider vouches for the token being active, not for it being an access token:
        // a refresh or ID token it knows is active too.
        // RFC 9449 §6.2: a DPoP-bound token introspects as `DPoP` (with `cnf.jkt`).
        let access_type = |t: &Text<'_>| t.is("access_token") || t.is("Bearer") || t.is("DPoP");
        if claims.names_another_kind()
            || claims.token_type.as_ref().is_some_and(|t| !access_type(t))
        {
            return Err(invalid("the token is not an access token"));
        }
        let exp = self.check_access_claims(&claims, now, false)?;
        let identity = self.bearer_identity(&claims, body.clone())?;
        Ok((identity, exp))
    }

    fn introspection_endpoint(&self) -> Option<&url::Url> {
        if !self.config.introspection.unwrap_or(true) {
            return None;
        }
        self.provider.metadata.introspection_endpoint.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(
            bearer_token(&headers("Bearer abc.def-_~+/=")),
            Some(Ok("abc.def-_~+/="))
        );
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some(Ok("abc")));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer")), Some(Err(())));
        assert_eq!(bearer_token(&headers("Bearer a b")), Some(Err(())));
        assert_eq!(bearer_token(&headers("Bearer a\"b")), Some(Err(())));
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
