//! Per-provider caches that no flow owns: the verified bearer tokens (a bounded cache keyed
//! by a SHA-256 hash of the token, never the token itself, with the invalid ones apart) and
//! the refresh single flight (one
//! refresh per refresh token however many requests need it at once, with the result kept for
//! a short grace window so that requests still carrying the previous cookie get the new
//! session instead of replaying a rotated refresh token).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use crate::error::{AuthError, AuthErrorKind};
use crate::identity::Identity;

const SHARDS: usize = 16;

/// The SHA-256 of a token: the cache never keeps the token itself.
pub(crate) type TokenKey = [u8; 32];

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
        }
    }

    /// `Some(Some(id))` valid, `Some(None)` known invalid, `None` unknown.
    pub(crate) fn get(&self, key: &TokenKey, now: u64) -> Option<Option<Identity>> {
        if let Some(entry) = self.valid.get(key, now) {
            return Some(entry.identity);
        }
        self.invalid.get(key, now).map(|_| None)
    }

    pub(crate) fn insert(&self, key: TokenKey, entry: Entry, now: u64) {
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
    shards: Vec<Mutex<HashMap<TokenKey, Entry>>>,
    per_shard: usize,
    evictions: std::sync::atomic::AtomicUsize,
}

impl Shards {
    fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
            evictions: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &TokenKey) -> &Mutex<HashMap<TokenKey, Entry>> {
        &self.shards[usize::from(key[0]) % SHARDS]
    }

    fn get(&self, key: &TokenKey, now: u64) -> Option<Entry> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        let entry = shard.get(key)?;
        (entry.expires_at > now).then(|| entry.clone())
    }

    fn insert(&self, key: TokenKey, entry: Entry, now: u64) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(&key).lock().unwrap_or_else(|p| p.into_inner());
        if shard.len() >= self.per_shard {
            shard.retain(|_, e| e.expires_at > now);
        }
        // Still full of live entries: drop about a quarter, chosen by bits of the (uniformly
        // random) SHA-256 keys, a different quarter each time (at most four rounds empty it).
        let mut quarter = self
            .evictions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        while shard.len() >= self.per_shard {
            let q = quarter & 3;
            shard.retain(|k, _| usize::from(k[1] & 3) != q);
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

/// How long a refresh that failed because the provider was unreachable is remembered.
const OUTAGE_MEMORY: Duration = Duration::from_secs(2);

/// Most refreshes remembered at once; beyond it, refreshes still work but without sharing.
const MAX_FLIGHTS: usize = 10_000;

type Flight<T> = Shared<BoxFuture<'static, Result<Arc<T>, AuthError>>>;

/// In-flight and recently finished refreshes, keyed by a hash of the refresh token.
pub(crate) struct Refresher<T> {
    flights: Mutex<HashMap<TokenKey, (Instant, Flight<T>)>>,
}

impl<T> Default for Refresher<T> {
    fn default() -> Self {
        Self {
            flights: Mutex::default(),
        }
    }
}

impl<T> std::fmt::Debug for Refresher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Refresher")
    }
}

impl<T: Send + Sync + 'static> Refresher<T> {
    /// The result of the refresh for `key`: shared with every concurrent request, and with
    /// every request within `grace` after it; `start` begins one when there is none.
    pub(crate) async fn share<F>(
        &self,
        key: TokenKey,
        grace: Duration,
        start: impl FnOnce() -> F,
    ) -> Result<Arc<T>, AuthError>
    where
        F: Future<Output = Result<Arc<T>, AuthError>> + Send + 'static,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            flights.retain(|_, (started, _)| started.elapsed() < grace);
            match flights.get(&key) {
                Some((_, flight)) => flight.clone(),
                None => {
                    // A task of its own: the refresh completes (and its rotated refresh token
                    // is kept) even when the request that started it goes away.
                    let task = tokio::spawn(start());
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
                    if flights.len() < MAX_FLIGHTS {
                        flights.insert(key, (Instant::now(), flight.clone()));
                    }
                    flight
                }
            }
        };
        let result = flight.await;
        if matches!(&result, Err(e) if e.kind() == AuthErrorKind::ProviderUnavailable) {
            // Successes and refusals are remembered for the grace window; an outage only for a
            // moment, so requests meanwhile go on with the session they have instead of each
            // waiting for the provider, and a request after it tries again.
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = flights.get_mut(&key) {
                let forget_after = grace.saturating_sub(OUTAGE_MEMORY);
                entry.0 = Instant::now()
                    .checked_sub(forget_after)
                    .unwrap_or_else(Instant::now);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_bounded_and_expires() {
        let cache = TokenCache::new(64);
        let id = Identity::new("s", "i", Default::default());
        for i in 0..10_000u32 {
            let key = token_key(&i.to_string());
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
            .filter(|i| cache.get(&token_key(&i.to_string()), 50).is_some())
            .count();
        assert!(early_survivors < 10, "{early_survivors}");
        let key = token_key("fresh");
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
        assert!(cache.get(&token_key("other"), 50).is_none());
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
        let good: Vec<TokenKey> = (0..64u32).map(|i| token_key(&format!("good{i}"))).collect();
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
            cache.insert(token_key(&format!("bogus{i}")), entry, 10);
        }
        assert_eq!(
            kept(&cache),
            before,
            "a flood of invalid tokens evicts no valid one"
        );
        assert!(matches!(cache.get(&token_key("bogus9999"), 50), Some(None)));
        assert!(cache.len() <= 2 * 1024, "{}", cache.len());
    }
}
