//! Settings for where the layer runs: the trust store of its HTTP client (extra root
//! certificates for a provider behind a private CA, or a client of the application's own).

use crate::error::ConfigError;

use super::ConfigBuilder;

/// The settings of this module, with their defaults (see each [`ConfigBuilder`] method).
#[derive(Debug, Clone, Default)]
pub(crate) struct Deployment {
    /// PEM texts, parsed by [`Deployment::check`].
    pub(crate) root_certificate_pems: Vec<Vec<u8>>,
    pub(crate) root_certificates: Vec<reqwest::Certificate>,
    pub(crate) http_client: Option<reqwest::Client>,
    pub(crate) discovery_retry: Option<std::time::Duration>,
}

impl Deployment {
    /// The checks of [`ConfigBuilder::build`] for these settings; completes what is derived.
    pub(super) fn check(mut self) -> Result<Self, ConfigError> {
        if self.http_client.is_some() && !self.root_certificate_pems.is_empty() {
            return Err(ConfigError::Invalid {
                field: "root_certificate",
                reason: "set the root certificates on your own HTTP client (http_client)".into(),
            });
        }
        if self.discovery_retry.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Invalid {
                field: "retry_discovery",
                reason: "the interval must be longer than zero".into(),
            });
        }
        self.root_certificates.clear();
        for pem in &self.root_certificate_pems {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| ConfigError::Invalid {
                    field: "root_certificate",
                    reason: format!("not PEM certificates: {e}"),
                })?;
            if certs.is_empty() {
                return Err(ConfigError::Invalid {
                    field: "root_certificate",
                    reason: "no `-----BEGIN CERTIFICATE-----` block".into(),
                });
            }
            self.root_certificates.extend(certs);
        }
        Ok(self)
    }
}

impl ConfigBuilder {
    /// A root certificate (PEM; a bundle of several is fine) trusted for calls to the
    /// provider besides the platform's trust store, for a provider behind a private CA (an
    /// internal Keycloak). Repeat for several.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let ca = std::fs::read("/etc/ssl/internal-ca.pem").expect("CA certificate");
    /// let config = Config::keycloak("https://sso.internal.example", "main", "web")
    ///     .root_certificate(ca)
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    ///
    /// Text without a certificate is a [`ConfigError`].
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.deployment.root_certificate_pems.push(pem.into());
        self
    }

    /// The HTTP client for every call to the provider (discovery, keys, token, userinfo,
    /// introspection), instead of the layer's own: for proxies, client certificates or a
    /// trust store of your choice. It should follow no redirects and have timeouts, as the
    /// layer's own does ([`http_timeout`](Self::http_timeout) does not apply to it).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let http = reqwest::Client::builder()
    ///     .redirect(reqwest::redirect::Policy::none())
    ///     .timeout(Duration::from_secs(5))
    ///     .build()
    ///     .expect("HTTP client");
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .http_client(http)
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.deployment.http_client = Some(client);
        self
    }

    /// Start while the provider is down: when discovery cannot reach the provider (or it
    /// answers badly), [`OidcLayer::discover`](crate::OidcLayer::discover) returns a layer
    /// anyway and discovery is tried again every `interval`, by the layer's clock, in the
    /// background and by requests that arrive when an attempt is due. Until it works, every
    /// request through the layer is answered `503` (gRPC `UNAVAILABLE`) with `Retry-After`:
    /// no one can be logged in or recognised. Keep health checks outside the layer. Mistakes
    /// that retrying cannot fix (another issuer, an unsupported provider) still fail at
    /// start. Default: off, discovery failing is an error.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .retry_discovery(Duration::from_secs(10))
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn retry_discovery(mut self, interval: std::time::Duration) -> Self {
        self.deployment.discovery_retry = Some(interval);
        self
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigBuilder, ConfigError, SessionKey};

    fn base() -> ConfigBuilder {
        Config::builder("https://id.example.com", "c")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
    }

    #[test]
    fn root_certificates_must_be_certificates() {
        for bad in ["", "not a certificate"] {
            assert!(
                matches!(
                    base().root_certificate(bad).build(),
                    Err(ConfigError::Invalid {
                        field: "root_certificate",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            base().retry_discovery(std::time::Duration::ZERO).build(),
            Err(ConfigError::Invalid {
                field: "retry_discovery",
                ..
            })
        ));
        assert!(matches!(
            base()
                .http_client(reqwest::Client::new())
                .root_certificate("x")
                .build(),
            Err(ConfigError::Invalid {
                field: "root_certificate",
                ..
            })
        ));
    }
}
