//! [`RedisSessionStore`]: server-side sessions over the replica's Redis connection.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{BackendFuture, SessionStore, StoreError};
use crate::redis_link::Commands;

/// A [`SessionStore`] in Redis (feature `redis`), made from a
/// [`RedisRevocationStore`](crate::RedisRevocationStore) with
/// [`session_store`](crate::RedisRevocationStore::session_store): it shares the store's
/// connection, key prefix and timeout.
///
/// Each session is one string key, `<prefix>:session:<sha256 of the session id>`, holding the
/// session sealed with the session key, expiring with the session (`SET ... PX`). A logout
/// deletes it: every copy of the cookie, on every replica, is logged out at once.
///
/// # Redis unreachable
///
/// Requests with a server-side session answer 503 with `Retry-After` (never 500, never a
/// logout); every call is bounded by the store's
/// [`timeout`](crate::RedisRevocationStoreBuilder::timeout); one warning is logged when an
/// outage starts.
///
/// # Example
///
/// ```no_run
/// use tower_oidc::{Config, RedisRevocationStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisRevocationStore::connect("redis://127.0.0.1:6379/").await?;
/// let config = Config::builder("https://id.example.com", "my-client")
///     .session_store(redis.session_store())
///     .refresh_coordinator(redis.refresh_coordinator())
///     .revocation_store(redis);
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisSessionStore {
    commands: Arc<Commands>,
    prefix: String,
}

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("prefix", &self.prefix)
            .finish()
    }
}

const USER: &str = "session store";

impl RedisSessionStore {
    pub(crate) fn new(commands: Arc<Commands>, key_prefix: &str) -> Self {
        Self {
            commands,
            prefix: format!("{key_prefix}:session"),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{key}", self.prefix)
    }
}

impl SessionStore for RedisSessionStore {
    fn load<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move {
            let mut cmd = ::redis::cmd("GET");
            cmd.arg(self.key(key));
            self.commands.query(USER, &cmd).await
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        value: String,
        ttl: Duration,
    ) -> BackendFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut cmd = ::redis::cmd("SET");
            cmd.arg(self.key(key))
                .arg(value)
                .arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            self.commands.query(USER, &cmd).await
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut cmd = ::redis::cmd("DEL");
            cmd.arg(self.key(key));
            self.commands.query::<i64>(USER, &cmd).await.map(drop)
        })
    }
}
