//! [`VerifiedSessions`]: a bounded cache of session cookies already opened, so that the
//! requests of a session after its first one neither decode nor decrypt nor parse its cookie.
//!
//! An entry is found by the exact bytes of the cookie's value: a keyed hash (SipHash with a
//! per-process random key) of the value's last bytes, which hold the AES-GCM tag, picks the
//! slot, and the whole value is then compared byte for byte with the one that was opened. A
//! hash is never taken as proof: a cookie that differs in any byte is a miss and is opened
//! (and authenticated) from scratch, so a changed or forged cookie is never served from here.
//!
//! What the cache keeps is what opening proved: the cookie is authentic and names the issuer
//! of the provider whose key opened it. Everything that changes with time (expiry, idleness,
//! revocation) is checked by the caller on every request, hit or miss.
//!
//! Memory is bounded by the number of slots (each holds at most one session); only cookies
//! that opened are inserted, so a flood of forged cookies inserts nothing.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::identity::Identity;
use crate::session::SessionRef;

/// How many trailing bytes of a sealed value choose its slot: they encode the AES-GCM tag
/// (16 bytes, 22 base64url characters) and the end of the ciphertext, which differ for every
/// seal.
const HASHED_TAIL: usize = 48;

/// A session cookie that opened, with what the layer derives from it once.
pub(crate) struct Verified {
    /// The sealed value exactly as the request carried it (chunks joined).
    cookie: Box<[u8]>,
    /// The opened session.
    pub(crate) session: SessionRef,
    /// The identity handed to the inner service, made on first use and shared by every
    /// request that carries the same cookie.
    identity: OnceLock<Identity>,
}

impl Verified {
    /// A session that just opened from the value `cookie`.
    pub(crate) fn new(cookie: &[u8], session: SessionRef) -> Self {
        Self {
            cookie: cookie.into(),
            session,
            identity: OnceLock::new(),
        }
    }

    /// The session's identity; `make` builds it the first time.
    pub(crate) fn identity(&self, make: impl FnOnce(&SessionRef) -> Identity) -> Identity {
        self.identity.get_or_init(|| make(&self.session)).clone()
    }
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the cookie (a credential) nor the session's tokens.
        f.debug_struct("Verified")
            .field("subject", &self.session.subject())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Verified {
    type Target = SessionRef;

    fn deref(&self) -> &SessionRef {
        &self.session
    }
}

/// The cache: a fixed array of slots, each holding at most one session.
pub(crate) struct VerifiedSessions {
    /// A power of two in length (or empty: the cache is off).
    slots: Box<[Mutex<Option<Arc<Verified>>>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl std::fmt::Debug for VerifiedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedSessions")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl VerifiedSessions {
    /// A cache of `capacity` slots, rounded up to a power of two; 0 turns it off.
    pub(crate) fn new(capacity: usize) -> Self {
        let slots = if capacity == 0 {
            0
        } else {
            capacity.next_power_of_two()
        };
        Self {
            slots: (0..slots).map(|_| Mutex::new(None)).collect(),
            hasher: Default::default(),
        }
    }

    fn slot(&self, cookie: &[u8]) -> Option<&Mutex<Option<Arc<Verified>>>> {
        if self.slots.is_empty() {
            return None;
        }
        let tail = &cookie[cookie.len().saturating_sub(HASHED_TAIL)..];
        let hash = self.hasher.hash_one((tail, cookie.len()));
        // Truncation is the point: the low bits pick the slot.
        self.slots.get(hash as usize & (self.slots.len() - 1))
    }

    /// The session this exact cookie value opened to, when it is still cached.
    pub(crate) fn get(&self, cookie: &[u8]) -> Option<Arc<Verified>> {
        let slot = self.slot(cookie)?;
        let entry = slot.lock().unwrap_or_else(PoisonError::into_inner);
        entry
            .as_ref()
            .filter(|e| same_bytes(&e.cookie, cookie))
            .cloned()
    }

    /// Forgets the session of this exact cookie value, if cached.
    pub(crate) fn remove(&self, cookie: &[u8]) {
        if let Some(slot) = self.slot(cookie) {
            let mut entry = slot.lock().unwrap_or_else(PoisonError::into_inner);
            if entry
                .as_ref()
                .is_some_and(|e| same_bytes(&e.cookie, cookie))
            {
                let old = entry.take();
                drop(entry);
                drop(old);
            }
        }
    }

    /// Remembers a session that opened from `cookie`, in place of whatever held its slot.
    pub(crate) fn insert(&self, verified: Verified) -> Arc<Verified> {
        let verified = Arc::new(verified);
        if let Some(slot) = self.slot(&verified.cookie) {
            let old = slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .replace(verified.clone());
            // Freed after the lock is released.
            drop(old);
        }
        verified
    }
}

/// Whether `a` and `b` are the same bytes, comparing all of them: the time taken does not
/// depend on where they first differ, only on their length.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u64;
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in a8.remainder().iter().zip(b8.remainder()) {
        diff |= u64::from(x ^ y);
    }
    for (x, y) in a8.zip(b8) {
        let x = u64::from_ne_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_ne_bytes(y.try_into().unwrap_or_default());
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{new_session_id, Session};
    use bytes::Bytes;

    fn session_ref(subject: &str) -> SessionRef {
        let session = Session {
            created_at: 1,
            expires_at: 2,
            access_expires_at: 0,
            access_issued_at: 0,
            subject: subject.into(),
            issuer: "https://id.example.com".into(),
            claims: b"{}".to_vec(),
            id_token: None,
            access_token: None,
            refresh_token: None,
            scope: "openid".into(),
            last_seen: 1,
            sid: None,
            token_roles: Vec::new(),
            app: Vec::new(),
            dpop_key: Default::default(),
        };
        SessionRef::parse(Bytes::from(session.encode(&new_session_id()))).unwrap()
    }

    #[test]
    fn only_the_exact_same_bytes_hit() {
        let cache = VerifiedSessions::new(64);
        let cookie =
            b"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIz".to_vec();
        assert!(cache.get(&cookie).is_none());
        cache.insert(Verified::new(&cookie, session_ref("alice")));
        let hit = cache.get(&cookie).expect("hit");
        assert_eq!(hit.session.subject(), "alice");
        // Any change, anywhere (also outside the hashed tail), and any length change, misses.
        for at in [
            0,
            1,
            cookie.len() / 2,
            cookie.len() - HASHED_TAIL - 1,
            cookie.len() - 1,
        ] {
            let mut changed = cookie.clone();
            changed[at] ^= 1;
            assert!(cache.get(&changed).is_none(), "byte {at} changed");
        }
        assert!(cache.get(&cookie[1..]).is_none());
        assert!(cache.get(&cookie[..cookie.len() - 1]).is_none());
        let mut longer = cookie.clone();
        longer.push(b'A');
        assert!(cache.get(&longer).is_none());
    }

    #[test]
    fn bounded_by_its_slots() {
        let cache = VerifiedSessions::new(4);
        assert_eq!(cache.slots.len(), 4);
        let cookies: Vec<Vec<u8>> = (0..100).map(|i| format!("cookie-{i:03}").into()).collect();
        for c in &cookies {
            cache.insert(Verified::new(c, session_ref("bob")));
        }
        let cached = cookies.iter().filter(|c| cache.get(c).is_some()).count();
        assert!((1..=4).contains(&cached), "{cached} cached");
        // The last one inserted is always there.
        assert!(cache.get(cookies.last().unwrap()).is_some());
    }

    #[test]
    fn remove_forgets_only_the_exact_cookie() {
        let cache = VerifiedSessions::new(1);
        cache.insert(Verified::new(b"cookie-a", session_ref("erin")));
        cache.remove(b"cookie-b");
        assert!(
            cache.get(b"cookie-a").is_some(),
            "another cookie removes nothing"
        );
        cache.remove(b"cookie-a");
        assert!(cache.get(b"cookie-a").is_none());
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = VerifiedSessions::new(0);
        cache.insert(Verified::new(b"x", session_ref("carol")));
        assert!(cache.get(b"x").is_none());
    }

    #[test]
    fn identity_is_made_once() {
        let v = Verified::new(b"c", session_ref("dave"));
        let mut made = 0;
        for _ in 0..3 {
            let id = v.identity(|s| {
                made += 1;
                Identity::new(s.subject(), s.issuer(), Default::default())
            });
            assert_eq!(id.subject(), "dave");
        }
        assert_eq!(made, 1);
    }

    #[test]
    fn same_bytes_compares_everything() {
        assert!(same_bytes(b"", b""));
        assert!(same_bytes(b"abcdefghij", b"abcdefghij"));
        assert!(!same_bytes(b"abcdefghij", b"abcdefghiJ"));
        assert!(!same_bytes(b"Abcdefghij", b"abcdefghij"));
        assert!(!same_bytes(b"abc", b"abcd"));
    }
}
