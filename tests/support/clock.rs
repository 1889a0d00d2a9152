//! An advanceable clock for the layer (`ConfigBuilder::clock`): real time plus an offset that
//! the test moves forward, so that a deadline of the layer (access-token expiry, session
//! lifetimes, JWKS age) passes at once and for sure, instead of after a real sleep racing the
//! work of a busy machine.
//!
//! Only the layer's clock moves: providers stay on real time. Tokens the provider issues are
//! still checked against the layer's clock (with its default 60 s skew), so advancing the
//! layer past an access token's lifetime makes it refresh, and the refreshed ID token (issued
//! in the layer's past) is still valid as long as the advance stays within its lifetime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Real time (or a frozen instant) plus an offset in milliseconds; clones share the offset.
#[derive(Clone, Debug, Default)]
pub(crate) struct TestClock {
    offset_ms: Arc<AtomicU64>,
    frozen_at: Option<SystemTime>,
}

impl TestClock {
    /// A clock at real time (offset zero).
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A clock that stands still at the time of this call and moves only when the test moves
    /// it: for deadlines of a few whole seconds (a 4-second token), where the real time a busy
    /// machine takes between two requests must not count.
    pub(crate) fn frozen() -> Self {
        Self {
            offset_ms: Arc::default(),
            frozen_at: Some(SystemTime::now()),
        }
    }

    /// Moves the clock forward by `by`.
    pub(crate) fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(millis(by), Ordering::SeqCst);
    }

    /// Sets the clock to real time plus `offset`.
    pub(crate) fn set_offset(&self, offset: Duration) {
        self.offset_ms.store(millis(offset), Ordering::SeqCst);
    }

    /// How far ahead of real time the clock is.
    pub(crate) fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }

    /// The clock's time now.
    pub(crate) fn now(&self) -> SystemTime {
        self.frozen_at.unwrap_or_else(SystemTime::now) + self.offset()
    }

    /// The clock as `ConfigBuilder::clock` takes it.
    pub(crate) fn closure(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let clock = self.clone();
        move || clock.now()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
