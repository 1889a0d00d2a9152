//! Settings for providers that bend the specifications: where roles are, and (see each
//! method) how userinfo failures, logout and the session's lifetime are handled.

use std::sync::Arc;

use crate::error::ConfigError;
use crate::identity::RoleClaims;

use super::ConfigBuilder;

/// The settings of this module, with their defaults (see each [`ConfigBuilder`] method).
#[derive(Debug, Clone, Default)]
pub(crate) struct Compat {
    pub(crate) roles_claim: Option<String>,
    pub(crate) session_ends_with_access_token: bool,
    pub(crate) require_userinfo: bool,
    /// Built by [`Compat::check`]: where [`Identity::roles`](crate::Identity::roles) looks.
    pub(crate) roles: Arc<RoleClaims>,
}

impl Compat {
    /// The checks of [`ConfigBuilder::build`] for these settings; completes what is derived.
    pub(super) fn check(mut self, client_id: &str) -> Result<Self, ConfigError> {
        if let Some(path) = &self.roles_claim {
            if path.split('.').any(str::is_empty) {
                return Err(ConfigError::Invalid {
                    field: "roles_claim",
                    reason: "a claim name, or a dot-separated path without empty parts".into(),
                });
            }
        }
        self.roles = Arc::new(RoleClaims {
            client_id: client_id.to_owned(),
            extra: self.roles_claim.clone(),
        });
        Ok(self)
    }
}

impl ConfigBuilder {
    /// One more claim holding roles, next to the well-known ones that
    /// [`Identity::roles`](crate::Identity::roles) always reads: a claim name (e.g. Auth0's
    /// namespaced `https://example.com/roles`), or else a dot-separated path into nested
    /// objects (e.g. `app_metadata.authorization.roles`). Its value may be a list of
    /// strings, a string, or an object whose keys are the roles. Default: none.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://tenant.eu.auth0.com/", "my-client")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .roles_claim("https://app.example.com/roles")
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn roles_claim(mut self, path: impl Into<String>) -> Self {
        self.compat.roles_claim = Some(path.into());
        self
    }

    /// End a session without a refresh token when its access token expires. Default off: the
    /// session lives its own lifetime ([`session_lifetime`](ConfigBuilder::session_lifetime),
    /// [`idle_timeout`](ConfigBuilder::idle_timeout)) whatever its access token's, as with
    /// Google's one-hour access tokens; handlers that call APIs see the expiry in
    /// [`AccessToken::expires_at`](crate::AccessToken::expires_at). Turn it on when every
    /// request needs a live access token.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .session_ends_with_access_token(true)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn session_ends_with_access_token(mut self, ends: bool) -> Self {
        self.compat.session_ends_with_access_token = ends;
        self
    }

    /// Fail the login when userinfo gives no usable answer (unreachable, an HTTP error, not
    /// JSON). Default off: userinfo only enriches the ID token's claims, so its failure is
    /// logged as a warning and the login goes on with the ID token's claims (Entra's userinfo
    /// lives on Microsoft Graph and answers `401` to access tokens for other APIs). A userinfo
    /// answer about another user (`sub`) or a signed answer that does not verify always fails
    /// the login.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .require_userinfo(true)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn require_userinfo(mut self, required: bool) -> Self {
        self.compat.require_userinfo = required;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, SessionKey};

    fn base() -> ConfigBuilder {
        Config::builder("https://id.example.com", "c")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
    }

    #[test]
    fn roles_claim_must_be_a_name_or_a_path() {
        for bad in ["", "a..b", ".a", "a."] {
            assert!(
                matches!(
                    base().roles_claim(bad).build(),
                    Err(ConfigError::Invalid {
                        field: "roles_claim",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        for good in ["roles2", "a.b.c", "https://example.com/roles"] {
            let config = base().roles_claim(good).build().unwrap();
            assert_eq!(config.compat.roles.extra.as_deref(), Some(good));
            assert_eq!(config.compat.roles.client_id, "c");
        }
    }
}
