//! Settings for bearer tokens of providers that bend RFC 9068: extra issuers (Entra v1,
//! custom domains), `client_id` as the audience (Cognito), an allow-list of the clients a
//! token was issued to, introspection with credentials of its own (Zitadel) and as the
//! fallback for JWTs whose keys are not published (Okta's org authorization server).

use crate::error::ConfigError;
use crate::issuer::{IssuerRule, TenantPolicy, TENANT_PLACEHOLDER};

use super::{ConfigBuilder, Secret};

/// The settings of this module, with their defaults (see each [`ConfigBuilder`] method).
#[derive(Debug, Clone, Default)]
pub(crate) struct BearerCompat {
    pub(crate) extra_issuers: Vec<String>,
    /// Built by [`BearerCompat::check`] from `extra_issuers`.
    pub(crate) issuer_rules: Vec<IssuerRule>,
    pub(crate) client_id_as_audience: bool,
    pub(crate) allowed_clients: Vec<String>,
    pub(crate) introspection_client: Option<(String, Secret)>,
    pub(crate) introspect_unverifiable_jwts: bool,
}

impl BearerCompat {
    /// The checks of [`ConfigBuilder::build`] for these settings; completes what is derived.
    pub(super) fn check(
        mut self,
        tenants: Option<&TenantPolicy>,
        allow_http: bool,
    ) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            field: "bearer_issuer",
            reason,
        };
        self.issuer_rules = Vec::with_capacity(self.extra_issuers.len());
        for issuer in &self.extra_issuers {
            let example = issuer.replace(TENANT_PLACEHOLDER, "tenant");
            let url = url::Url::parse(&example)
                .map_err(|e| invalid(format!("`{issuer}`: {e} (an absolute URL is required)")))?;
            let loopback = super::hardening::is_loopback(&url);
            let https_or_local =
                url.scheme() == "https" || (url.scheme() == "http" && (loopback || allow_http));
            if !https_or_local || url.host().is_none() {
                return Err(invalid(format!(
                    "`{issuer}` is not an https URL (plain http only on loopback)"
                )));
            }
            let rule = IssuerRule::new(issuer, tenants).map_err(invalid)?;
            self.issuer_rules.push(rule);
        }
        if self.allowed_clients.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                field: "allowed_client",
                reason: "empty".into(),
            });
        }
        if let Some((id, secret)) = &self.introspection_client {
            if id.is_empty() || secret.0.is_empty() {
                return Err(ConfigError::Invalid {
                    field: "introspection_client",
                    reason: "a client id and a secret are required".into(),
                });
            }
        }
        Ok(self)
    }
}

impl ConfigBuilder {
    /// One more issuer whose bearer tokens are accepted, signed by the provider's keys: a
    /// custom domain of the same tenant (Auth0, Okta), or Microsoft Entra ID's v1 access
    /// tokens, `https://sts.windows.net/{tenantid}/`. A `{tenantid}` in it follows the
    /// [`tenants`](Self::tenants) setting (required then): the token's `tid` must be allowed
    /// and its `iss` this template filled with it. ID tokens and sessions still need the
    /// provider's own issuer. Must be https (plain http only on loopback, or with
    /// [`allow_http_provider`](Self::allow_http_provider)).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
    /// let config = Config::builder(format!("https://login.microsoftonline.com/{tenant}/v2.0"), "app-id")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .bearer_issuer(format!("https://sts.windows.net/{tenant}/"))
    ///     .api_audience("api://my-api")
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn bearer_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.bearer_compat.extra_issuers.push(issuer.into());
        self
    }

    /// Accept a bearer JWT without `aud` when its `client_id` claim is one of the API
    /// audiences ([`api_audience`](Self::api_audience); default the client id), as AWS
    /// Cognito's access tokens carry no `aud`. Default off: a JWT without `aud` is refused.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf", "app-client")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .client_id_as_audience(true)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn client_id_as_audience(mut self, accept: bool) -> Self {
        self.bearer_compat.client_id_as_audience = accept;
        self
    }

    /// A client whose bearer tokens are accepted; repeat for several. When set, a bearer
    /// token must name the client it was issued to (`azp`, `client_id`, Okta's `cid` or
    /// Entra v1's `appid`), and every such claim must be one of these. Default: any client
    /// (the audience decides).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com/realms/main", "web")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .api_audience("account")
    ///     .allowed_client("web")
    ///     .allowed_client("mobile")
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn allowed_client(mut self, client_id: impl Into<String>) -> Self {
        self.bearer_compat.allowed_clients.push(client_id.into());
        self
    }

    /// Credentials of their own for the introspection endpoint (sent with HTTP Basic), when
    /// the provider lets another client introspect than the one that logs users in (Zitadel:
    /// an API application). Default: the web client's own authentication.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://my-org.zitadel.cloud", "web-client")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .introspection_client("api-client", "api-secret")
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn introspection_client(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.bearer_compat.introspection_client = Some((client_id.into(), Secret(secret.into())));
        self
    }

    /// Ask the introspection endpoint about a bearer JWT whose signing key (`kid`) the
    /// provider does not publish, as Okta's org authorization server signs its access
    /// tokens. Default off: such a token is refused. Introspection calls are bounded as for
    /// opaque tokens (see [`introspection_per_second`](Self::introspection_per_second)), and
    /// the answer is checked as theirs.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://my-org.okta.com", "app-client")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .introspect_unverifiable_jwts(true)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn introspect_unverifiable_jwts(mut self, introspect: bool) -> Self {
        self.bearer_compat.introspect_unverifiable_jwts = introspect;
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
    fn bearer_issuers_are_checked() {
        for bad in [
            "not a url",
            "http://sts.example.com/",
            "https://sts.example.com/{tenantid}/",
        ] {
            assert!(
                matches!(
                    base().bearer_issuer(bad).build(),
                    Err(ConfigError::Invalid {
                        field: "bearer_issuer",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        let config = base()
            .any_tenant()
            .bearer_issuer("https://sts.example.com/{tenantid}/")
            .bearer_issuer("http://localhost:8080/custom")
            .build()
            .unwrap();
        assert_eq!(config.bearer_compat.issuer_rules.len(), 2);
        assert!(config.bearer_compat.issuer_rules[0].is_template());
        assert!(matches!(
            base().allowed_client("").build(),
            Err(ConfigError::Invalid {
                field: "allowed_client",
                ..
            })
        ));
        assert!(matches!(
            base().introspection_client("x", "").build(),
            Err(ConfigError::Invalid {
                field: "introspection_client",
                ..
            })
        ));
        let text = format!(
            "{:?}",
            base()
                .introspection_client("x", "hunter2")
                .build()
                .unwrap()
                .bearer_compat
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
}
