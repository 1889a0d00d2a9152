//! [`RedisRefreshCoordinator`]: refresh coordination over the replica's Redis connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{BackendFuture, RefreshCoordinator, RefreshOutcome, RefreshTurn};
use crate::redis_link::Commands;
use crate::session::cookie::random_token;

/// How often a replica that waits for another's refresh looks for its result.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// The result if there is one (`{1, result}`), else the lock if free (`{0, ''}`), else
/// `{2, ''}` (another replica holds the lock). One round trip, atomic.
const BEGIN: &str = "\
local done = redis.call('GET', KEYS[2])
if done then return {1, done} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, ''} end
return {2, ''}";

/// Keeps the result (when there is one) for ARGV[3] ms, and releases the lock when it is
/// still the caller's (ARGV[1]).
const FINISH: &str = "\
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1";

/// What a kept result starts with: a refreshed session (then its sealed value), or a refusal.
const REFRESHED: char = 'r';
const REFUSED: &str = "x";

/// A [`RefreshCoordinator`] over Redis (feature `redis`), made from a
/// [`RedisRevocationStore`](crate::RedisRevocationStore) with
/// [`refresh_coordinator`](crate::RedisRevocationStore::refresh_coordinator): it shares the
/// store's connection, key prefix and timeout.
///
/// The first replica to need a refresh takes a lock (`SET NX PX`) on
/// `<prefix>:refresh:<sha256 of the refresh token>:lock` and refreshes; the others look for
/// its result every 20 ms, at most for the lock's lifetime. The result (the new session,
/// sealed with the session key, never in clear), or the provider's refusal, is kept under
/// `...:done` for the layer's [refresh grace](crate::ConfigBuilder::refresh_grace), so a
/// request still carrying the previous cookie, on any replica, gets the new session instead
/// of replaying the rotated-out refresh token.
///
/// # Redis unreachable
///
/// Each replica refreshes on its own (single flight within the replica); a replica that was
/// already waiting for another's refresh when Redis went away does not refresh (the other may
/// be spending that very refresh token): the request goes on with the session it has, which
/// is refreshed on a later request. One warning is logged when the outage starts; every call is bounded by the store's
/// [`timeout`](crate::RedisRevocationStoreBuilder::timeout), and while Redis is down a
/// connection is attempted at most every 500 ms (in between, refreshes do not wait for it).
///
/// # Example
///
/// ```no_run
/// use tower_oidc::{Config, RedisRevocationStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisRevocationStore::connect("redis://127.0.0.1:6379/").await?;
/// let config = Config::builder("https://id.example.com", "my-client")
///     .refresh_coordinator(redis.refresh_coordinator())
///     .revocation_store(redis);
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisRefreshCoordinator {
    commands: Arc<Commands>,
    prefix: String,
    lock_ttl: Duration,
}

impl fmt::Debug for RedisRefreshCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRefreshCoordinator")
            .field("prefix", &self.prefix)
            .field("lock_ttl", &self.lock_ttl)
            .finish()
    }
}

impl RedisRefreshCoordinator {
    pub(crate) fn new(commands: Arc<Commands>, key_prefix: &str) -> Self {
        Self {
            commands,
            prefix: format!("{key_prefix}:refresh"),
            lock_ttl: Duration::from_secs(30),
        }
    }

    /// How long the lock of a refresh lasts, which is also the longest another replica
    /// waits for its result (then it goes on with the session it has and tries again later).
    /// Keep it above the time a refresh may take (the token endpoint and userinfo calls,
    /// each bounded by [`http_timeout`](crate::ConfigBuilder::http_timeout)). Default 30 s;
    /// at least 100 ms.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_oidc::ConfigError> {
    /// use std::time::Duration;
    ///
    /// let redis = tower_oidc::RedisRevocationStore::connect("redis://127.0.0.1/").await?;
    /// let coordinator = redis.refresh_coordinator().lock_ttl(Duration::from_secs(15));
    /// # let _ = coordinator;
    /// # Ok(())
    /// # }
    /// ```
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    fn keys(&self, key: &str) -> (String, String) {
        (
            format!("{}:{key}:lock", self.prefix),
            format!("{}:{key}:done", self.prefix),
        )
    }

    async fn decide(&self, key: &str) -> RefreshTurn {
        let (lock, done) = self.keys(key);
        let lease = random_token(16);
        let deadline = Instant::now() + self.lock_ttl;
        let mut script = ::redis::cmd("EVAL");
        script
            .arg(BEGIN)
            .arg(2)
            .arg(&lock)
            .arg(&done)
            .arg(&lease)
            .arg(millis(self.lock_ttl));
        let mut waited = false;
        loop {
            let answer: (i64, String) =
                match self.commands.query("refresh coordination", &script).await {
                    Ok(answer) => answer,
                    // Another replica may be refreshing with this very refresh token:
                    // refreshing here too could spend a rotated token twice; the session
                    // goes on as it is and is refreshed later.
                    Err(_) if waited => return RefreshTurn::Busy,
                    Err(_) => return RefreshTurn::Unavailable,
                };
            match answer {
                (0, _) => return RefreshTurn::Lead(lease),
                (1, result) if result == REFUSED => return RefreshTurn::Refused,
                (1, result) => match result.strip_prefix(REFRESHED) {
                    Some(sealed) => return RefreshTurn::Done(sealed.to_owned()),
                    None => {
                        tracing::error!("Redis refresh coordination: an unknown result kept");
                        return RefreshTurn::Busy;
                    }
                },
                _ => {}
            }
            waited = true;
            if Instant::now() + POLL_EVERY > deadline {
                return RefreshTurn::Busy;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn report(&self, key: &str, lease: &str, outcome: RefreshOutcome<'_>, keep: Duration) {
        let (lock, done) = self.keys(key);
        let result = match outcome {
            RefreshOutcome::Refreshed(sealed) => format!("{REFRESHED}{sealed}"),
            RefreshOutcome::Refused => REFUSED.to_owned(),
            RefreshOutcome::Failed => String::new(),
        };
        let mut script = ::redis::cmd("EVAL");
        script
            .arg(FINISH)
            .arg(2)
            .arg(&lock)
            .arg(&done)
            .arg(lease)
            .arg(result)
            .arg(millis(keep).max(1));
        // A failure is logged by the connection (once per outage); waiting replicas then
        // stop waiting at the lock's end.
        let _ = self
            .commands
            .query::<i64>("refresh coordination", &script)
            .await;
    }
}

impl RefreshCoordinator for RedisRefreshCoordinator {
    fn begin<'a>(&'a self, key: &'a str) -> BackendFuture<'a, RefreshTurn> {
        Box::pin(self.decide(key))
    }

    fn finish<'a>(
        &'a self,
        key: &'a str,
        lease: &'a str,
        outcome: RefreshOutcome<'a>,
        keep: Duration,
    ) -> BackendFuture<'a, ()> {
        Box::pin(self.report(key, lease, outcome, keep))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
