//! HTTP endpoints and in-memory state of the development provider.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use ring::rand::SystemRandom;
use serde_json::{json, Value};
use subtle::ConstantTimeEq as _;
use url::Url;

use super::keys::{self, PublicKey, SigningKey};
use super::{DevClient, DevSigningAlg, DevUser, Fault, IdTokenFault};

mod authorize;
mod discovery;
mod end_session;
mod jwks;
mod params;
mod response;
mod userinfo;

use authorize::is_pkce_value;
use params::{is_form, Params};
use response::json_response;

/// Lifetime of authorization codes.
const CODE_TTL: u64 = 60;
/// Issuer used by the "wrong issuer" faults.
const WRONG_ISSUER: &str = "https://wrong-issuer.invalid";
/// Audience used by the audience faults.
const OTHER_AUDIENCE: &str = "some-other-client";

pub(crate) struct Settings {
    pub(crate) issuer: String,
    pub(crate) prefix: String,
    pub(crate) clients: Vec<DevClient>,
    pub(crate) users: Vec<DevUser>,
    pub(crate) alg: DevSigningAlg,
    pub(crate) id_token_ttl: Duration,
    pub(crate) access_token_ttl: Duration,
    pub(crate) refresh_tokens: bool,
    pub(crate) access_token_audience: Option<String>,
    pub(crate) auto_login: Option<String>,
    pub(crate) key: SigningKey,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) token: AtomicU64,
    pub(crate) jwks: AtomicU64,
    pub(crate) userinfo: AtomicU64,
    pub(crate) discovery: AtomicU64,
    pub(crate) authorization: AtomicU64,
    pub(crate) end_session: AtomicU64,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) issuer: String,
    prefix: String,
    pub(crate) clients: Vec<DevClient>,
    pub(crate) users: Vec<DevUser>,
    alg: DevSigningAlg,
    id_token_ttl: u64,
    access_token_ttl: u64,
    refresh_tokens: bool,
    access_token_audience: Option<String>,
    rng: SystemRandom,
    pub(crate) stats: Counters,
    state: Mutex<State>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("issuer", &self.issuer)
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

/// Mutable state, behind one lock that is never held across an `.await`.
pub(crate) struct State {
    pub(crate) auto_login: Option<String>,
    pub(crate) faults: Vec<Fault>,
    key: Arc<SigningKey>,
    retired: Vec<PublicKey>,
    codes: HashMap<String, Code>,
    /// Access tokens by the hash of their text.
    access: HashMap<String, AccessRecord>,
    /// Refresh tokens by the hash of their text.
    refresh: HashMap<String, RefreshRecord>,
    revoked_grants: HashSet<u64>,
    next_grant: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ChallengeMethod {
    S256,
    Plain,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    scope: Vec<String>,
    nonce: Option<String>,
    challenge: Option<(String, ChallengeMethod)>,
    sub: String,
    auth_time: u64,
    sid: String,
    created: u64,
    /// The grant created when the code was redeemed.
    redeemed: Option<u64>,
}

struct AccessRecord {
    sub: String,
    client_id: String,
    scope: Vec<String>,
    exp: u64,
    grant: u64,
}

struct RefreshRecord {
    client_id: String,
    sub: String,
    scope: Vec<String>,
    auth_time: u64,
    sid: String,
    grant: u64,
    used: bool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn token_key(token: &str) -> String {
    keys::encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

impl Shared {
    pub(crate) fn new(s: Settings) -> Self {
        Self {
            issuer: s.issuer,
            prefix: s.prefix,
            clients: s.clients,
            users: s.users,
            alg: s.alg,
            id_token_ttl: s.id_token_ttl.as_secs(),
            access_token_ttl: s.access_token_ttl.as_secs(),
            refresh_tokens: s.refresh_tokens,
            access_token_audience: s.access_token_audience,
            rng: SystemRandom::new(),
            stats: Counters::default(),
            state: Mutex::new(State {
                auto_login: s.auto_login,
                faults: Vec::new(),
                key: Arc::new(s.key),
                retired: Vec::new(),
                codes: HashMap::new(),
                access: HashMap::new(),
                refresh: HashMap::new(),
                revoked_grants: HashSet::new(),
                next_grant: 1,
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn client(&self, id: &str) -> Option<&DevClient> {
        self.clients.iter().find(|c| c.id == id)
    }

    fn user(&self, sub: &str) -> Option<&DevUser> {
        self.users.iter().find(|u| u.sub == sub)
    }

    fn fault(&self, pred: impl Fn(&Fault) -> bool) -> Option<Fault> {
        self.state().faults.iter().find(|f| pred(f)).cloned()
    }

    fn has_fault(&self, fault: &Fault) -> bool {
        self.state().faults.contains(fault)
    }

    pub(crate) fn rotate_keys(&self) {
        match SigningKey::generate(self.alg, &self.rng) {
            Ok(key) => {
                let mut state = self.state();
                let old = std::mem::replace(&mut state.key, Arc::new(key));
                state.retired.push(old.public.clone());
                tracing::debug!(kid = %state.key.public.kid, "development provider rotated its key");
            }
            Err(error) => tracing::error!(%error, "development provider could not generate a key"),
        }
    }

    /// Signs `claims` with the current key.
    pub(crate) fn sign_jwt(&self, typ: &str, claims: &Value) -> Option<String> {
        let key = self.state().key.clone();
        key.jws(typ, None, claims, &self.rng)
    }

    /// Applies the `Delay` and `Down` faults; `Some` is the answer to send instead.
    async fn gate(&self) -> Option<Response> {
        let (delay, down) = {
            let state = self.state();
            let delay = state.faults.iter().find_map(|f| match f {
                Fault::Delay(d) => Some(*d),
                _ => None,
            });
            (delay, state.faults.contains(&Fault::Down))
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        down.then(|| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::RETRY_AFTER, "1"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                "the development provider is down (fault injection)\n",
            )
                .into_response()
        })
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}/{name}", self.issuer)
    }

    fn authorization_iss(&self) -> &str {
        if self.has_fault(&Fault::WrongAuthorizationIss) {
            WRONG_ISSUER
        } else {
            &self.issuer
        }
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let p = shared.prefix.clone();
    Router::new()
        .route(
            &format!("{p}/.well-known/openid-configuration"),
            get(discovery::discovery),
        )
        .route(&format!("{p}/jwks"), get(jwks::jwks))
        .route(
            &format!("{p}/authorize"),
            get(authorize::authorize).post(authorize::authorize),
        )
        .route(
            &format!("{p}/authorize/login"),
            axum::routing::post(authorize::authorize_login),
        )
        .route(&format!("{p}/token"), axum::routing::post(token))
        .route(
            &format!("{p}/userinfo"),
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(
            &format!("{p}/end_session"),
            get(end_session::end_session).post(end_session::end_session),
        )
        .with_state(shared)
}

type St = AxState<Arc<Shared>>;

/// Whether a URI is an `http`/`https` URI on a loopback host, without a fragment.
fn is_loopback_uri(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn uri_allowed(registered: &[String], uri: &str) -> bool {
    if registered.is_empty() {
        is_loopback_uri(uri)
    } else {
        registered.iter().any(|r| r == uri)
    }
}

// ---------------------------------------------------------------------------------------
// Token endpoint
// ---------------------------------------------------------------------------------------

struct TokenError {
    status: StatusCode,
    error: String,
    description: String,
    basic: bool,
}

impl TokenError {
    fn new(error: &str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: error.to_owned(),
            description: description.into(),
            basic: false,
        }
    }

    fn invalid_client(description: &str, basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client".to_owned(),
            description: description.to_owned(),
            basic,
        }
    }

    fn into_response(self) -> Response {
        tracing::debug!(error = %self.error, description = %self.description,
            "development provider token error");
        let mut body = json!({ "error": self.error });
        if !self.description.is_empty() {
            body["error_description"] = Value::String(self.description);
        }
        let mut response = json_response(self.status, &body);
        if self.basic {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tower-oidc dev provider\""),
            );
        }
        response
    }
}

/// Decodes one half of HTTP Basic credentials (RFC 6749 §2.3.1: form-urlencoded).
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine as _;
    let text = value.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

impl Shared {
    fn authenticate_client(
        &self,
        headers: &HeaderMap,
        p: &Params,
    ) -> Result<&DevClient, TokenError> {
        let mut auth = headers.get_all(header::AUTHORIZATION).iter();
        let header_value = auth.next();
        if auth.next().is_some() {
            return Err(TokenError::new(
                "invalid_request",
                "repeated Authorization header",
            ));
        }
        let (id, secret, basic) = match header_value {
            Some(value) => {
                let Some((id, secret)) = basic_credentials(value) else {
                    return Err(TokenError::invalid_client(
                        "malformed HTTP Basic credentials",
                        true,
                    ));
                };
                if p.get("client_secret").is_some() {
                    return Err(TokenError::new(
                        "invalid_request",
                        "use only one client authentication method",
                    ));
                }
                if p.get("client_id").is_some_and(|body_id| body_id != id) {
                    return Err(TokenError::new(
                        "invalid_request",
                        "client_id differs from the authenticated client",
                    ));
                }
                (id, Some(secret).filter(|s| !s.is_empty()), true)
            }
            None => {
                let Some(id) = p.get("client_id") else {
                    return Err(TokenError::invalid_client(
                        "client authentication is missing",
                        false,
                    ));
                };
                (
                    id.to_owned(),
                    p.get("client_secret").map(str::to_owned),
                    false,
                )
            }
        };
        let Some(client) = self.client(&id) else {
            return Err(TokenError::invalid_client("unknown client", basic));
        };
        match (&client.secret, secret) {
            (Some(expected), Some(given)) => {
                if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
                    Ok(client)
                } else {
                    Err(TokenError::invalid_client("wrong client secret", basic))
                }
            }
            (Some(_), None) => Err(TokenError::invalid_client(
                "this client must authenticate with its secret",
                basic,
            )),
            (None, None) => Ok(client),
            (None, Some(_)) => Err(TokenError::invalid_client(
                "this public client has no secret",
                basic,
            )),
        }
    }
}

async fn token(AxState(s): St, headers: HeaderMap, body: Bytes) -> Response {
    s.stats.token.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = s.gate().await {
        return r;
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
    match p.get("grant_type") {
        None => Err(TokenError::new("invalid_request", "grant_type is missing")),
        Some("authorization_code") => s.code_grant(client, &p),
        Some("refresh_token") if s.refresh_tokens => s.refresh_grant(client, &p),
        Some(_) => Err(TokenError::new(
            "unsupported_grant_type",
            "supported grant types: authorization_code, refresh_token",
        )),
    }
}

/// What a token response is issued for.
struct Issue<'a> {
    client_id: &'a str,
    sub: &'a str,
    scope: &'a [String],
    auth_time: u64,
    sid: &'a str,
    nonce: Option<&'a str>,
    grant: u64,
}

impl Shared {
    fn code_grant(&self, client: &DevClient, p: &Params) -> Result<Value, TokenError> {
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
            },
        )
    }

    fn refresh_grant(&self, client: &DevClient, p: &Params) -> Result<Value, TokenError> {
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
            },
        )
    }

    fn user_claims(&self, claims: &mut Value, sub: &str, scope: &[String]) {
        let Some(user) = self.user(sub) else {
            return;
        };
        if scope.iter().any(|s| s == "profile") {
            claims["name"] = json!(user.name);
        }
        if scope.iter().any(|s| s == "email") {
            claims["email"] = json!(user.email);
            claims["email_verified"] = json!(true);
        }
    }

    fn issue(&self, state: &mut State, i: Issue<'_>) -> Result<Value, TokenError> {
        let now = now();
        let key = state.key.clone();
        let server_error = || TokenError::new("server_error", "signing failed");

        // Access token (RFC 9068).
        let mut aud = vec![json!(i.client_id)];
        if let Some(extra) = &self.access_token_audience {
            aud.push(json!(extra));
        }
        let access_exp = now + self.access_token_ttl;
        let at_claims = json!({
            "iss": self.issuer,
            "sub": i.sub,
            "aud": if aud.len() == 1 { aud[0].clone() } else { Value::Array(aud) },
            "client_id": i.client_id,
            "scope": i.scope.join(" "),
            "exp": access_exp,
            "iat": now,
            "auth_time": i.auth_time,
            "jti": keys::random_token(&self.rng, 16),
        });
        let access_token = key
            .jws("at+jwt", None, &at_claims, &self.rng)
            .ok_or_else(server_error)?;
        state.access.retain(|_, r| r.exp >= now);
        state.access.insert(
            token_key(&access_token),
            AccessRecord {
                sub: i.sub.to_owned(),
                client_id: i.client_id.to_owned(),
                scope: i.scope.to_vec(),
                exp: access_exp,
                grant: i.grant,
            },
        );

        let mut response = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "scope": i.scope.join(" "),
        });
        let faults = state.faults.clone();
        if let Some(Fault::TokenType(t)) = faults.iter().find(|f| matches!(f, Fault::TokenType(_)))
        {
            response["token_type"] = json!(t);
        }

        if i.scope.iter().any(|s| s == "openid") && !faults.contains(&Fault::MissingIdToken) {
            let id_faults: Vec<IdTokenFault> = faults
                .iter()
                .filter_map(|f| match f {
                    Fault::IdToken(x) => Some(*x),
                    _ => None,
                })
                .collect();
            let id_token = self
                .id_token(&key, &i, &access_token, now, &id_faults)
                .ok_or_else(server_error)?;
            response["id_token"] = json!(id_token);
        }

        if self.refresh_tokens && i.scope.iter().any(|s| s == "offline_access") {
            let refresh = keys::random_token(&self.rng, 32);
            state.refresh.insert(
                token_key(&refresh),
                RefreshRecord {
                    client_id: i.client_id.to_owned(),
                    sub: i.sub.to_owned(),
                    scope: i.scope.to_vec(),
                    auth_time: i.auth_time,
                    sid: i.sid.to_owned(),
                    grant: i.grant,
                    used: false,
                },
            );
            response["refresh_token"] = json!(refresh);
        }
        Ok(response)
    }

    fn id_token(
        &self,
        key: &SigningKey,
        i: &Issue<'_>,
        access_token: &str,
        now: u64,
        faults: &[IdTokenFault],
    ) -> Option<String> {
        let has = |f: IdTokenFault| faults.contains(&f);
        let (mut iat, mut exp) = (now, now + self.id_token_ttl);
        if has(IdTokenFault::Expired) {
            exp = now.saturating_sub(600);
            iat = exp.saturating_sub(self.id_token_ttl);
        }
        if has(IdTokenFault::IssuedInFuture) {
            iat = now + 3600;
            exp = iat + self.id_token_ttl;
        }
        let mut claims = json!({
            "iss": if has(IdTokenFault::WrongIssuer) { WRONG_ISSUER } else { self.issuer.as_str() },
            "sub": i.sub,
            "aud": if has(IdTokenFault::WrongAudience) { OTHER_AUDIENCE } else { i.client_id },
            "exp": exp,
            "iat": iat,
            "auth_time": i.auth_time.min(iat),
            "sid": i.sid,
            "azp": i.client_id,
            "at_hash": if has(IdTokenFault::WrongAtHash) {
                keys::left_half_hash("not the access token")
            } else {
                keys::left_half_hash(access_token)
            },
        });
        if has(IdTokenFault::MultipleAudiencesWithoutAzp) {
            claims["aud"] = json!([claims["aud"].clone(), "another-audience"]);
            if let Some(obj) = claims.as_object_mut() {
                obj.remove("azp");
            }
        }
        if has(IdTokenFault::WrongNonce) {
            claims["nonce"] = json!(keys::random_token(&self.rng, 16));
        } else if let Some(nonce) = i.nonce {
            claims["nonce"] = json!(nonce);
        }
        self.user_claims(&mut claims, i.sub, i.scope);

        if has(IdTokenFault::AlgNone) {
            let header = json!({ "alg": "none", "typ": "JWT" });
            return Some(format!("{}.", keys::signing_input(&header, &claims)));
        }
        if has(IdTokenFault::HmacWithPublicKey) {
            let header = json!({ "alg": "HS256", "kid": key.public.kid, "typ": "JWT" });
            let input = keys::signing_input(&header, &claims);
            let mac = keys::hs256(key.public.pem().as_bytes(), input.as_bytes());
            return Some(format!("{input}.{mac}"));
        }
        let kid = has(IdTokenFault::UnknownKid).then(|| format!("unknown-{}", key.public.kid));
        let token = key.jws("JWT", kid.as_deref(), &claims, &self.rng)?;
        if has(IdTokenFault::BadSignature) {
            return Some(corrupt_signature(&token));
        }
        Some(token)
    }
}

/// Flips bits in the first signature byte of a compact JWS.
fn corrupt_signature(token: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Some((input, sig)) = token.rsplit_once('.') else {
        return token.to_owned();
    };
    let mut sig = engine.decode(sig).unwrap_or_default();
    if let Some(first) = sig.first_mut() {
        *first ^= 0x55;
    }
    format!("{input}.{}", engine.encode(sig))
}
