//! Security profiles: one setting that turns on what a profile requires and makes
//! [`ConfigBuilder::build`] refuse what it forbids.

use std::time::Duration;

use super::{ConfigBuilder, ResponseType};
use crate::client_auth::{AssertionAudience, ClientAuth};
use crate::error::ConfigError;

/// A security profile for [`ConfigBuilder::profile`].
///
/// # Example
///
/// ```no_run
/// use tower_oidc::{ClientKey, Config, Profile, SessionKey};
///
/// let config = Config::builder("https://id.example.com", "my-client")
///     .profile(Profile::Fapi2Security)
///     .client_key(ClientKey::from_file("client-key.pem")?)
///     .redirect_url("https://app.example.com/auth/callback")
///     .session_key(SessionKey::generate())
///     .build()?;
/// # Ok::<(), tower_oidc::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// The FAPI 2.0 Security Profile (OpenID Foundation, final 2025): pushed authorization
    /// requests, the code flow with PKCE `S256`, `private_key_jwt` client authentication with
    /// the issuer as the assertion's audience, DPoP-bound tokens, the `iss` authorization
    /// response parameter (RFC 9207) required, and login transactions of at most two minutes
    /// by default.
    Fapi2Security,
}

/// The login-transaction lifetime the FAPI 2.0 profile sets (a login takes a user a minute
/// or two; the provider's `request_uri` lives shorter still).
const FAPI2_LOGIN_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest login-transaction lifetime the FAPI 2.0 profile accepts.
const FAPI2_MAX_LOGIN_TIMEOUT: Duration = Duration::from_secs(600);

impl ConfigBuilder {
    /// Turns on everything `profile` requires; [`build`](ConfigBuilder::build) then refuses
    /// the settings the profile forbids, and discovery the provider that lacks what it needs.
    ///
    /// [`Profile::Fapi2Security`] sets: [`pushed_authorization_requests`] on, [`dpop`] on,
    /// [`client_auth`] `PrivateKeyJwt` (a [`client_key`] is required),
    /// [`client_assertion_audience`] the issuer, and [`login_timeout`] two minutes. Setters
    /// called later may change these within the profile. `build` refuses: a client secret
    /// or any other client authentication, no client key, the hybrid flow
    /// (`ResponseType::CodeIdToken`), PKCE `plain`, PAR or DPoP turned off, the token endpoint
    /// as assertion audience, a login timeout over ten minutes, and plain-http providers.
    /// `discover` refuses a provider without a PAR endpoint or without RFC 9207 `iss` in its
    /// authorization responses (`authorization_response_iss_parameter_supported`), which is
    /// then always required.
    ///
    /// [`pushed_authorization_requests`]: ConfigBuilder::pushed_authorization_requests
    /// [`dpop`]: ConfigBuilder::dpop
    /// [`client_auth`]: ConfigBuilder::client_auth
    /// [`client_key`]: ConfigBuilder::client_key
    /// [`client_assertion_audience`]: ConfigBuilder::client_assertion_audience
    /// [`login_timeout`]: ConfigBuilder::login_timeout
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, ConfigError, Profile, SessionKey};
    ///
    /// // A client secret is not FAPI 2.0.
    /// let refused = Config::builder("https://id.example.com", "my-client")
    ///     .profile(Profile::Fapi2Security)
    ///     .client_secret("s3cret")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build();
    /// assert!(matches!(refused, Err(ConfigError::Invalid { field: "client_secret", .. })));
    /// ```
    pub fn profile(mut self, profile: Profile) -> Self {
        match profile {
            Profile::Fapi2Security => {
                self.high_security.pushed_authorization_requests = Some(true);
                self.high_security.dpop_sessions = true;
                self.hardening.assertion_audience = AssertionAudience::Issuer;
                self = self
                    .client_auth(ClientAuth::PrivateKeyJwt)
                    .login_timeout(FAPI2_LOGIN_TIMEOUT);
            }
        }
        self.high_security.profile = Some(profile);
        self
    }

    /// The refusals of [`profile`](ConfigBuilder::profile), for `build`.
    pub(super) fn check_profile(&self) -> Result<(), ConfigError> {
        let Some(Profile::Fapi2Security) = self.high_security.profile else {
            return Ok(());
        };
        let refuse = |field: &'static str, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: format!("the FAPI 2.0 Security Profile {reason}"),
            })
        };
        if self.response_type != ResponseType::Code {
            return refuse(
                "response_type",
                "allows only the code flow (no hybrid `code id_token`)",
            );
        }
        if self.client_secret.as_deref().is_some_and(|s| !s.is_empty()) {
            return refuse(
                "client_secret",
                "forbids client secrets; authenticate with private_key_jwt (client_key)",
            );
        }
        if self.client_auth != Some(ClientAuth::PrivateKeyJwt) {
            return refuse("client_auth", "requires private_key_jwt");
        }
        if self.client_key.is_none() {
            return refuse(
                "client_key",
                "requires private_key_jwt: set the client's key",
            );
        }
        if self.hardening.assertion_audience != AssertionAudience::Issuer {
            return refuse(
                "client_assertion_audience",
                "requires the issuer as the client assertion's audience",
            );
        }
        if self.allow_pkce_plain {
            return refuse("allow_pkce_plain", "requires PKCE with S256");
        }
        if self.high_security.pushed_authorization_requests != Some(true) {
            return refuse(
                "pushed_authorization_requests",
                "requires pushed authorization requests",
            );
        }
        if !self.high_security.dpop_sessions {
            return refuse("dpop", "requires sender-constrained (DPoP-bound) tokens");
        }
        if self.transaction_ttl > FAPI2_MAX_LOGIN_TIMEOUT {
            return refuse("login_timeout", "allows logins of at most ten minutes");
        }
        if self.hardening.allow_http_provider {
            return refuse("allow_http_provider", "requires TLS to the provider");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientKey, Config, ResponseMode, SessionKey};

    fn key() -> ClientKey {
        use base64::Engine;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .expect("key");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        ClientKey::from_pem(&pem).expect("PEM")
    }

    fn fapi() -> ConfigBuilder {
        Config::builder("https://id.example.com", "my-client")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
            .profile(Profile::Fapi2Security)
            .client_key(key())
    }

    fn refused_field(builder: ConfigBuilder) -> &'static str {
        match builder.build() {
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_profile_turns_on_what_it_requires() {
        let config = fapi().build().expect("a FAPI 2.0 configuration");
        assert_eq!(
            config.high_security.pushed_authorization_requests,
            Some(true)
        );
        assert!(config.high_security.dpop_sessions);
        assert_eq!(config.client_auth, Some(ClientAuth::PrivateKeyJwt));
        assert_eq!(
            config.hardening.assertion_audience,
            AssertionAudience::Issuer
        );
        assert_eq!(config.transaction_ttl, FAPI2_LOGIN_TIMEOUT);
        assert_eq!(config.response_type, ResponseType::Code);
        assert_eq!(config.high_security.profile, Some(Profile::Fapi2Security));
        // A shorter login timeout and form_post stay allowed.
        fapi()
            .login_timeout(Duration::from_secs(60))
            .response_mode(ResponseMode::FormPost)
            .build()
            .expect("allowed");
    }

    #[test]
    fn build_refuses_what_the_profile_forbids() {
        let cases: Vec<(ConfigBuilder, &str)> = vec![
            (
                fapi().response_type(ResponseType::CodeIdToken),
                "response_type",
            ),
            (fapi().client_secret("s3cret"), "client_secret"),
            (
                fapi().client_auth(ClientAuth::ClientSecretBasic),
                "client_auth",
            ),
            (fapi().client_auth(ClientAuth::None), "client_auth"),
            (
                Config::builder("https://id.example.com", "my-client")
                    .redirect_url("https://app.example.com/auth/callback")
                    .session_key(SessionKey::generate())
                    .profile(Profile::Fapi2Security),
                "client_key",
            ),
            (
                fapi().client_assertion_audience(AssertionAudience::TokenEndpoint),
                "client_assertion_audience",
            ),
            (fapi().allow_pkce_plain(true), "allow_pkce_plain"),
            (
                fapi().pushed_authorization_requests(false),
                "pushed_authorization_requests",
            ),
            (fapi().dpop(false), "dpop"),
            (
                fapi().login_timeout(Duration::from_secs(601)),
                "login_timeout",
            ),
            (fapi().allow_http_provider(true), "allow_http_provider"),
        ];
        for (builder, field) in cases {
            assert_eq!(refused_field(builder), field);
        }
    }

    #[test]
    fn without_the_profile_nothing_is_refused() {
        Config::builder("https://id.example.com", "my-client")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
            .client_secret("s3cret")
            .response_type(ResponseType::CodeIdToken)
            .build()
            .expect("an ordinary configuration");
    }
}
