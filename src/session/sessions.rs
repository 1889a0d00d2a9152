//! [`Sessions`]: the session-wide state every provider of a layer shares (the cookies' names
//! and sealers, lifetimes, the revocation store, the clock), and reading, sealing and
//! touching the session cookie with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::error::{AuthError, AuthErrorKind};
use crate::revocation::RevocationStore;
use crate::session::cookie::{chunk, find_chunked, Cookies, Sealer};
use crate::session::{Session, SessionRef};

/// The time source: the system clock, or a test's.
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Milliseconds since the Unix epoch by `clock`.
pub(crate) fn unix_millis(clock: &Clock) -> u64 {
    clock()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Session settings and state shared by every provider of a layer: sessions share the
/// cookies, and a back-channel logout from any provider must reach the store that sessions are
/// checked against.
pub(crate) struct Sessions {
    pub(crate) session_sealer: Sealer,
    pub(crate) tx_sealer: Sealer,
    pub(crate) cookies: Cookies,
    pub(crate) session_lifetime: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    /// How long a login may take (the transaction cookie's lifetime).
    pub(crate) transaction_ttl: Duration,
    /// Most concurrent logins (transaction cookies) of one browser.
    pub(crate) max_transactions: usize,
    pub(crate) revocations: Arc<dyn RevocationStore>,
    pub(crate) clock: Clock,
    /// Whether the "session needs several cookies" warning was logged.
    pub(crate) size_warned: AtomicBool,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("cookies", &self.cookies)
            .field("session_lifetime", &self.session_lifetime)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// The session cookie as read from a request.
#[derive(Debug, Default)]
pub(crate) struct SessionRead {
    /// The session, when the cookie opened and is live.
    pub(crate) session: Option<SessionRef>,
    /// Whether the request carries session cookies at all.
    pub(crate) present: bool,
    /// Whether its `Cookie` headers hold nothing but session cookies.
    pub(crate) only_session_cookies: bool,
    /// Names of the session cookies when they gave no session (to clear them).
    pub(crate) stale: Vec<String>,
}

impl Sessions {
    /// Unix seconds now.
    pub(crate) fn now(&self) -> u64 {
        self.now_millis() / 1000
    }

    /// Unix milliseconds now.
    pub(crate) fn now_millis(&self) -> u64 {
        unix_millis(&self.clock)
    }

    /// Opens the session cookie; a missing, tampered, foreign-key, oversized, expired, idle
    /// or revoked (back-channel logout) cookie gives no session.
    pub(crate) fn read_session(&self, headers: &HeaderMap) -> SessionRead {
        let base = &self.cookies.session;
        let found = find_chunked(headers, base);
        if !found.any() {
            return SessionRead::default();
        }
        let now = self.now();
        let session = found
            .value()
            .and_then(|v| self.session_sealer.open(base, &v))
            .and_then(SessionRef::parse)
            .filter(|s| self.is_live(s, now));
        let stale = if session.is_none() {
            found.names(base)
        } else {
            Vec::new()
        };
        SessionRead {
            session,
            present: true,
            only_session_cookies: !found.others,
            stale,
        }
    }

    /// Names of every session cookie (or chunk) in the request.
    pub(crate) fn session_cookie_names(&self, headers: &HeaderMap) -> Vec<String> {
        find_chunked(headers, &self.cookies.session).names(&self.cookies.session)
    }

    fn is_live(&self, s: &SessionRef, now: u64) -> bool {
        if s.expires_at <= now {
            return false;
        }
        if let Some(idle) = self.idle_timeout {
            if s.last_seen.saturating_add(idle.as_secs()) <= now {
                return false;
            }
        }
        !self
            .revocations
            .is_revoked(s.issuer(), s.sid(), s.subject(), s.created_at, now)
    }

    /// Whether the rolling deadline is near enough that the cookie should be re-issued.
    pub(crate) fn needs_touch(&self, s: &SessionRef, now: u64) -> bool {
        self.idle_timeout
            .is_some_and(|idle| now.saturating_sub(s.last_seen) * 2 >= idle.as_secs())
    }

    /// `Set-Cookie` values for a new session, clearing chunks of an older, larger one
    /// (`old_names`: the session cookies the request carried).
    pub(crate) fn session_cookies(
        &self,
        old_names: &[String],
        session: &Session,
    ) -> Result<Vec<String>, AuthError> {
        let base = &self.cookies.session;
        let sealed = self.session_sealer.seal(base, &session.encode());
        let chunks = chunk(base, &sealed).ok_or_else(|| {
            AuthError::new(
                AuthErrorKind::Internal,
                format!(
                    "the session is too large for cookies ({} bytes sealed)",
                    sealed.len()
                ),
            )
        })?;
        if chunks.len() > 1 && !self.size_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                bytes = sealed.len(),
                cookies = chunks.len(),
                "the session needs several cookies; consider keep_claims, \
                 store_access_token(false) or store_id_token(false)"
            );
        }
        let mut deadline = session.expires_at;
        if let Some(idle) = self.idle_timeout {
            deadline = deadline.min(session.last_seen.saturating_add(idle.as_secs()));
        }
        let max_age = deadline.saturating_sub(self.now());
        let mut out: Vec<String> = old_names
            .iter()
            .filter(|old| !chunks.iter().any(|(name, _)| name == *old))
            .map(|old| self.cookies.session_removal(old))
            .collect();
        out.extend(
            chunks
                .iter()
                .map(|(name, value)| self.cookies.session_cookie(name, value, max_age)),
        );
        Ok(out)
    }
}
