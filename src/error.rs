//! Error types: [`ConfigError`] for configuration and discovery, [`AuthError`] for requests.
//!
//! Neither type ever carries a secret (client secret, session key, token) in its message.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

pub(crate) type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A configuration mistake or a failed discovery, found by
/// [`ConfigBuilder::build`](crate::ConfigBuilder::build) or
/// [`OidcLayer::discover`](crate::OidcLayer::discover), never at the first request.
///
/// # Example
///
/// ```
/// use tower_oidc::{Config, ConfigError, SessionKey};
///
/// let err = Config::builder("https://id.example.com", "my-client")
///     .redirect_url("/auth/callback") // not absolute
///     .session_key(SessionKey::generate())
///     .build()
///     .unwrap_err();
/// assert!(matches!(err, ConfigError::InvalidUrl { field: "redirect_url", .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A URL setting is malformed, not absolute, or uses a scheme other than http(s).
    InvalidUrl {
        /// The setting, e.g. `"issuer"` or `"redirect_url"`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No redirect URL was configured.
    MissingRedirectUrl,
    /// No session key was configured.
    MissingSessionKey,
    /// A session secret is shorter than 32 bytes.
    SessionKeyTooShort {
        /// The length that was given, in bytes.
        len: usize,
    },
    /// A session key could not be decoded from base64.
    InvalidSessionKey,
    /// The scopes do not include `openid`.
    MissingOpenidScope,
    /// Another setting is invalid.
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The provider's discovery document or key set could not be fetched or parsed.
    Discovery {
        /// What was being fetched.
        what: &'static str,
        /// The underlying failure.
        source: BoxError,
    },
    /// The discovery document names another issuer than the configured one.
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer in the discovery document.
        found: String,
    },
    /// The provider metadata lacks something this client needs or is inconsistent with the
    /// configuration (e.g. no common client authentication method).
    UnsupportedProvider(String),
    /// A shared backend (e.g. the Redis of a
    /// `RedisRevocationStore`) could not be reached at startup.
    Backend {
        /// What was being connected.
        what: &'static str,
        /// The underlying failure.
        source: BoxError,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { field, reason } => write!(f, "invalid `{field}` URL: {reason}"),
            Self::MissingRedirectUrl => f.write_str("no redirect URL configured"),
            Self::MissingSessionKey => f.write_str("no session key configured"),
            Self::SessionKeyTooShort { len } => {
                write!(f, "session key is {len} bytes; at least 32 are required")
            }
            Self::InvalidSessionKey => f.write_str("session key is not valid base64"),
            Self::MissingOpenidScope => f.write_str("scopes must include `openid`"),
            Self::Invalid { field, reason } => write!(f, "invalid `{field}`: {reason}"),
            Self::Discovery { what, source } => write!(f, "fetching the {what} failed: {source}"),
            Self::IssuerMismatch { expected, found } => write!(
                f,
                "the provider's metadata names issuer `{found}`, but `{expected}` is configured"
            ),
            Self::UnsupportedProvider(reason) => write!(f, "unsupported provider: {reason}"),
            Self::Backend { what, source } => write!(f, "connecting the {what} failed: {source}"),
        }
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Discovery { source, .. } | Self::Backend { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

/// What kind of failure an [`AuthError`] is; decides the answer's status (see the table in
/// the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No credentials, and the route requires login.
    LoginRequired,
    /// A token or session is invalid or expired.
    InvalidToken,
    /// The caller is authenticated but lacks a scope or claim.
    InsufficientScope,
    /// A state-changing request authenticated by the session cookie lacks the configured
    /// anti-CSRF header.
    CsrfCheckFailed,
    /// The login callback is invalid: unknown or replayed state, bad parameters, a token that
    /// fails validation.
    InvalidCallback,
    /// The provider answered the login with an error (e.g. `access_denied`).
    ProviderError,
    /// The provider could not be reached or answered with a server error.
    ProviderUnavailable,
    /// A fault in this server.
    Internal,
}

/// A request-time authentication failure.
///
/// Rejections are responses, never `Err`s of the service: the rejection response carries the
/// `AuthError` in its extensions, so an app can customise the answer with a response-mapping
/// layer.
///
/// # Example
///
/// ```
/// use tower_oidc::{AuthError, AuthErrorKind};
///
/// fn describe(res: &http::Response<()>) -> Option<AuthErrorKind> {
///     res.extensions().get::<AuthError>().map(|e| e.kind())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct AuthError {
    kind: AuthErrorKind,
    message: Cow<'static, str>,
}

impl AuthError {
    pub(crate) fn new(kind: AuthErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// A human-readable description, safe to log (no secrets or tokens).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for AuthError {}
