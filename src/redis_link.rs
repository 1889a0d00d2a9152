//! The Redis connection a replica's Redis-backed parts share (feature `redis`): opening the
//! client from a URL, bounding every call by a timeout, and one multiplexed command
//! connection ([`Commands`]) that the revocation store's task, the refresh coordinator and
//! the session store all use, reconnected on demand after a failure.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{Client, Cmd, FromRedisValue, IntoConnectionInfo as _};
use tokio::time::Instant;

use crate::error::{BoxError, ConfigError};

/// While Redis is unreachable, callers other than the revocation store's task try to connect
/// again at most this often (in between they are told at once that Redis is unavailable).
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// A Redis client for `url` (`redis://[user:password@]host[:port][/db]`).
pub(crate) fn open_client(url: &str) -> Result<Client, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidUrl {
        field: "redis_url",
        reason,
    };
    let info = url
        .into_connection_info()
        .map_err(|err| invalid(err.to_string()))?;
    Client::open(info).map_err(|err| invalid(err.to_string()))
}

/// `call`, failing when it takes longer than `timeout`.
pub(crate) async fn bounded<T, E: Into<BoxError>>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, BoxError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(format!("{what}: no answer within {timeout:?}").into()),
    }
}

/// One multiplexed command connection, shared (cheap clones of it) by every caller, with the
/// outage bookkeeping of the callers that ask Redis on behalf of requests: one warning when an
/// outage starts, one line when it ends, and no connection attempt more often than every
/// [`RETRY_EVERY`] meanwhile.
pub(crate) struct Commands {
    client: Client,
    timeout: Duration,
    /// The connection, with its generation (so a failure on an older one does not drop a
    /// newer one made meanwhile).
    conn: Mutex<(u64, Option<MultiplexedConnection>)>,
    /// One connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    /// Whether a request-side call failed and none succeeded since.
    down: AtomicBool,
    /// While down: no new attempt before this.
    retry_at: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("timeout", &self.timeout)
            .field("down", &self.down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Commands {
    pub(crate) fn new(client: Client, timeout: Duration) -> Self {
        Self {
            client,
            timeout,
            conn: Mutex::new((0, None)),
            connecting: tokio::sync::Mutex::new(()),
            down: AtomicBool::new(false),
            retry_at: Mutex::new(None),
        }
    }

    /// The client (for the subscription, which needs a connection of its own).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The timeout of every call.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        let guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        guard.1.clone().map(|conn| (guard.0, conn))
    }

    /// A new connection, which replaces the shared one (the revocation store's task calls it
    /// after each (re)connection of its subscription).
    pub(crate) async fn reconnect(&self) -> Result<MultiplexedConnection, BoxError> {
        let conn = bounded(
            self.timeout,
            "connect",
            self.client.get_multiplexed_async_connection(),
        )
        .await?;
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        *guard = (guard.0.wrapping_add(1), Some(conn.clone()));
        Ok(conn)
    }

    /// The shared connection, connecting when there is none (not more often than every
    /// [`RETRY_EVERY`] while Redis is down).
    async fn connection(&self) -> Result<(u64, MultiplexedConnection), BoxError> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let _one = self.connecting.lock().await;
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        {
            let mut retry_at = self.retry_at.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            if retry_at.is_some_and(|at| at > now) {
                return Err("Redis is unreachable (waiting before the next attempt)".into());
            }
            *retry_at = Some(now + RETRY_EVERY);
        }
        self.reconnect().await?;
        self.current()
            .ok_or_else(|| "the new Redis connection was dropped at once".into())
    }

    /// Runs `cmd` (a command, or a script through `EVAL`) within the timeout. A failure drops
    /// the shared connection (the next call connects again) and, at the start of an outage,
    /// logs one warning naming `user`, what goes on without Redis.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        user: &'static str,
        cmd: &Cmd,
    ) -> Result<T, BoxError> {
        let (generation, result) = match self.connection().await {
            Ok((generation, mut conn)) => (
                Some(generation),
                bounded(self.timeout, user, cmd.query_async::<T>(&mut conn)).await,
            ),
            Err(err) => (None, Err(err)),
        };
        match &result {
            Ok(_) => {
                if self.down.swap(false, Ordering::AcqRel) {
                    tracing::info!(user, "Redis reachable again");
                }
            }
            Err(err) => {
                let unrecoverable = err
                    .downcast_ref::<::redis::RedisError>()
                    .is_none_or(|e| e.is_unrecoverable_error() || e.is_io_error());
                if unrecoverable {
                    let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
                    if generation == Some(guard.0) {
                        guard.1 = None;
                    }
                }
                if !self.down.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %err, user, "Redis unreachable");
                } else {
                    tracing::debug!(error = %err, user, "Redis still unreachable");
                }
            }
        }
        result
    }
}
