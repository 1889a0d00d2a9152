//! Settings of the high-security profile: pushed authorization requests (RFC 9126).

use super::ConfigBuilder;

/// The settings of this module, with their defaults (see each [`ConfigBuilder`] method).
#[derive(Debug, Clone, Default)]
pub(crate) struct HighSecurity {
    /// `Some(true)`: always push; `Some(false)`: never (a provider that requires it is then
    /// refused at discovery); `None`: push when the provider requires it.
    pub(crate) pushed_authorization_requests: Option<bool>,
}

impl ConfigBuilder {
    /// Send the authorization request's parameters to the provider's pushed authorization
    /// request (PAR) endpoint (RFC 9126) before the login redirect, authenticated as the
    /// client; the browser then carries only `client_id` and the provider's `request_uri`.
    ///
    /// Default: only when the provider's discovery document says
    /// `require_pushed_authorization_requests`. `true` makes discovery fail with a
    /// [`ConfigError`](crate::ConfigError) when the provider has no
    /// `pushed_authorization_request_endpoint`; `false` makes it fail when the provider
    /// requires PAR.
    ///
    /// The parameters (scope, PKCE challenge, `state`, `nonce`, extra login parameters) then
    /// never travel through the browser, where they could be read or changed, and the
    /// provider knows the client before the user sees a login page. A refusal or failure of
    /// the PAR endpoint is answered with an error page that offers to try again; no login
    /// transaction cookie is set for it.
    ///
    /// # Example
    ///
    /// ```
    /// # use tower_oidc::{Config, SessionKey};
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .client_secret("s3cret")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .pushed_authorization_requests(true)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn pushed_authorization_requests(mut self, push: bool) -> Self {
        self.high_security.pushed_authorization_requests = Some(push);
        self
    }
}
