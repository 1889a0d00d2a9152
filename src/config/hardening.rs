//! Settings that decide which tokens and provider endpoints are trusted, and how much work an
//! unauthenticated caller can cause at the provider: access-token markers, trusted extra
//! ID-token audiences, the client assertion's audience, plain-http providers and the
//! introspection limits.

use crate::client_auth::AssertionAudience;
use crate::error::ConfigError;

use super::ConfigBuilder;

/// Whether `url` is on this machine, where plain http is allowed without
/// `allow_http_provider`: `localhost` itself or a loopback address. Names below `localhost`
/// (`id.localhost`) are not: not every resolver keeps them on the machine.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The settings of this module, with their defaults (see each [`ConfigBuilder`] method).
#[derive(Debug, Clone)]
pub(crate) struct Hardening {
    pub(crate) accept_unmarked_access_tokens: bool,
    pub(crate) accept_introspected_tokens_of_any_client: bool,
    pub(crate) trusted_audiences: Vec<String>,
    pub(crate) assertion_audience: AssertionAudience,
    pub(crate) allow_http_provider: bool,
    pub(crate) introspection_max_in_flight: usize,
    pub(crate) introspection_per_second: u32,
}

impl Default for Hardening {
    fn default() -> Self {
        Self {
            accept_unmarked_access_tokens: false,
            accept_introspected_tokens_of_any_client: false,
            trusted_audiences: Vec::new(),
            assertion_audience: AssertionAudience::Issuer,
            allow_http_provider: false,
            introspection_max_in_flight: 16,
            introspection_per_second: 100,
        }
    }
}

impl Hardening {
    /// The checks of [`ConfigBuilder::build`] for these settings.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.introspection_max_in_flight == 0 {
            return Err(ConfigError::Invalid {
                field: "introspection_max_in_flight",
                reason: "must be at least 1".into(),
            });
        }
        if self.introspection_per_second == 0 {
            return Err(ConfigError::Invalid {
                field: "introspection_per_second",
                reason: "must be at least 1".into(),
            });
        }
        if self.trusted_audiences.iter().any(String::is_empty) {
            return Err(ConfigError::Invalid {
                field: "trusted_audience",
                reason: "empty".into(),
            });
        }
        Ok(())
    }
}

impl ConfigBuilder {
    /// Accept bearer JWTs that carry no access-token marker. Default off.
    ///
    /// An ID token is signed by the same keys as an access token, and its `aud` is the client
    /// id (the default [`api_audience`](ConfigBuilder::api_audience)); one issued on refresh
    /// has no `nonce` or `at_hash`, and ID tokens travel in logout URLs (`id_token_hint`). So
    /// by default a bearer JWT is accepted only when it shows that it is an access token:
    /// header `typ: at+jwt` (RFC 9068, Auth0's RFC 9068 profile, oidc-provider), or one of the
    /// claims `scope` (Auth0, Keycloak, RFC 9068), `scp` (Entra, Okta), `client_id`
    /// (RFC 9068), `cid` (Okta), `azpacr`/`appidacr`/`idtyp` (Entra), Keycloak's claim
    /// `typ: Bearer`, or Cognito's `token_use: access`. Tokens that say they are something
    /// else are always refused, whatever this setting: Keycloak's `typ` claim `ID`,
    /// `Refresh`, `Offline` or `Logout`, Cognito's `token_use: id`, the ID-token claims
    /// `nonce`, `at_hash`, `c_hash`, and logout tokens.
    ///
    /// Turn this on only for a provider whose access tokens carry none of the markers (e.g.
    /// Dex): its ID tokens for this client are then accepted as bearer tokens too.
    ///
    /// # Example
    ///
    /// ```
    /// # use tower_oidc::{Config, SessionKey};
    /// let config = Config::builder("https://dex.example.com", "my-client")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .accept_unmarked_access_tokens(true)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn accept_unmarked_access_tokens(mut self, accept: bool) -> Self {
        self.hardening.accept_unmarked_access_tokens = accept;
        self
    }

    /// Accept opaque bearer tokens whose introspection answer has no `aud` and whose
    /// `client_id` is not this client. Default off.
    ///
    /// The introspection endpoint says whether a token is active, not that it is meant for
    /// this API: every client of the provider may have active tokens. So an active answer is
    /// accepted only when its `aud` names one of the
    /// [`api_audience`](ConfigBuilder::api_audience)s or, when it has no `aud`, its
    /// `client_id` (RFC 7662 §2.2) is this client. Turn this on only when tokens issued to
    /// other clients of the provider, without audience, are meant for this API. An `aud`
    /// that names other audiences only is refused whatever this setting, and so are answers
    /// that name another kind of token (`token_type` other than `access_token`/`Bearer`,
    /// Keycloak's `typ` `ID`/`Refresh`/`Offline`/`Logout`, Cognito's `token_use: id`,
    /// `nonce`, `at_hash`, `c_hash`, logout `events`).
    ///
    /// # Example
    ///
    /// ```
    /// # use tower_oidc::{Config, SessionKey};
    /// let config = Config::builder("https://login.example.com", "my-api")
    ///     .redirect_url("https://api.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .client_secret("secret")
    ///     .accept_introspected_tokens_of_any_client(true)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn accept_introspected_tokens_of_any_client(mut self, accept: bool) -> Self {
        self.hardening.accept_introspected_tokens_of_any_client = accept;
        self
    }

    /// An audience besides the client id that ID tokens may list in `aud`; repeat for
    /// several. Default none: an ID token whose `aud` names any audience other than this
    /// client is refused (OpenID Connect Core §3.1.3.7, step 3), so a token minted for
    /// several parties is not taken as this client's login.
    ///
    /// # Example
    ///
    /// ```
    /// # use tower_oidc::{Config, SessionKey};
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .trusted_audience("https://api.example.com")
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn trusted_audience(mut self, audience: impl Into<String>) -> Self {
        self.hardening.trusted_audiences.push(audience.into());
        self
    }

    /// The `aud` of `private_key_jwt` client assertions, at the token endpoint and at
    /// introspection alike. Default [`AssertionAudience::Issuer`], the provider's issuer
    /// identifier (as draft-ietf-oauth-rfc7523bis requires, so an assertion cannot be
    /// replayed at another endpoint); [`AssertionAudience::TokenEndpoint`] for providers that
    /// accept only their token endpoint URL.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::{AssertionAudience, ClientKey, Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .client_key(ClientKey::from_file("client-key.pem")?)
    ///     .client_assertion_audience(AssertionAudience::TokenEndpoint)
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn client_assertion_audience(mut self, audience: AssertionAudience) -> Self {
        self.hardening.assertion_audience = audience;
        self
    }

    /// Accept a provider (issuer and every endpoint its discovery document names) on plain
    /// `http` on a host other than a loopback one. Default off: discovery refuses such a
    /// provider with a [`ConfigError`], because anyone on the network path could then read
    /// codes and tokens or swap the signing keys. `localhost` and loopback addresses are
    /// always accepted. Turn on only for a private development network (e.g. a provider
    /// container reached as `http://keycloak:8080`).
    ///
    /// # Example
    ///
    /// ```
    /// # use tower_oidc::{Config, SessionKey};
    /// let config = Config::builder("http://keycloak:8080/realms/dev", "my-client")
    ///     .redirect_url("http://127.0.0.1:3000/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .allow_http_provider(true)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn allow_http_provider(mut self, allow: bool) -> Self {
        self.hardening.allow_http_provider = allow;
        self
    }

    /// Most introspection calls (for opaque bearer tokens) in flight at once, for this
    /// provider in this process. Beyond it, a request with an opaque token not seen before is
    /// answered `503` with `Retry-After` (fail closed) instead of queueing more calls at the
    /// provider. Concurrent requests with the same token share one call. Default 16.
    ///
    /// # Example
    ///
    /// ```
    /// # use tower_oidc::{Config, SessionKey};
    /// let config = Config::builder("https://id.example.com", "my-api")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .introspection_max_in_flight(32)
    ///     .introspection_per_second(500)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn introspection_max_in_flight(mut self, calls: usize) -> Self {
        self.hardening.introspection_max_in_flight = calls;
        self
    }

    /// Most introspection calls started per second (by the layer's clock), for this provider
    /// in this process; beyond it, `503` with `Retry-After`. Tokens already validated (cached)
    /// keep working. Default 100. See
    /// [`introspection_max_in_flight`](ConfigBuilder::introspection_max_in_flight).
    pub fn introspection_per_second(mut self, calls: u32) -> Self {
        self.hardening.introspection_per_second = calls;
        self
    }
}
