//! A provider's DPoP state at the resource server, from its configuration.

use super::proof::{Nonces, ReplayCache};

/// A provider's DPoP state at the resource server: the replay cache and, when required, the
/// server nonces.
#[derive(Debug)]
pub(crate) struct DpopState {
    pub(crate) replay: ReplayCache,
    pub(crate) nonces: Option<Nonces>,
}

impl DpopState {
    /// From the configuration's settings.
    pub(crate) fn new(config: &crate::config::Config) -> Self {
        let settings = &config.high_security;
        Self {
            replay: ReplayCache::new(settings.dpop_replay_capacity),
            nonces: settings.dpop_nonce.then(|| Nonces::new(NONCE_SLOT_SECS)),
        }
    }
}

/// A server nonce is fresh in its time slot of this length and the next.
const NONCE_SLOT_SECS: u64 = 60;
