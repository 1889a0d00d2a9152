//! Waiting for a condition that depends on real time outside the test's control (a provider's
//! asynchronous work, a server shutting down): polled, with a deadline far beyond the usual
//! wait, instead of a fixed sleep that guesses how long it takes.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long [`until`] waits by default: generous, since a slow wait only costs time on a busy
/// machine while a short one fails the test.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` every 50 ms until it answers `Some`, and returns that; panics with `what`
/// and the last observation after `timeout`.
pub(crate) async fn until<T, O, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    O: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, O>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
