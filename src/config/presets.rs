//! Presets for the providers most applications must use: the issuer URL built from what the
//! provider's console shows, and the settings each provider needs. Each returns a
//! [`ConfigBuilder`], to be completed like any other (secret, redirect URL, session key).

use super::{Config, ConfigBuilder};

/// Entra's tenant of personal Microsoft accounts, whose issuer names this id (not
/// `consumers`).
const ENTRA_CONSUMERS: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// `https://` and `text` without a scheme or trailing slashes.
fn https_host(text: &str) -> String {
    let bare = text
        .trim()
        .trim_start_matches("https://")
        .trim_end_matches('/');
    format!("https://{bare}")
}

impl Config {
    /// Microsoft Entra ID (Azure AD), v2.0 endpoints. `tenant` is the directory (tenant) id
    /// or a verified domain for a single-tenant app; `organizations` or `common` for a
    /// multi-tenant app, which must then say whose users it accepts with
    /// [`tenants`](ConfigBuilder::tenants) or [`any_tenant`](ConfigBuilder::any_tenant)
    /// (discovery fails otherwise); `consumers` for personal Microsoft accounts only.
    ///
    /// Bearer tokens with Entra's v1 issuer `https://sts.windows.net/{tenant}/` are accepted
    /// too (the API's app registration decides which version it receives).
    ///
    /// On the provider's side (Azure portal, *Microsoft Entra ID → App registrations → New
    /// registration*): choose who may sign in (single tenant, any organisation, personal
    /// accounts), add a *Web* redirect URI `https://app.example.com/auth/callback`; under
    /// *Certificates & secrets* create a client secret (or upload a certificate for
    /// `private_key_jwt`, see [`ClientKey::with_certificate`](crate::ClientKey::with_certificate));
    /// under *Token configuration* add optional claims (`email`), under *App roles* the roles
    /// that [`Identity::roles`](crate::Identity::roles) reads from `roles`. The *Application
    /// (client) ID* is `client_id`. Userinfo lives on Microsoft Graph and answers only for
    /// Graph tokens: its failure does not fail a login.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::entra("organizations", "00000000-1111-2222-3333-444444444444")
    ///     .client_secret("from the portal")
    ///     .tenants(["aaaaaaaa-0000-4000-8000-000000000001"])
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// assert_eq!(config.issuer(), "https://login.microsoftonline.com/organizations/v2.0");
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn entra(tenant: impl AsRef<str>, client_id: impl Into<String>) -> ConfigBuilder {
        let tenant = match tenant.as_ref().trim() {
            "consumers" => ENTRA_CONSUMERS,
            other => other,
        };
        let multi = matches!(tenant, "common" | "organizations");
        let v1 = if multi {
            "https://sts.windows.net/{tenantid}/".to_owned()
        } else {
            format!("https://sts.windows.net/{tenant}/")
        };
        Config::builder(
            format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            client_id,
        )
        .bearer_issuer(v1)
    }

    /// Google. Refresh tokens are asked for the Google way (`access_type=offline`,
    /// `prompt=consent`) when the scopes include `offline_access`; a session without one
    /// outlives the one-hour access token.
    ///
    /// On the provider's side (Google Cloud console, *APIs & Services → OAuth consent screen*,
    /// then *Credentials → Create credentials → OAuth client ID*, type *Web application*): add
    /// the authorized redirect URI `https://app.example.com/auth/callback`; the page shows the
    /// client id and secret. Google has no end-session endpoint: logout ends the local
    /// session only, and no roles or groups are in its tokens.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::google("1234-abc.apps.googleusercontent.com")
    ///     .client_secret("from the console")
    ///     .scopes(["openid", "email", "profile", "offline_access"])
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// assert_eq!(config.issuer(), "https://accounts.google.com");
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn google(client_id: impl Into<String>) -> ConfigBuilder {
        Config::builder("https://accounts.google.com", client_id)
    }

    /// AWS Cognito user pools. `region` and `pool` (the user pool id, e.g.
    /// `eu-west-1_AbCdEf`) make the issuer; `domain` is the pool's hosted UI domain
    /// (`my-app.auth.eu-west-1.amazoncognito.com` or a custom domain), where logout is
    /// (`/logout?client_id=…&logout_uri=…`: Cognito has no standard end-session endpoint).
    /// Bearer access tokens, which carry `client_id` and no `aud`, are accepted by their
    /// `client_id` ([`client_id_as_audience`](ConfigBuilder::client_id_as_audience)); groups
    /// come from `cognito:groups`.
    ///
    /// On the provider's side (AWS console, *Cognito → User pools → your pool*): under *App
    /// integration* create a domain and an app client (confidential: *Generate a client
    /// secret*), with *Allowed callback URLs* `https://app.example.com/auth/callback`,
    /// *Allowed sign-out URLs* `https://app.example.com/`, the *Authorization code grant*
    /// and the scopes `openid email profile`.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::cognito(
    ///         "eu-west-1",
    ///         "eu-west-1_AbCdEf",
    ///         "my-app.auth.eu-west-1.amazoncognito.com",
    ///         "4l1c3ex4mple",
    ///     )
    ///     .client_secret("from the console")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// assert_eq!(config.issuer(), "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf");
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn cognito(
        region: impl AsRef<str>,
        pool: impl AsRef<str>,
        domain: impl AsRef<str>,
        client_id: impl Into<String>,
    ) -> ConfigBuilder {
        let issuer = format!(
            "https://cognito-idp.{}.amazonaws.com/{}",
            region.as_ref().trim(),
            pool.as_ref().trim()
        );
        let logout = format!(
            "{}/logout?client_id={{client_id}}&logout_uri={{post_logout_redirect_uri}}",
            https_host(domain.as_ref())
        );
        Config::builder(issuer, client_id)
            .end_session_url(logout)
            .client_id_as_audience(true)
    }

    /// Keycloak. `base` is the server's URL (with `/auth` for versions before 17), `realm`
    /// the realm's name. Roles come from the access token's `realm_access.roles` and
    /// `resource_access.<client_id>.roles`.
    ///
    /// On the provider's side (admin console, *your realm → Clients → Create client*, type
    /// *OpenID Connect*): turn on *Client authentication* (the secret is then under
    /// *Credentials*), keep *Standard flow*, set *Valid redirect URIs*
    /// `https://app.example.com/auth/callback` and *Valid post logout redirect URIs*
    /// `https://app.example.com/`. Access tokens default to `aud: account`: for bearer
    /// tokens, add an *Audience* mapper naming this client (or accept `account` with
    /// [`api_audience`](ConfigBuilder::api_audience) and
    /// [`allowed_client`](ConfigBuilder::allowed_client)).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::keycloak("https://sso.example.com", "main", "web")
    ///     .client_secret("from the console")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// assert_eq!(config.issuer(), "https://sso.example.com/realms/main");
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn keycloak(
        base: impl AsRef<str>,
        realm: impl AsRef<str>,
        client_id: impl Into<String>,
    ) -> ConfigBuilder {
        let issuer = format!(
            "{}/realms/{}",
            base.as_ref().trim().trim_end_matches('/'),
            realm.as_ref().trim()
        );
        Config::builder(issuer, client_id)
    }

    /// Auth0. `domain` is the tenant's domain (`my-tenant.eu.auth0.com`) or its custom
    /// domain, whichever the app logs in at (a custom domain changes the issuer). Logout
    /// goes to `/v2/logout?client_id=…&returnTo=…`, which every tenant has (RP-initiated
    /// logout is a per-tenant switch). Access tokens for an API need the `audience`
    /// parameter: add `.auth_param("audience", "https://api.example.com")` and the same
    /// [`api_audience`](ConfigBuilder::api_audience); roles come from a namespaced claim
    /// that an Action adds ([`roles_claim`](ConfigBuilder::roles_claim)).
    ///
    /// On the provider's side (Auth0 dashboard, *Applications → Create Application*, type
    /// *Regular Web Application*): under *Settings* set *Allowed Callback URLs*
    /// `https://app.example.com/auth/callback` and *Allowed Logout URLs*
    /// `https://app.example.com/`; the page shows the domain, client id and secret.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, SessionKey};
    ///
    /// let config = Config::auth0("my-tenant.eu.auth0.com", "AbCdEf123")
    ///     .client_secret("from the dashboard")
    ///     .auth_param("audience", "https://api.example.com")
    ///     .api_audience("https://api.example.com")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// assert_eq!(config.issuer(), "https://my-tenant.eu.auth0.com/");
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn auth0(domain: impl AsRef<str>, client_id: impl Into<String>) -> ConfigBuilder {
        let origin = https_host(domain.as_ref());
        Config::builder(format!("{origin}/"), client_id).end_session_url(format!(
            "{origin}/v2/logout?client_id={{client_id}}&returnTo={{post_logout_redirect_uri}}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::issuer::{IssuerRule, TenantPolicy};
    use crate::{Config, ConfigBuilder, ConfigError, SessionKey};

    fn build(b: ConfigBuilder) -> Result<Config, ConfigError> {
        b.redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
            .build()
    }

    #[test]
    fn entra_single_and_multi_tenant() {
        let c = build(Config::entra("contoso.onmicrosoft.com", "app")).unwrap();
        assert_eq!(
            c.issuer,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
        );
        assert_eq!(
            c.bearer_compat.issuer_rules,
            [IssuerRule::Exact(
                "https://sts.windows.net/contoso.onmicrosoft.com/".into()
            )]
        );
        // Multi-tenant: tenants must be said.
        assert!(build(Config::entra("organizations", "app")).is_err());
        let c = build(Config::entra("common", "app").tenants(["t1"])).unwrap();
        assert_eq!(c.issuer, "https://login.microsoftonline.com/common/v2.0");
        assert_eq!(
            c.compat.tenants,
            Some(TenantPolicy::Only(vec!["t1".into()]))
        );
        assert!(c.bearer_compat.issuer_rules[0].is_template());
        let c = build(Config::entra("consumers", "app")).unwrap();
        assert_eq!(
            c.issuer,
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
        );
    }

    #[test]
    fn google() {
        let c = build(Config::google("id.apps.googleusercontent.com")).unwrap();
        assert_eq!(c.issuer, "https://accounts.google.com");
        assert_eq!(c.client_id, "id.apps.googleusercontent.com");
        assert!(c.compat.end_session_url.is_none());
    }

    #[test]
    fn cognito() {
        let c = build(Config::cognito(
            "eu-west-1",
            "eu-west-1_AbCdEf",
            "https://my-app.auth.eu-west-1.amazoncognito.com/",
            "client",
        ))
        .unwrap();
        assert_eq!(
            c.issuer,
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf"
        );
        assert_eq!(
            c.compat.end_session_url.as_deref(),
            Some("https://my-app.auth.eu-west-1.amazoncognito.com/logout?client_id={client_id}&logout_uri={post_logout_redirect_uri}")
        );
        assert!(c.bearer_compat.client_id_as_audience);
    }

    #[test]
    fn keycloak() {
        let c = build(Config::keycloak(
            "https://sso.example.com/auth/",
            "main",
            "web",
        ))
        .unwrap();
        assert_eq!(c.issuer, "https://sso.example.com/auth/realms/main");
        assert_eq!(c.compat.roles.client_id, "web");
    }

    #[test]
    fn auth0() {
        let c = build(Config::auth0("my-tenant.eu.auth0.com", "abc")).unwrap();
        assert_eq!(c.issuer, "https://my-tenant.eu.auth0.com/");
        assert_eq!(
            c.compat.end_session_url.as_deref(),
            Some("https://my-tenant.eu.auth0.com/v2/logout?client_id={client_id}&returnTo={post_logout_redirect_uri}")
        );
    }
}
