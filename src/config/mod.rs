//! [`Config`] and its builder: issuer, client, redirect URL, scopes, cookie and session
//! settings. Mistakes are reported by [`ConfigBuilder::build`], not at the first request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::client_auth::{ClientAuth, ClientKey};
use crate::refresh_coordinator::RefreshCoordinator;
use crate::revocation::RevocationStore;
use crate::session::cookie::SessionKey;
use crate::session::sessions::Clock;
use crate::session::store::SessionStore;

/// The authorization response type.
///
/// # Example
///
/// ```
/// use tower_oidc::{Config, ResponseType, SessionKey};
///
/// let config = Config::builder("https://id.example.com", "my-client")
///     .client_secret("s3cret")
///     .response_type(ResponseType::CodeIdToken) // hybrid, answered with form_post
///     .redirect_url("https://app.example.com/auth/callback")
///     .session_key(SessionKey::generate())
///     .build()?;
/// # Ok::<(), tower_oidc::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseType {
    /// `code`: the authorization code flow (default).
    Code,
    /// `code id_token`: the hybrid flow; an ID token arrives with the code and is validated
    /// (with `c_hash`) before the code is exchanged. Always answered with `form_post`.
    CodeIdToken,
}

/// How the provider returns the authorization response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseMode {
    /// In the query string of a `GET` to the callback (default for `code`).
    Query,
    /// As an auto-submitted form `POST` to the callback (default, and required, for the
    /// hybrid flow). The login-transaction cookie is then `SameSite=None; Secure`, because a
    /// cross-site POST carries no `Lax` cookies; browsers accept `Secure` cookies over plain
    /// http only on `localhost` / loopback addresses, so a plain-http deployment elsewhere
    /// cannot use form_post.
    FormPost,
}

/// Which claims a session keeps.
#[derive(Debug, Clone)]
pub(crate) enum ClaimsFilter {
    All,
    Only(Vec<String>),
    Except(Vec<String>),
}

impl ClaimsFilter {
    pub(crate) fn keeps(&self, name: &str) -> bool {
        const ALWAYS: &[&str] = &["sub", "iss", "sid"];
        match self {
            Self::All => true,
            Self::Only(names) => ALWAYS.contains(&name) || names.iter().any(|n| n == name),
            Self::Except(names) => ALWAYS.contains(&name) || !names.iter().any(|n| n == name),
        }
    }
}

/// A secret that never prints.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The validated configuration of an [`OidcLayer`](crate::OidcLayer).
///
/// Built with [`Config::builder`]; see there for every setting and its default.
///
/// # Example
///
/// ```
/// use tower_oidc::{Config, SessionKey};
///
/// let config = Config::builder("https://id.example.com", "my-client")
///     .client_secret("s3cret")
///     .redirect_url("https://app.example.com/auth/callback")
///     .scopes(["openid", "profile", "email"])
///     .session_key(SessionKey::generate())
///     .build()?;
/// assert_eq!(config.client_id(), "my-client");
/// # Ok::<(), tower_oidc::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) client_auth: Option<ClientAuth>,
    pub(crate) client_key: Option<ClientKey>,
    pub(crate) redirect_url: Url,
    pub(crate) scopes: Vec<String>,
    pub(crate) session_key: SessionKey,
    pub(crate) prefix: String,
    pub(crate) post_logout_redirect_url: Url,
    pub(crate) require_login: bool,
    pub(crate) public_paths: Vec<String>,
    pub(crate) clock_skew: Duration,
    pub(crate) session_lifetime: Duration,
    pub(crate) userinfo: Option<bool>,
    pub(crate) auth_params: Vec<(String, String)>,
    pub(crate) max_transactions: usize,
    /// Slots of the cache of opened session cookies (0: off).
    pub(crate) session_cache: usize,
    pub(crate) transaction_ttl: Duration,
    pub(crate) http_timeout: Duration,
    pub(crate) jwks_refetch_interval: Duration,
    pub(crate) jwks_max_age: Duration,
    pub(crate) cookie_name: String,
    pub(crate) secure_cookies: bool,
    pub(crate) clock: Clock,
    pub(crate) bearer: bool,
    pub(crate) api_audiences: Vec<String>,
    pub(crate) bearer_cache_capacity: usize,
    pub(crate) introspection: Option<bool>,
    pub(crate) introspection_cache_ttl: Duration,
    pub(crate) require_access_token_type: bool,
    pub(crate) csrf_header: Option<http::HeaderName>,
    pub(crate) response_type: ResponseType,
    pub(crate) response_mode: ResponseMode,
    pub(crate) login_params: Vec<String>,
    pub(crate) allow_pkce_plain: bool,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) refresh_margin: Duration,
    pub(crate) refresh_grace: Duration,
    /// At most this many refresh requests per session within the window.
    pub(crate) refresh_attempts: (u32, Duration),
    pub(crate) claims_filter: ClaimsFilter,
    pub(crate) store_access_token: bool,
    pub(crate) store_id_token: Option<bool>,
    pub(crate) revocations: Arc<dyn RevocationStore>,
    /// Refresh coordination across replicas (`None`: per replica).
    pub(crate) refresh_coordinator: Option<Arc<dyn RefreshCoordinator>>,
    /// Server-side sessions (`None`: sessions in cookies).
    pub(crate) session_store: Option<Arc<dyn SessionStore>>,
    pub(crate) hardening: hardening::Hardening,
    pub(crate) high_security: high_security::HighSecurity,
    pub(crate) compat: compat::Compat,
    pub(crate) login_hook: Option<crate::hook::LoginHook>,
    /// The path prefix a reverse proxy strips ("" for none).
    pub(crate) external_prefix: String,
    pub(crate) bearer_compat: bearer::BearerCompat,
    pub(crate) deployment: deployment::Deployment,
}

impl Config {
    /// Starts a configuration for `issuer` (the provider's issuer URL, exactly as its
    /// discovery document states it; it may contain a path) and `client_id`.
    pub fn builder(issuer: impl Into<String>, client_id: impl Into<String>) -> ConfigBuilder {
        ConfigBuilder::new(issuer.into(), client_id.into())
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The redirect URL registered with the provider.
    pub fn redirect_url(&self) -> &str {
        self.redirect_url.as_str()
    }

    /// The path prefix of the layer's routes (default `/auth`).
    pub fn route_prefix(&self) -> &str {
        &self.prefix
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_auth", &self.client_auth)
            .field("redirect_url", &self.redirect_url.as_str())
            .field("scopes", &self.scopes)
            .field("session_key", &self.session_key)
            .field("prefix", &self.prefix)
            .field("require_login", &self.require_login)
            .field("clock_skew", &self.clock_skew)
            .field("session_lifetime", &self.session_lifetime)
            .finish_non_exhaustive()
    }
}

mod bearer;
mod builder;
mod compat;
mod deployment;
pub(crate) use compat::end_session_location;
pub(crate) mod hardening;
mod high_security;
mod presets;
mod profile;
pub use builder::ConfigBuilder;
pub use profile::Profile;
