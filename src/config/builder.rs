//! [`ConfigBuilder`]: every setting of a [`Config`], its default and its checks.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use url::Url;

use super::hardening::Hardening;
use super::high_security::HighSecurity;
use super::{ClaimsFilter, Config, ResponseMode, ResponseType, Secret};
use crate::client_auth::{ClientAuth, ClientKey};
use crate::error::ConfigError;
use crate::hook::{Login, LoginHook, LoginRejected};
use crate::refresh_coordinator::RefreshCoordinator;
use crate::revocation::{MemoryRevocationStore, RevocationStore};
use crate::session::cookie::SessionKey;
use crate::session::sessions::Clock;
use crate::session::store::SessionStore;

/// Most login-transaction cookie slots (`max_concurrent_logins`): each holds at most about
/// 600 bytes (a 256-byte `return_to`), all of them travelling with every request.
const MAX_CONCURRENT_LOGINS: usize = 8;
/// Default slots of the cache of opened session cookies (`session_cache`).
const DEFAULT_SESSION_CACHE: usize = 2048;
/// Most slots of that cache (at most about 14 KB each: far beyond any real need).
const MAX_SESSION_CACHE: usize = 1 << 20;

/// Builder of [`Config`]; every setter takes and returns `self`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_oidc::{Config, SessionKey};
///
/// let config = Config::builder("https://id.example.com/realms/main", "my-client")
///     .redirect_url("https://app.example.com/auth/callback")
///     .session_key(SessionKey::generate())
///     .require_login(true)
///     .public_path("/health")
///     .clock_skew(Duration::from_secs(30))
///     .build()?;
/// # Ok::<(), tower_oidc::ConfigError>(())
/// ```
#[must_use]
pub struct ConfigBuilder {
    issuer: String,
    client_id: String,
    pub(super) client_secret: Option<String>,
    pub(super) client_auth: Option<ClientAuth>,
    pub(super) client_key: Option<ClientKey>,
    redirect_url: Option<String>,
    scopes: Vec<String>,
    session_key: Option<SessionKey>,
    prefix: String,
    post_logout_redirect_url: Option<String>,
    require_login: bool,
    public_paths: Vec<String>,
    clock_skew: Duration,
    session_lifetime: Duration,
    userinfo: Option<bool>,
    auth_params: Vec<(String, String)>,
    max_transactions: usize,
    session_cache: usize,
    pub(super) transaction_ttl: Duration,
    http_timeout: Duration,
    jwks_refetch_interval: Duration,
    jwks_max_age: Duration,
    cookie_name: Option<String>,
    clock: Option<Clock>,
    bearer: bool,
    api_audiences: Vec<String>,
    bearer_cache_capacity: usize,
    introspection: Option<bool>,
    introspection_cache_ttl: Duration,
    require_access_token_type: bool,
    csrf_header: Option<String>,
    pub(super) response_type: ResponseType,
    response_mode: Option<ResponseMode>,
    login_params: Vec<String>,
    pub(super) allow_pkce_plain: bool,
    idle_timeout: Option<Duration>,
    refresh_margin: Duration,
    refresh_grace: Duration,
    refresh_attempts: (u32, Duration),
    claims_filter: ClaimsFilter,
    store_access_token: bool,
    store_id_token: Option<bool>,
    revocations: Option<Arc<dyn RevocationStore>>,
    refresh_coordinator: Option<Arc<dyn RefreshCoordinator>>,
    session_store: Option<Arc<dyn SessionStore>>,
    login_hook: Option<LoginHook>,
    external_prefix: String,
    pub(super) hardening: Hardening,
    pub(super) high_security: HighSecurity,
    pub(super) compat: super::compat::Compat,
    pub(super) bearer_compat: super::bearer::BearerCompat,
    pub(super) deployment: super::deployment::Deployment,
}

impl fmt::Debug for ConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl ConfigBuilder {
    /// The defaults of every setting; see [`Config::builder`].
    pub(super) fn new(issuer: String, client_id: String) -> Self {
        Self {
            issuer,
            client_id,
            client_secret: None,
            client_auth: None,
            client_key: None,
            redirect_url: None,
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            session_key: None,
            prefix: "/auth".into(),
            post_logout_redirect_url: None,
            require_login: false,
            public_paths: Vec::new(),
            clock_skew: Duration::from_secs(60),
            session_lifetime: Duration::from_secs(8 * 3600),
            userinfo: None,
            auth_params: Vec::new(),
            max_transactions: 3,
            session_cache: DEFAULT_SESSION_CACHE,
            transaction_ttl: Duration::from_secs(600),
            http_timeout: Duration::from_secs(10),
            jwks_refetch_interval: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(3600),
            cookie_name: None,
            clock: None,
            bearer: true,
            api_audiences: Vec::new(),
            bearer_cache_capacity: 10_000,
            introspection: None,
            introspection_cache_ttl: Duration::from_secs(300),
            require_access_token_type: false,
            csrf_header: None,
            response_type: ResponseType::Code,
            response_mode: None,
            login_params: [
                "prompt",
                "login_hint",
                "ui_locales",
                "max_age",
                "acr_values",
            ]
            .map(String::from)
            .to_vec(),
            allow_pkce_plain: false,
            idle_timeout: None,
            refresh_margin: Duration::from_secs(30),
            refresh_grace: Duration::from_secs(30),
            refresh_attempts: (10, Duration::from_secs(60)),
            claims_filter: ClaimsFilter::All,
            store_access_token: true,
            store_id_token: None,
            revocations: None,
            refresh_coordinator: None,
            session_store: None,
            hardening: Hardening::default(),
            high_security: HighSecurity::default(),
            compat: Default::default(),
            login_hook: None,
            external_prefix: String::new(),
            bearer_compat: Default::default(),
            deployment: Default::default(),
        }
    }

    /// The client secret of a confidential client. Without one the client is public and
    /// relies on PKCE alone.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// How to authenticate at the token endpoint. Default: `private_key_jwt` when a
    /// [`client_key`](ConfigBuilder::client_key) is set and the provider supports it, else
    /// `client_secret_basic` when a secret is set (or `client_secret_post` when the provider
    /// supports only that), else `none`.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = Some(auth);
        self
    }

    /// The client's private key for `private_key_jwt` authentication at the token endpoint;
    /// chosen automatically when the provider supports it and no other method is set.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::{ClientAuth, ClientKey, Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .client_key(ClientKey::from_file("client-key.pem")?)
    ///     .client_auth(ClientAuth::PrivateKeyJwt)
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn client_key(mut self, key: ClientKey) -> Self {
        self.client_key = Some(key);
        self
    }

    /// The absolute callback URL registered with the provider, e.g.
    /// `https://app.example.com/auth/callback`. Its path must be the layer's callback route
    /// `{prefix}/callback`, or one segment below it (`{prefix}/callback/{name}`: with
    /// several providers each needs its own, see
    /// [`OidcLayer::discover_many`](crate::OidcLayer::discover_many)).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com/oidc/acme", "my-client")
    ///     .client_secret("s3cret")
    ///     .redirect_url("https://app.example.com/auth/callback/acme")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// assert_eq!(config.redirect_url(), "https://app.example.com/auth/callback/acme");
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn redirect_url(mut self, url: impl Into<String>) -> Self {
        self.redirect_url = Some(url.into());
        self
    }

    /// Scopes to request; must include `openid`. Default `openid profile email`.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The key session and login-transaction cookies are sealed with (required).
    pub fn session_key(mut self, key: SessionKey) -> Self {
        self.session_key = Some(key);
        self
    }

    /// Path prefix of the layer's routes `login`, `callback` and `logout`. Default `/auth`.
    pub fn route_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Where the provider sends the user after logout. Default: the redirect URL's origin
    /// with path `/`.
    pub fn post_logout_redirect_url(mut self, url: impl Into<String>) -> Self {
        self.post_logout_redirect_url = Some(url.into());
        self
    }

    /// Requires login for every request through the layer, except [`public_path`]s.
    /// Default `false`: the [`Identity`](crate::Identity) extractor decides per route.
    ///
    /// [`public_path`]: ConfigBuilder::public_path
    pub fn require_login(mut self, required: bool) -> Self {
        self.require_login = required;
        self
    }

    /// A path (exact, or a prefix when it ends with `/`) that stays public when
    /// [`require_login`](ConfigBuilder::require_login) is on. The request path must match as
    /// sent and after normalization (dot segments, repeated slashes); a path containing
    /// `%2F`, `%5C` or `\` is never public.
    pub fn public_path(mut self, path: impl Into<String>) -> Self {
        self.public_paths.push(path.into());
        self
    }

    /// Tolerance for clock differences with the provider, applied to `exp`, `iat` and `nbf`.
    /// Default 60 s.
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Absolute maximum lifetime of a session. Default 8 hours.
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime;
        self
    }

    /// Fetch userinfo at login and merge its claims. Default: on when the provider has a
    /// userinfo endpoint.
    pub fn userinfo(mut self, fetch: bool) -> Self {
        self.userinfo = Some(fetch);
        self
    }

    /// `code` (default) or `code id_token` (hybrid).
    pub fn response_type(mut self, response_type: ResponseType) -> Self {
        self.response_type = response_type;
        self
    }

    /// `query` or `form_post`. Default: `form_post` for the hybrid flow, else `query`.
    pub fn response_mode(mut self, mode: ResponseMode) -> Self {
        self.response_mode = Some(mode);
        self
    }

    /// Authorization parameters that `GET {prefix}/login?name=value` may set for one login
    /// (they never override a parameter configured with [`auth_param`]). Default: `prompt`,
    /// `login_hint`, `ui_locales`, `max_age`, `acr_values`. Adding a name (e.g.
    /// `tenant_hint`) extends the list; [`clear_login_params`] empties it.
    ///
    /// `prompt=none` is a silent login: when the provider answers `login_required`,
    /// `interaction_required`, `consent_required` or `account_selection_required`, the user
    /// simply returns to `return_to` not logged in.
    ///
    /// [`auth_param`]: ConfigBuilder::auth_param
    /// [`clear_login_params`]: ConfigBuilder::clear_login_params
    pub fn login_param(mut self, name: impl Into<String>) -> Self {
        self.login_params.push(name.into());
        self
    }

    /// Allows PKCE with the `plain` method when the provider does not support `S256` (it
    /// protects less: the verifier travels in the authorization request). Default off:
    /// discovery of such a provider fails. S256 is used whenever the provider has it.
    pub fn allow_pkce_plain(mut self, allow: bool) -> Self {
        self.allow_pkce_plain = allow;
        self
    }

    /// Allows no per-login authorization parameters.
    pub fn clear_login_params(mut self) -> Self {
        self.login_params.clear();
        self
    }

    /// An extra authorization request parameter sent on every login (e.g. `prompt=login`,
    /// `ui_locales`, `acr_values`, `max_age`, or provider-specific ones such as
    /// `tenant_hint`). Parameters the flow sets itself cannot be overridden.
    pub fn auth_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.auth_params.push((name.into(), value.into()));
        self
    }

    /// How many logins may be in flight at once per browser (tabs): the number of
    /// login-transaction cookie slots. A new login takes a free slot, else the oldest; logins
    /// started in parallel can only overwrite slots, so a browser never holds more than this
    /// many transaction cookies. Default 3, at most 8.
    ///
    /// Each cookie is at most about 600 bytes as the browser sends it (`return_to` is capped at
    /// 256 bytes), and every one of them travels with each request for the login timeout: the
    /// default costs a browser at most about 1.8 KB per request, eight slots about 4.8 KB.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .client_secret("s3cret")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .max_concurrent_logins(3)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn max_concurrent_logins(mut self, max: usize) -> Self {
        self.max_transactions = max;
        self
    }

    /// How many opened session cookies the layer keeps in memory, so that the requests of an
    /// active session after its first do not decrypt and decode the cookie again. Default
    /// 2048 (rounded up to a power of two); 0 turns the cache off.
    ///
    /// An entry is found by the cookie's exact bytes (a changed cookie is opened and
    /// authenticated anew), and expiry, idleness and revocation are checked on every request,
    /// cached or not. Only live sessions are cached, and a logout forgets its session. Each
    /// entry holds one session: the cookie and its decrypted contents, tokens included (about
    /// 5 KB for a typical 2.5 KB cookie; sessions over two cookie chunks are not cached, so at
    /// most about 14 KB). The default thus holds about 10 MB for typical sessions and never
    /// more than about 30 MB. Each cookie has one slot (picked by a keyed hash), so a newly
    /// opened cookie replaces the one in its slot; size the cache above the number of sessions
    /// active at once.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .client_secret("s3cret")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .session_cache(16_384)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn session_cache(mut self, sessions: usize) -> Self {
        self.session_cache = sessions;
        self
    }

    /// How long a started login stays valid. Default 10 minutes.
    pub fn login_timeout(mut self, ttl: Duration) -> Self {
        self.transaction_ttl = ttl;
        self
    }

    /// Timeout for each request to the provider. Default 10 s.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Least time between two JWKS refetches caused by an unknown key id. Default 30 s.
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// Longest time the provider's signing keys are used before they are fetched again, so
    /// a key the provider removed stops being trusted. Default 1 hour.
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// Name of the session cookie. Default `oidc_session`, with the `__Host-` prefix when the
    /// redirect URL is https.
    ///
    /// On https the name must start with `__Host-` (the browser then accepts the cookie only
    /// from this host, `Secure`, with `Path=/`: a sibling subdomain cannot plant or overwrite
    /// it); on plain http it must not start with `__Host-` or `__Secure-` (browsers refuse
    /// such cookies without `Secure`). [`build`](Self::build) reports either mistake; the
    /// prefix is not added silently, so the name you set is the name in the browser.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let builder = || {
    ///     Config::builder("https://id.example.com", "my-client")
    ///         .redirect_url("https://app.example.com/auth/callback")
    ///         .session_key(SessionKey::generate())
    /// };
    /// assert!(builder().cookie_name("__Host-shop_session").build().is_ok());
    /// assert!(builder().cookie_name("shop_session").build().is_err());
    /// ```
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// Accept `Authorization: Bearer` access tokens besides the session cookie. Default on.
    pub fn bearer(mut self, accept: bool) -> Self {
        self.bearer = accept;
        self
    }

    /// An audience that bearer JWT access tokens may carry (`aud`); repeat for several.
    /// Default: the client id.
    pub fn api_audience(mut self, audience: impl Into<String>) -> Self {
        self.api_audiences.push(audience.into());
        self
    }

    /// How many validated bearer tokens to remember (by hash). Default 10 000; 0 disables
    /// the cache.
    pub fn bearer_cache_capacity(mut self, entries: usize) -> Self {
        self.bearer_cache_capacity = entries;
        self
    }

    /// Validate opaque bearer tokens at the provider's introspection endpoint (RFC 7662),
    /// authenticated as this client. Default: on when the provider has the endpoint.
    pub fn introspection(mut self, on: bool) -> Self {
        self.introspection = Some(on);
        self
    }

    /// Longest time an introspection answer is reused (never past the token's `exp`).
    /// Default 5 minutes.
    pub fn introspection_cache_ttl(mut self, ttl: Duration) -> Self {
        self.introspection_cache_ttl = ttl;
        self
    }

    /// Accept only JWT access tokens with header `typ: at+jwt` (RFC 9068). Default off, as
    /// several providers issue `typ: JWT`. Without it, ID tokens are still refused: a bearer
    /// JWT must carry an access-token marker (see
    /// [`accept_unmarked_access_tokens`](ConfigBuilder::accept_unmarked_access_tokens)).
    pub fn require_access_token_type(mut self, required: bool) -> Self {
        self.require_access_token_type = required;
        self
    }

    /// Requires this request header (any value) on state-changing requests (`POST`, `PUT`,
    /// `PATCH`, `DELETE`, ...) authenticated by the session cookie; without it they are
    /// refused with `403`. A cross-site page cannot add a custom header without a CORS
    /// preflight, so this defends single-page apps against CSRF beyond `SameSite=Lax`. Bearer
    /// requests and the layer's own routes are exempt. Default: off (plain HTML forms would
    /// fail).
    ///
    /// # Example
    ///
    /// ```
    /// # use tower_oidc::{Config, SessionKey};
    /// let config = Config::builder("https://id.example.com", "spa-backend")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .csrf_header("x-csrf")
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn csrf_header(mut self, name: impl Into<String>) -> Self {
        self.csrf_header = Some(name.into());
        self
    }

    /// Ends a session after this long without a request (a rolling deadline, on top of the
    /// absolute [`session_lifetime`](ConfigBuilder::session_lifetime)). The cookie is re-issued
    /// only when more than half of this time has passed since it was last re-issued, not on
    /// every request. Default: off.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Refresh the tokens (with the refresh token, when the provider gave one) this long
    /// before the access token expires. Default 30 s.
    ///
    /// The margin is capped at half the access token's lifetime: a token is never refreshed
    /// while it is younger than half its lifetime, so short-lived tokens (shorter than twice
    /// the margin) do not make every request refresh.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// How long the result of a refresh is kept for requests that still carry the previous
    /// cookie (concurrent requests of one page, rotated refresh tokens). Default 30 s.
    pub fn refresh_grace(mut self, grace: Duration) -> Self {
        self.refresh_grace = grace;
        self
    }

    /// At most `max` refresh requests to the provider per session within any `per` (counted
    /// from the first of them), however the requests of the session arrive: an outage, a
    /// provider that keeps refusing the client or a replayed cookie cannot make a session
    /// call the token endpoint more often. Beyond the cap the session goes on with the tokens
    /// it has (handlers can see an expired [`AccessToken`](crate::AccessToken)) until the window
    /// has passed. Default: 10 per minute (enough for access tokens living 12 s or longer).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .refresh_attempts(20, Duration::from_secs(60))
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    ///
    /// `max` must be at least 1 and `per` longer than zero ([`ConfigError`] otherwise).
    pub fn refresh_attempts(mut self, max: u32, per: Duration) -> Self {
        self.refresh_attempts = (max, per);
        self
    }

    /// Keep only these claims in the session (besides `sub`, `iss` and `sid`), to keep the
    /// cookie small.
    pub fn keep_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims_filter = ClaimsFilter::Only(names.into_iter().map(Into::into).collect());
        self
    }

    /// Drop these claims from the session, to keep the cookie small.
    pub fn drop_claims<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.claims_filter = ClaimsFilter::Except(names.into_iter().map(Into::into).collect());
        self
    }

    /// Keep the access token in the session, for calls to other APIs
    /// ([`AccessToken`](crate::AccessToken)). Default on; turn off when the app never calls
    /// other APIs, to keep the cookie small (refresh still works).
    pub fn store_access_token(mut self, store: bool) -> Self {
        self.store_access_token = store;
        self
    }

    /// Runs `hook` once per successful login, after every check passed and before the
    /// session is created: it can refuse the login ([`LoginRejected`], with a page of the
    /// app's choosing), set the app's own subject and claims for the session (for example the
    /// app's user id after provisioning the user), and read extra fields of the provider's
    /// callback ([`Login::callback_param`], e.g. Apple's `user`). An error or a panic in the
    /// hook fails the login with a generic `500` page (details only in the logs); no session
    /// is created. See [`on_login_at_refresh`](Self::on_login_at_refresh) to run it at each
    /// refresh too. With several providers
    /// ([`OidcLayer::discover_many`](crate::OidcLayer::discover_many)), the hook of the
    /// configuration of the provider the user logged in with runs.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, Login, LoginRejected, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .on_login(|mut login: Login| async move {
    ///         if login.claims().get("hd").and_then(|d| d.as_str()) != Some("example.com") {
    ///             return Err(LoginRejected::page(
    ///                 http::Response::builder()
    ///                     .status(403)
    ///                     .body("This app is for example.com accounts only.")?,
    ///             ));
    ///         }
    ///         login.set_app_claim("tenant", "example".into());
    ///         Ok(login)
    ///     })
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn on_login<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Login) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Login, LoginRejected>> + Send + 'static,
    {
        let at_refresh = self.login_hook.as_ref().is_some_and(|h| h.at_refresh);
        let mut hook = LoginHook::new(hook);
        hook.at_refresh = at_refresh;
        self.login_hook = Some(hook);
        self
    }

    /// Runs the [`on_login`](Self::on_login) hook at each refresh of a session too
    /// ([`Login::is_refresh`] is then true, and the app's subject and claims are the
    /// session's): a refusal or failure then ends the session. Default off.
    ///
    /// A failure ([`LoginRejected::failed`](crate::LoginRejected::failed), an `Err` from `?`,
    /// a panic) ends it too, and, with a shared
    /// [`RefreshCoordinator`](crate::RefreshCoordinator), on every replica: a hook that may
    /// fail for a passing reason (its database briefly down) should keep the session instead,
    /// by answering `Ok(login)` with the app data unchanged and logging the failure itself.
    pub fn on_login_at_refresh(mut self, enabled: bool) -> Self {
        match &mut self.login_hook {
            Some(hook) => hook.at_refresh = enabled,
            None if enabled => {
                // Remembered until a hook is set.
                let mut hook = LoginHook::new(|login: Login| async move { Ok(login) });
                hook.at_refresh = true;
                self.login_hook = Some(hook);
            }
            None => {}
        }
        self
    }

    /// The path prefix a reverse proxy strips before requests reach the app: with
    /// `external_prefix("/app")`, the browser asks for `https://example.com/app/reports` and
    /// the app sees `/reports`. The layer's routes are then served at `{prefix}/...` as the app
    /// sees them, the redirect URL is `https://example.com/app/auth/callback`, and everything
    /// the layer sends to the browser (the page to return to after login, its links, the
    /// default post-logout URL) carries the prefix. A `return_to` given to `/auth/login` is a
    /// path as the browser sees it (with the prefix). Default: none.
    ///
    /// For axum's `Router::nest`, which the app itself does, no setting is needed: put the
    /// layer on the outer router; extractors and [`RequireLayer`](crate::RequireLayer) in a
    /// nested router return to the URI as the server received it (`OriginalUri`).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .external_prefix("/app")
    ///     .redirect_url("https://example.com/app/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn external_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.external_prefix = prefix.into();
        self
    }

    /// Keep the ID token in the session, for `id_token_hint` at logout. Default: on when the
    /// provider has an `end_session_endpoint`.
    pub fn store_id_token(mut self, store: bool) -> Self {
        self.store_id_token = Some(store);
        self
    }

    /// Where back-channel logouts are recorded (default: in memory, for one instance). Share
    /// one store between instances (e.g. over Redis) so a logout reaches all of them.
    pub fn revocation_store(mut self, store: impl RevocationStore) -> Self {
        self.revocations = Some(Arc::new(store));
        self
    }

    /// Makes the replicas of a fleet refresh each session once between them (one
    /// token-endpoint call per refresh fleet-wide; see [`RefreshCoordinator`]). Default: each
    /// replica refreshes on its own (one refresh per refresh token within the replica).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_oidc::ConfigError> {
    /// let redis = tower_oidc::RedisRevocationStore::connect("redis://127.0.0.1/").await?;
    /// let config = tower_oidc::Config::builder("https://id.example.com", "my-client")
    ///     .refresh_coordinator(redis.refresh_coordinator());
    /// # let _ = config;
    /// # Ok(())
    /// # }
    /// ```
    pub fn refresh_coordinator(mut self, coordinator: impl RefreshCoordinator) -> Self {
        self.refresh_coordinator = Some(Arc::new(coordinator));
        self
    }

    /// Server-side sessions: the session cookie carries only a sealed random id (well under
    /// 200 bytes) and the session lives in `store` until it ends; a logout deletes it
    /// everywhere at once. Handlers and routes stay the same. When the store is unreachable,
    /// requests that carry a session answer 503 with `Retry-After` (never a logout). Default:
    /// sessions live in their (sealed) cookies, no server state. Switching modes logs every
    /// user out once (the other mode's cookies do not open).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_oidc::ConfigError> {
    /// let redis = tower_oidc::RedisRevocationStore::connect("redis://127.0.0.1/").await?;
    /// let config = tower_oidc::Config::builder("https://id.example.com", "my-client")
    ///     .session_store(redis.session_store())
    ///     .revocation_store(redis);
    /// # let _ = config;
    /// # Ok(())
    /// # }
    /// ```
    pub fn session_store(mut self, store: impl SessionStore) -> Self {
        self.session_store = Some(Arc::new(store));
        self
    }

    /// Replaces the clock (for tests).
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Checks the settings and builds the [`Config`].
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first setting that is wrong.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.check_profile()?;
        let issuer_url = parse_http_url("issuer", &self.issuer)?;
        if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
            return Err(ConfigError::InvalidUrl {
                field: "issuer",
                reason: "an issuer has no query or fragment".into(),
            });
        }
        if self.client_id.is_empty() {
            return Err(ConfigError::Invalid {
                field: "client_id",
                reason: "empty".into(),
            });
        }
        let redirect = self
            .redirect_url
            .as_deref()
            .ok_or(ConfigError::MissingRedirectUrl)?;
        let redirect_url = parse_http_url("redirect_url", redirect)?;
        let session_key = self.session_key.ok_or(ConfigError::MissingSessionKey)?;
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(ConfigError::MissingOpenidScope);
        }
        let prefix = self.prefix.trim_end_matches('/').to_owned();
        if !prefix.starts_with('/') {
            return Err(ConfigError::Invalid {
                field: "route_prefix",
                reason: "must start with `/`".into(),
            });
        }
        let external_prefix = self.external_prefix.trim_end_matches('/').to_owned();
        if !external_prefix.is_empty()
            && (!external_prefix.starts_with('/')
                || external_prefix.starts_with("//")
                || !external_prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b)))
        {
            return Err(ConfigError::Invalid {
                field: "external_prefix",
                reason: "must be a path such as `/app` (letters, digits, `-_.~/`)".into(),
            });
        }
        let callback = format!("{external_prefix}{prefix}/callback");
        let below_callback = redirect_url
            .path()
            .strip_prefix(callback.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|name| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
                    && name != "."
                    && name != ".."
            });
        if redirect_url.path() != callback && !below_callback {
            return Err(ConfigError::InvalidUrl {
                field: "redirect_url",
                reason: format!(
                    "its path must be the callback route `{callback}` or `{callback}/<name>`"
                ),
            });
        }
        let post_logout_redirect_url = match &self.post_logout_redirect_url {
            Some(url) => parse_http_url("post_logout_redirect_url", url)?,
            None => redirect_url
                .join(&format!("{external_prefix}/"))
                .map_err(|e| ConfigError::InvalidUrl {
                    field: "redirect_url",
                    reason: e.to_string(),
                })?,
        };
        let secret = self.client_secret.filter(|s| !s.is_empty());
        if self.high_security.signed_request_objects == Some(true) && self.client_key.is_none() {
            return Err(ConfigError::Invalid {
                field: "signed_request_objects",
                reason: "signed request objects need a client key (ConfigBuilder::client_key)"
                    .into(),
            });
        }
        if self.client_auth == Some(ClientAuth::PrivateKeyJwt) && self.client_key.is_none() {
            return Err(ConfigError::Invalid {
                field: "client_auth",
                reason: "private_key_jwt needs a client key (ConfigBuilder::client_key)".into(),
            });
        }
        match (self.client_auth, &secret) {
            (Some(ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost), None) => {
                return Err(ConfigError::Invalid {
                    field: "client_auth",
                    reason: "client secret authentication needs a client secret".into(),
                })
            }
            (Some(ClientAuth::None), Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "client_auth",
                    reason: "a public client (`none`) must not have a client secret".into(),
                })
            }
            _ => {}
        }
        if self.session_cache > MAX_SESSION_CACHE {
            return Err(ConfigError::Invalid {
                field: "session_cache",
                reason: format!("must be at most {MAX_SESSION_CACHE}"),
            });
        }
        if !(1..=MAX_CONCURRENT_LOGINS).contains(&self.max_transactions) {
            return Err(ConfigError::Invalid {
                field: "max_concurrent_logins",
                reason: format!("must be between 1 and {MAX_CONCURRENT_LOGINS}"),
            });
        }
        let secure_cookies = redirect_url.scheme() == "https";
        let cookie_name = self.cookie_name.unwrap_or_else(|| {
            if secure_cookies {
                "__Host-oidc_session".into()
            } else {
                "oidc_session".into()
            }
        });
        if cookie_name.is_empty()
            || !cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err(ConfigError::Invalid {
                field: "cookie_name",
                reason: "use letters, digits, `-` and `_` only".into(),
            });
        }
        crate::session::cookie::check_cookie_prefix(&cookie_name, secure_cookies)?;
        let api_audiences = if self.api_audiences.is_empty() {
            vec![self.client_id.clone()]
        } else {
            self.api_audiences
        };
        let response_mode = match (self.response_type, self.response_mode) {
            (ResponseType::CodeIdToken, Some(ResponseMode::Query)) => {
                return Err(ConfigError::Invalid {
                    field: "response_mode",
                    reason: "the hybrid flow cannot use `query` (its ID token must not travel in a URL); use `form_post`".into(),
                })
            }
            (ResponseType::CodeIdToken, _) => ResponseMode::FormPost,
            (ResponseType::Code, mode) => mode.unwrap_or(ResponseMode::Query),
        };
        for (name, value) in &self.auth_params {
            if name == "prompt" && value.split_whitespace().any(|p| p == "none") {
                return Err(ConfigError::Invalid {
                    field: "auth_param",
                    reason: "`prompt=none` on every login would never let anyone log in; pass it per login (`/auth/login?prompt=none`)".into(),
                });
            }
            if name == "max_age" && value.parse::<u64>().is_err() {
                return Err(ConfigError::Invalid {
                    field: "auth_param",
                    reason: "`max_age` must be a number of seconds".into(),
                });
            }
        }
        let csrf_header = match self.csrf_header {
            Some(name) => {
                Some(
                    http::HeaderName::try_from(name).map_err(|_| ConfigError::Invalid {
                        field: "csrf_header",
                        reason: "not a valid header name".into(),
                    })?,
                )
            }
            None => None,
        };
        if self.refresh_attempts.0 == 0 || self.refresh_attempts.1.is_zero() {
            return Err(ConfigError::Invalid {
                field: "refresh_attempts",
                reason: "allow at least one attempt in a window longer than zero".into(),
            });
        }
        self.hardening.check()?;
        self.high_security.check()?;
        let compat = self
            .compat
            .check(&self.client_id, self.hardening.allow_http_provider)?;
        let bearer_compat = self
            .bearer_compat
            .check(compat.tenants.as_ref(), self.hardening.allow_http_provider)?;
        let deployment = self.deployment.check()?;
        Ok(Config {
            login_hook: self.login_hook,
            external_prefix,
            deployment,
            bearer_compat,
            compat,
            hardening: self.hardening,
            high_security: self.high_security,
            idle_timeout: self.idle_timeout.filter(|t| !t.is_zero()),
            refresh_margin: self.refresh_margin,
            refresh_grace: self.refresh_grace,
            refresh_attempts: self.refresh_attempts,
            claims_filter: self.claims_filter,
            store_access_token: self.store_access_token,
            store_id_token: self.store_id_token,
            revocations: self
                .revocations
                .unwrap_or_else(|| Arc::new(MemoryRevocationStore::default())),
            refresh_coordinator: self.refresh_coordinator,
            session_store: self.session_store,
            response_type: self.response_type,
            response_mode,
            login_params: self.login_params,
            allow_pkce_plain: self.allow_pkce_plain,
            csrf_header,
            bearer: self.bearer,
            api_audiences,
            bearer_cache_capacity: self.bearer_cache_capacity,
            introspection: self.introspection,
            introspection_cache_ttl: self.introspection_cache_ttl,
            require_access_token_type: self.require_access_token_type,
            issuer: self.issuer,
            client_id: self.client_id,
            client_secret: secret.map(Secret),
            client_auth: self.client_auth,
            client_key: self.client_key,
            redirect_url,
            scopes: self.scopes,
            session_key,
            prefix,
            post_logout_redirect_url,
            require_login: self.require_login,
            public_paths: self.public_paths,
            clock_skew: self.clock_skew,
            session_lifetime: self.session_lifetime,
            userinfo: self.userinfo,
            auth_params: self.auth_params,
            max_transactions: self.max_transactions,
            session_cache: self.session_cache,
            transaction_ttl: self.transaction_ttl,
            http_timeout: self.http_timeout,
            jwks_refetch_interval: self.jwks_refetch_interval,
            jwks_max_age: self.jwks_max_age,
            cookie_name,
            secure_cookies,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemTime::now)),
        })
    }
}

fn parse_http_url(field: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| ConfigError::InvalidUrl {
        field,
        reason: format!("{e} (an absolute http or https URL is required)"),
    })?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(ConfigError::InvalidUrl {
            field,
            reason: format!("scheme `{}` is not http or https", url.scheme()),
        });
    }
    if url.host().is_none() {
        return Err(ConfigError::InvalidUrl {
            field,
            reason: "no host".into(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ConfigBuilder {
        Config::builder("https://id.example.com", "c")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
    }

    #[test]
    fn defaults() {
        let c = base().build().unwrap();
        assert_eq!(c.cookie_name, "__Host-oidc_session");
        assert!(c.secure_cookies);
        assert_eq!(
            c.post_logout_redirect_url.as_str(),
            "https://app.example.com/"
        );
        assert_eq!(c.clock_skew, Duration::from_secs(60));
        let c = Config::builder("http://127.0.0.1:9", "c")
            .redirect_url("http://127.0.0.1:3000/auth/callback")
            .session_key(SessionKey::generate())
            .build()
            .unwrap();
        assert_eq!(c.cookie_name, "oidc_session");
        assert!(!c.secure_cookies);
    }

    #[test]
    fn mistakes_are_reported() {
        let err = |b: ConfigBuilder| b.build().unwrap_err();
        assert!(matches!(
            err(base().redirect_url("/auth/callback")),
            ConfigError::InvalidUrl {
                field: "redirect_url",
                ..
            }
        ));
        assert!(matches!(
            err(base().redirect_url("https://app.example.com/elsewhere")),
            ConfigError::InvalidUrl {
                field: "redirect_url",
                ..
            }
        ));
        assert!(matches!(
            err(Config::builder("not a url", "c")
                .redirect_url("https://a.example/auth/callback")
                .session_key(SessionKey::generate())),
            ConfigError::InvalidUrl {
                field: "issuer",
                ..
            }
        ));
        assert!(matches!(
            err(Config::builder("ftp://id.example.com", "c")
                .redirect_url("https://a.example/auth/callback")
                .session_key(SessionKey::generate())),
            ConfigError::InvalidUrl {
                field: "issuer",
                ..
            }
        ));
        for path in [
            "/auth/callbackx",
            "/auth/callback/",
            "/auth/callback/a/b",
            "/auth/callback/%2F",
        ] {
            assert!(
                matches!(
                    err(base().redirect_url(format!("https://app.example.com{path}"))),
                    ConfigError::InvalidUrl {
                        field: "redirect_url",
                        ..
                    }
                ),
                "{path}"
            );
        }
        let named = base()
            .redirect_url("https://app.example.com/auth/callback/acme")
            .build()
            .unwrap();
        assert_eq!(named.redirect_url.path(), "/auth/callback/acme");
        for logins in [0, 9, 17] {
            assert!(matches!(
                err(base().max_concurrent_logins(logins)),
                ConfigError::Invalid {
                    field: "max_concurrent_logins",
                    ..
                }
            ));
        }
        assert!(matches!(
            err(base().scopes(["profile"])),
            ConfigError::MissingOpenidScope
        ));
        assert!(matches!(
            err(Config::builder("https://id.example.com", "c")
                .redirect_url("https://a.example/auth/callback")),
            ConfigError::MissingSessionKey
        ));
        assert!(matches!(
            err(base().client_auth(ClientAuth::ClientSecretBasic)),
            ConfigError::Invalid {
                field: "client_auth",
                ..
            }
        ));
        assert!(matches!(
            err(base().client_secret("s").client_auth(ClientAuth::None)),
            ConfigError::Invalid {
                field: "client_auth",
                ..
            }
        ));
        assert!(matches!(
            err(base().cookie_name("a b")),
            ConfigError::Invalid {
                field: "cookie_name",
                ..
            }
        ));
        let prefixed = base()
            .route_prefix("/oidc/")
            .redirect_url("https://app.example.com/oidc/callback")
            .build()
            .unwrap();
        assert_eq!(prefixed.prefix, "/oidc");
    }

    #[test]
    fn debug_hides_secrets() {
        let c = base().client_secret("hunter2").build().unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[redacted]"));
    }
}
