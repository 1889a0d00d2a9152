//! [`Shared`]: the state of one provider that every flow reads (its configuration, metadata,
//! caches), with the session-wide [`Sessions`] that all providers of a layer share, and
//! picking the provider a request belongs to ([`Tenants`]).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::cache::{Refresher, TokenCache};
use crate::config::{Config, ResponseMode};
use crate::dpop::state::DpopState;
use crate::introspection_limits::IntrospectionLimits;
use crate::metrics::Counters;
use crate::provider::Provider;
use crate::refresh_coordinator::Coordination;
use crate::session::cookie::{binding, Cookies};
use crate::session::sessions::Sessions;
use crate::session::store::ServerSessions;
use crate::session::verified::VerifiedSessions;
use crate::session::Session;

/// The layer's own routes.
#[derive(Debug)]
pub(crate) struct Paths {
    pub(crate) login: String,
    /// The path of this provider's redirect URL (`{prefix}/callback` for a single provider,
    /// its own path below it for each of several).
    pub(crate) callback: String,
    pub(crate) logout: String,
    pub(crate) backchannel_logout: String,
    /// The prefix a reverse proxy strips (`ConfigBuilder::external_prefix`; empty: none).
    pub(crate) external: String,
}

impl Paths {
    /// `path` (of the app, as the layer sees it) as the browser must ask for it: behind the
    /// external prefix.
    pub(crate) fn public(&self, path: &str) -> String {
        format!("{}{path}", self.external)
    }
}

/// One provider's state, shared by all clones of the layer and its services.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) provider: Provider,
    /// The session-wide state, the same for every provider of the layer.
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) paths: Paths,
    pub(crate) fetch_userinfo: bool,
    pub(crate) store_id_token: bool,
    pub(crate) bearer_cache: TokenCache,
    pub(crate) introspections: IntrospectionLimits,
    pub(crate) refresher: Refresher<Session>,
    /// Refresh coordination with the other replicas, when configured.
    pub(crate) coordination: Option<Coordination>,
    /// The provider's issuer, shared by every session identity.
    pub(crate) issuer: Arc<str>,
    /// This provider's name among several (empty for a single-provider layer).
    pub(crate) name: String,
    /// The other providers of a multi-provider layer (only on the default one).
    pub(crate) tenants: Vec<Arc<Shared>>,
    /// DPoP at the resource server: replay cache and server nonces.
    pub(crate) dpop: DpopState,
    /// What this provider's part of the layer did (see `Metrics`).
    pub(crate) counters: Counters,
}

impl Shared {
    /// The session-wide state, from the settings of `config` (the first provider's), for
    /// the layer's `providers` in order (the first is `config` itself).
    ///
    /// Each provider's sessions are sealed with keys bound to its issuer and client id;
    /// login transactions with keys bound to all of them. Another app that shares the session
    /// key but not the client cannot open our cookies, nor we its.
    pub(crate) fn new_sessions<'a>(
        config: &Config,
        providers: impl IntoIterator<Item = (&'a Config, &'a Provider)>,
    ) -> Sessions {
        let (providers, discovered): (Vec<&Config>, Vec<&Provider>) = providers.into_iter().unzip();
        let bindings: Vec<Vec<u8>> = providers
            .iter()
            .map(|p| binding(&p.issuer, &p.client_id))
            .collect();
        let key = &config.session_key;
        Sessions {
            session_sealer: key.sealer("session", &bindings),
            issuers: discovered
                .iter()
                .map(|p| p.metadata.issuer_rule.clone())
                .collect(),
            tx_sealer: key.sealer("transaction", &[bindings.concat()]),
            cookies: Cookies::new(&config.cookie_name, config.secure_cookies),
            session_lifetime: config.session_lifetime,
            idle_timeout: config.idle_timeout,
            transaction_ttl: config.transaction_ttl,
            max_transactions: config.max_transactions,
            revocations: config.revocations.clone(),
            server: config.session_store.clone().map(|store| {
                Arc::new(ServerSessions::new(
                    store,
                    key.sealer("session-id", &[bindings.concat()]),
                ))
            }),
            clock: config.clock.clone(),
            size_warned: AtomicBool::new(false),
            verified: VerifiedSessions::new(config.session_cache),
        }
    }

    /// A provider's state; `sessions` holds the session settings (of the first provider's
    /// configuration, when there are several).
    pub(crate) fn new(config: Config, provider: Provider, sessions: Arc<Sessions>) -> Self {
        let prefix = &config.prefix;
        let paths = Paths {
            login: format!("{prefix}/login"),
            callback: config
                .redirect_url
                .path()
                .strip_prefix(config.external_prefix.as_str())
                .unwrap_or(config.redirect_url.path())
                .to_owned(),
            logout: format!("{prefix}/logout"),
            backchannel_logout: format!("{prefix}/backchannel-logout"),
            external: config.external_prefix.clone(),
        };
        let fetch_userinfo =
            config.userinfo.unwrap_or(true) && provider.metadata.userinfo_endpoint.is_some();
        if config.userinfo == Some(true) && provider.metadata.userinfo_endpoint.is_none() {
            tracing::warn!("userinfo is on, but the provider has no userinfo endpoint");
        }
        let store_id_token = config.store_id_token.unwrap_or(
            provider.metadata.end_session_endpoint.is_some()
                || config
                    .compat
                    .end_session_url
                    .as_deref()
                    .is_some_and(|t| t.contains("{id_token_hint}")),
        );
        let coordination = config
            .refresh_coordinator
            .clone()
            .map(|coordinator| Coordination {
                coordinator,
                sealer: config
                    .session_key
                    .sealer("refresh", &[binding(&config.issuer, &config.client_id)]),
            });
        Shared {
            dpop: DpopState::new(&config),
            coordination,
            name: String::new(),
            tenants: Vec::new(),
            counters: Counters::default(),
            store_id_token,
            refresher: Refresher::default(),
            sessions,
            paths,
            fetch_userinfo,
            issuer: Arc::from(provider.metadata.issuer.as_str()),
            bearer_cache: TokenCache::new(config.bearer_cache_capacity),
            introspections: IntrospectionLimits::new(
                config.hardening.introspection_max_in_flight,
                config.hardening.introspection_per_second,
            ),
            provider,
            config,
        }
    }

    /// The state of a layer with one provider (its own session settings).
    pub(crate) fn single(config: Config, provider: Provider) -> Self {
        let sessions = Arc::new(Self::new_sessions(&config, [(&config, &provider)]));
        Self::new(config, provider, sessions)
    }

    /// Unix seconds now, by the layer's clock.
    pub(crate) fn now(&self) -> u64 {
        self.sessions.now()
    }

    /// Whether this provider answers with `response_mode=form_post`: its login-transaction
    /// cookies must then survive a cross-site POST.
    pub(crate) fn tx_cross_site(&self) -> bool {
        self.config.response_mode == ResponseMode::FormPost
    }
}

/// Picking the provider (tenant) a request belongs to.
pub(crate) trait Tenants {
    /// The provider named `name` (empty: this, the default).
    fn by_name(&self, name: &str) -> Option<Arc<Shared>>;
    /// The provider whose issuer is `issuer` (for a multi-tenant provider: its template
    /// filled with an allowed tenant).
    fn by_issuer(&self, issuer: &str) -> Option<Arc<Shared>>;
    /// The provider whose redirect URL has the path `path` (each has its own).
    fn by_callback(&self, path: &str) -> Option<Arc<Shared>>;
    /// The provider a JWT claims to come from (its unverified `iss`); the default when there
    /// is only one or the token names none of them. Its keys then decide.
    fn for_jwt(&self, token: &str) -> Arc<Shared>;
}

impl Tenants for Arc<Shared> {
    fn by_name(&self, name: &str) -> Option<Arc<Shared>> {
        if name.is_empty() || name == self.name {
            return Some(self.clone());
        }
        self.tenants.iter().find(|t| t.name == name).cloned()
    }

    fn by_issuer(&self, issuer: &str) -> Option<Arc<Shared>> {
        if self.provider.metadata.issuer_rule.accepts(issuer) {
            return Some(self.clone());
        }
        self.tenants
            .iter()
            .find(|t| t.provider.metadata.issuer_rule.accepts(issuer))
            .cloned()
    }

    fn by_callback(&self, path: &str) -> Option<Arc<Shared>> {
        if path == self.paths.callback {
            return Some(self.clone());
        }
        self.tenants
            .iter()
            .find(|t| t.paths.callback == path)
            .cloned()
    }

    fn for_jwt(&self, token: &str) -> Arc<Shared> {
        if self.tenants.is_empty() {
            return self.clone();
        }
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        crate::jwt::Unverified::parse(token)
            .ok()
            .and_then(|jwt| serde_json::from_slice::<Iss>(&jwt.into_payload()).ok())
            .and_then(|claims| claims.iss)
            .and_then(|iss| self.by_issuer(&iss))
            .unwrap_or_else(|| self.clone())
    }
}
