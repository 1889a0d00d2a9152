//! Starting while the provider is down: [`Startup`] holds the provider's state once
//! discovery has worked, and until then the configuration and when to try again, by the
//! layer's clock. Attempts come from a background task and from requests that arrive when an
//! attempt is due; one at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crate::config::Config;
use crate::error::ConfigError;
use crate::provider::Provider;
use crate::session::sessions::unix_millis;
use crate::shared::Shared;

/// The layer's provider state, or the way to it.
#[derive(Debug)]
pub(crate) struct Startup {
    ready: OnceLock<Arc<Shared>>,
    /// The configuration (also inside the provider's state once ready).
    pub(crate) config: Config,
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    /// When the next attempt is due: milliseconds since the epoch by the layer's clock.
    next_attempt_ms: AtomicU64,
    /// One attempt at a time.
    attempt: tokio::sync::Mutex<()>,
    interval: Duration,
}

impl Startup {
    /// A layer whose provider is known.
    pub(crate) fn ready(shared: Arc<Shared>) -> Arc<Self> {
        let config = shared.config.clone();
        let ready = OnceLock::new();
        let _ = ready.set(shared);
        Arc::new(Self {
            ready,
            config,
            pending: None,
        })
    }

    /// A layer whose first discovery failed: the next attempt is due `interval` from now, by
    /// the layer's clock. Inside a Tokio runtime a background task makes the attempts until
    /// one works (or the layer is gone); requests make them too.
    pub(crate) fn pending(config: Config, interval: Duration) -> Arc<Self> {
        let next = unix_millis(&config.clock).saturating_add(millis(interval));
        let startup = Arc::new(Self {
            ready: OnceLock::new(),
            config,
            pending: Some(Pending {
                next_attempt_ms: AtomicU64::new(next),
                attempt: tokio::sync::Mutex::new(()),
                interval,
            }),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(retry_in_background(Arc::downgrade(&startup), interval));
        }
        startup
    }

    /// The provider's state, once discovery has worked.
    pub(crate) fn get(&self) -> Option<&Arc<Shared>> {
        self.ready.get()
    }

    /// Seconds until the next attempt is due (at least 1), for `Retry-After`.
    pub(crate) fn retry_after(&self) -> u64 {
        let Some(pending) = &self.pending else {
            return 1;
        };
        let now = unix_millis(&self.config.clock);
        let wait = pending
            .next_attempt_ms
            .load(Ordering::Relaxed)
            .saturating_sub(now);
        wait.div_ceil(1000).max(1)
    }

    /// Whether an attempt is due now, by the layer's clock.
    pub(crate) fn due(&self) -> bool {
        self.pending.as_ref().is_some_and(|p| {
            unix_millis(&self.config.clock) >= p.next_attempt_ms.load(Ordering::Relaxed)
        })
    }

    /// The provider's state: discovered now when an attempt is due (waiting for one in
    /// flight), else `None` until it works.
    pub(crate) async fn try_ready(&self) -> Option<Arc<Shared>> {
        if let Some(shared) = self.ready.get() {
            return Some(shared.clone());
        }
        let pending = self.pending.as_ref()?;
        let _one_at_a_time = pending.attempt.lock().await;
        if let Some(shared) = self.ready.get() {
            return Some(shared.clone());
        }
        if !self.due() {
            return None;
        }
        match Provider::discover(&self.config).await {
            Ok(provider) => {
                tracing::info!(issuer = %self.config.issuer, "the provider is discovered: logins are answered");
                let shared = Arc::new(Shared::single(self.config.clone(), provider));
                Some(self.ready.get_or_init(|| shared).clone())
            }
            Err(error) => {
                let now = unix_millis(&self.config.clock);
                pending.next_attempt_ms.store(
                    now.saturating_add(millis(pending.interval)),
                    Ordering::Relaxed,
                );
                tracing::warn!(%error, retry_in = ?pending.interval, "the provider is still unavailable");
                None
            }
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Attempts discovery every `interval` (when due by the layer's clock) until it works or the
/// layer is dropped.
async fn retry_in_background(startup: Weak<Startup>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(startup) = startup.upgrade() else {
            return;
        };
        if startup.try_ready().await.is_some() {
            return;
        }
    }
}

/// Whether a failed discovery may be retried later: the provider could not be reached or
/// answered badly, as opposed to a configuration that can never work.
pub(crate) fn is_transient(err: &ConfigError) -> bool {
    matches!(err, ConfigError::Discovery { .. })
}
