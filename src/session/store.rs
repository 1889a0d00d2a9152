//! Server-side sessions (opt-in): the cookie carries only a sealed random session id, and the
//! session itself lives in a [`SessionStore`] (Redis: `RedisSessionStore`), sealed with the
//! session key, under a key derived from the id.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use crate::error::{AuthError, AuthErrorKind};
use crate::session::cookie::{find_chunked, Cookies, Sealer};

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::RedisSessionStore;

/// A boxed future of a [`SessionStore`] or [`RefreshCoordinator`](crate::RefreshCoordinator)
/// call.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The error of a [`SessionStore`] call (the store is unreachable, or failed).
pub type StoreError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where server-side sessions live
/// ([`ConfigBuilder::session_store`](crate::ConfigBuilder::session_store)): with one, the session cookie carries only a sealed
/// random id and the session (tokens, claims) is kept here, for tokens too large for cookies
/// and for instant, global logout. Handlers see the same [`Identity`](crate::Identity).
///
/// Keys are the hex SHA-256 of the session id (the id itself, which only the sealed cookie
/// carries, is never stored); values are sealed with the session key by the layer (the store
/// never sees a token in clear). A value is kept for `ttl` (the session's remaining life).
///
/// A store that fails (unreachable) makes the request answer 503 with `Retry-After`, never a
/// logout. `RedisSessionStore` (feature `redis`) is the Redis implementation.
///
/// # Example
///
/// A store in a map (one process only: for tests):
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::Duration;
/// use tower_oidc::{BackendFuture, SessionStore, StoreError};
///
/// #[derive(Debug, Default)]
/// struct InMemory(Mutex<HashMap<String, String>>);
///
/// impl SessionStore for InMemory {
///     fn load<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Result<Option<String>, StoreError>> {
///         let value = self.0.lock().map(|m| m.get(key).cloned()).unwrap_or_default();
///         Box::pin(async move { Ok(value) })
///     }
///
///     fn save<'a>(&'a self, key: &'a str, value: String, _ttl: Duration) -> BackendFuture<'a, Result<(), StoreError>> {
///         if let Ok(mut map) = self.0.lock() {
///             map.insert(key.to_owned(), value);
///         }
///         Box::pin(async { Ok(()) })
///     }
///
///     fn delete<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Result<(), StoreError>> {
///         if let Ok(mut map) = self.0.lock() {
///             map.remove(key);
///         }
///         Box::pin(async { Ok(()) })
///     }
/// }
///
/// let config = tower_oidc::Config::builder("https://id.example.com", "my-client")
///     .session_store(InMemory::default());
/// # let _ = config;
/// ```
pub trait SessionStore: Send + Sync + 'static {
    /// The value kept under `key`, if any (and not expired).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(store: &dyn tower_oidc::SessionStore) -> Result<(), tower_oidc::StoreError> {
    /// let value = store.load("9f86d081884c7d65").await?;
    /// # let _ = value;
    /// # Ok(())
    /// # }
    /// ```
    fn load<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Result<Option<String>, StoreError>>;

    /// Keeps `value` under `key` for `ttl`, replacing what was there.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(store: &dyn tower_oidc::SessionStore) -> Result<(), tower_oidc::StoreError> {
    /// store
    ///     .save("9f86d081884c7d65", "sealed".to_owned(), std::time::Duration::from_secs(3600))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    fn save<'a>(
        &'a self,
        key: &'a str,
        value: String,
        ttl: Duration,
    ) -> BackendFuture<'a, Result<(), StoreError>>;

    /// Removes what is kept under `key` (nothing there is no error).
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(store: &dyn tower_oidc::SessionStore) -> Result<(), tower_oidc::StoreError> {
    /// store.delete("9f86d081884c7d65").await?;
    /// # Ok(())
    /// # }
    /// ```
    fn delete<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Result<(), StoreError>>;
}

impl<T: SessionStore + ?Sized> SessionStore for Arc<T> {
    fn load<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Result<Option<String>, StoreError>> {
        (**self).load(key)
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        value: String,
        ttl: Duration,
    ) -> BackendFuture<'a, Result<(), StoreError>> {
        (**self).save(key, value, ttl)
    }

    fn delete<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Result<(), StoreError>> {
        (**self).delete(key)
    }
}

/// The server-side mode of a layer: its store, and the sealer of the id cookie (a key of its
/// own, derived from the session key, bound to every provider's issuer and client id).
pub(crate) struct ServerSessions {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) id_sealer: Sealer,
}

impl std::fmt::Debug for ServerSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSessions")
    }
}

/// How long a client should wait before trying again when the store is unreachable.
pub(crate) const RETRY_AFTER_SECS: u64 = 1;

pub(crate) fn unavailable(err: &StoreError) -> AuthError {
    // The store logs the outage once; each request only at debug level.
    tracing::debug!(error = %err, "session store unavailable");
    AuthError::new(
        AuthErrorKind::ProviderUnavailable,
        format!("the session store is unavailable: {err}"),
    )
}

/// The store's key of a session id: the hex SHA-256 of the id.
pub(crate) fn store_key(id: &str) -> String {
    hex_sha256(id)
}

/// The lowercase hex SHA-256 of `text`: how secrets (session ids, refresh tokens) are named
/// in a shared backend.
pub(crate) fn hex_sha256(text: &str) -> String {
    use std::fmt::Write as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The associated data a stored session is sealed under: it names its key, so a value moved
/// to another key (another session) does not open.
pub(crate) fn value_name(key: &str) -> String {
    format!("server-session:{key}")
}

impl ServerSessions {
    pub(crate) fn new(store: Arc<dyn SessionStore>, id_sealer: Sealer) -> Self {
        Self { store, id_sealer }
    }

    /// The session id the request's cookie carries, when it opens; and whether there is a
    /// session cookie at all.
    pub(crate) fn session_id(
        &self,
        cookies: &Cookies,
        headers: &HeaderMap,
    ) -> (Option<String>, bool) {
        let found = find_chunked(headers, &cookies.session);
        if !found.any() {
            return (None, false);
        }
        let id = found
            .value()
            .and_then(|v| {
                self.id_sealer
                    .open_bytes_for(&cookies.session, &v)
                    .map(|(b, _)| b)
            })
            .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok());
        (id, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_are_the_hex_hash_of_the_id() {
        let key = store_key("abc");
        assert_eq!(
            key,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(value_name(&key), value_name(&store_key("abd")));
    }
}
