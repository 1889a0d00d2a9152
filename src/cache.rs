//! Per-provider caches that no flow owns: the verified bearer tokens (a bounded cache keyed
//! by a secret-keyed 128-bit pseudo-random function of the token, never the token itself, with the invalid ones
//! apart) and
//! the refresh single flight (one
//! refresh per refresh token however many requests need it at once, with the result kept for
//! a short grace window so that requests still carrying the previous cookie get the new
//! session instead of replaying a rotated refresh token).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::Aes256;
use polyval::universal_hash::UniversalHash;
use polyval::Polyval;

use crate::error::{AuthError, AuthErrorKind};
use crate::identity::Identity;
use crate::session::cookie::fill_random;
use crate::session::sessions::{unix_millis, Clock};

const SHARDS: usize = 16;

/// The SHA-256 of a token: the cache never keeps the token itself.
pub(crate) type TokenKey = [u8; 32];

/// The key of a bearer token in the [`TokenCache`]: see [`BearerKeys`].
pub(crate) type BearerKey = [u8; 16];

/// Makes the keys of bearer tokens: AES-256 of the POLYVAL hash of the token (its bytes, zero
/// padding, then a block with its length), under two random keys made when the cache is made,
/// which never leave the process.
///
/// A token seen before costs this instead of a SHA-256 of the token: POLYVAL (the hash of
/// AES-GCM-SIV) runs on the carry-less multiply instructions every x86-64 server has, at a
/// fraction of SHA-256's cost on CPUs without SHA extensions. POLYVAL under a secret key is an
/// almost universal hash: for two different tokens chosen without knowing the key, the chance
/// that they hash alike is at most (the longer one's length in 16-byte blocks + 1) / 2^128.
/// Encrypting the hash with AES makes the key a pseudo-random function of the token, so keys
/// reveal nothing of the hash key even if they were ever seen (they are not: keys are never
/// shown to anyone). The cache keeps the key, never the token.
pub(crate) struct BearerKeys {
    hash: Polyval,
    cipher: Aes256,
}

impl BearerKeys {
    pub(crate) fn new() -> Self {
        let mut h = [0u8; 16];
        fill_random(&mut h);
        let mut k = [0u8; 32];
        fill_random(&mut k);
        Self {
            hash: Polyval::new(&h.into()),
            cipher: Aes256::new(&k.into()),
        }
    }

    /// The key of `token`.
    pub(crate) fn key(&self, token: &[u8]) -> BearerKey {
        let mut hash = self.hash.clone();
        hash.update_padded(token);
        let mut length = [0u8; 16];
        length[..8].copy_from_slice(&(token.len() as u64).to_le_bytes());
        hash.update(&[length.into()]);
        let mut block = hash.finalize();
        self.cipher.encrypt_block(&mut block);
        block.into()
    }
}

/// Hashes a [`BearerKey`] for the cache's maps by taking 8 of its bytes: keys are already
/// uniformly random to anyone without the MAC key, so no one can aim at a bucket.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyBits(u64);

impl std::hash::Hasher for KeyBits {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // The array's own bytes (the length prefix is written with `write_usize`).
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
    fn write_usize(&mut self, _: usize) {}
}

type KeyMap<V> = HashMap<BearerKey, V, std::hash::BuildHasherDefault<KeyBits>>;

/// The key of `token`.
pub(crate) fn token_key(token: &str) -> TokenKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

#[derive(Clone)]
pub(crate) struct Entry {
    /// Unix seconds after which the entry is dead.
    pub(crate) expires_at: u64,
    /// `None`: the token is known to be invalid (inactive at introspection).
    pub(crate) identity: Option<Identity>,
}

/// A bounded cache of validated tokens: valid ones, and separately the ones known to be
/// invalid (inactive at introspection), so a flood of bogus tokens never evicts a good one.
pub(crate) struct TokenCache {
    valid: Shards,
    invalid: Shards,
    keys: BearerKeys,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &(self.valid.per_shard * SHARDS))
            .finish()
    }
}

impl TokenCache {
    /// Room for `capacity` valid and as many invalid tokens.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            valid: Shards::new(capacity),
            invalid: Shards::new(capacity),
            keys: BearerKeys::new(),
        }
    }

    /// The key of `token` in this cache.
    pub(crate) fn key(&self, token: &[u8]) -> BearerKey {
        self.keys.key(token)
    }

    /// `Some(Some(id))` valid, `Some(None)` known invalid, `None` unknown.
    pub(crate) fn get(&self, key: &BearerKey, now: u64) -> Option<Option<Identity>> {
        if let Some(entry) = self.valid.get(key, now) {
            return Some(entry.identity);
        }
        self.invalid.get(key, now).map(|_| None)
    }

    pub(crate) fn insert(&self, key: BearerKey, entry: Entry, now: u64) {
        match entry.identity {
            Some(_) => self.valid.insert(key, entry, now),
            None => self.invalid.insert(key, entry, now),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.valid.len() + self.invalid.len()
    }
}

/// A bounded map of entries, sharded to keep lock contention low.
struct Shards {
    shards: Vec<Mutex<KeyMap<Entry>>>,
    per_shard: usize,
    evictions: std::sync::atomic::AtomicUsize,
}

impl Shards {
    fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(KeyMap::default())).collect(),
            per_shard,
            evictions: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &BearerKey) -> &Mutex<KeyMap<Entry>> {
        // The last byte: the map's own hash takes the first eight.
        &self.shards[usize::from(key[15]) % SHARDS]
    }

    fn get(&self, key: &BearerKey, now: u64) -> Option<Entry> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let entry = shard.get(key)?;
        (entry.expires_at > now).then(|| entry.clone())
    }

    fn insert(&self, key: BearerKey, entry: Entry, now: u64) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.per_shard {
            shard.retain(|_, e| e.expires_at > now);
        }
        // Still full of live entries: drop about a quarter, chosen by bits of the (uniformly
        // random) keys, a different quarter each time (at most four rounds empty it).
        let mut quarter = self
            .evictions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        while shard.len() >= self.per_shard {
            let q = quarter & 3;
            shard.retain(|k, _| usize::from(k[14] & 3) != q);
            quarter = quarter.wrapping_add(1);
        }
        shard.insert(key, entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }
}

/// How long a refresh that failed for a passing reason (the provider unreachable or refusing
/// the client) is remembered: requests meanwhile go on with the session they have instead of
/// each waiting for the provider; the first request after it tries again.
const OUTAGE_MEMORY: Duration = Duration::from_secs(2);

/// Most refreshes remembered at once (running, or finished within their memory).
const MAX_FLIGHTS: usize = 10_000;

/// Most refused refresh tokens remembered at once.
const MAX_REFUSALS: usize = 10_000;

/// Most sessions whose refresh attempts are counted at once.
const MAX_COUNTED_SESSIONS: usize = 10_000;

type Flight<T> = Shared<BoxFuture<'static, Result<Arc<T>, AuthError>>>;

/// A refresh, running (`forget_at` is `None`) or finished and remembered until `forget_at`
/// (milliseconds by the layer's clock).
struct Remembered<T> {
    id: u64,
    flight: Flight<T>,
    forget_at: Option<u64>,
}

struct RefreshState<T> {
    next_id: u64,
    /// By the hash of the refresh token used.
    flights: HashMap<TokenKey, Remembered<T>>,
    /// Refresh tokens the provider refused, by hash: until when, and the refusal.
    refused: HashMap<TokenKey, (u64, AuthError)>,
    /// Per session: the start of its attempt window and the attempts in it.
    attempts: HashMap<TokenKey, (u64, u32)>,
}

/// The refresh single flight: one refresh per refresh token however many requests need it
/// at once, its result kept for a grace window, refusals remembered, attempts per session
/// capped. Every table is bounded; all time is the layer's clock.
pub(crate) struct Refresher<T> {
    state: Arc<Mutex<RefreshState<T>>>,
}

impl<T> Default for Refresher<T> {
    fn default() -> Self {
        Self {
            state: Arc::new(Mutex::new(RefreshState {
                next_id: 0,
                flights: HashMap::new(),
                refused: HashMap::new(),
                attempts: HashMap::new(),
            })),
        }
    }
}

impl<T> std::fmt::Debug for Refresher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Refresher")
    }
}

/// How [`Refresher::share`] treats one refresh.
pub(crate) struct RefreshRules<'a, T> {
    /// The layer's clock.
    pub(crate) clock: &'a Clock,
    /// How long a successful result is handed to requests with the same refresh token.
    pub(crate) grace: Duration,
    /// At most this many refreshes started per session within `window`.
    pub(crate) max_attempts: u32,
    pub(crate) window: Duration,
    /// The session the refresh is for (attempts are counted per session).
    pub(crate) session: TokenKey,
    /// Until when (milliseconds by the clock) a refusal of this refresh token is remembered.
    pub(crate) refused_until: u64,
    /// Whether a remembered result may still be handed out (false: refresh again).
    pub(crate) reusable: &'a (dyn Fn(&T) -> bool + Sync),
}

/// Removes the entry of a refresh task that ended without finishing (panicked, aborted), so
/// its refresh token is not blocked.
struct Unfinished<T> {
    state: Arc<Mutex<RefreshState<T>>>,
    key: TokenKey,
    id: u64,
    done: bool,
}

impl<T> Unfinished<T> {
    fn finish(&mut self) {
        self.done = true;
    }
}

impl<T> Drop for Unfinished<T> {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state
                .flights
                .get(&self.key)
                .is_some_and(|f| f.id == self.id)
            {
                state.flights.remove(&self.key);
            }
        }
    }
}

/// Makes room for one more entry in `map` (at most `cap`): drops dead entries, then, while
/// still full, about a quarter of the evictable ones, chosen by bits of the (uniformly
/// random) SHA-256 keys. `false` when nothing evictable is left and the map is full.
fn make_room<V>(
    map: &mut HashMap<TokenKey, V>,
    cap: usize,
    dead: impl Fn(&V) -> bool,
    evictable: impl Fn(&V) -> bool,
) -> bool {
    if map.len() < cap {
        return true;
    }
    map.retain(|_, v| !dead(v));
    for quarter in 0..4u8 {
        if map.len() < cap {
            break;
        }
        map.retain(|k, v| k[1] & 3 != quarter || !evictable(v));
    }
    map.len() < cap
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<T: Send + Sync + 'static> Refresher<T> {
    /// The result of the refresh for `key` (the hash of the refresh token): shared with
    /// every concurrent request, and with every request within the grace window after it
    /// while `rules.reusable` accepts it; a refusal is answered from memory; `start` begins a
    /// refresh when there is none and the session's attempts allow it.
    pub(crate) async fn share<F>(
        &self,
        key: TokenKey,
        rules: &RefreshRules<'_, T>,
        start: impl FnOnce() -> F,
    ) -> Result<Arc<T>, AuthError>
    where
        F: Future<Output = Result<Arc<T>, AuthError>> + Send + 'static,
    {
        let flight = self.flight(key, rules, start)?;
        flight.await
    }

    fn flight<F>(
        &self,
        key: TokenKey,
        rules: &RefreshRules<'_, T>,
        start: impl FnOnce() -> F,
    ) -> Result<Flight<T>, AuthError>
    where
        F: Future<Output = Result<Arc<T>, AuthError>> + Send + 'static,
    {
        let now = unix_millis(rules.clock);
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;
        match state.refused.get(&key) {
            Some((until, refusal)) if *until > now => return Err(refusal.clone()),
            Some(_) => {
                state.refused.remove(&key);
            }
            None => {}
        }
        if let Some(known) = state.flights.get(&key) {
            let live = known.forget_at.is_none_or(|at| at > now);
            let stale = matches!(known.flight.peek(), Some(Ok(v)) if !(rules.reusable)(v));
            if live && !stale {
                return Ok(known.flight.clone());
            }
            state.flights.remove(&key);
        }
        // A new refresh: within the session's attempts, and with room to share it.
        let window = millis(rules.window);
        let counted = make_room(
            &mut state.attempts,
            MAX_COUNTED_SESSIONS,
            |(since, _)| now.saturating_sub(*since) >= window,
            |_| true,
        );
        let has_room = make_room(
            &mut state.flights,
            MAX_FLIGHTS,
            |f| f.forget_at.is_some_and(|at| at <= now),
            |f| f.forget_at.is_some(),
        );
        if !has_room {
            return Err(AuthError::new(
                AuthErrorKind::ProviderUnavailable,
                "too many refreshes at once; trying again later",
            ));
        }
        if counted {
            let (since, count) = state.attempts.entry(rules.session).or_insert((now, 0));
            if now.saturating_sub(*since) >= window {
                (*since, *count) = (now, 0);
            }
            if *count >= rules.max_attempts {
                return Err(AuthError::new(
                    AuthErrorKind::ProviderUnavailable,
                    "this session used up its refresh attempts for now",
                ));
            }
            *count += 1;
        }
        state.next_id = state.next_id.wrapping_add(1);
        let id = state.next_id;
        let mut unfinished = Unfinished {
            state: self.state.clone(),
            key,
            id,
            done: false,
        };
        let clock = rules.clock.clone();
        let (grace, refused_until) = (millis(rules.grace), rules.refused_until);
        let refresh = start();
        // A task of its own: the refresh completes (and its rotated refresh token is kept)
        // even when the request that started it goes away.
        let task = tokio::spawn(async move {
            let result = refresh.await;
            let now = unix_millis(&clock);
            let mut state = unfinished
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let ours = state.flights.get(&key).is_some_and(|f| f.id == id);
            match &result {
                Err(e) if e.kind() == AuthErrorKind::InvalidToken => {
                    // The provider refused this refresh token: it never works again, so
                    // replays are answered from memory, not by the provider.
                    if ours {
                        state.flights.remove(&key);
                    }
                    let until = refused_until.max(now.saturating_add(grace));
                    if make_room(&mut state.refused, MAX_REFUSALS, |r| r.0 <= now, |_| true) {
                        state.refused.insert(key, (until, e.clone()));
                    }
                }
                other => {
                    let memory = if other.is_ok() {
                        grace
                    } else {
                        millis(OUTAGE_MEMORY)
                    };
                    if let Some(f) = state.flights.get_mut(&key).filter(|_| ours) {
                        f.forget_at = Some(now.saturating_add(memory));
                    }
                }
            }
            drop(state);
            unfinished.finish();
            result
        });
        let flight = async move {
            task.await.unwrap_or_else(|_| {
                Err(AuthError::new(
                    AuthErrorKind::Internal,
                    "the refresh task failed",
                ))
            })
        }
        .boxed()
        .shared();
        state.flights.insert(
            key,
            Remembered {
                id,
                flight: flight.clone(),
                forget_at: None,
            },
        );
        Ok(flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::time::SystemTime;

    /// A clock standing at `ms` milliseconds after the epoch, moved by the test.
    fn test_clock() -> (Arc<AtomicU64>, Clock) {
        let ms = Arc::new(AtomicU64::new(1_000_000));
        let read = ms.clone();
        let clock: Clock = Arc::new(move || {
            SystemTime::UNIX_EPOCH + Duration::from_millis(read.load(Ordering::SeqCst))
        });
        (ms, clock)
    }

    fn rules<'a>(
        clock: &'a Clock,
        reusable: &'a (dyn Fn(&u32) -> bool + Sync),
    ) -> RefreshRules<'a, u32> {
        RefreshRules {
            clock,
            grace: Duration::from_secs(30),
            max_attempts: 100,
            window: Duration::from_secs(60),
            session: token_key("session"),
            refused_until: 0,
            reusable,
        }
    }

    async fn run(
        refresher: &Refresher<u32>,
        rules: &RefreshRules<'_, u32>,
        calls: &Arc<AtomicUsize>,
        answer: Result<u32, AuthErrorKind>,
    ) -> Result<u32, AuthErrorKind> {
        let calls = calls.clone();
        refresher
            .share(token_key("rt"), rules, move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                answer.map(Arc::new).map_err(|k| AuthError::new(k, "x"))
            })
            .await
            .map(|v| *v)
            .map_err(|e| e.kind())
    }

    #[tokio::test]
    async fn refresher_windows_follow_the_layer_clock() {
        let (ms, clock) = test_clock();
        let yes = |_: &u32| true;
        let rules = rules(&clock, &yes);
        let refresher = Refresher::default();
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(run(&refresher, &rules, &calls, Ok(1)).await, Ok(1));
        ms.fetch_add(29_999, Ordering::SeqCst);
        assert_eq!(run(&refresher, &rules, &calls, Ok(2)).await, Ok(1), "grace");
        ms.fetch_add(1, Ordering::SeqCst);
        assert_eq!(
            run(&refresher, &rules, &calls, Ok(2)).await,
            Ok(2),
            "after it"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // An outage is remembered 2 s from when it happened, however often it is asked for.
        let unavailable = Err(AuthErrorKind::ProviderUnavailable);
        ms.fetch_add(30_000, Ordering::SeqCst);
        assert_eq!(
            run(&refresher, &rules, &calls, unavailable).await,
            unavailable
        );
        for _ in 0..3 {
            ms.fetch_add(600, Ordering::SeqCst);
            assert_eq!(run(&refresher, &rules, &calls, Ok(3)).await, unavailable);
        }
        ms.fetch_add(200, Ordering::SeqCst);
        assert_eq!(run(&refresher, &rules, &calls, Ok(3)).await, Ok(3));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn refresher_remembers_refusals_and_caps_attempts() {
        let (ms, clock) = test_clock();
        let no = |_: &u32| false;
        let mut rules = rules(&clock, &no);
        rules.refused_until = 1_000_000 + 3_600_000;
        rules.max_attempts = 3;
        let refresher = Refresher::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let refused = Err(AuthErrorKind::InvalidToken);
        assert_eq!(run(&refresher, &rules, &calls, refused).await, refused);
        ms.fetch_add(3_599_000, Ordering::SeqCst);
        assert_eq!(run(&refresher, &rules, &calls, Ok(1)).await, refused);
        assert_eq!(calls.load(Ordering::SeqCst), 1, "answered from memory");
        ms.fetch_add(1_000, Ordering::SeqCst);
        // not reusable: each call is a new attempt, until the cap
        for _ in 0..4 {
            let _ = run(&refresher, &rules, &calls, Ok(1)).await;
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "the refusal, then three attempts in a later window"
        );
        ms.fetch_add(60_000, Ordering::SeqCst);
        assert_eq!(
            run(&refresher, &rules, &calls, Ok(1)).await,
            Ok(1),
            "a new window"
        );
    }

    #[test]
    fn refresher_tables_stay_bounded() {
        let mut map: HashMap<TokenKey, u64> = HashMap::new();
        for i in 0..50_000u32 {
            if make_room(&mut map, 1_000, |_| false, |_| true) {
                map.insert(token_key(&i.to_string()), 0);
            }
        }
        assert!(map.len() <= 1_000, "{}", map.len());
        // nothing evictable: full, and says so
        let mut pinned: HashMap<TokenKey, u64> =
            (0..10u32).map(|i| (token_key(&i.to_string()), 0)).collect();
        assert!(!make_room(&mut pinned, 10, |_| false, |_| false));
        assert!(
            make_room(&mut pinned, 10, |_| true, |_| false),
            "dead entries go first"
        );
        assert!(pinned.is_empty());
    }

    /// A test key: the cache's own for `text`.
    fn bkey(cache: &TokenCache, text: &str) -> BearerKey {
        cache.key(text.as_bytes())
    }

    #[test]
    fn bearer_keys_differ_by_token_and_by_cache() {
        let (a, b) = (TokenCache::new(1), TokenCache::new(1));
        assert_eq!(bkey(&a, "t1"), bkey(&a, "t1"));
        assert_ne!(bkey(&a, "t1"), bkey(&a, "t2"));
        // trailing zero bytes and the empty token are told apart (the length is hashed)
        assert_ne!(a.key(b"t"), a.key(b"t\0"));
        assert_ne!(a.key(b""), a.key(b"\0"));
        assert_ne!(a.key(&[7; 16]), a.key(&[7; 32][..17]));
        assert_ne!(a.key(&[0; 16]), a.key(&[0; 32]));
        // another cache (another process) has other keys
        assert_ne!(bkey(&a, "t1"), bkey(&b, "t1"));
    }

    #[test]
    fn cache_is_bounded_and_expires() {
        let cache = TokenCache::new(64);
        let id = Identity::new("s", "i", Default::default());
        for i in 0..10_000u32 {
            let key = bkey(&cache, &i.to_string());
            cache.insert(
                key,
                Entry {
                    expires_at: 100,
                    identity: Some(id.clone()),
                },
                10,
            );
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        // eviction is spread over the keys: of the first thousand, none survive the churn
        let early_survivors = (0..1000u32)
            .filter(|i| cache.get(&bkey(&cache, &i.to_string()), 50).is_some())
            .count();
        assert!(early_survivors < 10, "{early_survivors}");
        let key = bkey(&cache, "fresh");
        cache.insert(
            key,
            Entry {
                expires_at: 100,
                identity: Some(id),
            },
            10,
        );
        assert!(matches!(cache.get(&key, 50), Some(Some(_))));
        assert!(cache.get(&key, 100).is_none(), "dead at expiry");
        assert!(cache.get(&bkey(&cache, "other"), 50).is_none());
        let off = TokenCache::new(0);
        off.insert(
            key,
            Entry {
                expires_at: 100,
                identity: None,
            },
            10,
        );
        assert!(off.get(&key, 50).is_none());
    }

    #[test]
    fn invalid_tokens_never_evict_valid_ones() {
        let cache = TokenCache::new(1024);
        let id = Identity::new("s", "i", Default::default());
        let good: Vec<BearerKey> = (0..64u32)
            .map(|i| bkey(&cache, &format!("good{i}")))
            .collect();
        for key in &good {
            let entry = Entry {
                expires_at: 100,
                identity: Some(id.clone()),
            };
            cache.insert(*key, entry, 10);
        }
        let kept = |cache: &TokenCache| {
            good.iter()
                .filter(|k| matches!(cache.get(k, 50), Some(Some(_))))
                .count()
        };
        let before = kept(&cache);
        assert_eq!(before, good.len());
        for i in 0..10_000u32 {
            let entry = Entry {
                expires_at: 100,
                identity: None,
            };
            cache.insert(bkey(&cache, &format!("bogus{i}")), entry, 10);
        }
        assert_eq!(
            kept(&cache),
            before,
            "a flood of invalid tokens evicts no valid one"
        );
        assert!(matches!(
            cache.get(&bkey(&cache, "bogus9999"), 50),
            Some(None)
        ));
        assert!(cache.len() <= 2 * 1024, "{}", cache.len());
    }
}
