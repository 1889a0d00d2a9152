//! HTTP endpoints and in-memory state of the development provider.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header;
use http::StatusCode;
use ring::rand::SystemRandom;
use serde_json::Value;
use url::Url;

use super::keys::{self, PublicKey, SigningKey};
use super::{DevClient, DevSigningAlg, DevUser, Fault, IdTokenFault};

mod authorize;
mod client_auth;
mod discovery;
mod dpop;
mod end_session;
mod introspect;
mod issue;
mod jwks;
mod par;
mod params;
mod response;
mod token;
mod userinfo;

/// Issuer used by the "wrong issuer" faults.
const WRONG_ISSUER: &str = "https://wrong-issuer.invalid";
/// Subject used by [`IdTokenFault::OtherSubject`].
const OTHER_SUBJECT: &str = "mallory";

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
    pub(crate) opaque_access_tokens: bool,
    pub(crate) auto_login: Option<String>,
    pub(crate) authorization_response_iss: bool,
    pub(crate) require_par: bool,
    pub(crate) dpop_nonce: bool,
    /// Multi-tenant (Entra-like): discovery's `issuer` is this template (with `{tenantid}`).
    pub(crate) tenant_template: Option<String>,
    pub(crate) key: SigningKey,
}

/// The tenant of tokens from a multi-tenant provider until [`Shared::set_tenant`].
pub(crate) const DEFAULT_TENANT: &str = "00000000-0000-4000-8000-00000000000a";
/// The tenant that [`IdTokenFault::OtherTenantIssuer`] puts into `iss`.
const OTHER_TENANT: &str = "00000000-0000-4000-8000-00000000000f";

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) token: AtomicU64,
    pub(crate) jwks: AtomicU64,
    pub(crate) userinfo: AtomicU64,
    pub(crate) discovery: AtomicU64,
    pub(crate) authorization: AtomicU64,
    pub(crate) end_session: AtomicU64,
    pub(crate) introspection: AtomicU64,
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
    /// RFC 9207: `iss` in authorization responses, advertised in discovery.
    authorization_response_iss: bool,
    opaque_access_tokens: bool,
    /// RFC 9126: authorization requests must be pushed first.
    require_par: bool,
    /// RFC 9449 §8: DPoP proofs must carry this nonce (`None`: no nonce needed).
    dpop_nonce: Option<String>,
    tenant_template: Option<String>,
    rng: SystemRandom,
    pub(crate) stats: Counters,
    /// Woken when faults are cleared (see [`Fault::HoldIntrospection`]).
    pub(crate) released: tokio::sync::Notify,
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
    /// The tenant of the tokens issued now (multi-tenant mode).
    pub(crate) tenant: String,
    key: Arc<SigningKey>,
    retired: Vec<PublicKey>,
    codes: HashMap<String, Code>,
    /// Access tokens by the hash of their text.
    access: HashMap<String, AccessRecord>,
    /// Refresh tokens by the hash of their text.
    refresh: HashMap<String, RefreshRecord>,
    revoked_grants: HashSet<u64>,
    next_grant: u64,
    /// Pushed authorization requests by their `request_uri`.
    pushed: HashMap<String, par::Pushed>,
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
    /// The DPoP key thumbprint the token is bound to.
    jkt: Option<String>,
    sub: String,
    client_id: String,
    scope: Vec<String>,
    exp: u64,
    grant: u64,
}

struct RefreshRecord {
    /// The DPoP key thumbprint the refresh token is bound to.
    jkt: Option<String>,
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
            authorization_response_iss: s.authorization_response_iss,
            opaque_access_tokens: s.opaque_access_tokens,
            require_par: s.require_par,
            dpop_nonce: s
                .dpop_nonce
                .then(|| keys::random_token(&SystemRandom::new(), 16)),
            tenant_template: s.tenant_template,
            rng: SystemRandom::new(),
            stats: Counters::default(),
            released: tokio::sync::Notify::new(),
            state: Mutex::new(State {
                auto_login: s.auto_login,
                faults: Vec::new(),
                tenant: DEFAULT_TENANT.to_owned(),
                key: Arc::new(s.key),
                retired: Vec::new(),
                codes: HashMap::new(),
                access: HashMap::new(),
                refresh: HashMap::new(),
                revoked_grants: HashSet::new(),
                next_grant: 1,
                pushed: HashMap::new(),
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

    /// Signs `claims` with the current key, with `extra` header members over the usual
    /// ones (`alg`, `kid`, `typ: JWT`).
    pub(crate) fn sign_jwt_with_header(&self, extra: &Value, claims: &Value) -> Option<String> {
        let key = self.state().key.clone();
        key.jws_with_header(extra, claims, &self.rng)
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

    /// Discovery's `issuer`: the tenant template in multi-tenant mode.
    pub(crate) fn discovery_issuer(&self) -> &str {
        self.tenant_template.as_deref().unwrap_or(&self.issuer)
    }

    /// The issuer of tenant `tid` (the plain issuer when not multi-tenant).
    pub(crate) fn issuer_of(&self, tid: &str) -> String {
        match &self.tenant_template {
            Some(template) => template.replace("{tenantid}", tid),
            None => self.issuer.clone(),
        }
    }

    /// `iss` and `tid` of the tokens issued now (`tid` only in multi-tenant mode).
    pub(crate) fn token_issuer(&self, state: &State) -> (String, Option<String>) {
        let tid = self.tenant_template.as_ref().map(|_| state.tenant.clone());
        (self.issuer_of(&state.tenant), tid)
    }

    /// Whether `iss` names this provider (any tenant in multi-tenant mode).
    pub(crate) fn is_own_issuer(&self, iss: &str) -> bool {
        match &self.tenant_template {
            Some(template) => template
                .split_once("{tenantid}")
                .and_then(|(p, s)| iss.strip_prefix(p)?.strip_suffix(s))
                .is_some_and(|tid| !tid.is_empty() && !tid.contains('/')),
            None => iss == self.issuer,
        }
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}/{name}", self.issuer)
    }

    /// The `iss` of authorization responses; `None` for a provider without RFC 9207.
    fn authorization_iss(&self) -> Option<String> {
        if !self.authorization_response_iss {
            None
        } else if self.has_fault(&Fault::WrongAuthorizationIss) {
            Some(WRONG_ISSUER.to_owned())
        } else {
            Some(self.token_issuer(&self.state()).0)
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
        .route(&format!("{p}/token"), axum::routing::post(token::token))
        .route(&format!("{p}/par"), axum::routing::post(par::par))
        .route(
            &format!("{p}/introspect"),
            axum::routing::post(introspect::introspect),
        )
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

/// Two mebibytes of filler for the oversized-document faults.
fn padding() -> String {
    "x".repeat(2 << 20)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const ISSUER: &str = "https://op.test";
    pub(super) const CONF_ID: &str = "conf";
    pub(super) const CONF_SECRET: &str = "s3cret";
    pub(super) const CONF_REDIRECT: &str = "https://rp.test/cb";
    pub(super) const PUBLIC_ID: &str = "pub";

    /// A provider state with a confidential client (one registered redirect URI), a public
    /// client (loopback redirect URIs), the users alice and bob, and refresh tokens enabled.
    pub(super) fn shared() -> Shared {
        let mut conf = DevClient::confidential(CONF_ID, CONF_SECRET);
        conf.redirect_uris = vec![CONF_REDIRECT.to_owned()];
        conf.post_logout_redirect_uris = vec!["https://rp.test/bye".to_owned()];
        Shared::new(Settings {
            issuer: ISSUER.to_owned(),
            prefix: String::new(),
            clients: vec![conf, DevClient::public(PUBLIC_ID)],
            users: vec![
                DevUser::new("alice", "Alice Example", "alice@example.test"),
                DevUser::new("bob", "Bob Example", "bob@example.test"),
            ],
            alg: DevSigningAlg::Es256,
            id_token_ttl: Duration::from_secs(300),
            access_token_ttl: Duration::from_secs(600),
            refresh_tokens: true,
            access_token_audience: None,
            opaque_access_tokens: false,
            auto_login: None,
            authorization_response_iss: true,
            require_par: false,
            dpop_nonce: false,
            tenant_template: None,
            key: SigningKey::generate(DevSigningAlg::Es256, &SystemRandom::new())
                .expect("key generation"),
        })
    }

    /// Verifies a JWS with the provider's current key and returns its claims.
    pub(super) fn verified_claims(s: &Shared, jwt: &str) -> Option<Value> {
        let state = s.state();
        keys::verify_jws(jwt, [&state.key.public])
    }

    #[test]
    fn loopback_uris_are_recognised() {
        for uri in [
            "http://localhost/cb",
            "http://LOCALHOST:8080/cb",
            "https://127.0.0.1/cb",
            "http://127.8.9.10:3000/",
            "http://[::1]:8080/cb?x=1",
        ] {
            assert!(is_loopback_uri(uri), "{uri} is a loopback URI");
        }
        for uri in [
            "http://localhost/cb#fragment",
            "ftp://localhost/cb",
            "http://localhost.example.test/cb",
            "http://10.0.0.1/cb",
            "https://rp.test/cb",
            "http://[::2]/cb",
            "not a uri",
            "",
        ] {
            assert!(!is_loopback_uri(uri), "{uri} is not a loopback URI");
        }
    }

    #[test]
    fn registered_uris_must_match_exactly_and_replace_the_loopback_rule() {
        let registered = vec!["https://rp.test/cb".to_owned()];
        assert!(uri_allowed(&registered, "https://rp.test/cb"));
        assert!(!uri_allowed(&registered, "https://rp.test/cb/"));
        assert!(!uri_allowed(&registered, "https://rp.test/cb?x=1"));
        assert!(!uri_allowed(&registered, "http://localhost/cb"));
        assert!(uri_allowed(&[], "http://localhost/cb"));
        assert!(!uri_allowed(&[], "https://rp.test/cb"));
    }

    #[test]
    fn token_key_is_the_base64url_sha256_of_the_token() {
        // SHA-256("abc"), base64url without padding.
        assert_eq!(
            token_key("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        assert_ne!(token_key("abc"), token_key("abd"));
    }

    #[test]
    fn lookups_endpoints_and_the_authorization_iss_fault() {
        let mut s = shared();
        assert_eq!(s.client(CONF_ID).map(|c| c.id.as_str()), Some(CONF_ID));
        assert!(s.client("nobody").is_none());
        assert_eq!(s.user("bob").map(|u| u.name.as_str()), Some("Bob Example"));
        assert!(s.user("carol").is_none());
        assert_eq!(s.endpoint("token"), "https://op.test/token");
        assert_eq!(s.authorization_iss().as_deref(), Some(ISSUER));
        s.state().faults.push(Fault::WrongAuthorizationIss);
        assert_eq!(s.authorization_iss().as_deref(), Some(WRONG_ISSUER));
        s.authorization_response_iss = false;
        assert_eq!(s.authorization_iss(), None);
    }

    #[test]
    fn fault_lookup_returns_the_first_match() {
        let s = shared();
        assert!(s.fault(|f| matches!(f, Fault::TokenError(_))).is_none());
        s.state().faults.push(Fault::TokenError("first".into()));
        s.state().faults.push(Fault::TokenError("second".into()));
        assert_eq!(
            s.fault(|f| matches!(f, Fault::TokenError(_))),
            Some(Fault::TokenError("first".into()))
        );
        assert!(!s.has_fault(&Fault::Down));
    }

    #[test]
    fn rotation_signs_with_a_new_key_and_retires_the_old_one() {
        let s = shared();
        let old_kid = s.state().key.public.kid.clone();
        let before = s.sign_jwt("JWT", &serde_json::json!({ "n": 1 })).unwrap();
        s.rotate_keys();
        let state = s.state();
        assert_ne!(state.key.public.kid, old_kid);
        assert_eq!(state.retired.len(), 1);
        assert_eq!(state.retired[0].kid, old_kid);
        assert!(keys::verify_jws(&before, [&state.key.public]).is_none());
        assert!(keys::verify_jws(&before, state.retired.iter()).is_some());
    }

    #[tokio::test]
    async fn gate_answers_503_only_while_down() {
        let s = shared();
        assert!(s.gate().await.is_none());
        s.state().faults.push(Fault::Down);
        let response = s.gate().await.expect("the provider is down");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }
}
