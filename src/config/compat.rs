//! Settings for providers that bend the specifications: where roles are, and (see each
//! method) how userinfo failures, logout and the session's lifetime are handled.

use std::sync::Arc;

use crate::error::ConfigError;
use crate::identity::RoleClaims;
use crate::issuer::{is_tenant_id, TenantPolicy};

use super::hardening::is_loopback;
use super::ConfigBuilder;

/// The settings of this module, with their defaults (see each [`ConfigBuilder`] method).
#[derive(Debug, Clone, Default)]
pub(crate) struct Compat {
    pub(crate) roles_claim: Option<String>,
    pub(crate) session_ends_with_access_token: bool,
    pub(crate) require_userinfo: bool,
    pub(crate) end_session_url: Option<String>,
    /// The tenants a multi-tenant (`{tenantid}`) issuer accepts; `None`: the issuer is exact.
    pub(crate) tenants: Option<TenantPolicy>,
    /// Built by [`Compat::check`]: where [`Identity::roles`](crate::Identity::roles) looks.
    pub(crate) roles: Arc<RoleClaims>,
}

impl Compat {
    /// The checks of [`ConfigBuilder::build`] for these settings; completes what is derived.
    pub(super) fn check(mut self, client_id: &str, allow_http: bool) -> Result<Self, ConfigError> {
        if let Some(path) = &self.roles_claim {
            if path.split('.').any(str::is_empty) {
                return Err(ConfigError::Invalid {
                    field: "roles_claim",
                    reason: "a claim name, or a dot-separated path without empty parts".into(),
                });
            }
        }
        if let Some(template) = &self.end_session_url {
            let example = fill_end_session_url(template, "client", "https://app.example/", "a.b.c")
                .map_err(|reason| ConfigError::Invalid {
                    field: "end_session_url",
                    reason,
                })?;
            let url = url::Url::parse(&example).map_err(|e| ConfigError::InvalidUrl {
                field: "end_session_url",
                reason: format!("{e} (an absolute http or https URL is required)"),
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError::InvalidUrl {
                    field: "end_session_url",
                    reason: "an absolute http or https URL with a host is required".into(),
                });
            }
            // The ID token travels in it: plain http only on loopback, as provider endpoints.
            if url.scheme() == "http" && !is_loopback(&url) && !allow_http {
                return Err(ConfigError::InvalidUrl {
                    field: "end_session_url",
                    reason: "plain http on a host that is not loopback; use https (or \
                             ConfigBuilder::allow_http_provider for a private development \
                             network)"
                        .into(),
                });
            }
        }
        if let Some(TenantPolicy::Only(ids)) = &self.tenants {
            if ids.is_empty() {
                return Err(ConfigError::Invalid {
                    field: "tenants",
                    reason: "no tenant allowed; name at least one (or use any_tenant)".into(),
                });
            }
            if let Some(bad) = ids.iter().find(|id| !is_tenant_id(id)) {
                return Err(ConfigError::Invalid {
                    field: "tenants",
                    reason: format!(
                        "`{bad}` is not a tenant id (ASCII letters, digits, `-`, `.`, `_`)"
                    ),
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

/// The logout location for `template` (see [`fill_end_session_url`]), parsed and serialized
/// (percent-encoded, ASCII only, so it is always a valid `Location` header).
pub(crate) fn end_session_location(
    template: &str,
    client_id: &str,
    post_logout_redirect_uri: &str,
    id_token_hint: &str,
) -> Result<String, String> {
    let filled =
        fill_end_session_url(template, client_id, post_logout_redirect_uri, id_token_hint)?;
    url::Url::parse(&filled)
        .map(String::from)
        .map_err(|e| e.to_string())
}

/// The placeholders of [`ConfigBuilder::end_session_url`].
const END_SESSION_PLACEHOLDERS: [&str; 3] =
    ["client_id", "post_logout_redirect_uri", "id_token_hint"];

/// The logout URL of `template` with its placeholders replaced by the URL-encoded values
/// (`id_token_hint` empty when the session kept no ID token); an error names a placeholder
/// that is unknown or not closed.
pub(crate) fn fill_end_session_url(
    template: &str,
    client_id: &str,
    post_logout_redirect_uri: &str,
    id_token_hint: &str,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        if rest.as_bytes()[open] == b'}' {
            return Err("a `}` without its `{`".into());
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "a `{` without its `}`".to_owned())?;
        let value = match &after[..close] {
            "client_id" => client_id,
            "post_logout_redirect_uri" => post_logout_redirect_uri,
            "id_token_hint" => id_token_hint,
            other => {
                return Err(format!(
                    "unknown placeholder `{{{other}}}` (known: {})",
                    END_SESSION_PLACEHOLDERS
                        .map(|p| format!("{{{p}}}"))
                        .join(", ")
                ))
            }
        };
        out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
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

    /// Where `{prefix}/logout` sends the browser to end the session at the provider, for
    /// providers without a standard `end_session_endpoint` (AWS Cognito, Auth0 tenants
    /// without RP-initiated logout). The placeholders `{client_id}`,
    /// `{post_logout_redirect_uri}` and `{id_token_hint}` are replaced by URL-encoded values
    /// (`{id_token_hint}` by nothing when the session kept no ID token; using it keeps the ID
    /// token in the session by default). Checked by [`build`](ConfigBuilder::build): an
    /// unknown placeholder or a template that does not make an http(s) URL is an error, and
    /// so is plain http on a host that is not loopback (the ID token travels in it) unless
    /// [`allow_http_provider`](ConfigBuilder::allow_http_provider) is set. The browser is sent
    /// to the URL as parsed and serialized (non-ASCII characters percent-encoded).
    /// Default: discovery's `end_session_endpoint`, with the standard parameters; when set,
    /// the template is used even if the provider has one.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder(
    ///         "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf",
    ///         "my-client",
    ///     )
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .end_session_url(
    ///         "https://my-app.auth.eu-west-1.amazoncognito.com/logout\
    ///          ?client_id={client_id}&logout_uri={post_logout_redirect_uri}",
    ///     )
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn end_session_url(mut self, template: impl Into<String>) -> Self {
        self.compat.end_session_url = Some(template.into());
        self
    }

    /// The tenants accepted from a multi-tenant provider, such as Microsoft Entra ID's
    /// `https://login.microsoftonline.com/common/v2.0` (or `organizations`), whose discovery
    /// `issuer` is the template `https://login.microsoftonline.com/{tenantid}/v2.0`.
    ///
    /// With tenants set, discovery accepts an `issuer` containing `{tenantid}` when the
    /// configured issuer is that template with one path segment in its place (`common`).
    /// Every ID token (and bearer token) must then carry a `tid` claim naming one of these
    /// tenants, and its `iss` must be the template filled with that same `tid`. A session
    /// records the concrete issuer of its user's tenant. Without tenants (the default) the
    /// discovery `issuer` must equal the configured one, and a template is refused.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://login.microsoftonline.com/organizations/v2.0", "app-id")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .tenants(["9188040d-6c67-4c5b-b112-36a304b66dad"])
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    ///
    /// An empty list, or an id with other characters than ASCII letters, digits, `-`, `.`
    /// and `_`, is a [`ConfigError`].
    pub fn tenants<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.compat.tenants = Some(TenantPolicy::Only(
            ids.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Accepts every tenant of a multi-tenant provider (see [`tenants`](Self::tenants)): any
    /// organisation's users can log in, so the application must decide itself whom it serves
    /// (e.g. by the `tid` claim). Each token's `iss` must still carry its own `tid`.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::builder("https://login.microsoftonline.com/common/v2.0", "app-id")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .any_tenant()
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn any_tenant(mut self) -> Self {
        self.compat.tenants = Some(TenantPolicy::Any);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, SessionKey};

    #[test]
    fn end_session_url_placeholders_are_encoded_and_checked() {
        assert_eq!(
            fill_end_session_url(
                "https://x.example/logout?client_id={client_id}&logout_uri={post_logout_redirect_uri}&h={id_token_hint}",
                "a b&c",
                "https://app.example/?x=1",
                "",
            )
            .unwrap(),
            "https://x.example/logout?client_id=a+b%26c&logout_uri=https%3A%2F%2Fapp.example%2F%3Fx%3D1&h="
        );
        for bad in [
            "https://x.example/?a={nope}",
            "https://x.example/?a={client_id",
            "https://x.example/?a=client_id}",
            "/logout?client_id={client_id}",
            "ftp://x.example/logout",
            "{post_logout_redirect_uri}",
        ] {
            let err = base().end_session_url(bad).build().unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        field: "end_session_url",
                        ..
                    } | ConfigError::InvalidUrl {
                        field: "end_session_url",
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
        }
        base()
            .end_session_url("https://x.example/v2/logout?returnTo={post_logout_redirect_uri}")
            .build()
            .unwrap();
    }

    #[test]
    fn end_session_url_is_https_except_loopback_and_always_ascii() {
        let err = base()
            .end_session_url("http://x.example/logout?hint={id_token_hint}")
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::InvalidUrl {
                    field: "end_session_url",
                    ..
                }
            ),
            "{err:?}"
        );
        base()
            .end_session_url("http://localhost:8080/logout?hint={id_token_hint}")
            .build()
            .unwrap();
        // A name below `localhost` is not this machine for every resolver: refused.
        base()
            .end_session_url("http://id.localhost/logout?hint={id_token_hint}")
            .build()
            .unwrap_err();
        base()
            .end_session_url("http://x.example/logout?hint={id_token_hint}")
            .allow_http_provider(true)
            .build()
            .unwrap();
        let template = "https://x.example/abmeldung/\u{e4}?n=\u{fc}&hint={id_token_hint}";
        base().end_session_url(template).build().unwrap();
        let location = end_session_location(template, "c", "https://app.example/", "a.b").unwrap();
        assert!(location.is_ascii(), "{location}");
        assert_eq!(
            location,
            "https://x.example/abmeldung/%C3%A4?n=%C3%BC&hint=a.b"
        );
    }

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
