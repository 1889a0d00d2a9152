//! What a session and a login transaction store, and their compact binary encoding.
//!
//! The encoding is a version byte, fixed-width integers and length-prefixed byte strings. It
//! is only ever read after the AES-GCM tag has been verified, but decoding still checks every
//! length, so a bug elsewhere cannot turn into a panic here.
//!
//! `cookie` seals values into cookies and reads them back; `sessions` holds the session-wide
//! settings and reads, seals and touches the session cookie with them.

pub(crate) mod cookie;
pub(crate) mod server;
pub(crate) mod sessions;
pub(crate) mod store;
pub(crate) mod verified;

use std::sync::Arc;

use bytes::Bytes;

use crate::identity::{AccessToken, Identity, RoleClaims, RoleSource, Source};

/// Version 4 ends with tagged optional fields (see [`Tag`]); version 3 (the same fields, with
/// the access token's roles as an untagged optional last field) is still read. Version 3
/// added the session id and the time the access token was obtained; older cookies (sealed with
/// keys not yet bound to the client, so they no longer open) are refused like any unreadable
/// cookie.
const SESSION_VERSION: u8 = 4;
const SESSION_VERSION_3: u8 = 3;

/// The optional fields at the end of a version-4 session: each is a tag byte and a
/// length-prefixed byte string, written only when not empty, in increasing tag order, each tag
/// at most once. An unknown tag makes the session unreadable (it was sealed by a newer
/// version), never silently dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Tag {
    /// [`Session::token_roles`].
    TokenRoles = 1,
    /// [`Session::app`]: the post-login hook's app subject and claims.
    AppClaims = 2,
    /// [`Session::dpop_key`].
    DpopKey = 3,
    // 4 is reserved for server-side (Redis) sessions.
}

impl Tag {
    fn from_u8(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Tag::TokenRoles),
            2 => Some(Tag::AppClaims),
            3 => Some(Tag::DpopKey),
            _ => None,
        }
    }
}
/// Longest session id accepted when reading (ours are 22 characters).
const MAX_SESSION_ID_LEN: usize = 64;
/// Version 2: lengths as LEB128 varints and `max_age` only when set (a transaction cookie
/// travels with every request for the login's lifetime, so every byte counts).
const TRANSACTION_VERSION: u8 = 2;

/// A fresh random session id: 16 random bytes as base64url (22 characters).
pub(crate) fn new_session_id() -> String {
    cookie::random_token(16)
}

/// A logged-in session, as sealed into the session cookie, next to its session id (see
/// [`Session::encode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    /// Unix seconds when the user logged in.
    pub(crate) created_at: u64,
    /// Unix seconds after which the session is over.
    pub(crate) expires_at: u64,
    /// Unix seconds when the access token expires (0: unknown).
    pub(crate) access_expires_at: u64,
    /// Unix seconds when the access token was obtained (its lifetime decides when to refresh).
    pub(crate) access_issued_at: u64,
    pub(crate) subject: String,
    pub(crate) issuer: String,
    /// The identity's claims as a JSON object.
    pub(crate) claims: Vec<u8>,
    pub(crate) id_token: Option<String>,
    pub(crate) access_token: Option<String>,
    pub(crate) refresh_token: Option<String>,
    /// Granted scopes, space-separated.
    pub(crate) scope: String,
    /// Unix seconds of the last request that refreshed the rolling deadline.
    pub(crate) last_seen: u64,
    /// The provider's session id (`sid`), for back-channel logout.
    pub(crate) sid: Option<String>,
    /// Roles from the verified access token, as a JSON array of strings (empty: none). An
    /// optional last field: sessions without it encode as before.
    pub(crate) token_roles: Vec<u8>,
    /// The app's subject and claims set by the post-login hook (JSON, see
    /// `hook::AppData`; empty: none).
    pub(crate) app: Vec<u8>,
    /// The PKCS#8 private key the session's tokens are DPoP-bound to (empty: not bound). A
    /// secret: never logged (see the `Debug` of [`Session`]).
    pub(crate) dpop_key: SecretBytes,
}

/// Secret bytes (a private key) that print as `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct SecretBytes(pub(crate) Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Session {
    /// The encoding, with the layer's own random id of this session (kept for its whole life,
    /// across refresh and rolling renewal; a logout revokes it).
    pub(crate) fn encode(&self, session_id: &str) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(
            64 + self.subject.len()
                + self.issuer.len()
                + self.claims.len()
                + self.id_token.as_ref().map_or(0, String::len)
                + self.access_token.as_ref().map_or(0, String::len)
                + self.refresh_token.as_ref().map_or(0, String::len),
        ));
        w.0.push(SESSION_VERSION);
        w.u64(self.created_at);
        w.u64(self.expires_at);
        w.u64(self.access_expires_at);
        w.u64(self.access_issued_at);
        w.bytes(self.subject.as_bytes());
        w.bytes(self.issuer.as_bytes());
        w.bytes(&self.claims);
        w.opt(self.id_token.as_deref());
        w.opt(self.access_token.as_deref());
        w.opt(self.refresh_token.as_deref());
        w.bytes(self.scope.as_bytes());
        w.u64(self.last_seen);
        w.opt(self.sid.as_deref());
        w.bytes(session_id.as_bytes());
        w.tagged(Tag::TokenRoles, &self.token_roles);
        w.tagged(Tag::AppClaims, &self.app);
        w.tagged(Tag::DpopKey, &self.dpop_key.0);
        w.0
    }

    #[cfg(test)]
    pub(crate) fn decode(bytes: &[u8]) -> Option<(Self, String)> {
        SessionRef::parse(Bytes::copy_from_slice(bytes))
            .map(|r| (r.to_session(), r.session_id().to_owned()))
    }
}

type Span = std::ops::Range<usize>;

/// A session read from a cookie without copying: the decrypted bytes and where each field
/// is. Every request with a session pays only for this; an owned [`Session`] is made only
/// when it has to change (refresh, rolling deadline).
#[derive(Debug, Clone)]
pub(crate) struct SessionRef {
    buf: Bytes,
    pub(crate) created_at: u64,
    pub(crate) expires_at: u64,
    pub(crate) access_expires_at: u64,
    pub(crate) access_issued_at: u64,
    pub(crate) last_seen: u64,
    subject: Span,
    issuer: Span,
    claims: Span,
    id_token: Option<Span>,
    access_token: Option<Span>,
    refresh_token: Option<Span>,
    scope: Span,
    sid: Option<Span>,
    session_id: Span,
    token_roles: Option<Span>,
    app: Option<Span>,
    dpop_key: Option<Span>,
}

impl SessionRef {
    /// Reads the encoding of [`Session::encode`]; strings are checked to be UTF-8 once here.
    pub(crate) fn parse(buf: Bytes) -> Option<Self> {
        let mut r = Spans { buf: &buf, pos: 0 };
        let version = r.u8()?;
        if version != SESSION_VERSION && version != SESSION_VERSION_3 {
            return None;
        }
        let created_at = r.u64()?;
        let expires_at = r.u64()?;
        let access_expires_at = r.u64()?;
        let access_issued_at = r.u64()?;
        let subject = r.string()?;
        let issuer = r.string()?;
        let claims = r.bytes()?;
        // Tokens are checked to be UTF-8 when used (rarely), not on every request.
        let id_token = r.opt_bytes()?;
        let access_token = r.opt_bytes()?;
        let refresh_token = r.opt_bytes()?;
        let scope = r.string()?;
        let last_seen = r.u64()?;
        let sid = r.opt()?;
        let session_id = r.string()?;
        let mut token_roles = None;
        let mut app = None;
        let mut dpop_key = None;
        if version == SESSION_VERSION_3 {
            if r.pos < buf.len() {
                token_roles = Some(r.bytes()?);
            }
        } else {
            let mut last = None;
            while r.pos < buf.len() {
                let tag = Tag::from_u8(r.u8()?)?;
                if last.is_some_and(|last| tag <= last) {
                    return None;
                }
                last = Some(tag);
                let value = r.bytes()?;
                match tag {
                    Tag::TokenRoles => token_roles = Some(value),
                    Tag::AppClaims => app = Some(value),
                    Tag::DpopKey => dpop_key = Some(value),
                }
            }
        }
        if r.pos != buf.len() || session_id.is_empty() || session_id.len() > MAX_SESSION_ID_LEN {
            return None;
        }
        Some(Self {
            created_at,
            expires_at,
            access_expires_at,
            access_issued_at,
            last_seen,
            subject,
            issuer,
            claims,
            id_token,
            access_token,
            refresh_token,
            scope,
            sid,
            session_id,
            token_roles,
            app,
            dpop_key,
            buf,
        })
    }

    /// The text of a field: checked in `parse` for short fields, here for tokens (a token
    /// that is not UTF-8 reads as empty, which no provider accepts).
    fn str(&self, span: &Span) -> &str {
        std::str::from_utf8(&self.buf[span.clone()]).unwrap_or_default()
    }

    pub(crate) fn subject(&self) -> &str {
        self.str(&self.subject)
    }

    pub(crate) fn issuer(&self) -> &str {
        self.str(&self.issuer)
    }

    pub(crate) fn sid(&self) -> Option<&str> {
        self.sid.as_ref().map(|s| self.str(s))
    }

    /// The layer's own id of this session (not the provider's `sid`).
    pub(crate) fn session_id(&self) -> &str {
        self.str(&self.session_id)
    }

    pub(crate) fn id_token(&self) -> Option<&str> {
        self.id_token.as_ref().map(|s| self.str(s))
    }

    pub(crate) fn has_refresh_token(&self) -> bool {
        self.refresh_token.is_some()
    }

    /// An owned copy, to change and seal again.
    pub(crate) fn to_session(&self) -> Session {
        let owned = |s: &Option<Span>| s.as_ref().map(|s| self.str(s).to_owned());
        Session {
            created_at: self.created_at,
            expires_at: self.expires_at,
            access_expires_at: self.access_expires_at,
            access_issued_at: self.access_issued_at,
            subject: self.subject().to_owned(),
            issuer: self.issuer().to_owned(),
            claims: self.buf[self.claims.clone()].to_vec(),
            id_token: owned(&self.id_token),
            access_token: owned(&self.access_token),
            refresh_token: owned(&self.refresh_token),
            scope: self.str(&self.scope).to_owned(),
            last_seen: self.last_seen,
            sid: owned(&self.sid),
            token_roles: self
                .token_roles
                .as_ref()
                .map(|s| self.buf[s.clone()].to_vec())
                .unwrap_or_default(),
            app: self
                .app
                .as_ref()
                .map(|s| self.buf[s.clone()].to_vec())
                .unwrap_or_default(),
            dpop_key: SecretBytes(
                self.dpop_key
                    .as_ref()
                    .map(|s| self.buf[s.clone()].to_vec())
                    .unwrap_or_default(),
            ),
        }
    }

    /// The identity (carrying the access token) of this session; `issuer` is the provider's
    /// shared copy when it matches; `roles` says where its roles are.
    pub(crate) fn into_identity(
        self,
        provider_issuer: &Arc<str>,
        roles: &Arc<RoleClaims>,
    ) -> Identity {
        let issuer = if self.issuer() == &**provider_issuer {
            provider_issuer.clone()
        } else {
            Arc::from(self.issuer())
        };
        let access_token = self
            .access_token
            .as_ref()
            .map(|s| AccessToken::new(self.buf.slice(s.clone()), self.access_expires_at))
            .map(|token| match &self.dpop_key {
                Some(key) => token.bound_to(self.buf.slice(key.clone())),
                None => token,
            });
        let app = self
            .app
            .as_ref()
            .map(|s| self.buf.slice(s.clone()))
            .unwrap_or_default();
        Identity::from_parts(
            self.subject().to_owned(),
            issuer,
            self.buf.slice(self.claims.clone()),
            self.str(&self.scope).to_owned(),
            Source::Session,
            access_token,
            RoleSource {
                claims: roles.clone(),
                granted: self
                    .token_roles
                    .as_ref()
                    .map(|s| self.buf.slice(s.clone()))
                    .unwrap_or_default(),
            },
        )
        .with_app(app)
        .with_session_expiry(self.expires_at)
    }
}

/// Like `Reader`, but yields positions instead of copies.
struct Spans<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Spans<'_> {
    fn take(&mut self, n: usize) -> Option<Span> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())?;
        let span = self.pos..end;
        self.pos = end;
        Some(span)
    }
    fn u8(&mut self) -> Option<u8> {
        let s = self.take(1)?;
        Some(self.buf[s.start])
    }
    fn u64(&mut self) -> Option<u64> {
        let s = self.take(8)?;
        Some(u64::from_be_bytes(self.buf[s].try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Span> {
        let s = self.take(4)?;
        let len = u32::from_be_bytes(self.buf[s].try_into().ok()?);
        self.take(usize::try_from(len).ok()?)
    }
    fn string(&mut self) -> Option<Span> {
        let s = self.bytes()?;
        std::str::from_utf8(&self.buf[s.clone()]).ok()?;
        Some(s)
    }
    fn opt(&mut self) -> Option<Option<Span>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.string()?)),
            _ => None,
        }
    }
    fn opt_bytes(&mut self) -> Option<Option<Span>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.bytes()?)),
            _ => None,
        }
    }
}

/// One login attempt in flight, sealed into a cookie named after its `state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transaction {
    /// Unix milliseconds (fine enough to order logins started in the same second).
    pub(crate) created_at_ms: u64,
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) pkce_verifier: String,
    pub(crate) return_to: String,
    /// `response_type=code id_token` (hybrid) instead of `code`.
    pub(crate) hybrid: bool,
    /// The response comes as a form POST (`response_mode=form_post`).
    pub(crate) form_post: bool,
    /// The request had `prompt=none`: "login required" answers mean "not logged in".
    pub(crate) prompt_none: bool,
    /// The request's `max_age`, in seconds: `auth_time` must then be recent enough.
    pub(crate) max_age: Option<u64>,
    /// The provider (tenant) the login went to; empty for the default.
    pub(crate) provider: String,
}

impl Transaction {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(160 + self.return_to.len()));
        w.0.push(TRANSACTION_VERSION);
        w.u64(self.created_at_ms);
        w.short(self.state.as_bytes());
        w.short(self.nonce.as_bytes());
        w.short(self.pkce_verifier.as_bytes());
        w.short(self.return_to.as_bytes());
        let flags = u8::from(self.hybrid)
            | u8::from(self.form_post) << 1
            | u8::from(self.prompt_none) << 2
            | u8::from(self.max_age.is_some()) << 3;
        w.0.push(flags);
        if let Some(max_age) = self.max_age {
            w.varint(max_age);
        }
        w.short(self.provider.as_bytes());
        w.0
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.u8()? != TRANSACTION_VERSION {
            return None;
        }
        let created_at_ms = r.u64()?;
        let state = r.short_string()?;
        let nonce = r.short_string()?;
        let pkce_verifier = r.short_string()?;
        let return_to = r.short_string()?;
        let flags = r.u8()?;
        if flags & !0b1111 != 0 {
            return None;
        }
        let max_age = if flags & 8 != 0 {
            Some(r.varint()?)
        } else {
            None
        };
        let tx = Transaction {
            created_at_ms,
            state,
            nonce,
            pkce_verifier,
            return_to,
            hybrid: flags & 1 != 0,
            form_post: flags & 2 != 0,
            prompt_none: flags & 4 != 0,
            max_age,
            provider: r.short_string()?,
        };
        r.0.is_empty().then_some(tx)
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        // Lengths are bounded by the cookie size, far below u32::MAX.
        self.0
            .extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.0.extend_from_slice(b);
    }
    /// An optional tagged field of a session; nothing when empty.
    fn tagged(&mut self, tag: Tag, b: &[u8]) {
        if !b.is_empty() {
            self.0.push(tag as u8);
            self.bytes(b);
        }
    }
    /// LEB128: 7 bits a byte, low bits first.
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    /// A byte string with a varint length (one byte below 128).
    fn short(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn opt(&mut self, v: Option<&str>) {
        match v {
            Some(v) => {
                self.0.push(1);
                self.bytes(v.as_bytes());
            }
            None => self.0.push(0),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    /// LEB128, at most 10 bytes; `None` when it does not fit a u64.
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn short_string(&mut self) -> Option<String> {
        let len = usize::try_from(self.varint()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            created_at: 1,
            expires_at: 2,
            access_expires_at: 3,
            access_issued_at: 2,
            subject: "alice".into(),
            issuer: "https://id.example.com".into(),
            claims: br#"{"sub":"alice"}"#.to_vec(),
            id_token: Some("a.b.c".into()),
            access_token: None,
            refresh_token: Some("r".into()),
            scope: "openid email".into(),
            last_seen: 4,
            sid: Some("sid-1".into()),
            token_roles: Vec::new(),
            app: Vec::new(),
            dpop_key: Default::default(),
        }
    }

    #[test]
    fn session_round_trip() {
        let s = session();
        let id = new_session_id();
        assert_eq!(id.len(), 22);
        assert_ne!(id, new_session_id());
        assert_eq!(
            Session::decode(&s.encode(&id)),
            Some((s.clone(), id.clone()))
        );
        // the access token's roles: an optional last field
        let with_roles = Session {
            token_roles: br#"["admin"]"#.to_vec(),
            dpop_key: Default::default(),
            ..s.clone()
        };
        let encoded = with_roles.encode(&id);
        assert_eq!(encoded.len(), s.encode(&id).len() + 1 + 4 + 9);
        assert_eq!(Session::decode(&encoded), Some((with_roles, id.clone())));
        // a truncated or overlong last field is no session
        assert_eq!(Session::decode(&encoded[..encoded.len() - 1]), None);
        let mut longer = encoded.clone();
        longer.push(0);
        assert_eq!(Session::decode(&longer), None);
    }

    #[test]
    fn tagged_fields_are_refused_when_unknown_repeated_or_out_of_order() {
        let id = new_session_id();
        let base = session().encode(&id);
        let roles = br#"["a"]"#;
        let field = |tag: u8| {
            let mut f = vec![tag];
            f.extend_from_slice(&(roles.len() as u32).to_be_bytes());
            f.extend_from_slice(roles);
            f
        };
        let with = |fields: &[Vec<u8>]| {
            let mut b = base.clone();
            for f in fields {
                b.extend_from_slice(f);
            }
            b
        };
        let (decoded, _) = Session::decode(&with(&[field(1)])).expect("known tag");
        assert_eq!(decoded.token_roles, roles.to_vec());
        assert!(
            Session::decode(&with(&[field(200)])).is_none(),
            "unknown tag"
        );
        assert!(Session::decode(&with(&[field(0)])).is_none(), "tag zero");
        assert!(
            Session::decode(&with(&[field(1), field(1)])).is_none(),
            "repeated tag"
        );
        let (decoded, _) = Session::decode(&with(&[field(1), field(2)])).expect("both tags");
        assert_eq!(decoded.app, roles.to_vec());
        assert!(
            Session::decode(&with(&[field(2), field(1)])).is_none(),
            "out of order"
        );
    }

    #[test]
    fn app_claims_travel_in_their_tag_and_reach_the_identity() {
        let id = new_session_id();
        let app = br#"{"sub":"u-7","claims":{"plan":"pro"}}"#;
        let s = Session {
            app: app.to_vec(),
            ..session()
        };
        let encoded = s.encode(&id);
        assert_eq!(
            encoded.len(),
            session().encode(&id).len() + 1 + 4 + app.len()
        );
        assert_eq!(Session::decode(&encoded), Some((s, id)));
        let identity = SessionRef::parse(Bytes::from(encoded))
            .expect("session")
            .into_identity(&Arc::from("https://id.example.com"), &Default::default());
        assert_eq!(identity.app_subject(), Some("u-7"));
        assert_eq!(identity.app_claims()["plan"], "pro");
        assert_eq!(identity.subject(), "alice");
        assert_eq!(
            identity.session_expires_at(),
            Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(2))
        );
    }

    #[test]
    fn the_dpop_key_round_trips_as_tag_3_and_reaches_the_access_token() {
        let id = new_session_id();
        let key = crate::dpop::key::DpopKey::generate().expect("key");
        let s = Session {
            token_roles: br#"["admin"]"#.to_vec(),
            access_token: Some("the-token".into()),
            dpop_key: SecretBytes(key.pkcs8().to_vec()),
            ..session()
        };
        let encoded = s.encode(&id);
        let (decoded, _) = Session::decode(&encoded).expect("decoded");
        assert_eq!(decoded, s);
        assert!(!format!("{decoded:?}").contains(&format!("{:?}", key.pkcs8())));
        let identity = SessionRef::parse(Bytes::from(encoded))
            .expect("parsed")
            .into_identity(&Arc::from("https://id.example.com"), &Default::default());
        let token = identity.access_token().expect("token");
        assert!(token.is_dpop_bound());
        let unbound = Session {
            dpop_key: SecretBytes::default(),
            ..s
        };
        let identity = SessionRef::parse(Bytes::from(unbound.encode(&id)))
            .expect("parsed")
            .into_identity(&Arc::from("https://id.example.com"), &Default::default());
        assert!(!identity.access_token().expect("token").is_dpop_bound());
    }

    #[test]
    fn roles_app_claims_and_dpop_key_are_written_in_tag_order_and_all_read_back() {
        let id = new_session_id();
        let key = crate::dpop::key::DpopKey::generate().expect("key");
        let roles = br#"["admin"]"#;
        let app = br#"{"sub":"u-7"}"#;
        let s = Session {
            token_roles: roles.to_vec(),
            app: app.to_vec(),
            access_token: Some("the-token".into()),
            dpop_key: SecretBytes(key.pkcs8().to_vec()),
            ..session()
        };
        let encoded = s.encode(&id);
        // The tagged fields follow the fields of `session()` (with the access token), in
        // increasing tag order: 1 roles, 2 app claims, 3 DPoP key.
        let plain = Session {
            access_token: Some("the-token".into()),
            ..session()
        }
        .encode(&id);
        let mut expected = plain.clone();
        for (tag, value) in [(1u8, &roles[..]), (2, &app[..]), (3, key.pkcs8())] {
            expected.push(tag);
            expected.extend_from_slice(&(value.len() as u32).to_be_bytes());
            expected.extend_from_slice(value);
        }
        assert_eq!(encoded, expected);
        assert_eq!(Session::decode(&encoded), Some((s, id)));
        let identity = SessionRef::parse(Bytes::from(encoded))
            .expect("parsed")
            .into_identity(&Arc::from("https://id.example.com"), &Default::default());
        assert_eq!(identity.app_subject(), Some("u-7"));
        assert!(identity.access_token().expect("token").is_dpop_bound());
        // The DPoP key before the app claims is out of order: no session.
        let mut swapped = plain;
        for (tag, value) in [(1u8, &roles[..]), (3, key.pkcs8()), (2, &app[..])] {
            swapped.push(tag);
            swapped.extend_from_slice(&(value.len() as u32).to_be_bytes());
            swapped.extend_from_slice(value);
        }
        assert!(Session::decode(&swapped).is_none());
    }

    #[test]
    fn version_3_sessions_are_still_read() {
        let id = new_session_id();
        let s = Session {
            token_roles: br#"["admin"]"#.to_vec(),
            dpop_key: Default::default(),
            ..session()
        };
        // Version 3: the same fields, then the roles untagged.
        let mut v3 = session().encode(&id);
        v3[0] = SESSION_VERSION_3;
        v3.extend_from_slice(&9u32.to_be_bytes());
        v3.extend_from_slice(br#"["admin"]"#);
        assert_eq!(Session::decode(&v3), Some((s, id.clone())));
        let mut plain_v3 = session().encode(&id);
        plain_v3[0] = SESSION_VERSION_3;
        assert_eq!(Session::decode(&plain_v3), Some((session(), id)));
    }

    #[test]
    fn session_without_a_valid_id_is_refused() {
        assert!(Session::decode(&session().encode("")).is_none());
        assert!(Session::decode(&session().encode(&"x".repeat(65))).is_none());
        assert!(Session::decode(&session().encode(&"x".repeat(64))).is_some());
        // Version 1 (no session id): refused, never misread.
        let mut v1 = session().encode("id");
        v1.truncate(v1.len() - 6);
        v1[0] = 1;
        assert!(Session::decode(&v1).is_none());
    }

    #[test]
    fn truncated_or_padded_session_is_refused() {
        let bytes = session().encode("session-id");
        for n in 0..bytes.len() {
            assert!(Session::decode(&bytes[..n]).is_none(), "prefix {n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Session::decode(&longer).is_none());
        let mut other_version = bytes;
        other_version[0] = 9;
        assert!(Session::decode(&other_version).is_none());
    }

    #[test]
    fn transaction_round_trip() {
        let tx = Transaction {
            created_at_ms: 5,
            state: "s".into(),
            nonce: "n".into(),
            pkce_verifier: "v".into(),
            return_to: "/x?y=1".into(),
            hybrid: true,
            form_post: true,
            prompt_none: false,
            max_age: Some(300),
            provider: "tenant-b".into(),
        };
        assert_eq!(Transaction::decode(&tx.encode()), Some(tx.clone()));
        assert!(Transaction::decode(&[TRANSACTION_VERSION, 0, 0]).is_none());
        for max_age in [None, Some(0), Some(127), Some(128), Some(u64::MAX)] {
            let tx = Transaction {
                max_age,
                ..tx.clone()
            };
            assert_eq!(Transaction::decode(&tx.encode()), Some(tx));
        }
        // A varint longer than a u64 is refused.
        let mut overlong = vec![TRANSACTION_VERSION];
        overlong.extend_from_slice(&[0; 8]);
        overlong.extend_from_slice(&[0xff; 11]);
        assert!(Transaction::decode(&overlong).is_none());
    }
}

#[cfg(test)]
mod robustness {
    use super::*;
    use crate::session::cookie::{fill_random, SessionKey};

    /// A stand-in for fuzzing (cargo-fuzz needs a nightly toolchain this project does not
    /// have): random and mutated inputs to everything that reads cookie bytes never panic.
    #[test]
    fn random_and_mutated_inputs_never_panic() {
        let valid = Session {
            created_at: 1,
            expires_at: 2,
            access_expires_at: 3,
            access_issued_at: 2,
            subject: "alice".into(),
            issuer: "https://id.example.com".into(),
            claims: br#"{"sub":"alice"}"#.to_vec(),
            id_token: Some("a.b.c".into()),
            access_token: Some("t".into()),
            refresh_token: None,
            scope: "openid".into(),
            last_seen: 4,
            sid: None,
            token_roles: br#"["admin"]"#.to_vec(),
            app: br#"{"sub":"u-1"}"#.to_vec(),
            dpop_key: Default::default(),
        }
        .encode(&new_session_id());
        let sealer = SessionKey::new([9; 32]).unwrap().sealer("session", &[]);
        let mut buf = vec![0u8; 512];
        for round in 0..20_000usize {
            fill_random(&mut buf);
            let len = usize::from(buf[0]) * 2 % buf.len();
            let random = &buf[..len];
            let _ = SessionRef::parse(Bytes::copy_from_slice(random));
            let _ = Transaction::decode(random);
            // the valid encoding with one byte changed, or cut short
            let mut mutated = valid.clone();
            let at = round % mutated.len();
            mutated[at] ^= buf[1] | 1;
            let _ = SessionRef::parse(Bytes::from(mutated));
            let _ = SessionRef::parse(Bytes::copy_from_slice(&valid[..at]));
            let text: String = random.iter().map(|b| char::from(b % 128)).collect();
            let _ = sealer.open("s", &text);
        }
    }
}
