//! Refresh coordination across replicas: one token-endpoint call per session refresh for a
//! whole fleet. Within one replica, `cache::Refresher` already makes concurrent requests share
//! one refresh; a [`RefreshCoordinator`] does the same between replicas (a short lock keyed
//! by a hash of the refresh token, and the result kept for the grace window, sealed with the
//! session key). Without one (the default), each replica refreshes on its own.

use std::sync::Arc;
use std::time::Duration;

use crate::session::cookie::Sealer;
pub(crate) use crate::session::store::hex_sha256;
use crate::session::store::BackendFuture;
use crate::session::{Session, SessionRef};

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::RedisRefreshCoordinator;

/// What a replica does about one refresh, as decided by [`RefreshCoordinator::begin`].
///
/// # Example
///
/// ```
/// use tower_oidc::RefreshTurn;
///
/// let turn = RefreshTurn::Lead("lease-1".to_owned());
/// assert!(matches!(turn, RefreshTurn::Lead(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshTurn {
    /// This replica refreshes, then reports with [`RefreshCoordinator::finish`], handing
    /// back this lease (what proves the lock is still its own).
    Lead(String),
    /// Another replica refreshed: its result, as it gave it to `finish` (sealed by the layer;
    /// opaque to the coordinator).
    Done(String),
    /// Another replica's refresh was refused by the provider: the refresh token is dead.
    Refused,
    /// Another replica is refreshing and did not finish within the wait: the request goes on
    /// with the session it has (its refresh is tried again later).
    Busy,
    /// The coordinator cannot be reached: this replica refreshes on its own (single flight
    /// within the replica only).
    Unavailable,
}

/// How a refresh led by this replica ended, for [`RefreshCoordinator::finish`].
///
/// # Example
///
/// ```
/// use tower_oidc::RefreshOutcome;
///
/// let outcome = RefreshOutcome::Refreshed("sealed");
/// assert_ne!(outcome, RefreshOutcome::Failed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshOutcome<'a> {
    /// The new session, sealed with the session key: to hand to the other replicas.
    Refreshed(&'a str),
    /// The provider refused the refresh token: the other replicas must not try it.
    Refused,
    /// The refresh failed for a passing reason (provider unreachable): nothing to share; the
    /// next replica that needs it tries again.
    Failed,
}

/// Makes one replica of a fleet refresh a session while the others wait for its result, so
/// a rotated refresh token is used once: without it, two replicas that see the same expired
/// access token both call the token endpoint, and with refresh-token rotation the second call
/// fails (many providers then revoke the whole grant).
///
/// Keys are the hex SHA-256 of the refresh token (never the token); results are sealed by the
/// layer with the session key before they reach the coordinator, and opened (and checked to
/// belong to the same session) when they come back. The default, when no coordinator is
/// configured, is per-replica single flight. `RedisRefreshCoordinator` (feature `redis`)
/// is the Redis implementation.
///
/// # Example
///
/// A coordinator that lets every replica refresh on its own (what the layer does without
/// one):
///
/// ```
/// use std::time::Duration;
/// use tower_oidc::{BackendFuture, RefreshCoordinator, RefreshOutcome, RefreshTurn};
///
/// #[derive(Debug)]
/// struct EachOnItsOwn;
///
/// impl RefreshCoordinator for EachOnItsOwn {
///     fn begin<'a>(&'a self, _key: &'a str) -> BackendFuture<'a, RefreshTurn> {
///         Box::pin(async { RefreshTurn::Lead(String::new()) })
///     }
///
///     fn finish<'a>(
///         &'a self,
///         _key: &'a str,
///         _lease: &'a str,
///         _outcome: RefreshOutcome<'a>,
///         _keep: Duration,
///     ) -> BackendFuture<'a, ()> {
///         Box::pin(async {})
///     }
/// }
///
/// let config = tower_oidc::Config::builder("https://id.example.com", "my-client")
///     .refresh_coordinator(EachOnItsOwn);
/// # let _ = config;
/// ```
pub trait RefreshCoordinator: Send + Sync + 'static {
    /// Decides who refreshes the session whose refresh token hashes to `key`: this replica
    /// ([`RefreshTurn::Lead`]), or another one, whose result is awaited (bounded) and
    /// returned. Must not fail: an unreachable backend answers
    /// [`RefreshTurn::Unavailable`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::{RefreshCoordinator, RefreshTurn};
    ///
    /// # async fn run(coordinator: &dyn RefreshCoordinator) {
    /// match coordinator.begin("9f86d081884c7d65").await {
    ///     RefreshTurn::Lead(lease) => { /* refresh, then finish(.., &lease, ..) */ }
    ///     other => println!("{other:?}"),
    /// }
    /// # }
    /// ```
    fn begin<'a>(&'a self, key: &'a str) -> BackendFuture<'a, RefreshTurn>;

    /// Reports how the refresh this replica led ended: keeps a result (or a refusal) for
    /// `keep` (the layer's [refresh grace](crate::ConfigBuilder::refresh_grace)) for the
    /// replicas that wait or come later, and releases the lock when `lease` still holds it.
    /// Failures are the coordinator's to log; nothing is returned.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_oidc::{RefreshCoordinator, RefreshOutcome};
    ///
    /// # async fn run(coordinator: &dyn RefreshCoordinator) {
    /// coordinator
    ///     .finish("9f86d081884c7d65", "lease-1", RefreshOutcome::Failed, Duration::from_secs(30))
    ///     .await;
    /// # }
    /// ```
    fn finish<'a>(
        &'a self,
        key: &'a str,
        lease: &'a str,
        outcome: RefreshOutcome<'a>,
        keep: Duration,
    ) -> BackendFuture<'a, ()>;
}

impl<T: RefreshCoordinator + ?Sized> RefreshCoordinator for Arc<T> {
    fn begin<'a>(&'a self, key: &'a str) -> BackendFuture<'a, RefreshTurn> {
        (**self).begin(key)
    }

    fn finish<'a>(
        &'a self,
        key: &'a str,
        lease: &'a str,
        outcome: RefreshOutcome<'a>,
        keep: Duration,
    ) -> BackendFuture<'a, ()> {
        (**self).finish(key, lease, outcome, keep)
    }
}

/// A provider's coordinator with the sealer of the results it shares (a key of its own,
/// derived from the session key, bound to the provider's issuer and client id).
pub(crate) struct Coordination {
    pub(crate) coordinator: Arc<dyn RefreshCoordinator>,
    pub(crate) sealer: Sealer,
}

impl std::fmt::Debug for Coordination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coordination")
    }
}

/// The associated data a shared result is sealed under: it names the refresh token's hash, so
/// a result moved to another key (another session) does not open.
fn sealed_name(key: &str) -> String {
    format!("refresh:{key}")
}

impl Coordination {
    /// The new session, sealed for sharing under `key`.
    pub(crate) fn seal(&self, key: &str, session: &Session) -> String {
        // The session id is each request's own (from its cookie): a placeholder here.
        self.sealer
            .seal(&sealed_name(key), &session.encode("shared"))
    }

    /// A shared result for the refresh of `old` under `key`: `None` when it does not open
    /// (tampered, another key's, another layer's) or is not a refresh of the same session
    /// (same issuer, user and login time).
    pub(crate) fn open(&self, key: &str, value: &str, old: &Session) -> Option<Session> {
        let bytes = self.sealer.open(&sealed_name(key), value)?;
        let session = SessionRef::parse(bytes)?.to_session();
        (session.issuer == old.issuer
            && session.subject == old.subject
            && session.created_at == old.created_at)
            .then_some(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::cookie::{binding, SessionKey};

    fn session(subject: &str) -> Session {
        Session {
            created_at: 100,
            expires_at: 10_000,
            access_expires_at: 400,
            access_issued_at: 300,
            subject: subject.into(),
            issuer: "https://id.example.com".into(),
            claims: br#"{"sub":"x"}"#.to_vec(),
            id_token: None,
            access_token: Some("at-2".into()),
            refresh_token: Some("rt-2".into()),
            scope: "openid".into(),
            last_seen: 300,
            sid: None,
            token_roles: Vec::new(),
            app: Vec::new(),
            dpop_key: Default::default(),
        }
    }

    fn coordination(key: &SessionKey, client_id: &str) -> Coordination {
        #[derive(Debug)]
        struct Never;
        impl RefreshCoordinator for Never {
            fn begin<'a>(&'a self, _: &'a str) -> BackendFuture<'a, RefreshTurn> {
                Box::pin(async { RefreshTurn::Unavailable })
            }
            fn finish<'a>(
                &'a self,
                _: &'a str,
                _: &'a str,
                _: RefreshOutcome<'a>,
                _: Duration,
            ) -> BackendFuture<'a, ()> {
                Box::pin(async {})
            }
        }
        Coordination {
            coordinator: Arc::new(Never),
            sealer: key.sealer("refresh", &[binding("https://id.example.com", client_id)]),
        }
    }

    #[test]
    fn a_shared_result_is_sealed_and_opens_only_for_its_key_and_session() {
        let key = SessionKey::generate();
        let c = coordination(&key, "app");
        let new = session("alice");
        let k1 = hex_sha256("rt-1");
        let sealed = c.seal(&k1, &new);
        assert!(
            !sealed.contains("at-2") && !sealed.contains("rt-2"),
            "never in clear"
        );
        let mut old = session("alice");
        old.refresh_token = Some("rt-1".into());
        assert_eq!(c.open(&k1, &sealed, &old), Some(new.clone()));

        // Moved to another refresh token's key: refused.
        let k2 = hex_sha256("rt-other");
        assert_eq!(c.open(&k2, &sealed, &old), None);
        // Another user's session, or another login of the same user: refused.
        assert_eq!(c.open(&k1, &sealed, &session("mallory")), None);
        let mut earlier = old.clone();
        earlier.created_at = 99;
        assert_eq!(c.open(&k1, &sealed, &earlier), None);
        // Tampered, or sealed by another key or for another client: refused.
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert_eq!(c.open(&k1, &tampered, &old), None);
        let other_key = coordination(&SessionKey::generate(), "app");
        assert_eq!(other_key.open(&k1, &sealed, &old), None);
        let other_client = coordination(&key, "another-app");
        assert_eq!(other_client.open(&k1, &sealed, &old), None);
    }
}
