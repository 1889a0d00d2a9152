//! The provider: discovery (with openidconnect), its metadata, the JWKS cache (refetched on
//! an unknown `kid`, rate-limited, single-flight) and the HTTP client for provider calls.
//!
//! The cache's age and the refetch rate limit follow the layer's clock ([`Config`]'s, which
//! tests can replace), not the monotonic clock.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::AdditionalProviderMetadata;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::client_auth::{AssertionAudience, ClientAuth, Credentials};
use crate::config::hardening::is_loopback;
use crate::config::Config;
use crate::error::{AuthError, AuthErrorKind, BoxError, ConfigError};
use crate::issuer::{IssuerRule, TENANT_PLACEHOLDER};
use crate::jwt::{Alg, JwkSet, JwtError, Unverified};
use crate::session::sessions::{unix_millis, Clock};

/// Response bodies from the provider larger than this are refused.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ExtraMetadata {
    #[serde(default)]
    end_session_endpoint: Option<Url>,
    #[serde(default)]
    introspection_endpoint: Option<Url>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: Option<bool>,
    #[serde(default)]
    pushed_authorization_request_endpoint: Option<Url>,
    #[serde(default)]
    require_pushed_authorization_requests: Option<bool>,
    #[serde(default)]
    require_signed_request_object: Option<bool>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

type DiscoveredMetadata = openidconnect::ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// What this crate uses of the provider's metadata.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    /// Discovery's `issuer`: exact, or a multi-tenant template (with `{tenantid}`).
    pub(crate) issuer: String,
    /// Which `iss` values tokens of this provider may carry.
    pub(crate) issuer_rule: IssuerRule,
    pub(crate) authorization_endpoint: Url,
    pub(crate) token_endpoint: Url,
    pub(crate) userinfo_endpoint: Option<Url>,
    pub(crate) jwks_uri: Url,
    pub(crate) end_session_endpoint: Option<Url>,
    pub(crate) introspection_endpoint: Option<Url>,
    pub(crate) id_token_algs: Vec<Alg>,
    pub(crate) client_auth: ClientAuth,
    pub(crate) iss_parameter_supported: bool,
    /// PKCE with `plain` (only when the provider lacks S256 and it is allowed).
    pub(crate) pkce_plain: bool,
    /// Discovery lists `scopes_supported` without `offline_access` (Google): refresh tokens
    /// are asked for with `access_type=offline` instead.
    pub(crate) offline_access_by_parameter: bool,
    /// The PAR endpoint (RFC 9126), when logins push their parameters there: configured, or
    /// required by the provider.
    pub(crate) par_endpoint: Option<Url>,
    /// Whether authorization requests are signed request objects (RFC 9101): configured, or
    /// required by the provider.
    pub(crate) signed_requests: bool,
}

fn names<T: Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .filter_map(|v| match serde_json::to_value(v) {
            Ok(serde_json::Value::String(s)) => Some(s),
            _ => None,
        })
        .collect()
}

impl Metadata {
    /// Parses a discovery document: its issuer must be the configured one, and its
    /// endpoints https (or loopback).
    fn from_document(config: &Config, discovery: &[u8]) -> Result<Self, ConfigError> {
        let discovered: DiscoveredMetadata =
            serde_json::from_slice(discovery).map_err(|e| ConfigError::Discovery {
                what: "discovery document",
                source: Box::new(e),
            })?;
        let found = discovered.issuer().as_str();
        let mismatch = || ConfigError::IssuerMismatch {
            expected: config.issuer.clone(),
            found: found.to_owned(),
        };
        let tenants = config.compat.tenants.as_ref();
        let issuer_rule = if found == config.issuer || found.contains(TENANT_PLACEHOLDER) {
            let rule = IssuerRule::new(found, tenants).map_err(|reason| ConfigError::Invalid {
                field: "tenants",
                reason,
            })?;
            // A template only for its own location (`.../common/...` for `.../{tenantid}/...`).
            if found != config.issuer && !rule.is_instance(&config.issuer) {
                return Err(mismatch());
            }
            rule
        } else {
            return Err(mismatch());
        };
        if tenants.is_some() && !issuer_rule.is_template() {
            return Err(ConfigError::Invalid {
                field: "tenants",
                reason: format!(
                    "tenants are set, but the provider's issuer `{found}` is not a multi-tenant \
                     template (with `{{tenantid}}`)"
                ),
            });
        }
        let mut metadata = Self::from_discovered(config, &discovered)?;
        metadata.issuer_rule = issuer_rule;
        metadata.check_transport(config)?;
        Ok(metadata)
    }

    /// Every endpoint the client talks to or sends the browser to.
    fn check_transport(&self, config: &Config) -> Result<(), ConfigError> {
        let issuer = Url::parse(&self.issuer).map_err(|e| ConfigError::InvalidUrl {
            field: "issuer",
            reason: e.to_string(),
        })?;
        check_transport(config, "issuer", &issuer)?;
        check_transport(
            config,
            "authorization_endpoint",
            &self.authorization_endpoint,
        )?;
        check_transport(config, "token_endpoint", &self.token_endpoint)?;
        check_transport(config, "jwks_uri", &self.jwks_uri)?;
        let optional = [
            ("userinfo_endpoint", &self.userinfo_endpoint),
            ("end_session_endpoint", &self.end_session_endpoint),
            ("introspection_endpoint", &self.introspection_endpoint),
            ("pushed_authorization_request_endpoint", &self.par_endpoint),
        ];
        for (name, url) in optional {
            if let Some(url) = url {
                check_transport(config, name, url)?;
            }
        }
        Ok(())
    }

    fn from_discovered(config: &Config, m: &DiscoveredMetadata) -> Result<Self, ConfigError> {
        let unsupported = |what: &str| ConfigError::UnsupportedProvider(what.to_owned());
        let token_endpoint = m
            .token_endpoint()
            .ok_or_else(|| unsupported("the provider has no token endpoint"))?
            .url()
            .clone();
        // OpenID Connect Discovery: RS256 must be supported; the list is required anyway.
        let advertised = names(m.id_token_signing_alg_values_supported());
        let id_token_algs: Vec<Alg> = advertised
            .iter()
            .filter_map(|a| Alg::from_name(a))
            .collect();
        if id_token_algs.is_empty() {
            return Err(ConfigError::UnsupportedProvider(format!(
                "none of the provider's ID token algorithms {advertised:?} is supported \
                 (asymmetric signatures only)"
            )));
        }
        let methods = m
            .token_endpoint_auth_methods_supported()
            .map(|v| names(v))
            // Discovery: the default when omitted is client_secret_basic.
            .unwrap_or_else(|| vec!["client_secret_basic".into()]);
        let client_auth = choose_client_auth(config, &methods)?;
        let extra = m.additional_metadata();
        // PKCE S256 unless the provider lacks it, offers `plain`, and `plain` is allowed.
        let pkce_plain = match &extra.code_challenge_methods_supported {
            Some(methods) if !methods.iter().any(|m| m == "S256") => {
                if config.allow_pkce_plain && methods.iter().any(|m| m == "plain") {
                    tracing::warn!("the provider lacks PKCE S256: using `plain`, as configured");
                    true
                } else {
                    return Err(unsupported(
                        "the provider does not support PKCE with S256 (code_challenge_methods_supported); \
                         `plain` must be allowed explicitly (ConfigBuilder::allow_pkce_plain)",
                    ));
                }
            }
            _ => false,
        };
        let par_endpoint = choose_par(config, extra)?;
        let signed_requests = match (
            config.high_security.signed_request_objects,
            extra.require_signed_request_object == Some(true),
        ) {
            (Some(false), true) => {
                return Err(unsupported(
                    "the provider requires signed request objects \
                     (require_signed_request_object), but they are turned off",
                ))
            }
            (None, true) if config.client_key.is_none() => {
                return Err(unsupported(
                    "the provider requires signed request objects \
                     (require_signed_request_object): set a client key",
                ))
            }
            (Some(sign), _) => sign,
            (None, required) => required,
        };
        let iss_parameter_supported = extra
            .authorization_response_iss_parameter_supported
            .unwrap_or(false);
        if config.high_security.profile.is_some() && !iss_parameter_supported {
            return Err(unsupported(
                "the FAPI 2.0 Security Profile requires the `iss` authorization response \
                 parameter (RFC 9207), which the provider does not advertise",
            ));
        }
        let offline_access_by_parameter = m
            .scopes_supported()
            .is_some_and(|scopes| !scopes.iter().any(|s| s.as_str() == "offline_access"));
        Ok(Self {
            signed_requests,
            par_endpoint,
            pkce_plain,
            offline_access_by_parameter,
            issuer: m.issuer().as_str().to_owned(),
            issuer_rule: IssuerRule::Exact(m.issuer().as_str().to_owned()),
            authorization_endpoint: m.authorization_endpoint().url().clone(),
            token_endpoint,
            userinfo_endpoint: m.userinfo_endpoint().map(|u| u.url().clone()),
            jwks_uri: m.jwks_uri().url().clone(),
            end_session_endpoint: extra.end_session_endpoint.clone(),
            introspection_endpoint: extra.introspection_endpoint.clone(),
            id_token_algs,
            client_auth,
            iss_parameter_supported,
        })
    }
}

/// The PAR endpoint when logins push their parameters: as configured, or when the provider
/// requires it (`require_pushed_authorization_requests`).
fn choose_par(config: &Config, extra: &ExtraMetadata) -> Result<Option<Url>, ConfigError> {
    let required = extra.require_pushed_authorization_requests == Some(true);
    let endpoint = extra.pushed_authorization_request_endpoint.clone();
    match (config.high_security.pushed_authorization_requests, endpoint) {
        (Some(false), _) if required => Err(ConfigError::UnsupportedProvider(
            "the provider requires pushed authorization requests \
             (require_pushed_authorization_requests), but they are turned off"
                .into(),
        )),
        (Some(false), _) => Ok(None),
        (Some(true), None) => Err(ConfigError::UnsupportedProvider(
            "pushed authorization requests are on, but the provider has no \
             pushed_authorization_request_endpoint"
                .into(),
        )),
        (None, None) if required => Err(ConfigError::UnsupportedProvider(
            "the provider requires pushed authorization requests but names no \
             pushed_authorization_request_endpoint"
                .into(),
        )),
        (Some(true), endpoint) => Ok(endpoint),
        (None, endpoint) => Ok(endpoint.filter(|_| required)),
    }
}

fn choose_client_auth(config: &Config, methods: &[String]) -> Result<ClientAuth, ConfigError> {
    let supports = |a: ClientAuth| methods.iter().any(|m| m == a.name());
    let chosen = match (config.client_auth, &config.client_secret) {
        (Some(auth), _) => auth,
        (None, _) if config.client_key.is_some() && supports(ClientAuth::PrivateKeyJwt) => {
            ClientAuth::PrivateKeyJwt
        }
        (None, None) => ClientAuth::None,
        (None, Some(_)) if supports(ClientAuth::ClientSecretBasic) => ClientAuth::ClientSecretBasic,
        (None, Some(_)) if supports(ClientAuth::ClientSecretPost) => ClientAuth::ClientSecretPost,
        (None, Some(_)) => ClientAuth::ClientSecretBasic,
    };
    if !supports(chosen) {
        return Err(ConfigError::UnsupportedProvider(format!(
            "client authentication `{}` is not among the provider's {methods:?}",
            chosen.name()
        )));
    }
    Ok(chosen)
}

/// The provider: metadata, keys and the HTTP client.
pub(crate) struct Provider {
    pub(crate) metadata: Metadata,
    pub(crate) http: reqwest::Client,
    /// The keys and when they were fetched (milliseconds since the epoch, by `clock`).
    jwks: RwLock<(Arc<JwkSet>, u64)>,
    /// When the JWKS was last refetched because of an unknown key (milliseconds since the
    /// epoch, by `clock`), and whether that worked (single-flight lock).
    refetch: tokio::sync::Mutex<Option<(u64, bool)>>,
    refetch_interval: Duration,
    max_age: Duration,
    /// The layer's clock.
    clock: Clock,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("metadata", &self.metadata)
            .field("http", &self.http)
            .field("jwks", &self.jwks)
            .field("refetch", &self.refetch)
            .field("refetch_interval", &self.refetch_interval)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

pub(crate) fn http_client(config: &Config) -> Result<reqwest::Client, ConfigError> {
    if let Some(client) = &config.deployment.http_client {
        return Ok(client.clone());
    }
    let mut builder = reqwest::Client::builder();
    for certificate in &config.deployment.root_certificates {
        builder = builder.add_root_certificate(certificate.clone());
    }
    builder
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.http_timeout)
        .connect_timeout(config.http_timeout)
        .user_agent(concat!("tower-oidc/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::Discovery {
            what: "HTTP client",
            source: Box::new(e),
        })
}

impl Provider {
    /// Discovery at `<issuer>/.well-known/openid-configuration`, then the JWKS. Both
    /// answers are size-capped, and the issuer and every endpoint must be https (or on a
    /// loopback host) unless the configuration allows plain http.
    pub(crate) async fn discover(config: &Config) -> Result<Self, ConfigError> {
        let http = http_client(config)?;
        let issuer = Url::parse(&config.issuer).map_err(|e| ConfigError::InvalidUrl {
            field: "issuer",
            reason: e.to_string(),
        })?;
        check_transport(config, "issuer", &issuer)?;
        let discovery_url = Url::parse(&format!(
            "{}/.well-known/openid-configuration",
            config.issuer.trim_end_matches('/')
        ))
        .map_err(|e| ConfigError::InvalidUrl {
            field: "issuer",
            reason: e.to_string(),
        })?;
        let discovery = fetch_document(&http, &discovery_url)
            .await
            .map_err(|source| ConfigError::Discovery {
                what: "discovery document",
                source,
            })?;
        let metadata = Metadata::from_document(config, &discovery)?;
        let jwks_json = fetch_document(&http, &metadata.jwks_uri)
            .await
            .map_err(|source| ConfigError::Discovery {
                what: "JWKS",
                source,
            })?;
        let jwks = JwkSet::parse(&jwks_json).map_err(|e| ConfigError::Discovery {
            what: "JWKS",
            source: Box::new(e),
        })?;
        Ok(Self::new(config, metadata, jwks, http))
    }

    /// From an already-known discovery document (and optionally JWKS; fetched on first use
    /// otherwise).
    pub(crate) fn from_documents(
        config: &Config,
        discovery: &[u8],
        jwks: Option<&[u8]>,
    ) -> Result<Self, ConfigError> {
        let metadata = Metadata::from_document(config, discovery)?;
        let jwks = match jwks {
            Some(json) => JwkSet::parse(json).map_err(|e| ConfigError::Discovery {
                what: "JWKS",
                source: Box::new(e),
            })?,
            None => JwkSet::default(),
        };
        Ok(Self::new(config, metadata, jwks, http_client(config)?))
    }

    fn new(config: &Config, metadata: Metadata, jwks: JwkSet, http: reqwest::Client) -> Self {
        Self {
            metadata,
            http,
            jwks: RwLock::new((Arc::new(jwks), unix_millis(&config.clock))),
            refetch: tokio::sync::Mutex::new(None),
            refetch_interval: config.jwks_refetch_interval,
            max_age: config.jwks_max_age,
            clock: config.clock.clone(),
        }
    }

    /// Now by the layer's clock, in milliseconds since the epoch (as [`Config::now_millis`]).
    fn now_millis(&self) -> u64 {
        unix_millis(&self.clock)
    }

    /// Time elapsed since `at_ms` by the layer's clock; zero if the clock went back since.
    fn elapsed_since(&self, at_ms: u64) -> Duration {
        Duration::from_millis(self.now_millis().saturating_sub(at_ms))
    }

    fn keys(&self) -> Arc<JwkSet> {
        self.keys_and_age().0
    }

    fn keys_and_age(&self) -> (Arc<JwkSet>, u64) {
        match self.jwks.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store_keys(&self, jwks: JwkSet) {
        let fresh = (Arc::new(jwks), self.now_millis());
        match self.jwks.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    /// Refetches keys older than the maximum age (rate-limited like unknown-key refetches);
    /// on failure the old keys stay in use.
    async fn refresh_if_stale(&self) {
        let (seen, fetched) = self.keys_and_age();
        if self.elapsed_since(fetched) < self.max_age {
            return;
        }
        if let Err(e) = self.refetch_jwks(&seen).await {
            tracing::warn!(reason = ?e, "the provider's keys are old and could not be refetched");
        }
    }

    /// Verifies a JWT's signature against the provider's keys, refetching the JWKS once (rate
    /// limited) when no key matches, so key rotation at the provider needs no restart.
    pub(crate) async fn verify_jwt(
        &self,
        token: &str,
        allowed: &[Alg],
    ) -> Result<(Alg, Vec<u8>), VerifyError> {
        let jwt = Unverified::parse(token).map_err(VerifyError::Jwt)?;
        self.verify_parsed(jwt, allowed).await
    }

    /// [`Provider::verify_jwt`] for a token already split into its parts.
    pub(crate) async fn verify_parsed(
        &self,
        jwt: Unverified<'_>,
        allowed: &[Alg],
    ) -> Result<(Alg, Vec<u8>), VerifyError> {
        jwt.alg(allowed).map_err(VerifyError::Jwt)?;
        self.refresh_if_stale().await;
        let keys = self.keys();
        match jwt.verify(&keys, allowed) {
            Ok(alg) => return Ok((alg, jwt.into_payload())),
            Err(JwtError::UnknownKey) => {}
            Err(e) => return Err(VerifyError::Jwt(e)),
        }
        if !self.refetch_jwks(&keys).await? {
            return Err(VerifyError::Jwt(JwtError::UnknownKey));
        }
        let alg = jwt
            .verify(&self.keys(), allowed)
            .map_err(VerifyError::Jwt)?;
        Ok((alg, jwt.into_payload()))
    }

    /// Refetches the JWKS unless another task just did or the rate limit forbids it. Returns
    /// whether the key set in use now differs from `seen`.
    async fn refetch_jwks(&self, seen: &Arc<JwkSet>) -> Result<bool, VerifyError> {
        let mut last = self.refetch.lock().await;
        if !Arc::ptr_eq(seen, &self.keys()) {
            // Someone refetched while we waited.
            return Ok(true);
        }
        if let Some((at, ok)) = *last {
            if self.elapsed_since(at) < self.refetch_interval {
                tracing::debug!("unknown signing key, but the JWKS was refetched recently");
                return if ok {
                    Ok(false)
                } else {
                    Err(VerifyError::Unavailable(
                        "the provider's JWKS could not be fetched recently".into(),
                    ))
                };
            }
        }
        *last = Some((self.now_millis(), false));
        let body = self
            .get(&self.metadata.jwks_uri, None)
            .await
            .map_err(VerifyError::Unavailable)?;
        let jwks = JwkSet::parse(&body).map_err(|e| VerifyError::Unavailable(Box::new(e)))?;
        *last = Some((self.now_millis(), true));
        tracing::info!(keys = jwks.len(), "refetched the provider's JWKS");
        self.store_keys(jwks);
        Ok(true)
    }

    /// GET a provider URL, optionally with a bearer token; the body of a 2xx answer.
    pub(crate) async fn get(&self, url: &Url, bearer: Option<&str>) -> Result<Vec<u8>, BoxError> {
        let mut req = self
            .http
            .get(url.clone())
            .header("accept", "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let res = req.send().await?;
        let status = res.status();
        let body = read_limited(res).await?;
        if !status.is_success() {
            return Err(format!("{url} answered HTTP {status}").into());
        }
        Ok(body)
    }
}

impl Provider {
    /// A form POST to a provider endpoint, authenticated as the client of `config` (token
    /// endpoint, introspection); returns the status and body. `now` dates a client assertion.
    pub(crate) async fn authenticated_post(
        &self,
        config: &Config,
        now: u64,
        url: &Url,
        params: &[(&str, &str)],
    ) -> Result<(http::StatusCode, Vec<u8>), AuthError> {
        self.authenticated_post_with(config, now, url, params, None)
            .await
            .map(|(status, _, body)| (status, body))
    }

    /// [`authenticated_post`](Self::authenticated_post) with a `DPoP` proof header when
    /// given; also returns the answer's headers (for `DPoP-Nonce`).
    pub(crate) async fn authenticated_post_with(
        &self,
        config: &Config,
        now: u64,
        url: &Url,
        params: &[(&str, &str)],
        dpop_proof: Option<&str>,
    ) -> Result<(http::StatusCode, http::HeaderMap, Vec<u8>), AuthError> {
        let client = Credentials {
            client_id: &config.client_id,
            secret: config.client_secret.as_ref().map(|s| s.0.as_str()),
            key: config.client_key.as_ref(),
        };
        // One audience for the token endpoint and introspection alike; a multi-tenant
        // template names no issuer, so the token endpoint stands for it.
        let audience = match config.hardening.assertion_audience {
            AssertionAudience::Issuer if !self.metadata.issuer_rule.is_template() => {
                self.metadata.issuer.as_str()
            }
            AssertionAudience::Issuer | AssertionAudience::TokenEndpoint => {
                self.metadata.token_endpoint.as_str()
            }
        };
        let auth = self
            .metadata
            .client_auth
            .authenticate(&client, audience, now)?;
        self.post_form(url, params, auth, dpop_proof).await
    }

    /// A form POST to a provider endpoint with HTTP Basic credentials of their own (an
    /// introspection client other than the web client); returns the status and body.
    pub(crate) async fn basic_post(
        &self,
        url: &Url,
        client_id: &str,
        secret: &str,
        params: &[(&str, &str)],
    ) -> Result<(http::StatusCode, Vec<u8>), AuthError> {
        let client = Credentials {
            client_id,
            secret: Some(secret),
            key: None,
        };
        let auth = ClientAuth::ClientSecretBasic.authenticate(&client, "", 0)?;
        self.post_form(url, params, auth, None)
            .await
            .map(|(status, _, body)| (status, body))
    }

    /// The form POST itself, with a `DPoP` proof header when given; returns the status, the
    /// answer's headers and its body.
    async fn post_form(
        &self,
        url: &Url,
        params: &[(&str, &str)],
        auth: crate::client_auth::Authentication,
        dpop_proof: Option<&str>,
    ) -> Result<(http::StatusCode, http::HeaderMap, Vec<u8>), AuthError> {
        let unavailable =
            |message: String| AuthError::new(AuthErrorKind::ProviderUnavailable, message);
        let mut req = self
            .http
            .post(url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        if let Some(authorization) = auth.authorization {
            req = req.header("authorization", authorization);
        }
        if let Some(proof) = dpop_proof {
            req = req.header("dpop", proof);
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().copied())
            .extend_pairs(auth.params.iter().map(|(n, v)| (*n, v.as_str())))
            .finish();
        let res = req
            .body(body)
            .send()
            .await
            .map_err(|e| unavailable(format!("{url} unreachable: {e}")))?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = read_limited(res)
            .await
            .map_err(|e| unavailable(format!("{url} answer unreadable: {e}")))?;
        Ok((status, headers, body))
    }
}

/// Refuses a provider URL that is not https, unless on a loopback host or allowed by the
/// configuration (plain http on a network lets anyone on the path read codes and tokens or
/// swap the keys).
fn check_transport(config: &Config, name: &str, url: &Url) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) || config.hardening.allow_http_provider => Ok(()),
        "http" => Err(ConfigError::UnsupportedProvider(format!(
            "the provider's {name} `{url}` is plain http on a host that is not loopback; \
             use https (or ConfigBuilder::allow_http_provider for a private development network)"
        ))),
        other => Err(ConfigError::UnsupportedProvider(format!(
            "the provider's {name} `{url}` has the scheme `{other}`, not https"
        ))),
    }
}

/// GETs a provider document (discovery, JWKS) at startup: a 2xx answer, size-capped.
async fn fetch_document(http: &reqwest::Client, url: &Url) -> Result<Vec<u8>, BoxError> {
    let res = http
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await?;
    let status = res.status();
    let body = read_limited(res).await?;
    if !status.is_success() {
        return Err(format!("{url} answered HTTP {status}").into());
    }
    Ok(body)
}

/// Reads a response body, refusing bodies over [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_limited(mut res: reqwest::Response) -> Result<Vec<u8>, BoxError> {
    if res
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        return Err("provider response too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err("provider response too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Failure to verify a JWT against the provider's keys.
#[derive(Debug)]
pub(crate) enum VerifyError {
    Jwt(JwtError),
    Unavailable(BoxError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionKey;

    #[test]
    fn only_localhost_itself_and_loopback_addresses_are_loopback() {
        let loopback = |u: &str| is_loopback(&Url::parse(u).unwrap());
        for u in [
            "http://localhost:8080/",
            "http://LOCALHOST/",
            "http://127.0.0.1/",
            "http://127.8.9.1/",
            "http://[::1]:9000/",
        ] {
            assert!(loopback(u), "{u}");
        }
        // Names below `localhost` resolve through whatever resolver the host has.
        for u in [
            "http://id.localhost/",
            "http://evil.localhost:8080/",
            "http://localhost./",
            "http://localhost.example.com/",
            "http://10.0.0.1/",
            "http://[::2]/",
        ] {
            assert!(!loopback(u), "{u}");
        }
    }

    fn config(secret: Option<&str>, auth: Option<ClientAuth>) -> Config {
        let mut b = Config::builder("https://id.example.com", "c")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate());
        if let Some(s) = secret {
            b = b.client_secret(s);
        }
        if let Some(a) = auth {
            b = b.client_auth(a);
        }
        b.build().unwrap()
    }

    #[test]
    fn client_auth_choice() {
        let both = vec![
            "client_secret_basic".to_owned(),
            "client_secret_post".to_owned(),
        ];
        let post_only = vec!["client_secret_post".to_owned()];
        let with_none = vec!["none".to_owned(), "client_secret_basic".to_owned()];
        assert_eq!(
            choose_client_auth(&config(Some("s"), None), &both).unwrap(),
            ClientAuth::ClientSecretBasic
        );
        assert_eq!(
            choose_client_auth(&config(Some("s"), None), &post_only).unwrap(),
            ClientAuth::ClientSecretPost
        );
        assert_eq!(
            choose_client_auth(
                &config(Some("s"), Some(ClientAuth::ClientSecretPost)),
                &both
            )
            .unwrap(),
            ClientAuth::ClientSecretPost
        );
        assert_eq!(
            choose_client_auth(&config(None, None), &with_none).unwrap(),
            ClientAuth::None
        );
        assert!(choose_client_auth(&config(None, None), &both).is_err());
    }

    fn discovery(extra: serde_json::Value) -> Vec<u8> {
        let mut doc = serde_json::json!({
            "issuer": "https://id.example.com",
            "authorization_endpoint": "https://id.example.com/authorize",
            "token_endpoint": "https://id.example.com/token",
            "jwks_uri": "https://id.example.com/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "HS256"],
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        doc.to_string().into_bytes()
    }

    #[test]
    fn metadata_from_document() {
        let c = config(Some("s"), None);
        let p = Provider::from_documents(
            &c,
            &discovery(serde_json::json!({
                "end_session_endpoint": "https://id.example.com/logout",
                "authorization_response_iss_parameter_supported": true,
            })),
            None,
        )
        .unwrap();
        assert_eq!(p.metadata.id_token_algs, vec![Alg::Rs256]);
        assert!(p.metadata.iss_parameter_supported);
        assert_eq!(p.metadata.client_auth, ClientAuth::ClientSecretBasic);
        assert!(p.metadata.end_session_endpoint.is_some());
    }

    #[test]
    fn the_fapi2_profile_needs_rfc_9207_iss_and_a_par_endpoint() {
        use base64::Engine;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let c = Config::builder("https://id.example.com", "c")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
            .profile(crate::Profile::Fapi2Security)
            .client_key(crate::ClientKey::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        let complete = serde_json::json!({
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "pushed_authorization_request_endpoint": "https://id.example.com/par",
            "authorization_response_iss_parameter_supported": true,
        });
        let p = Provider::from_documents(&c, &discovery(complete.clone()), None).unwrap();
        assert!(p.metadata.iss_parameter_supported);
        assert!(p.metadata.par_endpoint.is_some());
        let without = |name: &str| {
            let mut doc = complete.clone();
            doc.as_object_mut().unwrap().remove(name);
            Provider::from_documents(&c, &discovery(doc), None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(without("authorization_response_iss_parameter_supported").contains("RFC 9207"));
        assert!(without("pushed_authorization_request_endpoint")
            .contains("pushed_authorization_request_endpoint"));
        assert!(without("token_endpoint_auth_methods_supported").contains("private_key_jwt"));
    }

    #[test]
    fn a_provider_requiring_signed_request_objects_needs_them_and_a_key() {
        let required = discovery(serde_json::json!({ "require_signed_request_object": true }));
        let off = Config::builder("https://id.example.com", "c")
            .client_secret("s")
            .signed_request_objects(false)
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
            .build()
            .unwrap();
        let e = Provider::from_documents(&off, &required, None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("turned off"), "{e}");
        let keyless = config(Some("s"), None);
        let e = Provider::from_documents(&keyless, &required, None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("client key"), "{e}");
        let not_required =
            Provider::from_documents(&keyless, &discovery(serde_json::json!({})), None).unwrap();
        assert!(!not_required.metadata.signed_requests);
        // Asked for without a key: refused at build.
        let e = Config::builder("https://id.example.com", "c")
            .signed_request_objects(true)
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
            .build()
            .err()
            .unwrap();
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    field: "signed_request_objects",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn key_age_and_refetch_limit_follow_the_layer_clock() {
        use std::sync::atomic::{AtomicI64, Ordering};
        use std::time::SystemTime;
        let start = SystemTime::now();
        // Seconds from `start`; negative: the clock went back.
        let offset = Arc::new(AtomicI64::new(0));
        let clock = {
            let offset = offset.clone();
            move || {
                let o = offset.load(Ordering::Relaxed);
                let d = Duration::from_secs(o.unsigned_abs());
                if o >= 0 {
                    start + d
                } else {
                    start - d
                }
            }
        };
        let c = Config::builder("https://id.example.com", "c")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
            .client_secret("s")
            .jwks_max_age(Duration::from_secs(600))
            .jwks_refetch_interval(Duration::from_secs(30))
            .clock(clock)
            .build()
            .unwrap();
        let p = Provider::from_documents(
            &c,
            &discovery(serde_json::json!({})),
            Some(b"{\"keys\":[]}"),
        )
        .unwrap();
        let (_, fetched) = p.keys_and_age();
        assert_eq!(p.elapsed_since(fetched), Duration::ZERO);
        offset.store(601, Ordering::Relaxed);
        assert!(
            p.elapsed_since(fetched) >= p.max_age,
            "stale by the layer's clock"
        );
        offset.store(-3600, Ordering::Relaxed);
        assert_eq!(
            p.elapsed_since(fetched),
            Duration::ZERO,
            "a clock going back"
        );

        // A refetch just happened: the next one waits for the interval, by the layer's clock
        // (going back included), and answers without a request.
        *p.refetch.lock().await = Some((p.now_millis(), true));
        let keys = p.keys();
        offset.store(-7200, Ordering::Relaxed);
        assert!(!p.refetch_jwks(&keys).await.unwrap());
        offset.store(-3600 + 29, Ordering::Relaxed);
        assert!(!p.refetch_jwks(&keys).await.unwrap());
    }

    #[test]
    fn metadata_mistakes() {
        let c = config(Some("s"), None);
        let wrong_issuer = discovery(serde_json::json!({"issuer": "https://evil.example.com"}));
        assert!(matches!(
            Provider::from_documents(&c, &wrong_issuer, None),
            Err(ConfigError::IssuerMismatch { .. })
        ));
        let hmac_only = discovery(
            serde_json::json!({"id_token_signing_alg_values_supported": ["HS256", "none"]}),
        );
        assert!(matches!(
            Provider::from_documents(&c, &hmac_only, None),
            Err(ConfigError::UnsupportedProvider(_))
        ));
        let no_s256 = discovery(serde_json::json!({"code_challenge_methods_supported": ["plain"]}));
        let plain_allowed = Config::builder("https://id.example.com", "c")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
            .client_secret("s")
            .allow_pkce_plain(true)
            .build()
            .unwrap();
        let p = Provider::from_documents(&plain_allowed, &no_s256, None).unwrap();
        assert!(p.metadata.pkce_plain);
        let both =
            discovery(serde_json::json!({"code_challenge_methods_supported": ["plain", "S256"]}));
        let p = Provider::from_documents(&plain_allowed, &both, None).unwrap();
        assert!(!p.metadata.pkce_plain, "S256 whenever the provider has it");
        assert!(matches!(
            Provider::from_documents(&c, &no_s256, None),
            Err(ConfigError::UnsupportedProvider(_))
        ));
        assert!(matches!(
            Provider::from_documents(&c, b"{}", None),
            Err(ConfigError::Discovery { .. })
        ));
    }
}
