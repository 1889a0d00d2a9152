//! [`OidcLayer`]: cheap to clone (an `Arc` inside), built once by discovery.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use crate::config::Config;
use crate::error::ConfigError;
use crate::metrics::Metrics;
use crate::provider::Provider;
use crate::service::OidcService;
use crate::shared::Shared;
use crate::startup::{is_transient, Startup};

/// The OpenID Connect layer: serves the login, callback and logout routes, opens the
/// session cookie on every other request and puts an [`Identity`](crate::Identity) into its extensions.
///
/// # Example
///
/// ```no_run
/// use axum::{routing::get, Json, Router};
/// use tower_oidc::{Config, Identity, OidcLayer, SessionKey};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let oidc = OidcLayer::discover(
///     Config::builder("https://id.example.com", "my-client")
///         .client_secret(std::env::var("OIDC_CLIENT_SECRET")?)
///         .redirect_url("https://app.example.com/auth/callback")
///         .session_key(SessionKey::from_base64(&std::env::var("SESSION_KEY")?)?)
///         .build()?,
/// )
/// .await?;
///
/// let app: Router = Router::new()
///     .route("/me", get(|id: Identity| async move { Json(id.claims().clone()) }))
///     .layer(oidc);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OidcLayer {
    startup: Arc<Startup>,
}

impl fmt::Debug for OidcLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcLayer")
            .field("issuer", &self.startup.config.issuer)
            .field("client_id", &self.startup.config.client_id)
            .field("discovered", &self.startup.get().is_some())
            .finish_non_exhaustive()
    }
}

impl OidcLayer {
    /// Discovers the provider (`<issuer>/.well-known/openid-configuration`, whose `issuer`
    /// must equal the configured one) and fetches its keys.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Discovery`] when the provider cannot be reached or answers nonsense
    /// (unless [`retry_discovery`](crate::ConfigBuilder::retry_discovery) is set: the layer
    /// then starts without it), [`ConfigError::IssuerMismatch`], and
    /// [`ConfigError::UnsupportedProvider`] when it lacks something this client needs (PKCE
    /// S256, an asymmetric signing algorithm, a common client authentication method).
    pub async fn discover(config: Config) -> Result<Self, ConfigError> {
        match Provider::discover(&config).await {
            Ok(provider) => Ok(Self::with_provider(config, provider)),
            Err(err) if is_transient(&err) && config.deployment.discovery_retry.is_some() => {
                let interval = config.deployment.discovery_retry.unwrap_or_default();
                tracing::warn!(error = %err, retry_in = ?interval,
                    "the provider is unavailable: starting without it (answering 503 until it is discovered)");
                Ok(Self {
                    startup: Startup::pending(config, interval),
                })
            }
            Err(err) => Err(err),
        }
    }

    /// Several providers (tenants) in one layer, each discovered with its own [`Config`]
    /// (issuer, client, keys and metadata of its own). The first is the default; a login picks
    /// another with `GET {prefix}/login?provider=<name>`. Each session remembers the provider
    /// that issued it (refresh and logout go there), and bearer tokens are checked against the
    /// provider named by their `iss`.
    ///
    /// Each provider needs a redirect URL of its own, registered only with that provider:
    /// `{prefix}/callback/{name}` is the natural choice (RFC 9700 §4.4.2.2). The layer serves
    /// the callback at each of these paths and refuses an authorization response that arrives
    /// at the redirect URI of another provider than the one the login went to: that is how a
    /// hostile or compromised provider would relay an honest provider's code to itself
    /// (the mix-up attack, RFC 9700 §4.4). When the response carries `iss` (RFC 9207) it
    /// must name the provider whose redirect URI was hit; when a provider advertises
    /// `authorization_response_iss_parameter_supported`, `iss` is required.
    ///
    /// The session settings of the first configuration hold for all (session key, session
    /// and idle lifetimes, login timeout, concurrent logins, revocation store, clock); the
    /// others must use the same cookie name and route prefix. Each keeps its own client,
    /// redirect URL, claims and token settings. Users are told apart by `(iss, sub)`: the
    /// same `sub` at two providers may be two people.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::{Config, OidcLayer, SessionKey};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let key = SessionKey::from_base64(&std::env::var("SESSION_KEY")?)?;
    /// let tenant = |name: &str| {
    ///     Config::builder(format!("https://id.example.com/oidc/{name}"), "my-app")
    ///         .client_secret("s3cret")
    ///         .redirect_url(format!("https://app.example.com/auth/callback/{name}"))
    ///         .session_key(key.clone())
    ///         .build()
    /// };
    /// let oidc = OidcLayer::discover_many([("acme", tenant("acme")?), ("globex", tenant("globex")?)])
    ///     .await?;
    /// // /auth/login?provider=globex&return_to=/me logs in at the second tenant, which answers
    /// // at /auth/callback/globex
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`OidcLayer::discover`] for each provider, and [`ConfigError::Invalid`] for no
    /// providers, duplicate or malformed names, two providers with the same redirect URL
    /// (path), or settings that must be shared but differ.
    pub async fn discover_many<I, N>(providers: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (N, Config)>,
        N: Into<String>,
    {
        let mut tenants = Vec::new();
        for (name, config) in providers {
            let name = name.into();
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid_name || tenants.iter().any(|(n, _): &(String, Config)| *n == name) {
                return Err(ConfigError::Invalid {
                    field: "provider name",
                    reason: format!("`{name}` is empty, malformed or used twice"),
                });
            }
            tenants.push((name, config));
        }
        let Some(first) = tenants.first().map(|(_, c)| c.clone()) else {
            return Err(ConfigError::Invalid {
                field: "providers",
                reason: "no provider given".into(),
            });
        };
        for (i, (name, config)) in tenants.iter().enumerate().skip(1) {
            if config.cookie_name != first.cookie_name || config.prefix != first.prefix {
                return Err(ConfigError::Invalid {
                    field: "providers",
                    reason: format!(
                        "provider `{name}` must use the first provider's cookie name and route prefix"
                    ),
                });
            }
            // The callback is routed by the redirect URL's path; a shared one would let a
            // response meant for one provider be taken for another's (mix-up).
            let path = config.redirect_url.path();
            if let Some((other, _)) = tenants[..i]
                .iter()
                .find(|(_, c)| c.redirect_url.path() == path)
            {
                return Err(ConfigError::Invalid {
                    field: "redirect_url",
                    reason: format!(
                        "providers `{other}` and `{name}` share the redirect URL path `{path}`; \
                         each provider needs its own, e.g. `{}/callback/{name}`",
                        config.prefix
                    ),
                });
            }
        }
        // The session settings of the first configuration hold for every provider: the
        // sessions share the cookies, and a back-channel logout from any provider must reach
        // the store that sessions are checked against.
        let mut discovered: Vec<(String, Config, Provider)> = Vec::with_capacity(tenants.len());
        for (name, config) in tenants {
            let provider = Provider::discover(&config).await?;
            if discovered
                .iter()
                .any(|(_, _, other)| other.metadata.issuer == provider.metadata.issuer)
            {
                return Err(ConfigError::Invalid {
                    field: "providers",
                    reason: format!("provider `{name}` has the issuer of another provider"),
                });
            }
            discovered.push((name, config, provider));
        }
        let sessions = Arc::new(Shared::new_sessions(
            &first,
            discovered.iter().map(|(_, c, p)| (c, p)),
        ));
        let mut built: Vec<Shared> = Vec::with_capacity(discovered.len());
        for (name, config, provider) in discovered {
            let mut shared = Shared::new(config, provider, sessions.clone());
            shared.name = name;
            built.push(shared);
        }
        let mut built = built.into_iter();
        let mut default = built.next().ok_or_else(|| ConfigError::Invalid {
            field: "providers",
            reason: "no provider given".into(),
        })?;
        default.tenants = built.map(Arc::new).collect();
        Ok(Self {
            startup: Startup::ready(Arc::new(default)),
        })
    }

    /// Builds the layer from an already-known discovery document (the JSON of
    /// `.well-known/openid-configuration`) and, optionally, the provider's JWKS; without
    /// it the keys are fetched when first needed. For tests and offline setups.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Config, OidcLayer, SessionKey};
    ///
    /// let discovery = serde_json::json!({
    ///     "issuer": "https://id.example.com",
    ///     "authorization_endpoint": "https://id.example.com/authorize",
    ///     "token_endpoint": "https://id.example.com/token",
    ///     "jwks_uri": "https://id.example.com/jwks",
    ///     "response_types_supported": ["code"],
    ///     "subject_types_supported": ["public"],
    ///     "id_token_signing_alg_values_supported": ["RS256"],
    /// });
    /// let config = Config::builder("https://id.example.com", "my-client")
    ///     .client_secret("s3cret")
    ///     .redirect_url("https://app.example.com/auth/callback")
    ///     .session_key(SessionKey::generate())
    ///     .build()?;
    /// let layer = OidcLayer::from_provider_metadata(config, discovery.to_string().as_bytes(), None)?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`OidcLayer::discover`], without the network ones.
    pub fn from_provider_metadata(
        config: Config,
        discovery_json: &[u8],
        jwks_json: Option<&[u8]>,
    ) -> Result<Self, ConfigError> {
        let provider = Provider::from_documents(&config, discovery_json, jwks_json)?;
        Ok(Self::with_provider(config, provider))
    }

    fn with_provider(config: Config, provider: Provider) -> Self {
        Self {
            startup: Startup::ready(Arc::new(Shared::single(config, provider))),
        }
    }

    /// A snapshot of the layer's counters (logins, login failures by reason, refreshes,
    /// bearer cache hits and misses, revocations), over all its providers.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::OidcLayer;
    ///
    /// fn log_metrics(layer: &OidcLayer) {
    ///     let m = layer.metrics();
    ///     tracing::info!(logins = m.logins, failures = m.login_failures, "oidc");
    /// }
    /// ```
    pub fn metrics(&self) -> Metrics {
        let mut m = Metrics::default();
        // Nothing counted yet while discovery has not succeeded (`retry_discovery`).
        if let Some(shared) = self.startup.get() {
            shared.counters.add_to(&mut m);
            for tenant in &shared.tenants {
                tenant.counters.add_to(&mut m);
            }
        }
        m
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.startup.config
    }

    /// The shared state, for the crate's unit tests (of a discovered layer).
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.startup.get().expect("a discovered layer")
    }

    /// The shared state, once the provider is discovered (for the test helpers).
    #[cfg(feature = "testing")]
    pub(crate) fn discovered(&self) -> Option<&Arc<Shared>> {
        self.startup.get()
    }
}

impl<S> Layer<S> for OidcLayer {
    type Service = OidcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OidcService::new(inner, self.startup.clone())
    }
}
