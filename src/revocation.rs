//! Ended sessions: a logout cannot delete every copy of a cookie (a back-channel logout
//! cannot delete any), so it is recorded in a [`RevocationStore`] instead, which every session
//! request consults.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::{RedisRevocationStore, RedisRevocationStoreBuilder};

/// What a back-channel logout revoked: sessions of this issuer with this `sid`, or all sessions
/// of this `sub`, issued (created) at or before `at`.
///
/// A logout token with a `sid` ends that one session, even when it also names the `sub`
/// (Back-Channel Logout §2.4); only a token without `sid` ends every session of the `sub`.
///
/// # Example
///
/// ```
/// use tower_oidc::Revocation;
///
/// // The provider ended its session `08a5019c` of some user at 1_700_000_000.
/// let one_session = Revocation {
///     issuer: "https://id.example.com".to_owned(),
///     sid: Some("08a5019c".to_owned()),
///     sub: Some("248289761001".to_owned()),
///     at: 1_700_000_000,
/// };
/// // Every session of user 248289761001 created until then.
/// let every_session = Revocation { sid: None, ..one_session.clone() };
/// assert_ne!(one_session, every_session);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The provider (`iss`) whose session ended.
    pub issuer: String,
    /// The provider's session id (`sid`): only the session with this id is revoked.
    pub sid: Option<String>,
    /// The user (`sub`): without `sid`, all of this user's sessions are revoked.
    pub sub: Option<String>,
    /// Sessions created at or before this time (unix seconds) are revoked; later ones (a new
    /// login) are not.
    pub at: u64,
}

/// Where revocations are kept; sessions live in cookies, so a server-side list of revocations
/// is how a logout reaches them: a provider's (back-channel logout, by its `sid` or `sub`), and
/// the app's own (`/auth/logout`, by the layer's random session id, see
/// [`revoke_session`](Self::revoke_session)). Implement it over Redis or a database to share
/// revocations between instances.
///
/// [`is_revoked`](Self::is_revoked) is asked on every request that carries a session, so it
/// must be cheap (no network round trip per request in a shared store: cache, or push
/// revocations to every instance). The methods are synchronous; a store backed by a network
/// service keeps a local copy and updates it in the background.
///
/// # Example
///
/// A store that counts revocations and keeps them in a [`MemoryRevocationStore`]:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use tower_oidc::{MemoryRevocationStore, Revocation, RevocationStore};
///
/// #[derive(Debug, Default)]
/// struct Counted {
///     revocations: AtomicU64,
///     inner: MemoryRevocationStore,
/// }
///
/// impl RevocationStore for Counted {
///     fn revoke(&self, revocation: Revocation, keep_until: u64) {
///         self.revocations.fetch_add(1, Ordering::Relaxed);
///         self.inner.revoke(revocation, keep_until);
///     }
///
///     fn is_revoked(&self, issuer: &str, sid: Option<&str>, sub: &str, created_at: u64, now: u64) -> bool {
///         self.inner.is_revoked(issuer, sid, sub, created_at, now)
///     }
///
///     fn first_use_of_jti(&self, issuer: &str, jti: &str, keep_until: u64, now: u64) -> bool {
///         self.inner.first_use_of_jti(issuer, jti, keep_until, now)
///     }
/// }
///
/// let store = Counted::default();
/// let revocation = Revocation {
///     issuer: "https://id.example.com".into(),
///     sid: None,
///     sub: Some("alice".into()),
///     at: 1_000,
/// };
/// store.revoke(revocation, 1_000 + 86_400);
/// assert!(store.is_revoked("https://id.example.com", Some("s1"), "alice", 900, 1_001));
/// assert_eq!(store.revocations.load(Ordering::Relaxed), 1);
/// ```
pub trait RevocationStore: Send + Sync + 'static {
    /// Records a revocation, kept until `keep_until` (unix seconds; the maximum session
    /// lifetime after it).
    ///
    /// Revoking the same `sid` (or `sub`) again keeps the later `at` and the later
    /// `keep_until`. A revocation with a `sid` affects only that session; with only a `sub`,
    /// every session of that user.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{MemoryRevocationStore, Revocation, RevocationStore};
    ///
    /// let store = MemoryRevocationStore::default();
    /// let at = 1_700_000_000;
    /// let max_session_lifetime = 7 * 86_400;
    /// store.revoke(
    ///     Revocation { issuer: "https://id.example.com".into(), sid: Some("s1".into()), sub: None, at },
    ///     at + max_session_lifetime,
    /// );
    /// ```
    fn revoke(&self, revocation: Revocation, keep_until: u64);

    /// Whether a session of `issuer` with `sid`/`sub` created at `created_at` is revoked.
    ///
    /// It is when a live revocation of this issuer names its `sid`, or (without `sid`) its
    /// `sub`, with `created_at <= at`. A session that has no `sid` is reached only by
    /// revocations of its `sub`.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{MemoryRevocationStore, Revocation, RevocationStore};
    ///
    /// let store = MemoryRevocationStore::default();
    /// let issuer = "https://id.example.com";
    /// store.revoke(
    ///     Revocation { issuer: issuer.into(), sid: Some("s1".into()), sub: None, at: 1_000 },
    ///     100_000,
    /// );
    /// assert!(store.is_revoked(issuer, Some("s1"), "alice", 990, 1_010));
    /// assert!(!store.is_revoked(issuer, Some("s1"), "alice", 1_005, 1_010), "a later login");
    /// assert!(!store.is_revoked(issuer, Some("s2"), "alice", 990, 1_010), "another session");
    /// ```
    fn is_revoked(
        &self,
        issuer: &str,
        sid: Option<&str>,
        sub: &str,
        created_at: u64,
        now: u64,
    ) -> bool;

    /// Records a logout token's `jti`; false when it was seen before (replay).
    ///
    /// `keep_until` must not be earlier than the last moment the token would still be
    /// accepted (its `exp`, or `iat` plus the accepted age, plus the clock skew).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{MemoryRevocationStore, RevocationStore};
    ///
    /// let store = MemoryRevocationStore::default();
    /// let issuer = "https://id.example.com";
    /// assert!(store.first_use_of_jti(issuer, "bWJq", 1_360, 1_000));
    /// assert!(!store.first_use_of_jti(issuer, "bWJq", 1_360, 1_001), "replayed");
    /// ```
    fn first_use_of_jti(&self, issuer: &str, jti: &str, keep_until: u64, now: u64) -> bool;

    /// Records that the layer's own session `session_id` of `issuer` ended (a local logout,
    /// `/auth/logout`), kept until `keep_until` (unix seconds: the session's absolute deadline,
    /// after which no copy of its cookie opens anyway).
    ///
    /// The session id is the layer's, not the provider's `sid`: 16 random bytes as base64url
    /// (22 characters), given to each new session at login and kept across refresh and
    /// rolling renewal, so every copy of the cookie carries it.
    ///
    /// The default records it through [`revoke`](Self::revoke) as a revocation of the `sid`
    /// `tower-oidc-session:<session_id>` with `at` = `keep_until` (never earlier than the
    /// session's creation, so it covers every copy), so a store that implements only the three
    /// required methods already honours local logouts. Both `at` and `keep_until` are then
    /// unix seconds within `0..=i64::MAX`, so a store may keep them in signed 64-bit columns.
    /// A store may override it (with
    /// [`is_session_revoked`](Self::is_session_revoked)), e.g. as a Redis key
    /// `revoked:<issuer>:<session_id>` expiring at `keep_until`.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{MemoryRevocationStore, RevocationStore};
    ///
    /// let store = MemoryRevocationStore::default();
    /// let issuer = "https://id.example.com";
    /// store.revoke_session(issuer, "q1hX0rJ5yVbFz2m8n3C4dA", 2_000);
    /// assert!(store.is_session_revoked(issuer, "q1hX0rJ5yVbFz2m8n3C4dA", 1_000));
    /// assert!(!store.is_session_revoked(issuer, "another-session-id", 1_000));
    /// assert!(!store.is_session_revoked(issuer, "q1hX0rJ5yVbFz2m8n3C4dA", 2_000), "expired");
    /// ```
    fn revoke_session(&self, issuer: &str, session_id: &str, keep_until: u64) {
        let keep_until = keep_until.min(MAX_TIME);
        self.revoke(
            Revocation {
                issuer: issuer.to_owned(),
                sid: Some(layer_session_key(session_id)),
                sub: None,
                at: keep_until,
            },
            keep_until,
        );
    }

    /// Whether the layer's own session `session_id` of `issuer` was ended by
    /// [`revoke_session`](Self::revoke_session). Asked on every request that carries a
    /// session, next to [`is_revoked`](Self::is_revoked): it must be as cheap.
    ///
    /// The default asks [`is_revoked`](Self::is_revoked) for the `sid` (and `sub`)
    /// `tower-oidc-session:<session_id>`; override both or neither.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{MemoryRevocationStore, RevocationStore};
    ///
    /// let store = MemoryRevocationStore::default();
    /// assert!(!store.is_session_revoked("https://id.example.com", "q1hX0rJ5yVbFz2m8n3C4dA", 1));
    /// ```
    fn is_session_revoked(&self, issuer: &str, session_id: &str, now: u64) -> bool {
        let key = layer_session_key(session_id);
        self.is_revoked(issuer, Some(&key), &key, 0, now)
    }
}

/// How the default [`RevocationStore::revoke_session`] names the layer's own session among
/// the provider's `sid`s. A provider's `sid` of this form would need the session's random id.
fn layer_session_key(session_id: &str) -> String {
    format!("tower-oidc-session:{session_id}")
}

/// The latest time (unix seconds) the layer hands to a store: `i64::MAX`, so that stores
/// keeping times in signed 64-bit columns never overflow.
pub(crate) const MAX_TIME: u64 = i64::MAX as u64;

/// One entry of a [`MemoryRevocationStore`], as [`MemoryRevocationStore::live_entries`] lists
/// it.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct LiveEntry {
    pub(crate) kind: LiveKind,
    pub(crate) issuer: String,
    /// The `sid`, `sub`, session id or `jti`.
    pub(crate) id: String,
    /// The revocation's `at` (0 for sessions and `jti`s).
    pub(crate) at: u64,
    pub(crate) keep_until: u64,
}

/// Which table a [`LiveEntry`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum LiveKind {
    Sid,
    Sub,
    Session,
    Jti,
}

/// Entries of each kind (sid, sub, jti, local logout) a [`MemoryRevocationStore`] keeps by
/// default.
const DEFAULT_CAPACITY: usize = 100_000;

/// A [`RevocationStore`] in this process's memory: right for a single instance (revocations
/// are lost on restart and not shared between instances).
///
/// Lookups are hash lookups keyed by issuer and `sid` or `sub`; while nothing has been
/// revoked (or every revocation has expired), [`is_revoked`](RevocationStore::is_revoked) is
/// one atomic load, without a lock.
///
/// # Example
///
/// ```
/// use tower_oidc::{MemoryRevocationStore, Revocation, RevocationStore};
///
/// let store = MemoryRevocationStore::default();
/// let issuer = "https://id.example.com";
/// store.revoke(
///     Revocation { issuer: issuer.into(), sid: None, sub: Some("alice".into()), at: 1_000 },
///     1_000 + 86_400,
/// );
/// assert!(store.is_revoked(issuer, Some("any-session"), "alice", 999, 1_001));
/// assert!(!store.is_revoked(issuer, Some("any-session"), "bob", 999, 1_001));
/// ```
///
/// # Memory
///
/// The store is bounded: at most `capacity` entries of each kind (revoked `sid`s, revoked
/// `sub`s, seen `jti`s, local logouts; 100 000 each by default, see
/// [`with_capacity`](Self::with_capacity)). Local logouts
/// ([`revoke_session`](RevocationStore::revoke_session)) have a table of their own: any user
/// can log in and out as often as they like, and doing so must never evict the provider's
/// revocations (back-channel logouts). When the local-logout table is full, the local logout
/// that expires soonest (the session nearest its absolute deadline) is evicted: a copy of that
/// session's cookie is accepted again until that deadline.
/// Expired entries are dropped when a new one is inserted (judged by the latest `now` given to
/// [`is_revoked`](RevocationStore::is_revoked) or
/// [`first_use_of_jti`](RevocationStore::first_use_of_jti), as `revoke` takes no time).
///
/// When a kind is full of live entries, the entry that expires soonest is evicted and a
/// warning is logged: a new revocation is never refused, but the evicted one stops protecting
/// the sessions it revoked (or, for a `jti`, a replay of that token is no longer detected).
/// Size the capacity for the number of logouts expected within the maximum session lifetime.
pub struct MemoryRevocationStore {
    /// False while both revocation tables are empty: the lock-free fast path.
    any: AtomicBool,
    /// The latest `now` the store was given; [`RevocationStore::revoke`] has no clock of its
    /// own, so it drops the entries expired by this time.
    latest_now: AtomicU64,
    revocations: Mutex<Revocations>,
    jtis: Mutex<Table<()>>,
}

struct Revocations {
    /// Keyed by issuer and `sid`; the value is `at`.
    by_sid: Table<u64>,
    /// Keyed by issuer and `sub`; the value is `at`.
    by_sub: Table<u64>,
    /// Local logouts, keyed by issuer and the layer's session id; apart from the provider's
    /// revocations so that they can never evict them.
    sessions: Table<()>,
}

impl Revocations {
    fn is_empty(&self) -> bool {
        self.by_sid.is_empty() && self.by_sub.is_empty() && self.sessions.is_empty()
    }

    fn drop_expired(&mut self, now: u64) {
        self.by_sid.drop_expired(now);
        self.by_sub.drop_expired(now);
        self.sessions.drop_expired(now);
    }
}

impl MemoryRevocationStore {
    /// A store with the default capacity (100 000 entries of each kind).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{MemoryRevocationStore, RevocationStore};
    ///
    /// let store = MemoryRevocationStore::new();
    /// assert!(!store.is_revoked("https://id.example.com", None, "alice", 0, 1));
    /// ```
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// A store keeping at most `capacity` entries of each kind (revoked `sid`s, revoked
    /// `sub`s, seen `jti`s, local logouts); at least one. Nothing is allocated up front.
    ///
    /// # Example
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_oidc::{MemoryRevocationStore, RevocationStore};
    ///
    /// let store: Arc<dyn RevocationStore> = Arc::new(MemoryRevocationStore::with_capacity(10_000));
    /// # let _ = store;
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            any: AtomicBool::new(false),
            latest_now: AtomicU64::new(0),
            revocations: Mutex::new(Revocations {
                by_sid: Table::new("sid", capacity),
                by_sub: Table::new("sub", capacity),
                sessions: Table::new("local logout", capacity),
            }),
            jtis: Mutex::new(Table::new("jti", capacity)),
        }
    }

    /// Remembers `now` for [`RevocationStore::revoke`]; a write at most once a second.
    fn saw(&self, now: u64) {
        if now > self.latest_now.load(Ordering::Relaxed) {
            self.latest_now.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// [`RevocationStore::revoke`]; whether it changed the store (a new entry, a later `at`
    /// or a later `keep_until`): a revocation already known need not be shared again.
    pub(crate) fn record(&self, revocation: Revocation, keep_until: u64) -> bool {
        let Revocation {
            issuer,
            sid,
            sub,
            at,
        } = revocation;
        let now = self.latest_now.load(Ordering::Relaxed);
        let mut revocations = self.lock_revocations();
        revocations.drop_expired(now);
        let Revocations { by_sid, by_sub, .. } = &mut *revocations;
        let target = match (sid, sub) {
            (Some(sid), _) => Some((by_sid, sid)),
            (None, Some(sub)) => Some((by_sub, sub)),
            (None, None) => None,
        };
        let changed = target.is_some_and(|(table, id)| {
            table.upsert(&issuer, &id, keep_until, at, now, |old, new| {
                let later = new > *old;
                *old = (*old).max(new);
                later
            })
        });
        self.any.store(!revocations.is_empty(), Ordering::Release);
        changed
    }

    /// [`RevocationStore::revoke_session`]; whether it changed the store (see
    /// [`record`](Self::record)).
    pub(crate) fn record_session(&self, issuer: &str, session_id: &str, keep_until: u64) -> bool {
        let now = self.latest_now.load(Ordering::Relaxed);
        let mut revocations = self.lock_revocations();
        revocations.drop_expired(now);
        let changed =
            revocations
                .sessions
                .upsert(issuer, session_id, keep_until, (), now, |_, ()| false);
        self.any.store(!revocations.is_empty(), Ordering::Release);
        changed
    }

    /// Every entry kept, live by the latest time the store saw: for a store that shares them
    /// (the Redis store writes them all again after it had to coalesce writes).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn live_entries(&self) -> Vec<LiveEntry> {
        let mut out = Vec::new();
        {
            let revocations = self.lock_revocations();
            for (kind, table) in [
                (LiveKind::Sid, &revocations.by_sid),
                (LiveKind::Sub, &revocations.by_sub),
            ] {
                table.each(|issuer, id, keep_until, at| {
                    out.push(LiveEntry {
                        kind,
                        issuer: issuer.to_owned(),
                        id: id.to_owned(),
                        at: *at,
                        keep_until,
                    });
                });
            }
            revocations.sessions.each(|issuer, id, keep_until, ()| {
                out.push(LiveEntry {
                    kind: LiveKind::Session,
                    issuer: issuer.to_owned(),
                    id: id.to_owned(),
                    at: 0,
                    keep_until,
                });
            });
        }
        self.lock_jtis().each(|issuer, id, keep_until, ()| {
            out.push(LiveEntry {
                kind: LiveKind::Jti,
                issuer: issuer.to_owned(),
                id: id.to_owned(),
                at: 0,
                keep_until,
            });
        });
        out
    }

    fn lock_revocations(&self) -> MutexGuard<'_, Revocations> {
        self.revocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_jtis(&self) -> MutexGuard<'_, Table<()>> {
        self.jtis.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryRevocationStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (capacity, sids, subs, sessions) = {
            let revocations = self.lock_revocations();
            (
                revocations.by_sid.capacity,
                revocations.by_sid.len,
                revocations.by_sub.len,
                revocations.sessions.len,
            )
        };
        let jtis = self.lock_jtis().len;
        f.debug_struct("MemoryRevocationStore")
            .field("capacity", &capacity)
            .field("revoked_sids", &sids)
            .field("revoked_subs", &subs)
            .field("revoked_sessions", &sessions)
            .field("seen_jtis", &jtis)
            .finish()
    }
}

impl RevocationStore for MemoryRevocationStore {
    fn revoke(&self, revocation: Revocation, keep_until: u64) {
        self.record(revocation, keep_until);
    }

    fn is_revoked(
        &self,
        issuer: &str,
        sid: Option<&str>,
        sub: &str,
        created_at: u64,
        now: u64,
    ) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.saw(now);
        let revocations = self.lock_revocations();
        let covers = |at: &u64| created_at <= *at;
        sid.and_then(|sid| revocations.by_sid.get(issuer, sid, now))
            .is_some_and(covers)
            || revocations.by_sub.get(issuer, sub, now).is_some_and(covers)
    }

    fn revoke_session(&self, issuer: &str, session_id: &str, keep_until: u64) {
        self.record_session(issuer, session_id, keep_until);
    }

    fn is_session_revoked(&self, issuer: &str, session_id: &str, now: u64) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        self.saw(now);
        self.lock_revocations()
            .sessions
            .get(issuer, session_id, now)
            .is_some()
    }

    fn first_use_of_jti(&self, issuer: &str, jti: &str, keep_until: u64, now: u64) -> bool {
        self.saw(now);
        let mut jtis = self.lock_jtis();
        if jtis.get(issuer, jti, now).is_some() {
            return false;
        }
        jtis.upsert(issuer, jti, keep_until, (), now, |_, ()| false);
        true
    }
}

/// Entries keyed by issuer and an id, bounded, with an index by expiry so that expired
/// entries and (when full) the soonest-expiring one are found without a scan.
struct Table<V> {
    kind: &'static str,
    capacity: usize,
    len: usize,
    /// issuer → id → entry; nested so that lookups take `&str` keys (no allocation).
    map: HashMap<Arc<str>, HashMap<Arc<str>, Slot<V>>>,
    /// `(keep_until, issuer, id)` of every entry in `map`.
    expiry: BTreeSet<(u64, Arc<str>, Arc<str>)>,
}

struct Slot<V> {
    keep_until: u64,
    value: V,
}

impl<V> Table<V> {
    fn new(kind: &'static str, capacity: usize) -> Self {
        Self {
            kind,
            capacity,
            len: 0,
            map: HashMap::new(),
            expiry: BTreeSet::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry's value while it is live (`now < keep_until`).
    fn get(&self, issuer: &str, id: &str, now: u64) -> Option<&V> {
        let slot = self.map.get(issuer)?.get(id)?;
        (slot.keep_until > now).then_some(&slot.value)
    }

    /// Every entry: issuer, id, `keep_until`, value.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn each(&self, mut f: impl FnMut(&str, &str, u64, &V)) {
        for (issuer, ids) in &self.map {
            for (id, slot) in ids {
                f(issuer, id, slot.keep_until, &slot.value);
            }
        }
    }

    /// Inserts an entry, or merges it into the existing one (the later `keep_until` wins;
    /// `merge` says whether it changed the value). Drops the entries expired by `now` first;
    /// when still full, evicts the entry that expires soonest. An entry already expired is not
    /// inserted. Whether the table changed: a new entry, a changed value or a later
    /// `keep_until`.
    fn upsert(
        &mut self,
        issuer: &str,
        id: &str,
        keep_until: u64,
        value: V,
        now: u64,
        merge: impl FnOnce(&mut V, V) -> bool,
    ) -> bool {
        self.drop_expired(now);
        if keep_until <= now {
            return false;
        }
        let issuer_key = match self.map.get_key_value(issuer) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(issuer),
        };
        if let Some(ids) = self.map.get_mut(issuer) {
            if let Some((id_key, mut slot)) = ids.remove_entry(id) {
                let mut changed = merge(&mut slot.value, value);
                if keep_until > slot.keep_until {
                    changed = true;
                    let old = (
                        slot.keep_until,
                        Arc::clone(&issuer_key),
                        Arc::clone(&id_key),
                    );
                    self.expiry.remove(&old);
                    self.expiry
                        .insert((keep_until, issuer_key, Arc::clone(&id_key)));
                    slot.keep_until = keep_until;
                }
                ids.insert(id_key, slot);
                return changed;
            }
        }
        if self.len >= self.capacity {
            if let Some((soonest, evicted_issuer, evicted_id)) = self.expiry.pop_first() {
                tracing::warn!(
                    kind = self.kind,
                    capacity = self.capacity,
                    evicted_keep_until = soonest,
                    "revocation store is full of live entries; evicted the one that \
                     expires soonest (raise its capacity)"
                );
                self.remove(&evicted_issuer, &evicted_id);
            }
        }
        let id_key: Arc<str> = Arc::from(id);
        self.expiry
            .insert((keep_until, Arc::clone(&issuer_key), Arc::clone(&id_key)));
        self.map
            .entry(issuer_key)
            .or_default()
            .insert(id_key, Slot { keep_until, value });
        self.len += 1;
        true
    }

    /// Drops every entry with `keep_until <= now`, soonest first.
    fn drop_expired(&mut self, now: u64) {
        while self
            .expiry
            .first()
            .is_some_and(|(keep_until, _, _)| *keep_until <= now)
        {
            if let Some((_, issuer, id)) = self.expiry.pop_first() {
                self.remove(&issuer, &id);
            }
        }
    }

    /// Removes an entry from `map` (not from `expiry`).
    fn remove(&mut self, issuer: &str, id: &str) {
        if let Some(ids) = self.map.get_mut(issuer) {
            if ids.remove(id).is_some() {
                self.len -= 1;
            }
            if ids.is_empty() {
                self.map.remove(issuer);
            }
        }
    }
}

/// A shared store: one `Arc` of a store given to several layers (or kept by the app to
/// inspect) is still one store.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use tower_oidc::{MemoryRevocationStore, RevocationStore};
///
/// let shared = Arc::new(MemoryRevocationStore::default());
/// fn takes(_: impl RevocationStore) {}
/// takes(shared.clone());
/// takes(shared);
/// ```
impl<T: RevocationStore + ?Sized> RevocationStore for std::sync::Arc<T> {
    fn revoke(&self, revocation: Revocation, keep_until: u64) {
        (**self).revoke(revocation, keep_until);
    }

    fn is_revoked(
        &self,
        issuer: &str,
        sid: Option<&str>,
        sub: &str,
        created_at: u64,
        now: u64,
    ) -> bool {
        (**self).is_revoked(issuer, sid, sub, created_at, now)
    }

    fn first_use_of_jti(&self, issuer: &str, jti: &str, keep_until: u64, now: u64) -> bool {
        (**self).first_use_of_jti(issuer, jti, keep_until, now)
    }

    fn revoke_session(&self, issuer: &str, session_id: &str, keep_until: u64) {
        (**self).revoke_session(issuer, session_id, keep_until);
    }

    fn is_session_revoked(&self, issuer: &str, session_id: &str, now: u64) -> bool {
        (**self).is_session_revoked(issuer, session_id, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://id.example.com";

    const OTHER_ISS: &str = "https://other.example.com";
    /// When the logout happened, and how long the revocation is kept.
    const AT: u64 = 1_000;
    const KEEP: u64 = 10_000;

    fn revocation(sid: Option<&str>, sub: Option<&str>) -> Revocation {
        Revocation {
            issuer: ISS.to_owned(),
            sid: sid.map(str::to_owned),
            sub: sub.map(str::to_owned),
            at: AT,
        }
    }

    fn lens(store: &MemoryRevocationStore) -> (usize, usize, usize) {
        let revocations = store.lock_revocations();
        for table in [&revocations.by_sid, &revocations.by_sub] {
            table.assert_consistent();
        }
        revocations.sessions.assert_consistent();
        let jtis = store.lock_jtis();
        jtis.assert_consistent();
        (revocations.by_sid.len, revocations.by_sub.len, jtis.len)
    }

    impl<V> Table<V> {
        #[track_caller]
        fn assert_consistent(&self) {
            let in_map: usize = self.map.values().map(HashMap::len).sum();
            assert_eq!(in_map, self.len);
            assert_eq!(self.expiry.len(), self.len);
            assert!(self.len <= self.capacity);
            assert!(self.map.values().all(|ids| !ids.is_empty()));
            for (keep_until, issuer, id) in &self.expiry {
                assert_eq!(self.map[issuer][id].keep_until, *keep_until);
            }
        }
    }

    #[test]
    fn recording_says_whether_the_store_changed() {
        let store = MemoryRevocationStore::default();
        assert!(store.record_session(ISS, "id-1", KEEP), "new");
        assert!(!store.record_session(ISS, "id-1", KEEP), "known");
        assert!(!store.record_session(ISS, "id-1", KEEP - 1), "not later");
        assert!(store.record_session(ISS, "id-1", KEEP + 1), "kept longer");
        assert!(store.record(revocation(None, Some("alice")), KEEP), "new");
        assert!(
            !store.record(revocation(None, Some("alice")), KEEP),
            "known"
        );
        let later = Revocation {
            at: AT + 1,
            ..revocation(None, Some("alice"))
        };
        assert!(store.record(later, KEEP), "a later `at`");
        assert_eq!(store.live_entries().len(), 2);
    }

    #[test]
    fn sid_revocation_hits_only_that_session_of_that_issuer() {
        let store = MemoryRevocationStore::default();
        store.revoke(revocation(Some("s1"), None), KEEP);
        let now = AT + 5;
        assert!(store.is_revoked(ISS, Some("s1"), "alice", AT - 100, now));
        assert!(
            store.is_revoked(ISS, Some("s1"), "alice", AT, now),
            "at `at`"
        );
        assert!(
            !store.is_revoked(ISS, Some("s1"), "alice", AT + 1, now),
            "later"
        );
        assert!(!store.is_revoked(ISS, Some("s2"), "alice", AT - 100, now));
        assert!(!store.is_revoked(ISS, None, "alice", AT - 100, now));
        assert!(!store.is_revoked(OTHER_ISS, Some("s1"), "alice", AT - 100, now));
    }

    #[test]
    fn sid_with_sub_ends_only_that_session() {
        let store = MemoryRevocationStore::default();
        store.revoke(revocation(Some("s1"), Some("alice")), KEEP);
        assert!(store.is_revoked(ISS, Some("s1"), "alice", AT, AT));
        assert!(!store.is_revoked(ISS, Some("s2"), "alice", AT, AT));
        assert!(!store.is_revoked(ISS, None, "alice", AT, AT));
        assert_eq!(lens(&store), (1, 0, 0));
    }

    #[test]
    fn sub_revocation_hits_every_earlier_session_of_that_user() {
        let store = MemoryRevocationStore::default();
        store.revoke(revocation(None, Some("alice")), KEEP);
        let now = AT + 5;
        assert!(store.is_revoked(ISS, Some("s1"), "alice", AT - 100, now));
        assert!(store.is_revoked(ISS, Some("s2"), "alice", AT, now));
        assert!(store.is_revoked(ISS, None, "alice", AT - 1, now));
        assert!(
            !store.is_revoked(ISS, Some("s3"), "alice", AT + 1, now),
            "new login"
        );
        assert!(!store.is_revoked(ISS, None, "bob", AT - 100, now));
        assert!(!store.is_revoked(OTHER_ISS, Some("s1"), "alice", AT - 100, now));
    }

    #[test]
    fn revoking_again_keeps_the_later_time() {
        let store = MemoryRevocationStore::default();
        store.revoke(revocation(None, Some("alice")), KEEP);
        store.revoke(
            Revocation {
                at: AT + 50,
                ..revocation(None, Some("alice"))
            },
            KEEP + 50,
        );
        store.revoke(
            Revocation {
                at: AT - 50,
                ..revocation(None, Some("alice"))
            },
            KEEP - 50,
        );
        assert!(store.is_revoked(ISS, None, "alice", AT + 50, AT + 60));
        assert!(store.is_revoked(ISS, None, "alice", AT + 50, KEEP + 49));
        assert!(!store.is_revoked(ISS, None, "alice", AT + 50, KEEP + 50));
        assert_eq!(lens(&store), (0, 1, 0));
        // Neither sid nor sub: nothing to record (and the expired entry is dropped).
        store.revoke(revocation(None, None), KEEP * 2);
        assert_eq!(lens(&store), (0, 0, 0));
        assert!(!store.any.load(Ordering::Relaxed));
    }

    #[test]
    fn revocations_expire() {
        let store = MemoryRevocationStore::default();
        store.revoke(revocation(Some("s1"), None), KEEP);
        store.revoke(revocation(None, Some("alice")), KEEP + 100);
        assert!(store.is_revoked(ISS, Some("s1"), "bob", AT, KEEP - 1));
        assert!(
            !store.is_revoked(ISS, Some("s1"), "bob", AT, KEEP),
            "expired"
        );
        assert!(store.is_revoked(ISS, None, "alice", AT, KEEP));
        assert_eq!(lens(&store), (1, 1, 0));
        // The next insertion drops what expired by the latest time the store was told.
        store.revoke(revocation(Some("s2"), None), KEEP * 2);
        assert_eq!(lens(&store), (1, 1, 0));
        assert!(store.is_revoked(ISS, Some("s2"), "bob", AT, KEEP + 200));
        store.revoke(revocation(Some("s3"), None), KEEP * 2);
        assert_eq!(lens(&store), (2, 0, 0), "both kinds are cleaned");
        // Dead on arrival: not stored.
        store.revoke(revocation(Some("s4"), None), KEEP);
        assert_eq!(lens(&store), (2, 0, 0));
    }

    #[test]
    fn jti_replay_is_detected_until_expiry() {
        let store = MemoryRevocationStore::default();
        assert!(store.first_use_of_jti(ISS, "j1", 500, 100));
        assert!(!store.first_use_of_jti(ISS, "j1", 500, 101), "replay");
        assert!(!store.first_use_of_jti(ISS, "j1", 600, 499), "replay");
        assert!(store.first_use_of_jti(ISS, "j2", 500, 101), "distinct jti");
        assert!(
            store.first_use_of_jti(OTHER_ISS, "j1", 500, 101),
            "other issuer"
        );
        assert_eq!(lens(&store).2, 3);
        assert!(
            store.first_use_of_jti(ISS, "j1", 900, 500),
            "forgotten at expiry"
        );
        assert_eq!(lens(&store).2, 1, "expired entries dropped");
        assert!(!store.first_use_of_jti(ISS, "j1", 900, 501));
        // Revocations are a separate kind.
        assert!(!store.is_revoked(ISS, Some("j1"), "j1", 0, 501));
    }

    #[test]
    fn full_store_drops_expired_first_then_the_soonest_to_expire() {
        let store = MemoryRevocationStore::with_capacity(2);
        store.revoke(revocation(Some("a"), None), 100);
        store.revoke(revocation(Some("b"), None), 300);
        store.revoke(revocation(Some("c"), None), 200);
        let now = 50;
        assert!(!store.is_revoked(ISS, Some("a"), "u", 0, now), "evicted");
        assert!(store.is_revoked(ISS, Some("b"), "u", 0, now));
        assert!(store.is_revoked(ISS, Some("c"), "u", 0, now));
        // At 250 `c` has expired: it makes room, `b` stays.
        assert!(!store.is_revoked(ISS, Some("c"), "u", 0, 250));
        store.revoke(revocation(Some("d"), None), 400);
        assert!(store.is_revoked(ISS, Some("b"), "u", 0, 250));
        assert!(store.is_revoked(ISS, Some("d"), "u", 0, 250));
        assert_eq!(lens(&store), (2, 0, 0));

        let jtis = MemoryRevocationStore::with_capacity(0);
        assert!(jtis.first_use_of_jti(ISS, "j1", 100, 0));
        assert!(
            !jtis.first_use_of_jti(ISS, "j1", 100, 0),
            "capacity is at least one"
        );
        assert!(jtis.first_use_of_jti(ISS, "j2", 200, 0));
        assert_eq!(lens(&jtis).2, 1);
    }

    #[test]
    fn bounded_under_a_million_distinct_inserts() {
        let capacity = 64;
        let store = MemoryRevocationStore::with_capacity(capacity);
        for i in 0..1_000_000u64 {
            let id = i.to_string();
            let keep_until = 1_000 + i;
            let (sid, sub) = if i % 2 == 0 {
                (Some(id.as_str()), None)
            } else {
                (None, Some(id.as_str()))
            };
            let issuer = if i % 3 == 0 { ISS } else { OTHER_ISS };
            store.revoke(
                Revocation {
                    issuer: issuer.to_owned(),
                    sid: sid.map(str::to_owned),
                    sub: sub.map(str::to_owned),
                    at: i,
                },
                keep_until,
            );
            assert!(store.first_use_of_jti(issuer, &id, keep_until, 0));
        }
        let (sids, subs, jtis) = lens(&store);
        assert_eq!((sids, subs, jtis), (capacity, capacity, capacity));
        // The newest entries survive (they expire last): 999_999 is a `sub` of ISS,
        // 999_998 a `sid` of OTHER_ISS.
        assert!(store.is_revoked(ISS, None, "999999", 0, 0));
        assert!(store.is_revoked(OTHER_ISS, Some("999998"), "x", 0, 0));
        assert!(!store.first_use_of_jti(ISS, "999999", u64::MAX, 0));
        assert!(!store.is_revoked(ISS, Some("0"), "x", 0, 0), "evicted");
        assert!(!store.is_revoked(OTHER_ISS, None, "1", 0, 0), "evicted");
    }

    #[test]
    fn nothing_revoked_needs_no_lock() {
        let store = Arc::new(MemoryRevocationStore::default());
        assert!(!store.any.load(Ordering::Relaxed));
        // Hold the lock: `is_revoked` must answer without it.
        let guard = store.lock_revocations();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = Arc::clone(&store);
        std::thread::spawn(move || {
            let _ = tx.send(
                reader.is_revoked(ISS, Some("s1"), "alice", 0, 10)
                    || reader.is_session_revoked(ISS, "id-1", 10),
            );
        });
        let answer = rx.recv_timeout(std::time::Duration::from_secs(10));
        drop(guard);
        assert_eq!(answer, Ok(false));

        store.revoke(revocation(Some("s1"), None), KEEP);
        assert!(store.any.load(Ordering::Relaxed));
        assert!(store.is_revoked(ISS, Some("s1"), "alice", 0, KEEP - 1));
        assert!(
            !store.is_revoked(ISS, Some("s1"), "alice", 0, KEEP),
            "expired"
        );
        // Once everything has expired (and was dropped), the fast path is back.
        store.revoke(revocation(Some("s2"), None), KEEP);
        assert!(!store.any.load(Ordering::Relaxed));
        assert_eq!(lens(&store), (0, 0, 0));
    }

    #[test]
    fn poisoned_lock_is_tolerated() {
        let store = Arc::new(MemoryRevocationStore::default());
        store.revoke(revocation(Some("s1"), None), KEEP);
        let poisoner = Arc::clone(&store);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock_revocations();
            let _jtis = poisoner.lock_jtis();
            panic!("poison the locks");
        })
        .join();
        assert!(store.revocations.is_poisoned() && store.jtis.is_poisoned());
        assert!(store.is_revoked(ISS, Some("s1"), "alice", 0, 1));
        store.revoke(revocation(None, Some("alice")), KEEP);
        assert!(store.is_revoked(ISS, Some("s9"), "alice", 0, 1));
        assert!(store.first_use_of_jti(ISS, "j1", KEEP, 1));
        assert!(format!("{store:?}").contains("revoked_subs: 1"));
    }

    #[test]
    fn local_logout_revokes_only_that_session_until_its_deadline() {
        let store = MemoryRevocationStore::with_capacity(2);
        store.revoke_session(ISS, "id-1", KEEP);
        assert!(store.is_session_revoked(ISS, "id-1", AT));
        assert!(store.is_session_revoked(ISS, "id-1", KEEP - 1));
        assert!(!store.is_session_revoked(ISS, "id-1", KEEP), "expired");
        assert!(
            !store.is_session_revoked(ISS, "id-2", AT),
            "another session"
        );
        assert!(
            !store.is_session_revoked(OTHER_ISS, "id-1", AT),
            "another issuer"
        );
        // Not a revocation of a provider `sid` or `sub` of that name.
        assert!(!store.is_revoked(ISS, Some("id-1"), "id-1", 0, AT));
        assert_eq!(lens(&store), (0, 0, 0), "not among the provider's sids");
        assert_eq!(store.lock_revocations().sessions.len, 1);
        // Bounded on their own.
        store.revoke_session(ISS, "id-2", KEEP + 1);
        store.revoke_session(ISS, "id-3", KEEP + 2);
        assert_eq!(store.lock_revocations().sessions.len, 2);
        assert!(!store.is_session_revoked(ISS, "id-1", AT), "evicted");
    }

    #[test]
    fn local_logouts_never_evict_the_providers_revocations() {
        let store = MemoryRevocationStore::with_capacity(2);
        // Back-channel logouts that expire sooner than any local logout below.
        store.revoke(revocation(Some("s1"), None), KEEP);
        store.revoke(revocation(None, Some("alice")), KEEP);
        // A user logging in and out again and again.
        for i in 0..1_000u64 {
            store.revoke_session(ISS, &format!("id-{i}"), KEEP * 2 + i);
        }
        assert!(store.is_revoked(ISS, Some("s1"), "bob", AT, AT + 1));
        assert!(store.is_revoked(ISS, Some("s9"), "alice", AT, AT + 1));
        assert_eq!(lens(&store), (1, 1, 0));
        let sessions = store.lock_revocations().sessions.len;
        assert_eq!(sessions, 2, "local logouts are bounded by the capacity too");
        assert!(
            store.is_session_revoked(ISS, "id-999", AT + 1),
            "the newest stays"
        );
        assert!(!store.is_session_revoked(ISS, "id-0", AT + 1), "evicted");
        // And the other way round: provider revocations never evict local logouts.
        for i in 0..1_000u64 {
            store.revoke(revocation(Some(&format!("p{i}")), None), KEEP + i);
        }
        assert!(store.is_session_revoked(ISS, "id-999", AT + 1));
        assert!(store.is_session_revoked(ISS, "id-998", AT + 1));
    }

    /// A store written before local logouts existed: only the required methods, over a
    /// memory store; the local-logout methods are the trait's defaults.
    #[derive(Default)]
    struct Minimal(MemoryRevocationStore);

    impl RevocationStore for Minimal {
        fn revoke(&self, revocation: Revocation, keep_until: u64) {
            self.0.revoke(revocation, keep_until);
        }
        fn is_revoked(
            &self,
            issuer: &str,
            sid: Option<&str>,
            sub: &str,
            created_at: u64,
            now: u64,
        ) -> bool {
            self.0.is_revoked(issuer, sid, sub, created_at, now)
        }
        fn first_use_of_jti(&self, issuer: &str, jti: &str, keep_until: u64, now: u64) -> bool {
            self.0.first_use_of_jti(issuer, jti, keep_until, now)
        }
    }

    /// A store written before local logouts existed: the default methods go through its
    /// `revoke`/`is_revoked`, also behind an `Arc`.
    #[test]
    fn default_local_logout_goes_through_revoke_and_is_revoked() {
        let store: Arc<dyn RevocationStore> = Arc::new(Minimal::default());
        let shared = Arc::new(Arc::clone(&store));
        assert!(!shared.is_session_revoked(ISS, "id-1", AT));
        shared.revoke_session(ISS, "id-1", KEEP);
        assert!(store.is_session_revoked(ISS, "id-1", AT));
        assert!(shared.is_session_revoked(ISS, "id-1", AT));
        assert!(!shared.is_session_revoked(ISS, "id-2", AT));
        assert!(!shared.is_session_revoked(ISS, "id-1", KEEP));
    }

    /// The default local logout hands the store times a signed 64-bit column can hold, with
    /// `at` covering the session whenever it was created.
    #[test]
    fn default_local_logout_times_fit_an_i64() {
        #[derive(Default)]
        struct Recording(Mutex<Vec<(Revocation, u64)>>);
        impl RevocationStore for Recording {
            fn revoke(&self, revocation: Revocation, keep_until: u64) {
                self.0.lock().unwrap().push((revocation, keep_until));
            }
            fn is_revoked(&self, _: &str, _: Option<&str>, _: &str, _: u64, _: u64) -> bool {
                false
            }
            fn first_use_of_jti(&self, _: &str, _: &str, _: u64, _: u64) -> bool {
                true
            }
        }
        let store = Recording::default();
        let created_at = 1_700_000_000;
        let deadline = created_at + 8 * 3600;
        store.revoke_session(ISS, "id-1", deadline);
        store.revoke_session(ISS, "id-2", u64::MAX);
        let recorded = store.0.lock().unwrap();
        let (first, keep_until) = &recorded[0];
        assert!(i64::try_from(first.at).is_ok(), "at = {}", first.at);
        assert!(first.at >= created_at, "covers the session");
        assert_eq!((first.at, *keep_until), (deadline, deadline));
        let (second, keep_until) = &recorded[1];
        assert!(i64::try_from(second.at).is_ok() && i64::try_from(*keep_until).is_ok());
        // And a memory store behind the default still refuses the session until its deadline.
        let store = Minimal::default();
        store.revoke_session(ISS, "id-1", deadline);
        assert!(store.is_session_revoked(ISS, "id-1", deadline - 1));
        assert!(!store.is_session_revoked(ISS, "id-1", deadline));
    }

    #[test]
    fn usable_as_a_shared_trait_object() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<MemoryRevocationStore>();
        let store: Arc<dyn RevocationStore> = Arc::new(MemoryRevocationStore::new());
        store.revoke(revocation(None, Some("alice")), KEEP);
        assert!(store.is_revoked(ISS, None, "alice", AT, AT));
        assert_eq!(
            format!("{:?}", MemoryRevocationStore::with_capacity(5)),
            "MemoryRevocationStore { capacity: 5, revoked_sids: 0, revoked_subs: 0, \
             revoked_sessions: 0, seen_jtis: 0 }"
        );
    }
}
