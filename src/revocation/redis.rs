//! Revocations shared by several replicas through Redis (feature `redis`).
//!
//! Every replica keeps the whole set in a [`MemoryRevocationStore`], so the question asked on
//! every request stays in process. A revocation is applied locally at once, then written to a
//! sorted set in Redis (score: the time it may be forgotten) and published on a channel; every
//! replica subscribes and applies what it hears, and reads the whole set again after each
//! (re)connection and periodically.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redis::aio::{MultiplexedConnection, PubSubStream};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{
    LiveEntry, LiveKind, MemoryRevocationStore, Revocation, RevocationStore, DEFAULT_CAPACITY,
};
use crate::error::{BoxError, ConfigError};
use crate::redis_link::{bounded, open_client, Commands};
use crate::refresh_coordinator::RedisRefreshCoordinator;
use crate::session::store::RedisSessionStore;

/// Writes waiting for the background task; beyond this, writes are coalesced: the task writes
/// every local entry again (see [`Replicator::flush_all`]).
const QUEUE: usize = 1024;
/// Entries per page of a resync.
const RESYNC_PAGE: usize = 1000;
/// Entries per pipeline when every local entry is written again.
const FLUSH_BATCH: usize = 500;
/// The message that asks every replica to read the whole set again (after a flush of
/// coalesced writes, which publishes no message per entry).
const RESYNC_MESSAGE: &[u8] = b"resync";
/// The first reconnection delay; it doubles up to the configured maximum.
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Scores are doubles in Redis: times beyond 2^53 are stored as 2^53.
const MAX_SCORE: u64 = 1 << 53;

/// A [`RevocationStore`] shared by every replica connected to the same Redis (feature
/// `redis`): a logout on one replica is refused on the others within milliseconds, while the
/// check on each request stays in process (no Redis round trip per request).
///
/// Each replica keeps every live revocation in a [`MemoryRevocationStore`]. A revocation
/// (back-channel logout, local logout, [`revoke`](RevocationStore::revoke) by the app) is
/// applied there at once, then, in the background, added to the sorted set
/// `<prefix>:revocations` (score: its `keep_until`; entries past it are trimmed, and the key
/// expires with its last entry) and published on the channel `<prefix>:revocations`. Every
/// replica subscribes to the channel, and reads the whole set again after each (re)connection
/// and every [`resync_interval`](RedisRevocationStoreBuilder::resync_interval).
///
/// Logout tokens' `jti`s travel the same way, so a token replayed to another replica is
/// refused there too. [`first_use_of_jti`](RevocationStore::first_use_of_jti) answers from this
/// replica's copy: a replay sent to another replica within the propagation delay (normally
/// milliseconds; during a Redis outage, until it ends) is accepted once more there. Its only
/// effect is the same revocation again, which changes nothing.
///
/// # Redis unreachable
///
/// Requests are still answered from what each replica knows: cookie sessions keep working and
/// every revocation already received still applies. A revocation made meanwhile applies on its
/// own replica at once and is written (and published) when Redis is back; the set is read
/// again then. One warning is logged when an outage starts and one line when it ends; the
/// connection is retried with a growing delay (100 ms, doubling, at most
/// [`max_reconnect_delay`](RedisRevocationStoreBuilder::max_reconnect_delay)). Every Redis
/// call has a [`timeout`](RedisRevocationStoreBuilder::timeout).
///
/// Redis 7.0 or later; `redis://` URLs (no TLS).
///
/// # Example
///
/// ```no_run
/// use tower_oidc::{Config, RedisRevocationStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let revocations = RedisRevocationStore::connect("redis://127.0.0.1:6379/").await?;
/// let config = Config::builder("https://id.example.com", "my-client")
///     .revocation_store(revocations);
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
pub struct RedisRevocationStore {
    local: Arc<MemoryRevocationStore>,
    writes: mpsc::Sender<Entry>,
    state: Arc<State>,
    /// The replica's command connection, shared with the store's task (and with a refresh
    /// coordinator made from this store).
    commands: Arc<Commands>,
    key_prefix: String,
}

/// Settings of a [`RedisRevocationStore`]; from [`RedisRevocationStore::builder`].
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use tower_oidc::RedisRevocationStore;
///
/// # async fn run() -> Result<(), tower_oidc::ConfigError> {
/// let store = RedisRevocationStore::builder("redis://10.0.0.5:6379/2")
///     .key_prefix("shop-oidc")
///     .timeout(Duration::from_secs(1))
///     .resync_interval(Duration::from_secs(30))
///     .connect()
///     .await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisRevocationStoreBuilder {
    url: String,
    key_prefix: String,
    timeout: Duration,
    resync_interval: Duration,
    max_reconnect_delay: Duration,
    capacity: usize,
}

impl std::fmt::Debug for RedisRevocationStoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("RedisRevocationStoreBuilder")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("resync_interval", &self.resync_interval)
            .field("max_reconnect_delay", &self.max_reconnect_delay)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl RedisRevocationStore {
    /// Connects with the default settings (see [`builder`](Self::builder)).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] for a malformed URL, [`ConfigError::Backend`] when Redis
    /// cannot be reached (or does not answer within the timeout) at startup.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_oidc::ConfigError> {
    /// let store = tower_oidc::RedisRevocationStore::connect("redis://127.0.0.1/").await?;
    /// assert!(store.is_connected());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, ConfigError> {
        Self::builder(url).connect().await
    }

    /// Settings for a store on the Redis at `url` (`redis://[user:password@]host[:port][/db]`).
    ///
    /// Defaults: key prefix `tower-oidc`, timeout 2 s per Redis call, full resync every
    /// 60 s, reconnection delay at most 5 s, at most 100 000 entries of each kind kept
    /// locally (as [`MemoryRevocationStore::new`]).
    ///
    /// # Example
    ///
    /// ```
    /// let builder = tower_oidc::RedisRevocationStore::builder("redis://127.0.0.1/");
    /// # let _ = builder;
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisRevocationStoreBuilder {
        RedisRevocationStoreBuilder {
            url: url.into(),
            key_prefix: "tower-oidc".to_owned(),
            timeout: Duration::from_secs(2),
            resync_interval: Duration::from_secs(60),
            max_reconnect_delay: Duration::from_secs(5),
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// Whether the store is connected to Redis now (false during an outage); for health
    /// checks. Revocations are answered from the local copy either way.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_oidc::ConfigError> {
    /// let store = tower_oidc::RedisRevocationStore::connect("redis://127.0.0.1/").await?;
    /// if !store.is_connected() {
    ///     eprintln!("revocations are not shared right now");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_connected(&self) -> bool {
        self.state.connected.load(Ordering::Acquire)
    }

    /// A [`RedisRefreshCoordinator`] on this store's Redis: it shares the store's connection,
    /// key prefix and timeout, so a replica keeps one command connection to Redis.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_oidc::ConfigError> {
    /// let redis = tower_oidc::RedisRevocationStore::connect("redis://127.0.0.1/").await?;
    /// let config = tower_oidc::Config::builder("https://id.example.com", "my-client")
    ///     .refresh_coordinator(redis.refresh_coordinator())
    ///     .revocation_store(redis);
    /// # let _ = config;
    /// # Ok(())
    /// # }
    /// ```
    pub fn refresh_coordinator(&self) -> RedisRefreshCoordinator {
        RedisRefreshCoordinator::new(Arc::clone(&self.commands), &self.key_prefix)
    }

    /// A [`RedisSessionStore`] on this store's Redis (server-side sessions): it shares the
    /// store's connection, key prefix and timeout.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_oidc::ConfigError> {
    /// let redis = tower_oidc::RedisRevocationStore::connect("redis://127.0.0.1/").await?;
    /// let config = tower_oidc::Config::builder("https://id.example.com", "my-client")
    ///     .session_store(redis.session_store())
    ///     .revocation_store(redis);
    /// # let _ = config;
    /// # Ok(())
    /// # }
    /// ```
    pub fn session_store(&self) -> RedisSessionStore {
        RedisSessionStore::new(Arc::clone(&self.commands), &self.key_prefix)
    }

    /// Hands a change to the background task (never waits). When too many writes wait, the
    /// change is coalesced, not lost: it is already in the local copy, and the task writes
    /// every local entry again once it has caught up.
    fn share(&self, record: Record, keep_until: u64) {
        let entry = Entry { record, keep_until };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.writes.try_send(entry) {
            if !self.state.overflowed.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    "Redis revocation store: too many writes waiting; every local entry will \
                     be written again"
                );
            }
        }
    }
}

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("key", &self.state.key)
            .field("connected", &self.is_connected())
            .field("local", &self.local)
            .finish()
    }
}

impl RedisRevocationStoreBuilder {
    /// Prefix of the Redis key and channel (`<prefix>:revocations`); fleets of different apps
    /// sharing one Redis use different prefixes. Default `tower-oidc`.
    ///
    /// # Example
    ///
    /// ```
    /// let builder = tower_oidc::RedisRevocationStore::builder("redis://127.0.0.1/")
    ///     .key_prefix("shop-oidc");
    /// # let _ = builder;
    /// ```
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one Redis call (connecting, subscribing, a write, a resync) may take before
    /// it counts as a failure. Default 2 s.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = tower_oidc::RedisRevocationStore::builder("redis://127.0.0.1/")
    ///     .timeout(Duration::from_millis(500));
    /// # let _ = builder;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often the whole set is read again, as a safety net for a message lost while the
    /// subscription looked healthy. Default 60 s.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = tower_oidc::RedisRevocationStore::builder("redis://127.0.0.1/")
    ///     .resync_interval(Duration::from_secs(15));
    /// # let _ = builder;
    /// ```
    pub fn resync_interval(mut self, interval: Duration) -> Self {
        self.resync_interval = interval;
        self
    }

    /// The longest wait between two connection attempts during an outage (the wait starts at
    /// 100 ms and doubles). Default 5 s.
    ///
    /// # Example
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = tower_oidc::RedisRevocationStore::builder("redis://127.0.0.1/")
    ///     .max_reconnect_delay(Duration::from_secs(1));
    /// # let _ = builder;
    /// ```
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay;
        self
    }

    /// The local copy's capacity: entries of each kind (revoked `sid`s and sessions, revoked
    /// `sub`s, seen `jti`s), as [`MemoryRevocationStore::with_capacity`]; also the most
    /// entries of each kind read per resync (the ones kept longest; a warning is logged when
    /// Redis holds more), and the most writes kept for Redis during an outage. Default
    /// 100 000.
    ///
    /// # Example
    ///
    /// ```
    /// let builder = tower_oidc::RedisRevocationStore::builder("redis://127.0.0.1/")
    ///     .capacity(10_000);
    /// # let _ = builder;
    /// ```
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Connects, subscribes and reads the current set, then keeps the copy up to date in a
    /// task on the current tokio runtime (ended when the store is dropped).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] for a malformed URL, [`ConfigError::Invalid`] for a zero
    /// timeout or interval, [`ConfigError::Backend`] when Redis cannot be reached at startup.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tower_oidc::ConfigError> {
    /// let store = tower_oidc::RedisRevocationStore::builder("redis://127.0.0.1/")
    ///     .connect()
    ///     .await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(self) -> Result<RedisRevocationStore, ConfigError> {
        for (field, value) in [
            ("timeout", self.timeout),
            ("resync_interval", self.resync_interval),
            ("max_reconnect_delay", self.max_reconnect_delay),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid {
                    field,
                    reason: "must be more than zero".to_owned(),
                });
            }
        }
        let commands = Arc::new(Commands::new(open_client(&self.url)?, self.timeout));
        let key = format!("{}:revocations", self.key_prefix);
        let state = Arc::new(State {
            connected: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
            key: key.clone(),
        });
        let local = Arc::new(MemoryRevocationStore::with_capacity(self.capacity));
        let mut sync = Replicator {
            commands: Arc::clone(&commands),
            key,
            resync_interval: self.resync_interval,
            max_reconnect_delay: self.max_reconnect_delay,
            capacity: self.capacity,
            local: Arc::clone(&local),
            state: Arc::clone(&state),
            pending: VecDeque::new(),
            dropped_while_down: 0,
        };
        let link = sync
            .establish()
            .await
            .map_err(|source| ConfigError::Backend {
                what: "Redis revocation store",
                source,
            })?;
        state.connected.store(true, Ordering::Release);
        let (writes, queue) = mpsc::channel(QUEUE);
        tokio::spawn(sync.run(link, queue));
        Ok(RedisRevocationStore {
            local,
            writes,
            state,
            commands,
            key_prefix: self.key_prefix,
        })
    }
}

impl RevocationStore for RedisRevocationStore {
    fn revoke(&self, revocation: Revocation, keep_until: u64) {
        // Only what changes the copy is shared: a revocation already known is already shared.
        if !self.local.record(revocation.clone(), keep_until) {
            return;
        }
        let Revocation {
            issuer,
            sid,
            sub,
            at,
        } = revocation;
        self.share(
            Record::Revocation {
                iss: issuer,
                sid,
                sub,
                at,
            },
            keep_until,
        );
    }

    fn is_revoked(
        &self,
        issuer: &str,
        sid: Option<&str>,
        sub: &str,
        created_at: u64,
        now: u64,
    ) -> bool {
        self.local.is_revoked(issuer, sid, sub, created_at, now)
    }

    fn first_use_of_jti(&self, issuer: &str, jti: &str, keep_until: u64, now: u64) -> bool {
        let first = self.local.first_use_of_jti(issuer, jti, keep_until, now);
        if first {
            self.share(
                Record::Jti {
                    iss: issuer.to_owned(),
                    jti: jti.to_owned(),
                },
                keep_until,
            );
        }
        first
    }

    fn revoke_session(&self, issuer: &str, session_id: &str, keep_until: u64) {
        if !self.local.record_session(issuer, session_id, keep_until) {
            return;
        }
        self.share(
            Record::Session {
                iss: issuer.to_owned(),
                id: session_id.to_owned(),
            },
            keep_until,
        );
    }

    fn is_session_revoked(&self, issuer: &str, session_id: &str, now: u64) -> bool {
        self.local.is_session_revoked(issuer, session_id, now)
    }
}

/// What the store and its task share.
struct State {
    connected: AtomicBool,
    /// Writes were coalesced (the queue, or the outage's list, was full): every local entry
    /// is to be written again.
    overflowed: AtomicBool,
    /// The sorted set's key, also the channel's name.
    key: String,
}

/// One change as stored in Redis: the member of the sorted set (the JSON of the record) and
/// its score (`keep_until`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
enum Record {
    /// A provider's logout of a `sid` or `sub`.
    #[serde(rename = "r")]
    Revocation {
        iss: String,
        sid: Option<String>,
        sub: Option<String>,
        at: u64,
    },
    /// A local logout of the layer's own session id.
    #[serde(rename = "s")]
    Session { iss: String, id: String },
    /// A logout token's `jti`, seen.
    #[serde(rename = "j")]
    Jti { iss: String, jti: String },
}

/// A record with the time it may be forgotten: what is published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    record: Record,
    keep_until: u64,
}

impl Record {
    fn member(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn of_live(live: LiveEntry) -> Entry {
        let LiveEntry {
            kind,
            issuer: iss,
            id,
            at,
            keep_until,
        } = live;
        let record = match kind {
            LiveKind::Sid => Self::Revocation {
                iss,
                sid: Some(id),
                sub: None,
                at,
            },
            LiveKind::Sub => Self::Revocation {
                iss,
                sid: None,
                sub: Some(id),
                at,
            },
            LiveKind::Session => Self::Session { iss, id },
            LiveKind::Jti => Self::Jti { iss, jti: id },
        };
        Entry { record, keep_until }
    }

    /// Which local table it goes to (0..4).
    fn kind(&self) -> usize {
        match self {
            Self::Revocation { sid: Some(_), .. } => 0,
            Self::Revocation { sid: None, .. } => 1,
            Self::Session { .. } => 2,
            Self::Jti { .. } => 3,
        }
    }

    fn apply(self, local: &MemoryRevocationStore, keep_until: u64) {
        match self {
            Self::Revocation { iss, sid, sub, at } => local.revoke(
                Revocation {
                    issuer: iss,
                    sid,
                    sub,
                    at,
                },
                keep_until,
            ),
            Self::Session { iss, id } => local.revoke_session(&iss, &id, keep_until),
            // `now` 0: recording it must not expire anything by a clock other than the layer's.
            Self::Jti { iss, jti } => {
                local.first_use_of_jti(&iss, &jti, keep_until, 0);
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A live connection: commands, and the subscription's messages.
struct Link {
    conn: MultiplexedConnection,
    messages: PubSubStream,
}

/// Why a link ended or could not be made.
enum Lost {
    /// The store was dropped: the task ends.
    Closed,
    /// Redis failed or timed out.
    Failed(BoxError),
}

/// The background task's side: keeps the local copy in step with Redis.
struct Replicator {
    commands: Arc<Commands>,
    key: String,
    resync_interval: Duration,
    max_reconnect_delay: Duration,
    capacity: usize,
    local: Arc<MemoryRevocationStore>,
    state: Arc<State>,
    /// Writes made while Redis was unreachable, oldest first.
    pending: VecDeque<Entry>,
    /// Writes dropped from `pending` (full) during the current outage.
    dropped_while_down: usize,
}

impl Replicator {
    async fn bounded<T, E: Into<BoxError>>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, BoxError> {
        bounded(self.commands.timeout(), what, call).await
    }

    /// Connects, subscribes, writes what waited, then reads the whole set; in this order, so
    /// nothing published meanwhile is missed.
    async fn establish(&mut self) -> Result<Link, BoxError> {
        let mut pubsub = self
            .bounded("subscribe", self.commands.client().get_async_pubsub())
            .await?;
        self.bounded("subscribe", pubsub.subscribe(&self.key))
            .await?;
        // The replica's shared command connection, made anew with the subscription.
        let conn = self.commands.reconnect().await?;
        let mut link = Link {
            conn,
            messages: pubsub.into_on_message(),
        };
        let flushed = self.pending.len();
        while let Some(entry) = self.pending.front() {
            let entry = entry.clone();
            self.write(&mut link.conn, &entry).await?;
            self.pending.pop_front();
        }
        if self.state.overflowed.swap(false, Ordering::AcqRel) {
            if let Err(err) = self.flush_all(&mut link.conn).await {
                self.state.overflowed.store(true, Ordering::Release);
                return Err(err);
            }
        }
        let read = self.resync(&mut link.conn).await?;
        tracing::debug!(flushed, read, key = %self.key, "Redis revocation store in sync");
        Ok(link)
    }

    /// Adds the entry to the sorted set (a later `keep_until` wins), trims what expired,
    /// lets the key expire with its last entry, and publishes the entry.
    async fn write(&self, conn: &mut MultiplexedConnection, entry: &Entry) -> Result<(), BoxError> {
        let score = entry.keep_until.min(MAX_SCORE);
        let message = serde_json::to_string(entry)?;
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("ZADD")
            .arg(&self.key)
            .arg("GT")
            .arg(score)
            .arg(entry.record.member())
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&self.key)
            .arg("-inf")
            .arg(unix_now())
            .ignore()
            .cmd("EXPIREAT")
            .arg(&self.key)
            .arg(score)
            .arg("NX")
            .ignore()
            .cmd("EXPIREAT")
            .arg(&self.key)
            .arg(score)
            .arg("GT")
            .ignore()
            .cmd("PUBLISH")
            .arg(&self.key)
            .arg(message)
            .ignore();
        self.bounded("write", pipe.query_async::<()>(conn)).await
    }

    /// Writes every local entry (coalesced writes: some never went through the queue), in
    /// batches, then asks every replica to read the set again.
    async fn flush_all(&self, conn: &mut MultiplexedConnection) -> Result<(), BoxError> {
        let entries: Vec<Entry> = self
            .local
            .live_entries()
            .into_iter()
            .map(Record::of_live)
            .collect();
        let now = unix_now();
        for batch in entries.chunks(FLUSH_BATCH) {
            let mut pipe = ::redis::pipe();
            pipe.atomic();
            let mut latest = 0;
            for entry in batch.iter().filter(|e| e.keep_until > now) {
                let score = entry.keep_until.min(MAX_SCORE);
                latest = latest.max(score);
                pipe.cmd("ZADD")
                    .arg(&self.key)
                    .arg("GT")
                    .arg(score)
                    .arg(entry.record.member())
                    .ignore();
            }
            if latest == 0 {
                continue;
            }
            pipe.cmd("EXPIREAT")
                .arg(&self.key)
                .arg(latest)
                .arg("NX")
                .ignore()
                .cmd("EXPIREAT")
                .arg(&self.key)
                .arg(latest)
                .arg("GT")
                .ignore();
            self.bounded("flush", pipe.query_async::<()>(conn)).await?;
        }
        self.bounded(
            "flush",
            ::redis::cmd("PUBLISH")
                .arg(&self.key)
                .arg(RESYNC_MESSAGE)
                .query_async::<()>(conn),
        )
        .await?;
        tracing::info!(
            entries = entries.len(),
            key = %self.key,
            "Redis revocation store: coalesced writes flushed"
        );
        Ok(())
    }

    /// Reads every live entry into the local copy, in pages, newest first; how many. Each
    /// kind is bounded by the local capacity (a warning when a kind's limit is hit): beyond
    /// it, the entries that expire soonest are the ones left out.
    async fn resync(&self, conn: &mut MultiplexedConnection) -> Result<usize, BoxError> {
        let now = unix_now();
        let page = self.capacity.clamp(1, RESYNC_PAGE);
        let mut counts = [0usize; 4];
        let mut full = [false; 4];
        let mut offset = 0usize;
        loop {
            let read: Vec<(String, f64)> = self
                .bounded(
                    "resync",
                    ::redis::cmd("ZRANGE")
                        .arg(&self.key)
                        .arg("+inf")
                        .arg(format!("({now}"))
                        .arg("BYSCORE")
                        .arg("REV")
                        .arg("LIMIT")
                        .arg(offset)
                        .arg(page)
                        .arg("WITHSCORES")
                        .query_async(conn),
                )
                .await?;
            let last = read.len() < page;
            offset += read.len();
            for (member, score) in read {
                let record = match serde_json::from_str::<Record>(&member) {
                    Ok(record) => record,
                    Err(err) => {
                        tracing::debug!(%err, "Redis revocation store: ignored a member");
                        continue;
                    }
                };
                let kind = record.kind();
                if counts[kind] >= self.capacity {
                    if !full[kind] {
                        full[kind] = true;
                        tracing::warn!(
                            key = %self.key,
                            capacity = self.capacity,
                            "Redis revocation store: more live entries of one kind than the \
                             local capacity; those expiring soonest were not read (raise it)"
                        );
                    }
                    continue;
                }
                counts[kind] += 1;
                // Scores are whole seconds written by this store.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                record.apply(&self.local, score as u64);
            }
            if last || full.iter().all(|f| *f) {
                break;
            }
        }
        Ok(counts.iter().sum())
    }

    /// Applies a message; true when it asks for a resync.
    fn receive(&self, payload: &[u8]) -> bool {
        if payload == RESYNC_MESSAGE {
            return true;
        }
        match serde_json::from_slice::<Entry>(payload) {
            Ok(entry) => entry.record.apply(&self.local, entry.keep_until),
            Err(err) => tracing::debug!(%err, "Redis revocation store: ignored a message"),
        }
        false
    }

    /// Keeps a write for after the outage; when full, the oldest goes and every local entry
    /// is written again on reconnection (the local copy still holds it).
    fn keep(&mut self, entry: Entry) {
        if self.pending.len() >= self.capacity {
            self.pending.pop_front();
            self.dropped_while_down += 1;
            self.state.overflowed.store(true, Ordering::Release);
        }
        self.pending.push_back(entry);
    }

    fn outage(&self, reason: &BoxError) {
        if self.state.connected.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                error = %reason,
                key = %self.key,
                "Redis revocation store unreachable: revocations are answered from this \
                 replica's copy and shared when Redis is back"
            );
        } else {
            tracing::debug!(error = %reason, "Redis revocation store: still unreachable");
        }
    }

    /// The task: serve the link until it fails, then reconnect with a growing delay, keeping
    /// this replica's writes meanwhile. Ends when the store is dropped.
    async fn run(mut self, link: Link, mut queue: mpsc::Receiver<Entry>) {
        let mut link = Some(link);
        let mut delay = FIRST_RECONNECT_DELAY;
        loop {
            let lost = match link.take() {
                Some(link) => self.serve(link, &mut queue).await,
                None => match self.establish().await {
                    Ok(new) => {
                        self.state.connected.store(true, Ordering::Release);
                        tracing::info!(
                            key = %self.key,
                            dropped_writes = self.dropped_while_down,
                            "Redis revocation store reconnected and resynced"
                        );
                        self.dropped_while_down = 0;
                        delay = FIRST_RECONNECT_DELAY;
                        link = Some(new);
                        continue;
                    }
                    Err(err) => Lost::Failed(err),
                },
            };
            match lost {
                Lost::Closed => return,
                Lost::Failed(err) => self.outage(&err),
            }
            // Wait before the next attempt, keeping what this replica revokes meanwhile.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    entry = queue.recv() => match entry {
                        Some(entry) => self.keep(entry),
                        None => return,
                    },
                }
            }
            delay = (delay * 2).min(self.max_reconnect_delay);
        }
    }

    async fn serve(&mut self, mut link: Link, queue: &mut mpsc::Receiver<Entry>) -> Lost {
        let mut resync = tokio::time::interval(self.resync_interval);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.reset();
        loop {
            tokio::select! {
                message = link.messages.next() => match message {
                    Some(message) => {
                        if self.receive(message.get_payload_bytes()) {
                            if let Err(err) = self.resync(&mut link.conn).await {
                                return Lost::Failed(err);
                            }
                        }
                    }
                    None => return Lost::Failed("the subscription's connection closed".into()),
                },
                entry = queue.recv() => match entry {
                    Some(entry) => {
                        if let Err(err) = self.write(&mut link.conn, &entry).await {
                            self.keep(entry);
                            return Lost::Failed(err);
                        }
                        if self.state.overflowed.swap(false, Ordering::AcqRel) {
                            if let Err(err) = self.flush_all(&mut link.conn).await {
                                self.state.overflowed.store(true, Ordering::Release);
                                return Lost::Failed(err);
                            }
                        }
                    }
                    None => return Lost::Closed,
                },
                _ = resync.tick() => {
                    if let Err(err) = self.resync(&mut link.conn).await {
                        return Lost::Failed(err);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builders_debug_output_has_no_url_and_so_no_password() {
        let builder = RedisRevocationStore::builder("redis://app:hunter2@10.0.0.5:6379/2");
        let printed = format!("{builder:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("key_prefix"), "{printed}");
    }

    #[test]
    fn records_round_trip_as_members_and_messages() {
        let records = [
            Record::Revocation {
                iss: "https://id.example.com".into(),
                sid: Some("s1".into()),
                sub: None,
                at: 7,
            },
            Record::Session {
                iss: "https://id.example.com".into(),
                id: "q1hX0rJ5yVbFz2m8n3C4dA".into(),
            },
            Record::Jti {
                iss: "https://id.example.com".into(),
                jti: "bWJq".into(),
            },
        ];
        for record in records {
            let member = record.member();
            assert_eq!(
                serde_json::from_str::<Record>(&member).ok(),
                Some(record.clone())
            );
            let entry = Entry {
                record,
                keep_until: 99,
            };
            let message = serde_json::to_vec(&entry).unwrap_or_default();
            assert_eq!(serde_json::from_slice::<Entry>(&message).ok(), Some(entry));
        }
    }

    #[test]
    fn received_records_apply_to_the_local_copy() {
        let local = MemoryRevocationStore::default();
        let iss = "https://id.example.com";
        Record::Session {
            iss: iss.into(),
            id: "id-1".into(),
        }
        .apply(&local, 100);
        Record::Revocation {
            iss: iss.into(),
            sid: None,
            sub: Some("alice".into()),
            at: 10,
        }
        .apply(&local, 100);
        Record::Jti {
            iss: iss.into(),
            jti: "j1".into(),
        }
        .apply(&local, 100);
        assert!(local.is_session_revoked(iss, "id-1", 50));
        assert!(local.is_revoked(iss, Some("s"), "alice", 10, 50));
        assert!(!local.first_use_of_jti(iss, "j1", 100, 50), "already seen");
    }
}
