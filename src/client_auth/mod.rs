//! Client authentication at the provider's endpoints (token, introspection): the method
//! ([`ClientAuth`]), applying it to a request ([`ClientAuth::authenticate`]), and the client's
//! private key for `private_key_jwt` ([`ClientKey`], in `keys`).

mod keys;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::{AuthError, AuthErrorKind};

pub(crate) use keys::signed_jwt;
pub use keys::ClientKey;

/// How the client authenticates at the token endpoint.
///
/// # Example
///
/// ```
/// use tower_oidc::{ClientAuth, Config, SessionKey};
///
/// let config = Config::builder("https://id.example.com", "my-client")
///     .client_secret("s3cret")
///     .client_auth(ClientAuth::ClientSecretPost)
///     .redirect_url("https://app.example.com/auth/callback")
///     .session_key(SessionKey::generate())
///     .build()?;
/// # Ok::<(), tower_oidc::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A signed JWT assertion with the client's private key (RFC 7523), set with
    /// [`ConfigBuilder::client_key`](crate::ConfigBuilder::client_key).
    PrivateKeyJwt,
    /// A public client: only `client_id`, with PKCE.
    None,
}

impl ClientAuth {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::None => "none",
        }
    }
}

/// The `aud` of a `private_key_jwt` client assertion, set with
/// [`ConfigBuilder::client_assertion_audience`](crate::ConfigBuilder::client_assertion_audience).
///
/// # Example
///
/// ```
/// use tower_oidc::{AssertionAudience, Config, SessionKey};
///
/// let config = Config::builder("https://id.example.com", "my-client")
///     .client_assertion_audience(AssertionAudience::TokenEndpoint)
///     .redirect_url("https://app.example.com/auth/callback")
///     .session_key(SessionKey::generate())
///     .build()?;
/// # Ok::<(), tower_oidc::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The provider's issuer identifier (default; draft-ietf-oauth-rfc7523bis): one value for
    /// every endpoint of the provider, and never another server's.
    #[default]
    Issuer,
    /// The provider's token endpoint URL (RFC 7523 §3), for providers that accept nothing
    /// else; used for introspection too.
    TokenEndpoint,
}

/// What the client proves itself with, as configured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Credentials<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) secret: Option<&'a str>,
    pub(crate) key: Option<&'a ClientKey>,
}

/// How a form POST to a provider endpoint authenticates the client: an `Authorization` header
/// and form parameters (added after the request's own).
#[derive(Debug, Default)]
pub(crate) struct Authentication {
    pub(crate) authorization: Option<String>,
    pub(crate) params: Vec<(&'static str, String)>,
}

impl ClientAuth {
    /// Authenticates a request as `client` with this method. `audience` names the
    /// authorization server in a client assertion (see [`AssertionAudience`]); `now` is its
    /// issue time. Every assertion has a fresh `jti`: providers refuse a reused one
    /// (OpenID Connect Core §9, oidc-provider's replay detection).
    pub(crate) fn authenticate(
        self,
        client: &Credentials<'_>,
        audience: &str,
        now: u64,
    ) -> Result<Authentication, AuthError> {
        let client_id = client.client_id;
        let mut auth = Authentication::default();
        match (self, client.secret) {
            (ClientAuth::ClientSecretBasic, Some(secret)) => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let credentials = STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)));
                auth.authorization = Some(format!("Basic {credentials}"));
            }
            (ClientAuth::ClientSecretPost, Some(secret)) => {
                auth.params.push(("client_id", client_id.to_owned()));
                auth.params.push(("client_secret", secret.to_owned()));
            }
            (ClientAuth::PrivateKeyJwt, _) => {
                let Some(key) = client.key else {
                    return Err(AuthError::new(AuthErrorKind::Internal, "no client key"));
                };
                let assertion = keys::client_assertion(key, client_id, audience, now, 60);
                auth.params.push(("client_id", client_id.to_owned()));
                auth.params
                    .push(("client_assertion_type", keys::ASSERTION_TYPE.to_owned()));
                auth.params.push(("client_assertion", assertion));
            }
            _ => auth.params.push(("client_id", client_id.to_owned())),
        }
        Ok(auth)
    }
}
