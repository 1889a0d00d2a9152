//! [`Identity`]: who is calling, as validated by the layer, and its [`AccessToken`]. The axum
//! extractors are in `extract`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::hook::AppData;

/// The validated identity of the caller, put into the request extensions by
/// [`OidcLayer`](crate::OidcLayer).
///
/// Cheap to clone. Claims are parsed lazily, on the first call of [`Identity::claims`], so
/// requests that only need the subject pay nothing for them.
///
/// # Example
///
/// With axum, extract it (a missing login is answered by caller kind: a redirect to login for
/// a browser, `401` for scripts, `grpc-status: 16` for gRPC), or take `Option<Identity>` on
/// public pages:
///
/// ```
/// use axum::{routing::get, Json, Router};
/// use tower_oidc::Identity;
///
/// async fn me(id: Identity) -> Json<serde_json::Value> {
///     Json(serde_json::Value::Object(id.claims().clone()))
/// }
///
/// async fn home(id: Option<Identity>) -> String {
///     match id {
///         Some(id) => format!("Hello, {}", id.name().unwrap_or(id.subject())),
///         None => "Hello, stranger".into(),
///     }
/// }
///
/// let app: Router = Router::new().route("/me", get(me)).route("/", get(home));
/// ```
///
/// Any other framework reads it from the extensions:
///
/// ```
/// use tower_oidc::Identity;
///
/// fn user_of<B>(req: &http::Request<B>) -> Option<&str> {
///     req.extensions().get::<Identity>().map(Identity::subject)
/// }
/// ```
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    subject: String,
    issuer: Arc<str>,
    claims_json: Bytes,
    claims: OnceLock<Map<String, Value>>,
    /// Granted scopes, space-separated.
    scope: String,
    source: Source,
    access_token: Option<AccessToken>,
    /// Where roles are read from, and roles granted elsewhere (the access token's).
    role_source: RoleSource,
    roles: OnceLock<Vec<String>>,
    /// The JWK thumbprint a bearer token is bound to (`cnf.jkt`, RFC 9449 §6).
    dpop_jkt: OnceLock<Box<str>>,
    /// The post-login hook's app subject and claims, serialized (empty: none).
    app_json: Bytes,
    app: OnceLock<AppData>,
    /// Unix seconds when the session ends (0: not a session, or unknown).
    session_expires_at: u64,
}

/// In the request extensions of a request that passed no [`OidcLayer`](crate::OidcLayer) on
/// purpose (the test layer of `testing`): a missing login is answered like the layer would,
/// without a login route, instead of as a server configuration mistake.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(crate) struct WithoutLoginRoute;

/// How the caller proved who it is.
///
/// # Example
///
/// ```
/// use tower_oidc::{Identity, Source};
///
/// // A CSRF defence only matters for cookies: bearer tokens are never sent by the browser
/// // on its own.
/// fn needs_csrf_check(id: &Identity) -> bool {
///     id.source() == Source::Session
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The browser session cookie.
    Session,
    /// An `Authorization: Bearer` access token.
    Bearer,
}

impl Identity {
    /// An identity with these claims, e.g. to test handlers without a provider.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::Identity;
    ///
    /// let mut claims = serde_json::Map::new();
    /// claims.insert("email".into(), "alice@example.com".into());
    /// let id = Identity::new("alice", "https://id.example.com", claims);
    /// assert_eq!(id.email(), Some("alice@example.com"));
    /// ```
    pub fn new(
        subject: impl Into<String>,
        issuer: impl Into<String>,
        mut claims: Map<String, Value>,
    ) -> Self {
        let subject = subject.into();
        let issuer: String = issuer.into();
        claims.insert("sub".into(), Value::String(subject.clone()));
        claims.insert("iss".into(), Value::String(issuer.clone()));
        let claims_json = Bytes::from(serde_json::to_vec(&claims).unwrap_or_default());
        let scope = scope_of(&claims_json);
        let lock = OnceLock::new();
        let _ = lock.set(claims);
        Self {
            inner: Arc::new(Inner {
                subject,
                issuer: issuer.into(),
                claims_json,
                claims: lock,
                scope,
                source: Source::Session,
                access_token: None,
                role_source: RoleSource::default(),
                roles: OnceLock::new(),
                dpop_jkt: OnceLock::new(),
                app_json: Bytes::new(),
                app: OnceLock::new(),
                session_expires_at: 0,
            }),
        }
    }

    /// From a session or a validated token: claims stay serialized until asked for.
    pub(crate) fn from_parts(
        subject: String,
        issuer: Arc<str>,
        claims_json: Bytes,
        scope: String,
        source: Source,
        access_token: Option<AccessToken>,
        role_source: RoleSource,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                subject,
                issuer,
                claims_json,
                claims: OnceLock::new(),
                scope,
                source,
                access_token,
                role_source,
                roles: OnceLock::new(),
                dpop_jkt: OnceLock::new(),
                app_json: Bytes::new(),
                app: OnceLock::new(),
                session_expires_at: 0,
            }),
        }
    }

    /// Marks a bearer identity as DPoP-bound to the key with this JWK thumbprint (its token's
    /// `cnf.jkt`); `None` leaves it unbound.
    pub(crate) fn with_dpop_jkt(self, jkt: Option<String>) -> Self {
        if let Some(jkt) = jkt {
            // A fresh identity: the cell is empty, so the binding is always recorded.
            let _ = self.inner.dpop_jkt.set(jkt.into_boxed_str());
        }
        self
    }

    /// The JWK thumbprint the bearer token is bound to, for a DPoP-bound token.
    pub(crate) fn dpop_jkt(&self) -> Option<&str> {
        self.inner.dpop_jkt.get().map(|jkt| &**jkt)
    }

    /// With the app's data of a session (set by the post-login hook).
    pub(crate) fn with_app(mut self, app_json: Bytes) -> Self {
        if !app_json.is_empty() {
            if let Some(inner) = Arc::get_mut(&mut self.inner) {
                inner.app_json = app_json;
            }
        }
        self
    }

    /// With the end of the session it comes from (Unix seconds).
    pub(crate) fn with_session_expiry(mut self, expires_at: u64) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.session_expires_at = expires_at;
        }
        self
    }

    /// With another source (test helpers).
    #[cfg(feature = "testing")]
    pub(crate) fn with_source(mut self, source: Source) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.source = source;
        }
        self
    }

    /// With an access token (test helpers).
    #[cfg(feature = "testing")]
    pub(crate) fn with_access_token(mut self, token: AccessToken) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.access_token = Some(token);
        }
        self
    }

    /// The claims as stored, the granted scopes and the app's data (test helpers).
    #[cfg(feature = "testing")]
    pub(crate) fn stored_parts(&self) -> (&[u8], &str, &[u8]) {
        (
            &self.inner.claims_json,
            &self.inner.scope,
            &self.inner.app_json,
        )
    }

    fn app(&self) -> &AppData {
        self.inner
            .app
            .get_or_init(|| AppData::decode(&self.inner.app_json))
    }

    /// The app's own subject for this user, set by the post-login hook
    /// ([`Login::set_app_subject`](crate::Login::set_app_subject)); `None` without a hook
    /// that sets it, and for bearer callers. [`subject`](Self::subject) stays the provider's.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::Identity;
    ///
    /// async fn orders(id: Identity) -> String {
    ///     match id.app_subject() {
    ///         Some(user_id) => format!("orders of user {user_id}"),
    ///         None => "not provisioned".into(),
    ///     }
    /// }
    /// ```
    pub fn app_subject(&self) -> Option<&str> {
        self.app().sub.as_deref()
    }

    /// The app's claims of this session, set by the post-login hook
    /// ([`Login::set_app_claim`](crate::Login::set_app_claim)); empty without one.
    pub fn app_claims(&self) -> &Map<String, Value> {
        &self.app().claims
    }

    /// When the session behind this identity ends at the latest (its absolute lifetime, see
    /// [`ConfigBuilder::session_lifetime`](crate::ConfigBuilder::session_lifetime)), so a
    /// long-lived connection such as a WebSocket opened with the session cookie can be
    /// closed then; a logout or revocation in the meantime is seen only by later requests.
    /// `None` for bearer callers (see their token's expiry) and identities built by hand.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::Identity;
    ///
    /// fn close_in(id: &Identity) -> Option<std::time::Duration> {
    ///     id.session_expires_at()?
    ///         .duration_since(std::time::SystemTime::now())
    ///         .ok()
    /// }
    /// ```
    pub fn session_expires_at(&self) -> Option<std::time::SystemTime> {
        (self.inner.session_expires_at != 0)
            .then(|| {
                std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(
                    self.inner.session_expires_at,
                ))
            })
            .flatten()
    }

    /// The session's access token, when one is kept (see
    /// [`ConfigBuilder::store_access_token`](crate::ConfigBuilder::store_access_token)).
    pub(crate) fn access_token(&self) -> Option<&AccessToken> {
        self.inner.access_token.as_ref()
    }

    /// How the caller authenticated: session cookie or bearer token.
    pub fn source(&self) -> Source {
        self.inner.source
    }

    /// The granted scopes: of the access token for a bearer caller, of the login for a
    /// session.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.inner.scope.split_whitespace()
    }

    /// Whether `scope` was granted.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::Identity;
    ///
    /// let mut claims = serde_json::Map::new();
    /// claims.insert("scope".into(), "openid api:read".into());
    /// let id = Identity::new("svc", "https://id.example.com", claims);
    /// assert!(id.has_scope("api:read"));
    /// assert!(!id.has_scope("api:write"));
    /// ```
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The subject (`sub`): the provider's stable identifier of the user, unique only within
    /// its [`issuer`](Self::issuer).
    ///
    /// With several providers ([`OidcLayer::discover_many`](crate::OidcLayer::discover_many)),
    /// two providers may hand out the same `sub` for different people: key users by the pair
    /// `(issuer(), subject())`, never by `subject()` alone (OpenID Connect Core §2: "the sub
    /// value is a case-sensitive string ... locally unique ... within the Issuer").
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::Identity;
    ///
    /// /// The key of a user row: unique across every provider of the layer.
    /// fn user_key(id: &Identity) -> (String, String) {
    ///     (id.issuer().to_owned(), id.subject().to_owned())
    /// }
    ///
    /// let a = Identity::new("248289761001", "https://a.example.com", Default::default());
    /// let b = Identity::new("248289761001", "https://b.example.com", Default::default());
    /// assert_ne!(user_key(&a), user_key(&b));
    /// ```
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The issuer (`iss`) that vouches for the subject; with several providers, part of the
    /// user's key `(issuer(), subject())` (see [`subject`](Self::subject)).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Every claim: the ID token's, merged with userinfo's when it was fetched.
    pub fn claims(&self) -> &Map<String, Value> {
        self.inner.claims.get_or_init(|| {
            serde_json::from_slice(&self.inner.claims_json).unwrap_or_else(|_| {
                // We wrote these bytes ourselves; a failure here is a bug, not a caller's doing.
                tracing::error!("stored identity claims are not a JSON object");
                Map::new()
            })
        })
    }

    /// One claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }

    /// The `email` claim, when present and a string.
    pub fn email(&self) -> Option<&str> {
        self.claim("email").and_then(Value::as_str)
    }

    /// The `name` claim, when present and a string.
    pub fn name(&self) -> Option<&str> {
        self.claim("name").and_then(Value::as_str)
    }

    /// The user's roles and groups, wherever the provider puts them, without duplicates:
    ///
    /// - `roles` (Entra app roles, Auth0 with a rule, many others) and `groups` (Okta, Entra,
    ///   Keycloak's group mapper), lists of strings;
    /// - Keycloak's `realm_access.roles` and `resource_access.<client id>.roles` (this
    ///   client's roles);
    /// - AWS Cognito's `cognito:groups`;
    /// - Zitadel's `urn:zitadel:iam:org:project:roles` (the object's keys);
    /// - the claim named by [`ConfigBuilder::roles_claim`](crate::ConfigBuilder::roles_claim).
    ///
    /// For a session they come from the ID token and userinfo claims and from the access
    /// token when it is a JWT the layer verified at login or refresh (Keycloak puts roles
    /// only there); for a bearer caller, from its access token. Computed on first use.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::Identity;
    ///
    /// let claims = serde_json::json!({
    ///     "realm_access": { "roles": ["admin", "user"] },
    ///     "cognito:groups": ["user", "ops"],
    /// });
    /// let id = Identity::new("alice", "https://id.example.com", claims.as_object().unwrap().clone());
    /// assert_eq!(id.roles(), ["user", "ops", "admin"]);
    /// assert!(id.has_role("ops") && !id.has_role("root"));
    /// ```
    pub fn roles(&self) -> &[String] {
        self.inner.roles.get_or_init(|| {
            let source = &self.inner.role_source;
            let mut roles = Vec::new();
            roles_in(self.claims(), &source.claims, &mut roles);
            if !source.granted.is_empty() {
                let granted: Vec<String> =
                    serde_json::from_slice(&source.granted).unwrap_or_default();
                for role in granted {
                    push_unique(&mut roles, role);
                }
            }
            roles
        })
    }

    /// Whether the user has `role` (see [`roles`](Self::roles)).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().iter().any(|r| r == role)
    }

    /// Whether the user is in `group`: listed in the `groups` claim (Okta, Entra, Keycloak's
    /// group mapper) or in AWS Cognito's `cognito:groups`, as a list of strings or one
    /// string. Compared exactly (Keycloak's full group paths keep their leading `/`). Unlike
    /// [`has_role`](Self::has_role), role claims do not count.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::Identity;
    ///
    /// let claims = serde_json::json!({ "groups": ["staff", "ops"], "roles": ["admin"] });
    /// let id = Identity::new("alice", "https://id.example.com", claims.as_object().unwrap().clone());
    /// assert!(id.in_group("ops"));
    /// assert!(!id.in_group("admin"));
    /// ```
    pub fn in_group(&self, group: &str) -> bool {
        let claims = self.claims();
        ["groups", "cognito:groups"]
            .iter()
            .filter_map(|name| claims.get(*name))
            .any(|value| match value {
                Value::String(s) => s == group,
                Value::Array(list) => list.iter().any(|g| g.as_str() == Some(group)),
                _ => false,
            })
    }

    /// The claims deserialized into your own type, e.g. for provider-specific claims.
    ///
    /// # Example
    ///
    /// ```
    /// use serde::Deserialize;
    /// use tower_oidc::Identity;
    ///
    /// #[derive(Deserialize)]
    /// struct Claims {
    ///     sub: String,
    ///     #[serde(default)]
    ///     groups: Vec<String>,
    /// }
    ///
    /// let id = Identity::new("alice", "https://id.example.com", Default::default());
    /// let claims: Claims = id.claims_as()?;
    /// assert_eq!(claims.sub, "alice");
    /// assert!(claims.groups.is_empty());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When the claims do not fit `C`.
    pub fn claims_as<C: DeserializeOwned>(&self) -> Result<C, serde_json::Error> {
        serde_json::from_slice(&self.inner.claims_json)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.inner.subject)
            .field("issuer", &self.inner.issuer)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

/// The current access token of the caller, for calls to other APIs on the user's behalf:
/// the session's (kept fresh by automatic refresh) or the bearer token the request carried.
///
/// In the request extensions next to the [`Identity`]; with axum, extract it.
///
/// # Example
///
/// ```
/// use tower_oidc::AccessToken;
///
/// async fn call_api(token: AccessToken) -> String {
///     // e.g. reqwest::Client::new().get(url).bearer_auth(token.secret())
///     format!("token of {} bytes", token.secret().len())
/// }
/// ```
#[derive(Clone)]
pub struct AccessToken {
    /// UTF-8 (checked where it was read).
    token: Bytes,
    expires_at: u64,
    /// The PKCS#8 private key the token is DPoP-bound to (RFC 9449); read only when a proof
    /// is made.
    dpop_key: Option<Bytes>,
}

impl AccessToken {
    pub(crate) fn new(token: impl Into<Bytes>, expires_at: u64) -> Self {
        Self {
            token: token.into(),
            expires_at,
            dpop_key: None,
        }
    }

    /// The token, DPoP-bound to the key of this PKCS#8 document.
    pub(crate) fn bound_to(mut self, pkcs8: Bytes) -> Self {
        self.dpop_key = Some(pkcs8);
        self
    }

    /// Whether the token is DPoP-bound (RFC 9449; see
    /// [`ConfigBuilder::dpop`](crate::ConfigBuilder::dpop)): an API then wants it as
    /// `Authorization: DPoP <token>` with a `DPoP` proof from
    /// [`dpop_proof`](Self::dpop_proof), and refuses it as `Bearer`.
    pub fn is_dpop_bound(&self) -> bool {
        self.dpop_key.is_some()
    }

    /// The `Authorization` header value for a call with this token: `DPoP <token>` when it is
    /// DPoP-bound (send [`dpop_proof`](Self::dpop_proof) along), else `Bearer <token>`.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::AccessToken;
    ///
    /// fn headers(token: &AccessToken, url: &str) -> Result<Vec<(&'static str, String)>, tower_oidc::AuthError> {
    ///     let mut headers = vec![("authorization", token.authorization())];
    ///     if token.is_dpop_bound() {
    ///         headers.push(("dpop", token.dpop_proof("GET", url)?));
    ///     }
    ///     Ok(headers)
    /// }
    /// ```
    pub fn authorization(&self) -> String {
        let scheme = if self.is_dpop_bound() {
            "DPoP"
        } else {
            "Bearer"
        };
        format!("{scheme} {}", self.secret())
    }

    /// A DPoP proof (RFC 9449 §4) for one call with this token to `url` with `method`: a
    /// JWT signed with the session's key, with a fresh `jti`, `iat` now (system clock), `htu`
    /// the URL without query and fragment, and `ath` the token's hash. Make a new one for
    /// every request; send it as the `DPoP` header next to
    /// [`authorization`](Self::authorization).
    ///
    /// # Errors
    ///
    /// An [`AuthError`](crate::AuthError) of kind `Internal` when the token is not
    /// DPoP-bound, `url` is not an absolute URL, or the key cannot sign.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::AccessToken;
    ///
    /// fn proof_for(token: &AccessToken) -> Option<String> {
    ///     token.dpop_proof("GET", "https://api.example.com/orders").ok()
    /// }
    /// ```
    pub fn dpop_proof(&self, method: &str, url: &str) -> Result<String, crate::AuthError> {
        self.dpop_proof_with_nonce(method, url, None)
    }

    /// [`dpop_proof`](Self::dpop_proof) with the API's nonce (from its `DPoP-Nonce` answer
    /// header, after a `401` with `error="use_dpop_nonce"`).
    ///
    /// # Errors
    ///
    /// As [`dpop_proof`](Self::dpop_proof).
    pub fn dpop_proof_with_nonce(
        &self,
        method: &str,
        url: &str,
        nonce: Option<&str>,
    ) -> Result<String, crate::AuthError> {
        let internal =
            |message: &'static str| crate::AuthError::new(crate::AuthErrorKind::Internal, message);
        let pkcs8 = self
            .dpop_key
            .as_ref()
            .ok_or_else(|| internal("the access token is not DPoP-bound"))?;
        let key = crate::dpop::key::DpopKey::from_pkcs8(pkcs8)
            .ok_or_else(|| internal("the session's DPoP key is unreadable"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        key.proof(method, url, Some(self.secret()), nonce, now)
            .ok_or_else(|| internal("the DPoP proof could not be made (is the URL absolute?)"))
    }

    /// The token, to send as `Authorization: Bearer`. Never log it.
    pub fn secret(&self) -> &str {
        std::str::from_utf8(&self.token).unwrap_or_default()
    }

    /// When it expires, if known. A session without a refresh token outlives its access
    /// token (see
    /// [`ConfigBuilder::session_ends_with_access_token`](crate::ConfigBuilder::session_ends_with_access_token)):
    /// compare with the time before calling an API with it.
    pub fn expires_at(&self) -> Option<std::time::SystemTime> {
        (self.expires_at != 0)
            .then(|| {
                std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(self.expires_at))
            })
            .flatten()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("dpop_bound", &self.is_dpop_bound())
            .finish()
    }
}

/// Which claims hold roles: the well-known ones (see [`Identity::roles`]), this client's
/// `resource_access` entry and an extra claim path.
#[derive(Debug, Default)]
pub(crate) struct RoleClaims {
    /// The client id, for Keycloak's `resource_access.<client id>.roles` (empty: skipped).
    pub(crate) client_id: String,
    /// A claim name, or a dot-separated path into nested objects.
    pub(crate) extra: Option<String>,
}

/// Where an identity's roles come from.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoleSource {
    pub(crate) claims: Arc<RoleClaims>,
    /// Roles found elsewhere (a verified access token's), as a JSON array of strings; empty
    /// for none.
    pub(crate) granted: Bytes,
}

const ZITADEL_ROLES: &str = "urn:zitadel:iam:org:project:roles";

fn push_unique(roles: &mut Vec<String>, role: String) {
    if !role.is_empty() && !roles.contains(&role) {
        roles.push(role);
    }
}

/// Roles in a value: strings of a list, one string, or the keys of an object (Zitadel).
fn roles_of(value: &Value, roles: &mut Vec<String>) {
    match value {
        Value::Array(list) => {
            for role in list.iter().filter_map(Value::as_str) {
                push_unique(roles, role.to_owned());
            }
        }
        Value::String(role) => push_unique(roles, role.clone()),
        Value::Object(map) => {
            for role in map.keys() {
                push_unique(roles, role.clone());
            }
        }
        _ => {}
    }
}

/// The value at a claim name, or else at a dot-separated path into nested objects.
fn at_path<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// Adds the roles found in `claims` to `roles` (see [`Identity::roles`]).
pub(crate) fn roles_in(claims: &Map<String, Value>, spec: &RoleClaims, roles: &mut Vec<String>) {
    for name in ["roles", "groups", "cognito:groups"] {
        if let Some(value @ (Value::Array(_) | Value::String(_))) = claims.get(name) {
            roles_of(value, roles);
        }
    }
    if let Some(value) = at_path(claims, "realm_access.roles") {
        roles_of(value, roles);
    }
    if !spec.client_id.is_empty() {
        let client = claims
            .get("resource_access")
            .and_then(|r| r.get(spec.client_id.as_str()))
            .and_then(|c| c.get("roles"));
        if let Some(value) = client {
            roles_of(value, roles);
        }
    }
    if let Some(value @ Value::Object(_)) = claims.get(ZITADEL_ROLES) {
        roles_of(value, roles);
    }
    if let Some(value) = spec.extra.as_deref().and_then(|p| at_path(claims, p)) {
        roles_of(value, roles);
    }
}

/// The key a token is bound to by DPoP (RFC 9449 §6.1): `cnf.jkt` of its claims (a JWT's or
/// an introspection answer's). A `cnf` whose `jkt` is not a string binds to no key at all
/// (`Some("")`, which no proof matches): such a token is never taken as a plain bearer token.
pub(crate) fn confirmation_jkt(claims_json: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Confirmed {
        #[serde(default)]
        cnf: Option<Map<String, Value>>,
    }
    let cnf = match serde_json::from_slice::<Confirmed>(claims_json) {
        Ok(c) => c.cnf?,
        // Claims were parsed before; a `cnf` that is not an object binds to nothing.
        Err(_) => return Some(String::new()),
    };
    match cnf.get("jkt") {
        None => None,
        Some(Value::String(jkt)) => Some(jkt.clone()),
        Some(_) => Some(String::new()),
    }
}

/// `scope` (space-separated) or `scp` (list or string) of a claims object.
pub(crate) fn scope_of(claims_json: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Scopes {
        #[serde(default)]
        scope: Option<Value>,
        #[serde(default)]
        scp: Option<Value>,
    }
    let Ok(s) = serde_json::from_slice::<Scopes>(claims_json) else {
        return String::new();
    };
    match s.scope.or(s.scp) {
        Some(Value::String(s)) => s,
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_from_scope_or_scp() {
        assert_eq!(scope_of(br#"{"scope":"a b"}"#), "a b");
        assert_eq!(scope_of(br#"{"scp":["a","b"]}"#), "a b");
        assert_eq!(scope_of(br#"{"scp":"a"}"#), "a");
        assert_eq!(scope_of(br#"{}"#), "");
        assert_eq!(scope_of(b"nonsense"), "");
    }

    #[test]
    fn lazy_claims_and_typed_access() {
        let id = Identity::from_parts(
            "alice".into(),
            "https://id.example.com".into(),
            Bytes::from_static(br#"{"sub":"alice","name":"Alice","email":"a@example.com","n":3}"#),
            "openid email".into(),
            Source::Session,
            None,
            RoleSource::default(),
        );
        assert!(id.has_scope("email") && !id.has_scope("mail"));
        assert_eq!(id.source(), Source::Session);
        assert_eq!(id.subject(), "alice");
        assert_eq!(id.name(), Some("Alice"));
        assert_eq!(id.email(), Some("a@example.com"));
        assert_eq!(id.claim("n"), Some(&Value::from(3)));
        #[derive(serde::Deserialize)]
        struct C {
            n: u32,
        }
        assert_eq!(id.claims_as::<C>().unwrap().n, 3);
        assert!(id.claims_as::<Vec<u8>>().is_err());
        let debug = format!("{id:?}");
        assert!(debug.contains("alice") && !debug.contains("a@example.com"));
    }

    #[test]
    fn roles_from_every_well_known_claim_and_the_extra_path() {
        let claims = serde_json::json!({
            "roles": ["a"],
            "groups": "b",
            "cognito:groups": ["c", "a"],
            "realm_access": { "roles": ["d"] },
            "resource_access": { "app": { "roles": ["e"] }, "other": { "roles": ["x"] } },
            "urn:zitadel:iam:org:project:roles": { "f": { "123": "org" } },
            "https://example.com/roles": ["g"],
            "custom": { "nested": { "roles": ["h"] } },
            "ignored": ["y"],
        });
        let claims = claims.as_object().unwrap();
        let spec = |extra: Option<&str>| RoleClaims {
            client_id: "app".into(),
            extra: extra.map(str::to_owned),
        };
        let mut roles = Vec::new();
        roles_in(claims, &spec(None), &mut roles);
        assert_eq!(roles, ["a", "b", "c", "d", "e", "f"]);
        for (path, role) in [
            ("https://example.com/roles", "g"),
            ("custom.nested.roles", "h"),
        ] {
            let mut roles = Vec::new();
            roles_in(claims, &spec(Some(path)), &mut roles);
            assert_eq!(roles.last().map(String::as_str), Some(role), "{path}");
        }
        let mut roles = Vec::new();
        roles_in(claims, &spec(Some("custom.missing.roles")), &mut roles);
        assert_eq!(roles.len(), 6);
        // numbers and other shapes are no roles
        let odd = serde_json::json!({"roles": [1, null, "ok"], "groups": {"k": 1}});
        let mut roles = Vec::new();
        roles_in(odd.as_object().unwrap(), &RoleClaims::default(), &mut roles);
        assert_eq!(roles, ["ok"]);
    }

    #[test]
    fn granted_roles_are_merged() {
        let id = Identity::from_parts(
            "alice".into(),
            "https://id.example.com".into(),
            Bytes::from_static(br#"{"sub":"alice","groups":["g"]}"#),
            String::new(),
            Source::Session,
            None,
            RoleSource {
                claims: Arc::default(),
                granted: Bytes::from_static(br#"["admin","g"]"#),
            },
        );
        assert_eq!(id.roles(), ["g", "admin"]);
        assert!(id.has_role("admin"));
    }
}
