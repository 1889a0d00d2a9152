//! [`Sessions`]: the session-wide state every provider of a layer shares (the cookies' names
//! and sealers, lifetimes, the revocation store, the clock), and reading, sealing and
//! touching the session cookie with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::error::{AuthError, AuthErrorKind};
use crate::issuer::IssuerRule;
use crate::revocation::RevocationStore;
use crate::session::cookie::{
    chunk, fill_random, find_chunked, random_token, request_cookies, Cookies, Sealer, CHUNK_SIZE,
};
use crate::session::verified::{Verified, VerifiedSessions};

/// Longest session cookie value kept in the cache of opened cookies (two chunks): with its
/// decrypted copy, an entry then holds at most about 14 KB. Larger sessions are opened on
/// every request.
pub(crate) const MAX_CACHED_COOKIE: usize = 2 * CHUNK_SIZE + 600;
use crate::session::store::ServerSessions;
use crate::session::{new_session_id, Session, SessionRef, Transaction};
use subtle::ConstantTimeEq;

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
    /// Seals sessions with a key per provider, bound to its issuer and client id.
    pub(crate) session_sealer: Sealer,
    /// Each provider's issuer, in the order of the session sealer's bindings: a session must
    /// name an issuer of the provider whose key opened it (for a multi-tenant provider, its
    /// template filled with an allowed tenant).
    pub(crate) issuers: Vec<IssuerRule>,
    /// Seals login transactions, bound to every provider's issuer and client id.
    pub(crate) tx_sealer: Sealer,
    pub(crate) cookies: Cookies,
    pub(crate) session_lifetime: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    /// How long a login may take (the transaction cookie's lifetime).
    pub(crate) transaction_ttl: Duration,
    /// Most concurrent logins of one browser: the number of transaction cookie slots.
    pub(crate) max_transactions: usize,
    pub(crate) revocations: Arc<dyn RevocationStore>,
    /// Server-side sessions, when configured (then the cookie carries only an id).
    pub(crate) server: Option<Arc<ServerSessions>>,
    pub(crate) clock: Clock,
    /// Whether the "session needs several cookies" warning was logged.
    pub(crate) size_warned: AtomicBool,
    /// Session cookies already opened.
    pub(crate) verified: VerifiedSessions,
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
    pub(crate) session: Option<Arc<Verified>>,
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
    /// or revoked (logout) cookie gives no session, and so does a cookie of another client
    /// sharing the key (no key of ours opens it) or one naming another provider's issuer than
    /// the one whose key opened it.
    pub(crate) fn read_session(&self, headers: &HeaderMap) -> SessionRead {
        self.read_session_at(headers, self.now())
    }

    /// [`Sessions::read_session`] at `now` (unix seconds), for a caller that has read the
    /// clock already.
    pub(crate) fn read_session_at(&self, headers: &HeaderMap, now: u64) -> SessionRead {
        let base = &self.cookies.session;
        let found = find_chunked(headers, base);
        if !found.any() {
            return SessionRead::default();
        }
        let session = found.value().and_then(|v| self.open_live(&v, now));
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

    /// Opens a session cookie's value and checks that its session is live, answering from the
    /// cache of opened cookies when this exact value opened before. Only live sessions are
    /// cached: a cookie of an ended session is opened (and refused) each time, and never takes
    /// a live session's slot.
    fn open_live(&self, value: &[u8], now: u64) -> Option<Arc<Verified>> {
        if let Some(hit) = self.verified.get(value) {
            return self.is_live(&hit, now).then_some(hit);
        }
        let session = self.open_authentic(value)?;
        if !self.is_live(&session, now) {
            return None;
        }
        let verified = Verified::new(value, session);
        Some(if value.len() <= MAX_CACHED_COOKIE {
            self.verified.insert(verified)
        } else {
            Arc::new(verified)
        })
    }

    /// Opens a session cookie's value checking only that it is authentic: sealed by one of our
    /// keys for this cookie name, naming the issuer of the provider whose key opened it.
    /// Expiry, idleness and revocation are not checked.
    fn open_authentic(&self, value: &[u8]) -> Option<SessionRef> {
        self.open_sealed(&self.cookies.session, value)
    }

    /// A session sealed under `name` (a cookie's, or a stored session's): opened by one of our
    /// keys, naming the issuer of the provider whose key opened it.
    pub(crate) fn open_sealed(&self, name: &str, value: &[u8]) -> Option<SessionRef> {
        let (bytes, provider) = self.session_sealer.open_bytes_for(name, value)?;
        let session = SessionRef::parse(bytes)?;
        let issuer = self.issuers.get(provider)?;
        issuer.accepts(session.issuer()).then_some(session)
    }

    /// The request's session for a logout: authentic (see [`Sessions::open_authentic`]) but
    /// possibly idle, expired or already revoked. An idle cookie must still end its session:
    /// a copy kept alive elsewhere (by its own requests) carries the same session id.
    pub(crate) fn read_session_for_logout(&self, headers: &HeaderMap) -> Option<SessionRef> {
        find_chunked(headers, &self.cookies.session)
            .value()
            .and_then(|v| self.open_authentic(&v))
    }

    /// Names of every session cookie (or chunk) in the request.
    pub(crate) fn session_cookie_names(&self, headers: &HeaderMap) -> Vec<String> {
        find_chunked(headers, &self.cookies.session).names(&self.cookies.session)
    }

    pub(crate) fn is_live(&self, s: &SessionRef, now: u64) -> bool {
        if s.expires_at <= now {
            return false;
        }
        if let Some(idle) = self.idle_timeout {
            if s.last_seen.saturating_add(idle.as_secs()) <= now {
                return false;
            }
        }
        let store = &self.revocations;
        !(store.is_revoked(s.issuer(), s.sid(), s.subject(), s.created_at, now)
            || store.is_session_revoked(s.issuer(), s.session_id(), now))
    }

    /// Ends the session (a local logout): every copy of its cookie, on every instance that
    /// shares the revocation store, is refused from now on. Kept until the session's
    /// absolute deadline, after which no copy opens anyway.
    ///
    /// A cookie past its deadline, or of a session already ended, changes nothing: the store
    /// is not written again (one old cookie replayed to `/auth/logout` must not flood a shared
    /// store with writes).
    pub(crate) fn revoke(&self, s: &SessionRef) {
        let now = self.now();
        if s.expires_at <= now
            || self
                .revocations
                .is_session_revoked(s.issuer(), s.session_id(), now)
        {
            return;
        }
        self.revocations
            .revoke_session(s.issuer(), s.session_id(), s.expires_at);
    }

    /// Forgets the opened copy of the request's session cookie (a logout: its tokens need not
    /// stay in memory; the revocation already refuses it).
    pub(crate) fn forget_opened(&self, headers: &HeaderMap) {
        if let Some(value) = find_chunked(headers, &self.cookies.session).value() {
            self.verified.remove(&value);
        }
    }

    /// Whether the rolling deadline is near enough that the cookie should be re-issued.
    pub(crate) fn needs_touch(&self, s: &SessionRef, now: u64) -> bool {
        self.idle_timeout
            .is_some_and(|idle| now.saturating_sub(s.last_seen) * 2 >= idle.as_secs())
    }

    /// `Set-Cookie` values for a new session (a login: it gets a new random session id),
    /// clearing chunks of an older, larger one (`old_names`: the session cookies the request
    /// carried).
    pub(crate) fn session_cookies(
        &self,
        old_names: &[String],
        session: &Session,
    ) -> Result<Vec<String>, AuthError> {
        self.session_cookies_with_id(old_names, session, &new_session_id())
    }

    /// The index of the provider (and of its sealing key) whose issuer `session` names.
    pub(crate) fn provider_of(&self, session: &Session) -> Result<usize, AuthError> {
        self.issuers
            .iter()
            .position(|issuer| issuer.accepts(&session.issuer))
            .ok_or_else(|| {
                AuthError::new(
                    AuthErrorKind::Internal,
                    "the session's issuer is not a provider of this layer",
                )
            })
    }

    /// `Set-Cookie` values for a session that goes on (refreshed, renewed) under its id.
    pub(crate) fn session_cookies_with_id(
        &self,
        old_names: &[String],
        session: &Session,
        session_id: &str,
    ) -> Result<Vec<String>, AuthError> {
        let base = &self.cookies.session;
        // Sealed with the key of the provider that issued it.
        let provider = self.provider_of(session)?;
        let sealed = self
            .session_sealer
            .seal_for(provider, base, &session.encode(session_id));
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

/// Most stray transaction cookies (older format, or slots beyond the configured number)
/// cleared by one login; any others expire on their own.
const MAX_STRAY_REMOVALS: usize = 16;

/// A login transaction found for a callback's `state`.
#[derive(Debug)]
pub(crate) struct FoundTransaction {
    /// The name of its cookie (to clear it).
    pub(crate) name: String,
    pub(crate) tx: Transaction,
}

/// Most transaction cookies of one request looked at (slots are at most 16, the rest stray).
const MAX_HELD: usize = 32;

/// The login-transaction cookies a request carries, taken before the layer strips its cookies
/// from the request, so that a login started later for it (by `require_login`, an extractor or
/// `RequireLayer`) chooses its slot knowing the logins the browser already holds. Empty, and
/// without allocation, on requests that carry none.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeldTransactions(Vec<(String, String)>);

impl HeldTransactions {
    /// The transaction cookies of `headers`.
    pub(crate) fn of(cookies: &Cookies, headers: &HeaderMap) -> Self {
        Self(
            request_cookies(headers)
                .filter(|(name, _)| name.starts_with(cookies.tx_prefix.as_str()))
                .take(MAX_HELD)
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        )
    }
}

/// Where a new login's transaction goes.
#[derive(Debug)]
pub(crate) struct TxSlot {
    /// The slot (its cookie name is [`Cookies::tx_slot_name`]).
    pub(crate) slot: usize,
    /// Transaction cookies of the request that are no slot of ours (to clear them).
    pub(crate) stray: Vec<String>,
}

impl Sessions {
    /// A fresh `state` for a login in `slot`: the slot number, `_`, then 32 random bytes
    /// (base64url), so the callback finds the transaction cookie without trying them all.
    pub(crate) fn new_state(slot: usize) -> String {
        format!("{slot}_{}", random_token(32))
    }

    /// The slot a `state` names, when it is one of ours.
    pub(crate) fn state_slot(&self, state: &str) -> Option<usize> {
        let (digits, _) = state.split_once('_')?;
        if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits
            .parse()
            .ok()
            .filter(|slot| *slot < self.max_transactions)
    }

    /// Opens a transaction cookie; `None` for anything tampered, foreign or malformed.
    pub(crate) fn open_transaction(&self, name: &str, value: &str) -> Option<Transaction> {
        self.tx_sealer
            .open(name, value)
            .and_then(|bytes| Transaction::decode(&bytes))
    }

    /// The transaction of the login that `state` answers, in the slot the state names (a
    /// state that names no slot is no login of ours). Its own `state` must equal the one
    /// given (compared in constant time): a slot overwritten by a later login holds another
    /// login's transaction.
    pub(crate) fn find_transaction(
        &self,
        headers: &HeaderMap,
        state: &str,
    ) -> Option<FoundTransaction> {
        let name = self.cookies.tx_slot_name(self.state_slot(state)?);
        let tx = request_cookies(headers)
            .filter(|(n, _)| *n == name)
            .find_map(|(n, value)| self.open_transaction(n, value))
            .filter(|tx| bool::from(tx.state.as_bytes().ct_eq(state.as_bytes())))?;
        Some(FoundTransaction { name, tx })
    }

    /// The slot for a new login: a free one (picked at random, so tabs started together
    /// rarely collide), else the one holding an unreadable or expired transaction, else the
    /// oldest. Only the request's cookies are seen, so logins racing in parallel may pick
    /// the same slot: they overwrite each other, and the number of cookies stays bounded.
    pub(crate) fn choose_tx_slot(&self, held: &HeldTransactions) -> TxSlot {
        let now = self.now_millis();
        let ttl = u64::try_from(self.transaction_ttl.as_millis()).unwrap_or(u64::MAX);
        let slots = self.max_transactions.max(1);
        // Creation time of the transaction in each slot; 0: unreadable or expired.
        let mut taken: Vec<Option<u64>> = vec![None; slots];
        let mut stray = Vec::new();
        for (name, value) in held.0.iter().map(|(n, v)| (n.as_str(), v.as_str())) {
            match self.cookies.tx_slot(name).filter(|slot| *slot < slots) {
                Some(slot) => {
                    let created = self
                        .open_transaction(name, value)
                        .map(|tx| tx.created_at_ms)
                        .filter(|created| created.saturating_add(ttl) >= now)
                        .unwrap_or(0);
                    // A name sent twice counts as its oldest (or unreadable) value.
                    taken[slot] = Some(taken[slot].map_or(created, |c| c.min(created)));
                }
                None => {
                    if stray.len() < MAX_STRAY_REMOVALS && !stray.iter().any(|s| s == name) {
                        stray.push(name.to_owned());
                    }
                }
            }
        }
        let free: Vec<usize> = (0..slots).filter(|s| taken[*s].is_none()).collect();
        let slot = if free.is_empty() {
            (0..slots)
                .min_by_key(|s| (taken[*s].unwrap_or(0), *s))
                .unwrap_or(0)
        } else {
            let mut pick = [0u8; 2];
            fill_random(&mut pick);
            free[usize::from(u16::from_be_bytes(pick)) % free.len()]
        };
        TxSlot { slot, stray }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::revocation::MemoryRevocationStore;
    use crate::session::cookie::{binding, SessionKey};
    use http::header::COOKIE;

    pub(crate) const A: &str = "https://a.example.com";
    const B: &str = "https://b.example.com";

    pub(crate) fn sessions(key: &SessionKey, providers: &[(&str, &str)]) -> Sessions {
        let bindings: Vec<Vec<u8>> = providers.iter().map(|(i, c)| binding(i, c)).collect();
        Sessions {
            session_sealer: key.sealer("session", &bindings),
            issuers: providers
                .iter()
                .map(|(i, _)| IssuerRule::Exact((*i).to_owned()))
                .collect(),
            tx_sealer: key.sealer("transaction", &[bindings.concat()]),
            cookies: Cookies::new("oidc_session", false),
            session_lifetime: Duration::from_secs(3600),
            idle_timeout: None,
            transaction_ttl: Duration::from_secs(600),
            max_transactions: 5,
            revocations: Arc::new(MemoryRevocationStore::default()),
            server: None,
            clock: Arc::new(SystemTime::now),
            size_warned: AtomicBool::new(false),
            verified: VerifiedSessions::new(64),
        }
    }

    pub(crate) fn session(issuer: &str, now: u64) -> Session {
        Session {
            created_at: now,
            expires_at: now + 3600,
            access_issued_at: 0,
            access_expires_at: 0,
            subject: "alice".into(),
            issuer: issuer.into(),
            claims: br#"{"sub":"alice"}"#.to_vec(),
            id_token: None,
            access_token: None,
            refresh_token: None,
            scope: "openid".into(),
            last_seen: now,
            sid: None,
            token_roles: Vec::new(),
            app: Vec::new(),
            dpop_key: Default::default(),
        }
    }

    /// The request headers a browser sends back for these `Set-Cookie` values.
    pub(super) fn request(set_cookies: &[String]) -> HeaderMap {
        let pairs: Vec<&str> = set_cookies
            .iter()
            .filter_map(|c| c.split(';').next())
            .collect();
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, pairs.join("; ").parse().unwrap());
        headers
    }

    #[test]
    fn each_provider_opens_its_own_sessions() {
        let key = SessionKey::generate();
        let layer = sessions(&key, &[(A, "app"), (B, "app")]);
        let now = layer.now();
        for issuer in [A, B] {
            let cookies = layer.session_cookies(&[], &session(issuer, now)).unwrap();
            let read = layer.read_session(&request(&cookies));
            assert_eq!(
                read.session.map(|s| s.issuer().to_owned()).as_deref(),
                Some(issuer)
            );
        }
        // A layer with only provider B, or with A under another client, opens none of A's.
        let a_cookie = request(&layer.session_cookies(&[], &session(A, now)).unwrap());
        for other in [
            sessions(&key, &[(B, "app")]),
            sessions(&key, &[(A, "other-app"), (B, "app")]),
        ] {
            let read = other.read_session(&a_cookie);
            assert!(read.session.is_none() && read.stale == ["oidc_session"]);
        }
        // A session of an issuer that is not a provider of the layer is not sealed at all.
        assert!(layer
            .session_cookies(&[], &session("https://c.example.com", now))
            .is_err());
    }

    #[test]
    fn session_must_name_the_issuer_of_the_key_that_opened_it() {
        let key = SessionKey::generate();
        let layer = sessions(&key, &[(A, "app"), (B, "app")]);
        let now = layer.now();
        // Sealed with B's key but naming A (what a mix-up elsewhere could produce).
        let sealed =
            layer
                .session_sealer
                .seal_for(1, "oidc_session", &session(A, now).encode("id"));
        let read = layer.read_session(&request(&[format!("oidc_session={sealed}")]));
        assert!(read.session.is_none());
        assert_eq!(read.stale, ["oidc_session"]);
    }

    #[test]
    fn revoked_session_id_is_no_session_and_the_id_survives_renewal() {
        let key = SessionKey::generate();
        let layer = sessions(&key, &[(A, "app")]);
        let now = layer.now();
        let first = request(&layer.session_cookies(&[], &session(A, now)).unwrap());
        let other = request(&layer.session_cookies(&[], &session(A, now)).unwrap());
        let s = layer.read_session(&first).session.unwrap();
        assert_ne!(
            s.session_id(),
            layer.read_session(&other).session.unwrap().session_id(),
            "every login is a new session id"
        );
        let renewed = request(
            &layer
                .session_cookies_with_id(&[], &s.to_session(), s.session_id())
                .unwrap(),
        );
        layer.revoke(&s);
        assert!(layer.read_session(&first).session.is_none());
        assert!(layer.read_session(&renewed).session.is_none());
        assert!(layer.read_session(&other).session.is_some());
    }
}

#[cfg(test)]
mod cache_tests {
    use super::tests::{request, session, sessions, A};
    use crate::session::cookie::SessionKey;
    use http::header::COOKIE;
    use http::HeaderValue;

    fn sessions_with_clock(clock: Clock) -> Sessions {
        Sessions {
            clock,
            ..sessions(&SessionKey::generate(), &[(A, "app")])
        }
    }

    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A cached session is checked like any other on every request: expiry, idleness and
    /// revocation end it although its cookie is still in the cache, and a changed cookie is
    /// opened (and refused) instead of matching the cached one.
    #[test]
    fn cached_sessions_are_still_checked_on_every_read() {
        let secs = Arc::new(AtomicU64::new(1_000_000));
        let clock_secs = secs.clone();
        let mut layer = sessions_with_clock(Arc::new(move || {
            SystemTime::UNIX_EPOCH + Duration::from_secs(clock_secs.load(Ordering::SeqCst))
        }));
        layer.idle_timeout = Some(Duration::from_secs(600));
        let now = layer.now();
        let mut s = session(A, now);
        s.expires_at = now + 3600;
        let headers = request(&layer.session_cookies(&[], &s).unwrap());
        let first = layer.read_session(&headers).session.expect("opens");
        let again = layer.read_session(&headers).session.expect("cached");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second read is a cache hit"
        );

        // Idle: 600 s without a request.
        secs.fetch_add(600, Ordering::SeqCst);
        assert!(layer.read_session(&headers).session.is_none(), "idle");
        secs.fetch_sub(600, Ordering::SeqCst);
        assert!(layer.read_session(&headers).session.is_some());

        // Past the absolute deadline (last_seen kept fresh by the idle check's own clock).
        layer.idle_timeout = None;
        secs.fetch_add(3600, Ordering::SeqCst);
        assert!(layer.read_session(&headers).session.is_none(), "expired");
        secs.fetch_sub(3600, Ordering::SeqCst);

        // A changed byte anywhere: never the cached session.
        let value = headers[COOKIE]
            .to_str()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        for at in [value.len() / 2, value.len() - 1] {
            let mut bytes = value.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let mut changed = HeaderMap::new();
            let header = [b"oidc_session=".as_slice(), &bytes].concat();
            changed.insert(COOKIE, HeaderValue::from_bytes(&header).unwrap());
            assert!(layer.read_session(&changed).session.is_none(), "byte {at}");
        }

        // Revoked (a logout elsewhere): refused although cached.
        layer.revoke(&first);
        assert!(layer.read_session(&headers).session.is_none(), "revoked");
        // The logout that revoked it forgets the opened copy.
        assert!(layer.verified.get(value.as_bytes()).is_some());
        layer.forget_opened(&headers);
        assert!(layer.verified.get(value.as_bytes()).is_none());
    }

    /// A cookie of an ended session is opened and refused each time, never cached.
    #[test]
    fn ended_sessions_are_not_cached() {
        let layer = sessions(&SessionKey::generate(), &[(A, "app")]);
        let now = layer.now();
        let mut s = session(A, now);
        s.expires_at = now - 1;
        let headers = request(&layer.session_cookies(&[], &s).unwrap());
        let value = headers[COOKIE]
            .to_str()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        assert!(layer.read_session(&headers).session.is_none());
        assert!(layer.verified.get(value.as_bytes()).is_none());
    }
}
