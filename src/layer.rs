//! [`OidcLayer`]: cheap to clone (an `Arc` inside), built once by discovery.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::HeaderMap;
use tower_layer::Layer;

use crate::cache::{Refresher, TokenCache};
use crate::config::{Config, ResponseMode};
use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::flow::login;
use crate::flow::provider_calls::Tokens;
use crate::provider::Provider;
use crate::response::{self, caller_kind, Answer, CallerKind};
use crate::service::OidcService;
use crate::session::cookie::{chunk, find_chunked, Cookies, Sealer};
use crate::session::{Session, SessionRef};

/// The OpenID Connect layer: serves the login, callback and logout routes, opens the
/// session cookie on every other request and puts an [`Identity`](crate::Identity) into its extensions.
///
/// # Example
///
/// ```no_run
/// use axum::{routing::get, Json, Router};
/// use tower_oidc::{Config, Identity, OidcLayer, SessionKey};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let oidc = OidcLayer::discover(
///     Config::builder("https://id.example.com", "my-client")
///         .client_secret(std::env::var("OIDC_CLIENT_SECRET")?)
///         .redirect_url("https://app.example.com/auth/callback")
///         .session_key(SessionKey::from_base64(&std::env::var("SESSION_KEY")?)?)
///         .build()?,
/// )
/// .await?;
///
/// let app: Router = Router::new()
///     .route("/me", get(|id: Identity| async move { Json(id.claims().clone()) }))
///     .layer(oidc);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OidcLayer {
    inner: Arc<Inner>,
}

impl fmt::Debug for OidcLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcLayer")
            .field("issuer", &self.inner.provider.metadata.issuer)
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

impl OidcLayer {
    /// Discovers the provider (`<issuer>/.well-known/openid-configuration`, whose `issuer`
    /// must equal the configured one) and fetches its keys.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Discovery`] when the provider cannot be reached or answers nonsense,
    /// [`ConfigError::IssuerMismatch`], and [`ConfigError::UnsupportedProvider`] when it lacks
    /// something this client needs (PKCE S256, an asymmetric signing algorithm, a common
    /// client authentication method).
    pub async fn discover(config: Config) -> Result<Self, ConfigError> {
        let provider = Provider::discover(&config).await?;
        Ok(Self::with_provider(config, provider))
    }

    /// Several providers (tenants) in one layer, each discovered with its own [`Config`]
    /// (issuer, client, keys and metadata of its own). The first is the default; a login picks
    /// another with `GET {prefix}/login?provider=<name>`. Each session remembers the provider
    /// that issued it (refresh and logout go there), and bearer tokens are checked against the
    /// provider named by their `iss`.
    ///
    /// The session settings of the first configuration hold for all (session key, session
    /// and idle lifetimes, login timeout, concurrent logins, revocation store, clock); the
    /// others must use the same cookie name, route prefix and redirect URL. Each keeps its own
    /// client, claims and token settings.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::{Config, OidcLayer, SessionKey};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let key = SessionKey::from_base64(&std::env::var("SESSION_KEY")?)?;
    /// let tenant = |name: &str| {
    ///     Config::builder(format!("https://id.example.com/oidc/{name}"), "my-app")
    ///         .client_secret("s3cret")
    ///         .redirect_url("https://app.example.com/auth/callback")
    ///         .session_key(key.clone())
    ///         .build()
    /// };
    /// let oidc = OidcLayer::discover_many([("acme", tenant("acme")?), ("globex", tenant("globex")?)])
    ///     .await?;
    /// // /auth/login?provider=globex&return_to=/me logs in at the second tenant
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`OidcLayer::discover`] for each provider, and [`ConfigError::Invalid`] for no
    /// providers, duplicate or malformed names, or settings that must be shared but differ.
    pub async fn discover_many<I, N>(providers: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (N, Config)>,
        N: Into<String>,
    {
        let mut tenants = Vec::new();
        for (name, config) in providers {
            let name = name.into();
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid_name || tenants.iter().any(|(n, _): &(String, Config)| *n == name) {
                return Err(ConfigError::Invalid {
                    field: "provider name",
                    reason: format!("`{name}` is empty, malformed or used twice"),
                });
            }
            tenants.push((name, config));
        }
        let Some(first) = tenants.first().map(|(_, c)| c.clone()) else {
            return Err(ConfigError::Invalid {
                field: "providers",
                reason: "no provider given".into(),
            });
        };
        for (name, config) in &tenants[1..] {
            if config.cookie_name != first.cookie_name
                || config.prefix != first.prefix
                || config.redirect_url != first.redirect_url
            {
                return Err(ConfigError::Invalid {
                    field: "providers",
                    reason: format!(
                        "provider `{name}` must use the first provider's cookie name, route prefix and redirect URL"
                    ),
                });
            }
        }
        let mut inners: Vec<Inner> = Vec::with_capacity(tenants.len());
        for (name, config) in tenants {
            let provider = Provider::discover(&config).await?;
            if inners
                .iter()
                .any(|other| other.provider.metadata.issuer == provider.metadata.issuer)
            {
                return Err(ConfigError::Invalid {
                    field: "providers",
                    reason: format!("provider `{name}` has the issuer of another provider"),
                });
            }
            // The session settings of the first configuration hold for every tenant: the
            // sessions share the cookies, and a back-channel logout from any provider must
            // reach the store that sessions are checked against.
            let config = Config {
                session_key: first.session_key.clone(),
                revocations: first.revocations.clone(),
                session_lifetime: first.session_lifetime,
                idle_timeout: first.idle_timeout,
                transaction_ttl: first.transaction_ttl,
                max_transactions: first.max_transactions,
                clock: first.clock.clone(),
                ..config
            };
            let mut inner = Self::build_inner(config, provider);
            inner.name = name;
            inners.push(inner);
        }
        let mut inners = inners.into_iter();
        let mut default = inners.next().ok_or_else(|| ConfigError::Invalid {
            field: "providers",
            reason: "no provider given".into(),
        })?;
        default.tenants = inners.map(Arc::new).collect();
        Ok(Self {
            inner: Arc::new(default),
        })
    }

    /// Builds the layer from an already-known discovery document (the JSON of
    /// `.well-known/openid-configuration`) and, optionally, the provider's JWKS; without
    /// it the keys are fetched when first needed. For tests and offline setups.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, OidcLayer, SessionKey};
    ///
    /// let discovery = serde_json::json!({
    ///     "issuer": "https://id.example.com",
    ///     "authorization_endpoint": "https://id.example.com/authorize",
    ///     "token_endpoint": "https://id.example.com/token",
    ///     "jwks_uri": "https://id.example.com/jwks",
    ///     "response_types_supported": ["code"],
    ///     "subject_types_supported": ["public"],
    ///     "id_token_signing_alg_values_supported": ["RS256"],
    /// });
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .client_secret("s3cret")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// let layer = OidcLayer::from_provider_metadata(config, discovery.to_string().as_bytes(), None)?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`OidcLayer::discover`], without the network ones.
    pub fn from_provider_metadata(
        config: Config,
        discovery_json: &[u8],
        jwks_json: Option<&[u8]>,
    ) -> Result<Self, ConfigError> {
        let provider = Provider::from_documents(&config, discovery_json, jwks_json)?;
        Ok(Self::with_provider(config, provider))
    }

    fn with_provider(config: Config, provider: Provider) -> Self {
        Self {
            inner: Arc::new(Self::build_inner(config, provider)),
        }
    }

    fn build_inner(config: Config, provider: Provider) -> Inner {
        let prefix = &config.prefix;
        let paths = Paths {
            login: format!("{prefix}/login"),
            callback: format!("{prefix}/callback"),
            logout: format!("{prefix}/logout"),
            backchannel_logout: format!("{prefix}/backchannel-logout"),
        };
        let cookies = Cookies::new(
            &config.cookie_name,
            prefix,
            config.secure_cookies,
            config.response_mode == ResponseMode::FormPost,
        );
        let fetch_userinfo =
            config.userinfo.unwrap_or(true) && provider.metadata.userinfo_endpoint.is_some();
        if config.userinfo == Some(true) && provider.metadata.userinfo_endpoint.is_none() {
            tracing::warn!("userinfo is on, but the provider has no userinfo endpoint");
        }
        let store_id_token = config
            .store_id_token
            .unwrap_or(provider.metadata.end_session_endpoint.is_some());
        Inner {
            name: String::new(),
            tenants: Vec::new(),
            store_id_token,
            refresher: Refresher::default(),
            size_warned: AtomicBool::new(false),
            session_sealer: config.session_key.sealer("session"),
            tx_sealer: config.session_key.sealer("transaction"),
            cookies,
            paths,
            fetch_userinfo,
            issuer: Arc::from(provider.metadata.issuer.as_str()),
            bearer_cache: TokenCache::new(config.bearer_cache_capacity),
            provider,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
}

impl<S> Layer<S> for OidcLayer {
    type Service = OidcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OidcService::new(inner, self.inner.clone())
    }
}

#[derive(Debug)]
pub(crate) struct Paths {
    pub(crate) login: String,
    pub(crate) callback: String,
    pub(crate) logout: String,
    pub(crate) backchannel_logout: String,
}

/// Everything the service needs, shared by all clones.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) provider: Provider,
    pub(crate) session_sealer: Sealer,
    pub(crate) tx_sealer: Sealer,
    pub(crate) cookies: Cookies,
    pub(crate) paths: Paths,
    pub(crate) fetch_userinfo: bool,
    pub(crate) bearer_cache: TokenCache,
    pub(crate) refresher: Refresher<Session>,
    /// The provider's issuer, shared by every session identity.
    pub(crate) issuer: Arc<str>,
    /// This provider's name among several (empty for a single-provider layer).
    pub(crate) name: String,
    /// The other providers of a multi-provider layer (only on the default one).
    pub(crate) tenants: Vec<Arc<Inner>>,
    pub(crate) store_id_token: bool,
    /// Whether the "session needs several cookies" warning was logged.
    size_warned: AtomicBool,
}

/// The session cookie as read from a request.
#[derive(Debug, Default)]
pub(crate) struct SessionRead {
    /// The session, when the cookie opened and is live.
    pub(crate) session: Option<SessionRef>,
    /// Whether the request carries session cookies at all.
    pub(crate) present: bool,
    /// Whether its `Cookie` headers hold nothing but session cookies.
    pub(crate) only_session_cookies: bool,
    /// Names of the session cookies when they gave no session (to clear them).
    pub(crate) stale: Vec<String>,
}

/// Picking the provider (tenant) a request belongs to.
pub(crate) trait Tenants {
    /// The provider named `name` (empty: this, the default).
    fn by_name(&self, name: &str) -> Option<Arc<Inner>>;
    /// The provider whose issuer is `issuer`.
    fn by_issuer(&self, issuer: &str) -> Option<Arc<Inner>>;
    /// The provider a JWT claims to come from (its unverified `iss`); the default when there
    /// is only one or the token names none of them. Its keys then decide.
    fn for_jwt(&self, token: &str) -> Arc<Inner>;
}

impl Tenants for Arc<Inner> {
    fn by_name(&self, name: &str) -> Option<Arc<Inner>> {
        if name.is_empty() || name == self.name {
            return Some(self.clone());
        }
        self.tenants.iter().find(|t| t.name == name).cloned()
    }

    fn by_issuer(&self, issuer: &str) -> Option<Arc<Inner>> {
        if issuer == &*self.issuer {
            return Some(self.clone());
        }
        self.tenants.iter().find(|t| &*t.issuer == issuer).cloned()
    }

    fn for_jwt(&self, token: &str) -> Arc<Inner> {
        if self.tenants.is_empty() {
            return self.clone();
        }
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        crate::jwt::Unverified::parse(token)
            .ok()
            .and_then(|jwt| serde_json::from_slice::<Iss>(&jwt.into_payload()).ok())
            .and_then(|claims| claims.iss)
            .and_then(|iss| self.by_issuer(&iss))
            .unwrap_or_else(|| self.clone())
    }
}

impl Inner {
    /// Opens the session cookie; a missing, tampered, foreign-key, oversized, expired, idle
    /// or revoked (back-channel logout) cookie gives no session.
    pub(crate) fn read_session(&self, headers: &HeaderMap) -> SessionRead {
        let base = &self.cookies.session;
        let found = find_chunked(headers, base);
        if !found.any() {
            return SessionRead::default();
        }
        let now = self.config.now();
        let session = found
            .value()
            .and_then(|v| self.session_sealer.open(base, &v))
            .and_then(SessionRef::parse)
            .filter(|s| self.is_live(s, now));
        let stale = if session.is_none() {
            found.names(base)
        } else {
            Vec::new()
        };
        SessionRead {
            session,
            present: true,
            only_session_cookies: !found.others,
            stale,
        }
    }

    /// Names of every session cookie (or chunk) in the request.
    pub(crate) fn session_cookie_names(&self, headers: &HeaderMap) -> Vec<String> {
        find_chunked(headers, &self.cookies.session).names(&self.cookies.session)
    }

    fn is_live(&self, s: &SessionRef, now: u64) -> bool {
        if s.expires_at <= now {
            return false;
        }
        if let Some(idle) = self.config.idle_timeout {
            if s.last_seen.saturating_add(idle.as_secs()) <= now {
                return false;
            }
        }
        !self
            .config
            .revocations
            .is_revoked(s.issuer(), s.sid(), s.subject(), s.created_at, now)
    }

    /// Whether the rolling deadline is near enough that the cookie should be re-issued.
    pub(crate) fn needs_touch(&self, s: &SessionRef, now: u64) -> bool {
        self.config
            .idle_timeout
            .is_some_and(|idle| now.saturating_sub(s.last_seen) * 2 >= idle.as_secs())
    }

    /// A session from validated tokens and claims, with the size choices of the
    /// configuration applied. `previous` is the session being refreshed, if any.
    pub(crate) fn make_session(
        &self,
        created_at: u64,
        now: u64,
        mut claims: serde_json::Map<String, serde_json::Value>,
        tokens: Tokens,
        previous: Option<&Session>,
    ) -> Result<Session, AuthError> {
        use crate::flow::callback::TOKEN_ONLY_CLAIMS;
        let config = &self.config;
        claims.retain(|name, _| !TOKEN_ONLY_CLAIMS.contains(&name.as_str()));
        claims.retain(|name, _| config.claims_filter.keeps(name));
        let subject = claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let sid = claims
            .get("sid")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .or_else(|| previous.and_then(|p| p.sid.clone()));
        let refresh_token = tokens
            .refresh_token
            .or_else(|| previous.and_then(|p| p.refresh_token.clone()));
        let id_token = tokens
            .id_token
            .or_else(|| previous.and_then(|p| p.id_token.clone()))
            .filter(|_| self.store_id_token);
        let access_expires_at = tokens.expires_in.map_or(0, |s| now.saturating_add(s));
        let mut expires_at = created_at.saturating_add(config.session_lifetime.as_secs());
        if refresh_token.is_none() && access_expires_at != 0 {
            // Without a refresh token the session cannot outlive its access token.
            expires_at = expires_at.min(access_expires_at);
        }
        let scope = tokens
            .scope
            .or_else(|| previous.map(|p| p.scope.clone()))
            .unwrap_or_else(|| config.scopes.join(" "));
        Ok(Session {
            created_at,
            expires_at,
            access_expires_at,
            subject,
            issuer: self.provider.metadata.issuer.clone(),
            claims: serde_json::to_vec(&claims).map_err(|_| {
                AuthError::new(AuthErrorKind::Internal, "claims could not be serialized")
            })?,
            id_token,
            access_token: Some(tokens.access_token).filter(|_| config.store_access_token),
            refresh_token,
            scope,
            last_seen: now,
            sid,
        })
    }

    /// `Set-Cookie` values for a new session, clearing chunks of an older, larger one
    /// (`old_names`: the session cookies the request carried).
    pub(crate) fn session_cookies(
        &self,
        old_names: &[String],
        session: &Session,
    ) -> Result<Vec<String>, AuthError> {
        let base = &self.cookies.session;
        let sealed = self.session_sealer.seal(base, &session.encode());
        let chunks = chunk(base, &sealed).ok_or_else(|| {
            AuthError::new(
                AuthErrorKind::Internal,
                format!(
                    "the session is too large for cookies ({} bytes sealed)",
                    sealed.len()
                ),
            )
        })?;
        if chunks.len() > 1 && !self.size_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                bytes = sealed.len(),
                cookies = chunks.len(),
                "the session needs several cookies; consider keep_claims, \
                 store_access_token(false) or store_id_token(false)"
            );
        }
        let mut deadline = session.expires_at;
        if let Some(idle) = self.config.idle_timeout {
            deadline = deadline.min(session.last_seen.saturating_add(idle.as_secs()));
        }
        let max_age = deadline.saturating_sub(self.config.now());
        let mut out: Vec<String> = old_names
            .iter()
            .filter(|old| !chunks.iter().any(|(name, _)| name == *old))
            .map(|old| self.cookies.session_removal(old))
            .collect();
        out.extend(
            chunks
                .iter()
                .map(|(name, value)| self.cookies.session_cookie(name, value, max_age)),
        );
        Ok(out)
    }

    /// The answer when login is required and missing: a fresh login for a navigation, 401
    /// or gRPC status 16 for everyone else.
    pub(crate) fn login_required(&self, uri: &http::Uri, headers: &HeaderMap) -> Answer {
        let caller = caller_kind(headers);
        if caller == CallerKind::Navigation {
            let return_to = uri
                .path_and_query()
                .map(|pq| pq.as_str())
                .and_then(login::sanitize_return_to)
                .unwrap_or("/");
            return login::start(self, headers, return_to.to_owned(), Vec::new());
        }
        response::reject(
            caller,
            AuthError::new(AuthErrorKind::LoginRequired, "login required"),
            headers,
        )
    }
}

/// A handle to the layer in the request extensions, for extractors.
#[derive(Clone)]
pub(crate) struct Handle(pub(crate) Arc<Inner>);

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Handle")
    }
}

impl Handle {
    #[cfg(feature = "axum")]
    pub(crate) fn login_required(&self, parts: &http::request::Parts) -> Answer {
        self.0.login_required(&parts.uri, &parts.headers)
    }
}
