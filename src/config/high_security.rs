//! Settings of the high-security profile: pushed authorization requests (RFC 9126) and
//! DPoP-bound bearer tokens at the resource server (RFC 9449).

use std::time::Duration;

use super::ConfigBuilder;

/// The settings of this module, with their defaults (see each [`ConfigBuilder`] method).
#[derive(Debug, Clone)]
pub(crate) struct HighSecurity {
    /// `Some(true)`: always push; `Some(false)`: never (a provider that requires it is then
    /// refused at discovery); `None`: push when the provider requires it.
    pub(crate) pushed_authorization_requests: Option<bool>,
    /// Oldest DPoP proof accepted (by its `iat`).
    pub(crate) dpop_proof_max_age: Duration,
    /// Whether DPoP proofs must carry a server nonce.
    pub(crate) dpop_nonce: bool,
    /// Most DPoP proofs remembered for replay detection.
    pub(crate) dpop_replay_capacity: usize,
    /// Whether sessions get DPoP-bound tokens (a key pair each).
    pub(crate) dpop_sessions: bool,
    /// `Some(true)`: sign every authorization request (JAR); `Some(false)`: never;
    /// `None`: when the provider requires it.
    pub(crate) signed_request_objects: Option<bool>,
    /// The security profile in force, if any.
    pub(crate) profile: Option<super::Profile>,
}

impl Default for HighSecurity {
    fn default() -> Self {
        Self {
            pushed_authorization_requests: None,
            dpop_proof_max_age: Duration::from_secs(60),
            dpop_nonce: false,
            dpop_replay_capacity: 100_000,
            dpop_sessions: false,
            profile: None,
            signed_request_objects: None,
        }
    }
}

impl HighSecurity {
    /// The checks of [`ConfigBuilder::build`] for these settings.
    pub(super) fn check(&self) -> Result<(), crate::ConfigError> {
        if self.dpop_proof_max_age.is_zero() || self.dpop_proof_max_age > Duration::from_secs(3600)
        {
            return Err(crate::ConfigError::Invalid {
                field: "dpop_proof_max_age",
                reason: "must be between 1 second and 1 hour".into(),
            });
        }
        if self.dpop_replay_capacity == 0 {
            return Err(crate::ConfigError::Invalid {
                field: "dpop_replay_capacity",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
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

    /// How old a DPoP proof (RFC 9449) may be, by its `iat` and the layer's clock; default
    /// 60 seconds. A proof dated in the future is accepted up to the
    /// [`clock_skew`](ConfigBuilder::clock_skew). Each proof is accepted once: its `jti` is
    /// remembered for this long (see
    /// [`dpop_replay_capacity`](ConfigBuilder::dpop_replay_capacity)).
    ///
    /// DPoP-bound access tokens (`cnf.jkt` in the JWT or the introspection answer) are
    /// accepted only as `Authorization: DPoP <token>` with a `DPoP` proof header signed by
    /// the bound key, for this request's method and URL (the public URL: the scheme, host and
    /// port of the [`redirect_url`](ConfigBuilder::redirect_url), so it works behind a proxy),
    /// and carrying the hash of the token (`ath`). Sent as `Bearer`, such a token is refused.
    ///
    /// Proofs seen are remembered per process: with several replicas, a captured proof could
    /// be replayed once on each other replica within this age. Keep it short, or require
    /// [`dpop_nonce`](ConfigBuilder::dpop_nonce) with sticky routing.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use tower_oidc::{Config, SessionKey};
    /// let config = Config::builder("https://id.example.com", "my-api")
    ///     .redirect_url("https://api.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .dpop_proof_max_age(Duration::from_secs(30))
    ///     .dpop_nonce(true)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn dpop_proof_max_age(mut self, max_age: Duration) -> Self {
        self.high_security.dpop_proof_max_age = max_age;
        self
    }

    /// Require a server nonce in DPoP proofs (RFC 9449 §8); default off. A proof without a
    /// fresh nonce is answered `401` with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and
    /// a `DPoP-Nonce` header; the client retries with it. Nonces are stateless (an HMAC of the
    /// time slot with a key of this process) and stay fresh for one to two minutes by the
    /// layer's clock. Each replica has its own key, so a nonce from one replica is not fresh
    /// on another: behind a load balancer, route a client to one replica (sticky sessions),
    /// or its retries may keep being asked for a new nonce.
    pub fn dpop_nonce(mut self, required: bool) -> Self {
        self.high_security.dpop_nonce = required;
        self
    }

    /// Most DPoP proofs remembered for replay detection, for each provider; default 100 000.
    /// Only accepted proofs are remembered, each for the
    /// [`dpop_proof_max_age`](ConfigBuilder::dpop_proof_max_age). When it is full of live
    /// proofs, new proofs are refused with `503` (fail closed) until some age out.
    pub fn dpop_replay_capacity(mut self, proofs: usize) -> Self {
        self.high_security.dpop_replay_capacity = proofs;
        self
    }

    /// DPoP-bound tokens for sessions (RFC 9449); default off. Each login gets its own ES256
    /// key pair; the token requests (code exchange and refresh) carry DPoP proofs made with
    /// it, and a provider's `DPoP-Nonce` is used (the request is sent once more with it). The
    /// private key is sealed into the session cookie with the tokens (about 140 bytes) and
    /// never logged. Handlers find the token with [`AccessToken::is_dpop_bound`]
    /// and make proofs for their calls to APIs with
    /// [`AccessToken::dpop_proof`](crate::AccessToken::dpop_proof).
    ///
    /// A provider that answers `token_type: Bearer` did not bind the token: the session then
    /// keeps no key and the token is used as a bearer token.
    ///
    /// [`AccessToken::is_dpop_bound`]: crate::AccessToken::is_dpop_bound
    ///
    /// # Example
    ///
    /// ```
    /// # use tower_oidc::{Config, SessionKey};
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .client_secret("s3cret")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .dpop(true)
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn dpop(mut self, bound_tokens: bool) -> Self {
        self.high_security.dpop_sessions = bound_tokens;
        self
    }

    /// Send the authorization request as a request object signed with the client's
    /// [`client_key`](ConfigBuilder::client_key) (JAR, RFC 9101): a JWT with header
    /// `typ: oauth-authz-req+jwt`, `iss` the client id, `aud` the issuer, a minute of lifetime
    /// and a fresh `jti`, holding every authorization parameter. With
    /// [PAR](ConfigBuilder::pushed_authorization_requests) it is pushed as `request`;
    /// otherwise the browser carries it (with `client_id`, `response_type` and `scope`, as
    /// OpenID Connect wants them in the URL too).
    ///
    /// Default: only when discovery says `require_signed_request_object`. `build` refuses
    /// `true` without a client key; `discover` refuses a provider that requires it when it is
    /// turned off or no key is set.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::{ClientKey, Config, SessionKey};
    ///
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .client_key(ClientKey::from_file("client-key.pem")?)
    ///     .signed_request_objects(true)
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn signed_request_objects(mut self, sign: bool) -> Self {
        self.high_security.signed_request_objects = Some(sign);
        self
    }
}
