//! Bounded introspection work: every opaque bearer token not seen before costs an
//! authenticated call to the provider, so unauthenticated callers must not be able to cause
//! them without limit. Concurrent requests with the same token share one call (single
//! flight); at most `max_in_flight` calls run at once and at most `per_second` start per
//! second (by the layer's clock); beyond either, the request is refused at once as
//! "provider unavailable" (503 with `Retry-After`) instead of queueing. Checked under the same
//! lock as the cache lookup the caller passes in, so a token whose call just finished is
//! answered from the cache, never introspected again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use crate::cache::BearerKey;
use crate::error::{AuthError, AuthErrorKind};
use crate::identity::Identity;

type Flight = Shared<BoxFuture<'static, Result<Identity, AuthError>>>;

#[derive(Default)]
struct State {
    flights: HashMap<BearerKey, Flight>,
    /// The second (by the layer's clock) the budget counts, and the calls started in it.
    second: u64,
    started: u32,
}

/// The introspection limits of one provider.
pub(crate) struct IntrospectionLimits {
    state: Arc<Mutex<State>>,
    max_in_flight: usize,
    per_second: u32,
}

impl std::fmt::Debug for IntrospectionLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionLimits")
            .field("max_in_flight", &self.max_in_flight)
            .field("per_second", &self.per_second)
            .finish_non_exhaustive()
    }
}

/// Removes its token's entry from the flights when dropped.
struct FlightEntry {
    state: Arc<Mutex<State>>,
    key: BearerKey,
}

impl Drop for FlightEntry {
    fn drop(&mut self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flights
            .remove(&self.key);
    }
}

fn busy(reason: &'static str) -> AuthError {
    AuthError::new(AuthErrorKind::ProviderUnavailable, reason)
}

impl IntrospectionLimits {
    pub(crate) fn new(max_in_flight: usize, per_second: u32) -> Self {
        Self {
            state: Arc::default(),
            max_in_flight: max_in_flight.max(1),
            per_second: per_second.max(1),
        }
    }

    /// The result for `key`: `cached` when it answers (looked up under the lock), else the
    /// call in flight for the same key, else a new call `start`, run as a task of its own so
    /// it finishes (and caches its answer, which `start` must do) even when every request
    /// waiting for it goes away. `now` is the layer's clock in seconds.
    pub(crate) async fn run<F>(
        &self,
        key: BearerKey,
        now: u64,
        cached: impl FnOnce() -> Option<Result<Identity, AuthError>>,
        start: impl FnOnce() -> F,
    ) -> Result<Identity, AuthError>
    where
        F: Future<Output = Result<Identity, AuthError>> + Send + 'static,
    {
        let (flight, call) = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(flight) = state.flights.get(&key) {
                (flight.clone(), None)
            } else {
                if let Some(answer) = cached() {
                    return answer;
                }
                if state.flights.len() >= self.max_in_flight {
                    return Err(busy("too many introspection calls in flight"));
                }
                if state.second != now {
                    state.second = now;
                    state.started = 0;
                }
                if state.started >= self.per_second {
                    return Err(busy("too many introspection calls this second"));
                }
                state.started += 1;
                let (sender, receiver) = tokio::sync::oneshot::channel();
                let flight = async move {
                    // No answer: the call panicked or its task was dropped.
                    receiver.await.unwrap_or_else(|_| {
                        Err(AuthError::new(
                            AuthErrorKind::Internal,
                            "the introspection task failed",
                        ))
                    })
                }
                .boxed()
                .shared();
                state.flights.insert(key, flight.clone());
                (flight, Some(sender))
            }
        };
        if let Some(sender) = call {
            // From here on the entry (and so its slot) is removed however the call ends:
            // answered, panicked, or dropped unfinished.
            let entry = FlightEntry {
                state: self.state.clone(),
                key,
            };
            let call = start();
            tokio::spawn(async move {
                let entry = entry;
                let result = call.await;
                drop(entry);
                let _ = sender.send(result);
            });
        }
        flight.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::BearerKey;

    /// A distinct key per name (the limits only compare keys).
    fn token_key(name: &str) -> BearerKey {
        let mut key = [0u8; 16];
        for (k, b) in key.iter_mut().zip(name.bytes()) {
            *k = b;
        }
        key
    }
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn id() -> Identity {
        Identity::new("s", "i", Default::default())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn flights(limits: &IntrospectionLimits) -> usize {
        limits.state.lock().unwrap().flights.len()
    }

    #[test]
    fn a_call_that_panics_or_is_cancelled_frees_its_entry_and_slot() {
        // A call that panics: its waiters get an error, and the token and slot are free again.
        let limits = IntrospectionLimits::new(1, 100);
        runtime().block_on(async {
            let panicked = limits
                .run(token_key("a"), 10, || None, || async { panic!("injected") })
                .await;
            assert_eq!(panicked.unwrap_err().kind(), AuthErrorKind::Internal);
            assert_eq!(flights(&limits), 0);
            let again = limits
                .run(token_key("a"), 10, || None, || async { Ok(id()) })
                .await;
            assert!(again.is_ok());
        });
        // A call whose task is dropped unfinished (the runtime going away) frees them too.
        let runtime = runtime();
        let limits = Arc::new(IntrospectionLimits::new(1, 100));
        let inner = limits.clone();
        let _waiter = runtime.spawn(async move {
            inner
                .run(token_key("b"), 10, || None, std::future::pending)
                .await
        });
        while flights(&limits) == 0 {
            runtime.block_on(tokio::task::yield_now());
        }
        drop(runtime);
        assert_eq!(flights(&limits), 0);
    }

    #[tokio::test]
    async fn one_call_per_token_and_caps_fail_closed() {
        let limits = Arc::new(IntrospectionLimits::new(2, 3));
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let start = |calls: Arc<AtomicUsize>, mut released: tokio::sync::watch::Receiver<bool>| {
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let _ = released.wait_for(|r| *r).await;
                Ok(id())
            }
        };
        // Two callers of one token share one call.
        let a = {
            let (limits, calls, released) = (limits.clone(), calls.clone(), released.clone());
            tokio::spawn(async move {
                limits
                    .run(token_key("a"), 10, || None, start(calls, released))
                    .await
            })
        };
        tokio::task::yield_now().await;
        while limits.state.lock().unwrap().flights.is_empty() {
            tokio::task::yield_now().await;
        }
        let a2 = {
            let (limits, calls, released) = (limits.clone(), calls.clone(), released.clone());
            tokio::spawn(async move {
                limits
                    .run(token_key("a"), 10, || None, start(calls, released))
                    .await
            })
        };
        let b = {
            let (limits, calls, released) = (limits.clone(), calls.clone(), released.clone());
            tokio::spawn(async move {
                limits
                    .run(token_key("b"), 10, || None, start(calls, released))
                    .await
            })
        };
        while limits.state.lock().unwrap().flights.len() < 2 {
            tokio::task::yield_now().await;
        }
        // A third token while two calls are in flight: refused at once.
        let c = limits
            .run(
                token_key("c"),
                10,
                || None,
                start(calls.clone(), released.clone()),
            )
            .await;
        assert_eq!(c.unwrap_err().kind(), AuthErrorKind::ProviderUnavailable);
        release.send(true).unwrap();
        assert!(a.await.unwrap().is_ok());
        assert!(a2.await.unwrap().is_ok());
        assert!(b.await.unwrap().is_ok());
        // "a" (shared) and "b": two calls.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        while !limits.state.lock().unwrap().flights.is_empty() {
            tokio::task::yield_now().await;
        }
        // The budget of second 10 has one call left, then none; second 11 has three again.
        let run = |name: &'static str, now: u64| {
            let (limits, calls, released) = (limits.clone(), calls.clone(), released.clone());
            async move {
                limits
                    .run(token_key(name), now, || None, start(calls, released))
                    .await
            }
        };
        assert!(run("d", 10).await.is_ok());
        assert!(run("e", 10).await.is_err());
        assert!(run("e", 11).await.is_ok());
        // A cached answer is used without a call, even beyond the budget.
        let before = calls.load(Ordering::SeqCst);
        let cached = limits
            .run(
                token_key("f"),
                10,
                || Some(Ok(id())),
                start(calls.clone(), released.clone()),
            )
            .await;
        assert!(cached.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), before);
    }
}
