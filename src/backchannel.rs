//! OpenID Connect Back-Channel Logout 1.0: the rules a logout token's claims must follow
//! (§2.4, §2.6).
//!
//! The provider posts a logout token to the back-channel endpoint; its signature is checked
//! with the provider's keys first (as for an ID token), then [`check_logout_claims`] and
//! [`check_logout_header_typ`] decide whether it is a logout token for this client at all.
//!
//! Sessions live in cookies, so a logout cannot delete them; it is recorded in a
//! [`RevocationStore`] instead, which every session request consults.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value};

/// The member of `events` that makes a JWT a back-channel logout token (§2.4).
pub(crate) const BACKCHANNEL_LOGOUT_EVENT: &str =
    "http://schemas.openid.net/event/backchannel-logout";

/// The claims of a logout token that passed [`check_logout_claims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogoutClaims {
    /// The provider's session that ended; `None` means every session of `sub`.
    pub(crate) sid: Option<String>,
    /// The user whose session(s) ended.
    pub(crate) sub: Option<String>,
    /// The token's id, for replay detection.
    pub(crate) jti: String,
    /// When the provider issued the token (unix seconds).
    pub(crate) iat: u64,
    /// When the token expires, if it says so (unix seconds).
    pub(crate) exp: Option<u64>,
}

/// Whether a logout token's `typ` header is acceptable: absent, `JWT` or `logout+jwt`
/// (case-insensitive, with or without the `application/` prefix, RFC 7515 §4.1.9). Any other
/// type (e.g. `at+jwt`, an access token) is another kind of token.
pub(crate) fn check_logout_header_typ(typ: Option<&str>) -> bool {
    let Some(typ) = typ else {
        return true;
    };
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case("jwt") || bare.eq_ignore_ascii_case("logout+jwt")
}

/// Checks the claims of a logout token whose signature was already verified (§2.4, §2.6).
///
/// `skew` is the tolerated clock difference; `max_age` how old (by `iat`) a token may be, so
/// a captured token cannot be replayed later even when it has no `exp`. The error is a short
/// reason, fit for a log line and an `error_description` (ASCII, no quotes or backslashes).
pub(crate) fn check_logout_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
    now: u64,
    skew: u64,
    max_age: u64,
) -> Result<LogoutClaims, &'static str> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err("logout token issuer (`iss`) is not the provider");
    }
    let for_us = match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(list)) => list.iter().any(|aud| aud.as_str() == Some(client_id)),
        _ => false,
    };
    if !for_us {
        return Err("logout token audience (`aud`) does not include this client");
    }

    let iat = match claims.get("iat") {
        None => return Err("logout token has no issue time (`iat`)"),
        Some(iat) => numeric_date(iat).ok_or("logout token `iat` is not a number")?,
    };
    if iat > now.saturating_add(skew) {
        return Err("logout token is issued in the future (`iat`)");
    }
    if now > iat.saturating_add(max_age).saturating_add(skew) {
        return Err("logout token is too old (`iat`)");
    }
    let exp = match claims.get("exp") {
        None => None,
        Some(exp) => Some(numeric_date(exp).ok_or("logout token `exp` is not a number")?),
    };
    if exp.is_some_and(|exp| now > exp.saturating_add(skew)) {
        return Err("logout token has expired (`exp`)");
    }

    match claims.get("events") {
        Some(Value::Object(events)) => match events.get(BACKCHANNEL_LOGOUT_EVENT) {
            Some(Value::Object(_)) => {}
            Some(_) => return Err("logout token's back-channel logout event is not an object"),
            None => return Err("logout token `events` lacks the back-channel logout event"),
        },
        Some(_) => return Err("logout token `events` is not an object"),
        None => return Err("logout token has no `events`"),
    }
    if claims.contains_key("nonce") {
        // An ID token carries the login's nonce; a logout token must not (§2.4).
        return Err("logout token must not contain `nonce`");
    }
    let jti = match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() => jti.clone(),
        _ => return Err("logout token has no token id (`jti`)"),
    };
    let sid = optional_id(claims, "sid").ok_or("logout token `sid` is not a non-empty string")?;
    let sub = optional_id(claims, "sub").ok_or("logout token `sub` is not a non-empty string")?;
    if sid.is_none() && sub.is_none() {
        return Err("logout token has neither `sid` nor `sub`");
    }
    Ok(LogoutClaims {
        sid,
        sub,
        jti,
        iat,
        exp,
    })
}

/// A JWT NumericDate: non-negative seconds, possibly with a fraction (dropped).
fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        let secs = value.as_f64()?;
        // `as` saturates; the range check keeps negative and non-finite values out.
        (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
    })
}

/// `Some(None)` when absent, `Some(Some(id))` for a non-empty string, `None` otherwise.
fn optional_id(claims: &Map<String, Value>, name: &str) -> Option<Option<String>> {
    match claims.get(name) {
        None => Some(None),
        Some(Value::String(id)) if !id.is_empty() => Some(Some(id.clone())),
        Some(_) => None,
    }
}

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
/// is how a provider's logout reaches them. Implement it over Redis or a database to share
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
}

/// Entries of each kind (sid, sub, jti) a [`MemoryRevocationStore`] keeps by default.
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
/// `sub`s, seen `jti`s; 100 000 each by default, see [`with_capacity`](Self::with_capacity)).
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
    /// `sub`s, seen `jti`s); at least one. Nothing is allocated up front.
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
        let (capacity, sids, subs) = {
            let revocations = self.lock_revocations();
            (
                revocations.by_sid.capacity,
                revocations.by_sid.len,
                revocations.by_sub.len,
            )
        };
        let jtis = self.lock_jtis().len;
        f.debug_struct("MemoryRevocationStore")
            .field("capacity", &capacity)
            .field("revoked_sids", &sids)
            .field("revoked_subs", &subs)
            .field("seen_jtis", &jtis)
            .finish()
    }
}

impl RevocationStore for MemoryRevocationStore {
    fn revoke(&self, revocation: Revocation, keep_until: u64) {
        let Revocation {
            issuer,
            sid,
            sub,
            at,
        } = revocation;
        let now = self.latest_now.load(Ordering::Relaxed);
        let mut revocations = self.lock_revocations();
        let Revocations { by_sid, by_sub } = &mut *revocations;
        by_sid.drop_expired(now);
        by_sub.drop_expired(now);
        let target = match (sid, sub) {
            (Some(sid), _) => Some((by_sid, sid)),
            (None, Some(sub)) => Some((by_sub, sub)),
            (None, None) => None,
        };
        if let Some((table, id)) = target {
            table.upsert(&issuer, &id, keep_until, at, now, |old, new| {
                *old = (*old).max(new);
            });
        }
        let any = !revocations.by_sid.is_empty() || !revocations.by_sub.is_empty();
        self.any.store(any, Ordering::Release);
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

    fn first_use_of_jti(&self, issuer: &str, jti: &str, keep_until: u64, now: u64) -> bool {
        self.saw(now);
        let mut jtis = self.lock_jtis();
        if jtis.get(issuer, jti, now).is_some() {
            return false;
        }
        jtis.upsert(issuer, jti, keep_until, (), now, |_, _| {});
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

    /// Inserts an entry, or merges it into the existing one (the later `keep_until` wins).
    /// Drops the entries expired by `now` first; when still full, evicts the entry that
    /// expires soonest. An entry already expired is not inserted.
    fn upsert(
        &mut self,
        issuer: &str,
        id: &str,
        keep_until: u64,
        value: V,
        now: u64,
        merge: impl FnOnce(&mut V, V),
    ) {
        self.drop_expired(now);
        if keep_until <= now {
            return;
        }
        let issuer_key = match self.map.get_key_value(issuer) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(issuer),
        };
        if let Some(ids) = self.map.get_mut(issuer) {
            if let Some((id_key, mut slot)) = ids.remove_entry(id) {
                merge(&mut slot.value, value);
                if keep_until > slot.keep_until {
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
                return;
            }
        }
        if self.len >= self.capacity {
            if let Some((soonest, evicted_issuer, evicted_id)) = self.expiry.pop_first() {
                tracing::warn!(
                    kind = self.kind,
                    capacity = self.capacity,
                    evicted_keep_until = soonest,
                    "back-channel logout store is full of live entries; evicted the one that \
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://id.example.com";
    const CLIENT: &str = "my-client";
    const NOW: u64 = 1_700_000_000;
    const SKEW: u64 = 60;
    const MAX_AGE: u64 = 300;

    fn valid() -> Map<String, Value> {
        let claims = json!({
            "iss": ISS,
            "aud": CLIENT,
            "iat": NOW - 10,
            "exp": NOW + 110,
            "jti": "token-1",
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
            "sid": "session-1",
            "sub": "user-1",
        });
        match claims {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn with(name: &str, value: Value) -> Map<String, Value> {
        let mut claims = valid();
        claims.insert(name.to_owned(), value);
        claims
    }

    fn without(name: &str) -> Map<String, Value> {
        let mut claims = valid();
        claims.remove(name);
        claims
    }

    fn check(claims: &Map<String, Value>) -> Result<LogoutClaims, &'static str> {
        check_logout_claims(claims, ISS, CLIENT, NOW, SKEW, MAX_AGE)
    }

    #[track_caller]
    fn rejected(claims: Map<String, Value>, reason: &str) {
        assert_eq!(check(&claims), Err(reason));
    }

    #[test]
    fn accepts_sid_and_sub() {
        assert_eq!(
            check(&valid()),
            Ok(LogoutClaims {
                sid: Some("session-1".into()),
                sub: Some("user-1".into()),
                jti: "token-1".into(),
                iat: NOW - 10,
                exp: Some(NOW + 110),
            })
        );
    }

    #[test]
    fn accepts_sid_only_and_sub_only() {
        let sid_only = check(&without("sub")).unwrap();
        assert_eq!(
            (sid_only.sid.as_deref(), sid_only.sub),
            (Some("session-1"), None)
        );
        let sub_only = check(&without("sid")).unwrap();
        assert_eq!(
            (sub_only.sid, sub_only.sub.as_deref()),
            (None, Some("user-1"))
        );
    }

    #[test]
    fn accepts_audience_list_absent_exp_and_fractional_dates() {
        assert!(check(&with("aud", json!(["other", CLIENT]))).is_ok());
        assert_eq!(check(&without("exp")).unwrap().exp, None);
        let mut fractional = with("iat", json!((NOW - 10) as f64 + 0.5));
        fractional.insert("exp".into(), json!((NOW + 110) as f64 + 0.25));
        let claims = check(&fractional).unwrap();
        assert_eq!((claims.iat, claims.exp), (NOW - 10, Some(NOW + 110)));
        // Extra events and claims are fine.
        let mut events = valid();
        events["events"]["https://example.com/other"] = json!({});
        events.insert("extra".into(), json!(1));
        assert!(check(&events).is_ok());
    }

    #[test]
    fn rejects_another_issuer() {
        let reason = "logout token issuer (`iss`) is not the provider";
        rejected(with("iss", json!("https://evil.example.com")), reason);
        rejected(with("iss", json!(ISS.to_owned() + "/")), reason);
        rejected(with("iss", json!([ISS])), reason);
        rejected(without("iss"), reason);
    }

    #[test]
    fn rejects_another_audience() {
        let reason = "logout token audience (`aud`) does not include this client";
        rejected(with("aud", json!("other-client")), reason);
        rejected(with("aud", json!(["a", "b"])), reason);
        rejected(with("aud", json!([])), reason);
        rejected(with("aud", json!({ CLIENT: true })), reason);
        rejected(without("aud"), reason);
    }

    #[test]
    fn iat_is_required_not_future_not_stale() {
        rejected(without("iat"), "logout token has no issue time (`iat`)");
        rejected(
            with("iat", json!("1700000000")),
            "logout token `iat` is not a number",
        );
        rejected(with("iat", json!(-5)), "logout token `iat` is not a number");
        let future = "logout token is issued in the future (`iat`)";
        rejected(with("iat", json!(NOW + SKEW + 1)), future);
        assert!(
            check(&with("iat", json!(NOW + SKEW))).is_ok(),
            "within skew"
        );
        let stale = "logout token is too old (`iat`)";
        rejected(with("iat", json!(NOW - MAX_AGE - SKEW - 1)), stale);
        rejected(with("iat", json!(0)), stale);
        let mut edge = with("iat", json!(NOW - MAX_AGE - SKEW));
        edge.remove("exp");
        assert!(check(&edge).is_ok(), "as old as allowed");
    }

    #[test]
    fn rejects_expired() {
        let reason = "logout token has expired (`exp`)";
        rejected(with("exp", json!(NOW - SKEW - 1)), reason);
        rejected(with("exp", json!(0)), reason);
        assert!(
            check(&with("exp", json!(NOW - SKEW))).is_ok(),
            "within skew"
        );
        rejected(
            with("exp", json!(null)),
            "logout token `exp` is not a number",
        );
    }

    #[test]
    fn rejects_missing_jti() {
        let reason = "logout token has no token id (`jti`)";
        rejected(without("jti"), reason);
        rejected(with("jti", json!("")), reason);
        rejected(with("jti", json!(17)), reason);
    }

    #[test]
    fn rejects_without_the_logout_event() {
        rejected(without("events"), "logout token has no `events`");
        rejected(
            with("events", json!([BACKCHANNEL_LOGOUT_EVENT])),
            "logout token `events` is not an object",
        );
        rejected(
            with("events", json!(BACKCHANNEL_LOGOUT_EVENT)),
            "logout token `events` is not an object",
        );
        let lacks = "logout token `events` lacks the back-channel logout event";
        rejected(with("events", json!({})), lacks);
        rejected(
            with(
                "events",
                json!({ "http://schemas.openid.net/event/other": {} }),
            ),
            lacks,
        );
        let not_object = "logout token's back-channel logout event is not an object";
        for value in [json!(true), json!("yes"), json!([]), json!(null)] {
            rejected(
                with("events", json!({ BACKCHANNEL_LOGOUT_EVENT: value })),
                not_object,
            );
        }
    }

    #[test]
    fn rejects_neither_sid_nor_sub() {
        let mut claims = without("sid");
        claims.remove("sub");
        rejected(claims, "logout token has neither `sid` nor `sub`");
        rejected(
            with("sid", json!(42)),
            "logout token `sid` is not a non-empty string",
        );
        rejected(
            with("sub", json!("")),
            "logout token `sub` is not a non-empty string",
        );
        let mut null_sid = without("sub");
        null_sid.insert("sid".into(), json!(null));
        rejected(null_sid, "logout token `sid` is not a non-empty string");
    }

    #[test]
    fn rejects_nonce() {
        let reason = "logout token must not contain `nonce`";
        rejected(with("nonce", json!("n-0S6_WzA2Mj")), reason);
        rejected(with("nonce", json!(null)), reason);
    }

    #[test]
    fn reasons_fit_an_error_description() {
        // RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E.
        let cases = [
            with("iss", json!("x")),
            with("aud", json!("x")),
            without("iat"),
            with("iat", json!("x")),
            with("iat", json!(NOW + 1000)),
            with("iat", json!(0)),
            with("exp", json!("x")),
            with("exp", json!(0)),
            without("events"),
            with("events", json!({})),
            with("events", json!(1)),
            with("events", json!({ BACKCHANNEL_LOGOUT_EVENT: 1 })),
            with("nonce", json!("x")),
            without("jti"),
            with("sid", json!(1)),
            with("sub", json!(1)),
        ];
        for claims in cases {
            let reason = check(&claims).unwrap_err();
            assert!(
                reason
                    .bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
                "{reason}"
            );
        }
    }

    #[test]
    fn typ_header() {
        for ok in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("logout+jwt"),
            Some("Logout+JWT"),
            Some("application/logout+jwt"),
            Some("APPLICATION/JWT"),
        ] {
            assert!(check_logout_header_typ(ok), "{ok:?}");
        }
        for bad in [
            "at+jwt",
            "application/at+jwt",
            "secevent+jwt",
            "JOSE",
            "",
            "application/",
            "logout+jwt ",
            "jwt+logout",
        ] {
            assert!(!check_logout_header_typ(Some(bad)), "{bad}");
        }
    }

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
            let _ = tx.send(reader.is_revoked(ISS, Some("s1"), "alice", 0, 10));
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
    fn usable_as_a_shared_trait_object() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<MemoryRevocationStore>();
        let store: Arc<dyn RevocationStore> = Arc::new(MemoryRevocationStore::new());
        store.revoke(revocation(None, Some("alice")), KEEP);
        assert!(store.is_revoked(ISS, None, "alice", AT, AT));
        assert_eq!(
            format!("{:?}", MemoryRevocationStore::with_capacity(5)),
            "MemoryRevocationStore { capacity: 5, revoked_sids: 0, revoked_subs: 0, seen_jtis: 0 }"
        );
    }
}
