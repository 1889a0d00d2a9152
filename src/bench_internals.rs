//! Entry points into private parts of the crate for its own micro-benchmarks
//! (feature `bench-internals`; not a public API, no stability promise).
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

use bytes::Bytes;
use http::HeaderMap;

use crate::jwt::{Alg, JwkSet, Unverified};
use crate::session::cookie::{binding, find_chunked, SessionKey};
use crate::session::{Session, SessionRef};

/// The session cookie sealer of a single-provider layer (one key, bound to an example issuer
/// and client id, as the layer's).
pub struct Sealer(crate::session::cookie::Sealer);

impl Sealer {
    pub fn new(secret: &[u8]) -> Self {
        Self(
            SessionKey::new(secret)
                .expect("a 32-byte secret")
                .sealer("session", &[binding("https://id.example.com", "my-client")]),
        )
    }

    pub fn seal(&self, name: &str, plaintext: &[u8]) -> String {
        self.0.seal(name, plaintext)
    }

    pub fn open(&self, name: &str, value: &str) -> Option<Bytes> {
        self.0.open(name, value)
    }
}

/// An encoded session with claims of about `claims_len` bytes and tokens of the given sizes.
pub fn encoded_session(claims_len: usize, id_token_len: usize, access_token_len: usize) -> Vec<u8> {
    let claims = format!(
        r#"{{"sub":"alice","name":"Alice Example","email":"alice@example.com","pad":"{}"}}"#,
        "x".repeat(claims_len.saturating_sub(70))
    );
    Session {
        created_at: 1,
        expires_at: u64::MAX,
        access_expires_at: u64::MAX,
        access_issued_at: 1,
        subject: "alice".into(),
        issuer: "https://id.example.com".into(),
        claims: claims.into_bytes(),
        id_token: Some("i".repeat(id_token_len)),
        access_token: Some("a".repeat(access_token_len)),
        refresh_token: None,
        scope: "openid profile email".into(),
        last_seen: 1,
        sid: Some("sid".into()),
        token_roles: Vec::new(),
        app: Vec::new(),
        dpop_key: Default::default(),
    }
    .encode(&crate::session::new_session_id())
}

/// Parses a decrypted session (what every session request does after opening the cookie).
pub fn parse_session(plaintext: Bytes) -> bool {
    SessionRef::parse(plaintext).is_some()
}

/// Finds the (possibly chunked) session cookie `name` in the request headers.
pub fn find_session_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    find_chunked(headers, name)
        .value()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Caller-kind detection: 0 navigation, 1 API, 2 gRPC.
pub fn caller_kind(headers: &HeaderMap) -> u8 {
    match crate::response::caller_kind(headers) {
        crate::response::CallerKind::Navigation => 0,
        crate::response::CallerKind::Api => 1,
        crate::response::CallerKind::Grpc => 2,
    }
}

/// The crate's JWS signature check against a JWKS (the bearer first-sight path, without
/// the claim checks and the cache).
pub struct Verifier(JwkSet);

impl Verifier {
    pub fn from_jwks(json: &[u8]) -> Self {
        Self(JwkSet::parse(json).expect("a JWKS"))
    }

    pub fn verify(&self, token: &str) -> bool {
        const ALGS: &[Alg] = &[Alg::Rs256, Alg::Es256];
        Unverified::parse(token).is_ok_and(|t| t.verify(&self.0, ALGS).is_ok())
    }
}

/// A DPoP client key (ES256) making proofs for the DPoP bearer-path benchmark.
pub struct DpopProver(crate::dpop::key::DpopKey);

impl DpopProver {
    pub fn new() -> Self {
        Self(crate::dpop::key::DpopKey::generate().expect("a DPoP key"))
    }

    /// The JWK thumbprint to put into a token's `cnf.jkt`.
    pub fn thumbprint(&self) -> String {
        self.0.thumbprint().to_owned()
    }

    /// A fresh proof (new `jti`, `iat` now) for `method` `url` with `ath` of `token`.
    pub fn proof(&self, method: &str, url: &str, token: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.0
            .proof(method, url, Some(token), None, now)
            .expect("a proof")
    }
}

impl Default for DpopProver {
    fn default() -> Self {
        Self::new()
    }
}
