//! The layer's side of server-side sessions: reading, keeping and deleting a session in the
//! [`SessionStore`](crate::SessionStore) with the session-wide settings of [`Sessions`]
//! (sealers, cookies, lifetimes, clock).

use std::time::Duration;

use crate::error::AuthError;
use crate::session::sessions::Sessions;
use crate::session::store::{store_key, unavailable, value_name, ServerSessions};
use crate::session::{new_session_id, Session, SessionRef};

impl ServerSessions {
    /// The `Set-Cookie` value carrying `id`, for the session's remaining life.
    pub(crate) fn cookie(&self, sessions: &Sessions, id: &str, session: &Session) -> String {
        let name = &sessions.cookies.session;
        let sealed = self.id_sealer.seal(name, id.as_bytes());
        sessions
            .cookies
            .session_cookie(name, &sealed, remaining(sessions, session))
    }

    /// The session kept for `id`: authentic (sealed by one of our keys for this key, naming
    /// the issuer of the provider whose key opened it, carrying this id); `None` when there
    /// is none. Liveness (expiry, idleness, revocation) is the caller's to check.
    pub(crate) async fn load(
        &self,
        sessions: &Sessions,
        id: &str,
    ) -> Result<Option<SessionRef>, AuthError> {
        let key = store_key(id);
        let Some(value) = self.store.load(&key).await.map_err(|e| unavailable(&e))? else {
            return Ok(None);
        };
        let opened = sessions
            .open_sealed(&value_name(&key), value.as_bytes())
            .filter(|session| session.session_id() == id);
        if opened.is_none() {
            // After a key rotation that dropped its key, or a value not written by us: no
            // session (a debug line: this can be every request of such a user).
            tracing::debug!("a stored session does not open with the session key; ignored");
        }
        Ok(opened)
    }

    /// Keeps `session` under `id` for its remaining life.
    pub(crate) async fn save(
        &self,
        sessions: &Sessions,
        id: &str,
        session: &Session,
    ) -> Result<(), AuthError> {
        let provider = sessions.provider_of(session)?;
        let key = store_key(id);
        let value =
            sessions
                .session_sealer
                .seal_for(provider, &value_name(&key), &session.encode(id));
        let ttl = Duration::from_secs(remaining(sessions, session).max(1));
        self.store
            .save(&key, value, ttl)
            .await
            .map_err(|e| unavailable(&e))
    }

    /// A new session: kept under a new random id; the `Set-Cookie` value carrying the id.
    pub(crate) async fn create(
        &self,
        sessions: &Sessions,
        session: &Session,
    ) -> Result<String, AuthError> {
        let id = new_session_id();
        self.save(sessions, &id, session).await?;
        Ok(self.cookie(sessions, &id, session))
    }

    /// Removes the session of `id` (a logout).
    pub(crate) async fn delete(&self, id: &str) -> Result<(), AuthError> {
        self.store
            .delete(&store_key(id))
            .await
            .map_err(|e| unavailable(&e))
    }
}

/// Seconds until the session's deadline (absolute, or idle when sooner), by the layer's clock.
fn remaining(sessions: &Sessions, session: &Session) -> u64 {
    let mut deadline = session.expires_at;
    if let Some(idle) = sessions.idle_timeout {
        deadline = deadline.min(session.last_seen.saturating_add(idle.as_secs()));
    }
    deadline.saturating_sub(sessions.now())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::session::cookie::SessionKey;
    use crate::session::sessions::tests::{session, sessions, A};
    use crate::session::store::{BackendFuture, SessionStore, StoreError};

    #[derive(Default)]
    struct Memory(Mutex<HashMap<String, String>>);

    impl SessionStore for Memory {
        fn load<'a>(
            &'a self,
            key: &'a str,
        ) -> BackendFuture<'a, Result<Option<String>, StoreError>> {
            let value = self.0.lock().unwrap().get(key).cloned();
            Box::pin(async move { Ok(value) })
        }

        fn save<'a>(
            &'a self,
            key: &'a str,
            value: String,
            _ttl: Duration,
        ) -> BackendFuture<'a, Result<(), StoreError>> {
            self.0.lock().unwrap().insert(key.to_owned(), value);
            Box::pin(async { Ok(()) })
        }

        fn delete<'a>(&'a self, key: &'a str) -> BackendFuture<'a, Result<(), StoreError>> {
            self.0.lock().unwrap().remove(key);
            Box::pin(async { Ok(()) })
        }
    }

    /// A stored session opens only under the id it carries: a value sealed for id A's key
    /// but holding the session of id B (what a bug in a store could produce) is no session.
    #[tokio::test]
    async fn a_stored_session_of_another_id_is_no_session() {
        let layer = sessions(&SessionKey::generate(), &[(A, "app")]);
        let memory = Arc::new(Memory::default());
        let server = ServerSessions {
            store: memory.clone(),
            id_sealer: layer.tx_sealer.clone(),
        };
        let s = session(A, layer.now());
        server.save(&layer, "id-a", &s).await.unwrap();
        let opened = server.load(&layer, "id-a").await.unwrap();
        assert_eq!(
            opened.map(|r| r.session_id().to_owned()).as_deref(),
            Some("id-a")
        );

        let key = store_key("id-a");
        let other = layer
            .session_sealer
            .seal_for(0, &value_name(&key), &s.encode("id-b"));
        memory.0.lock().unwrap().insert(key, other);
        assert!(server.load(&layer, "id-a").await.unwrap().is_none());
    }
}
