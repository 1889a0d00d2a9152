//! DPoP proofs (RFC 9449 §4): checking one against a request, the JWK thumbprint of its key
//! (RFC 7638), the bounded `jti` replay cache and stateless server nonces.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::jwt::{Alg, JwkSet, JwtError, Unverified};

/// Proof algorithms accepted (asymmetric only: `none` and HMAC can never verify).
pub(crate) const PROOF_ALGS: &[Alg] = &[Alg::Es256, Alg::Ps256, Alg::Rs256, Alg::EdDsa];

/// `algs` of the `WWW-Authenticate: DPoP` challenge: [`PROOF_ALGS`] by name.
pub(crate) const ALGS_PARAM: &str = "ES256 PS256 RS256 EdDSA";

/// Proofs longer than this are refused without further work.
const MAX_PROOF_LEN: usize = 8 * 1024;

/// Why a proof was refused: each one a fixed text for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProofError {
    /// Missing, repeated, too long, not a JWS, or missing a required member.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` is not an accepted asymmetric algorithm.
    Alg,
    /// `jwk` is missing, holds private key material, or does not fit `alg`.
    Key,
    /// The signature does not verify with the embedded key.
    Signature,
    /// `htm` is not the request's method.
    Method,
    /// `htu` is not the request's URL.
    Url,
    /// `iat` is outside the accepted window.
    Time,
    /// `ath` is missing or not the hash of the access token.
    TokenHash,
    /// A proof with this `jti` (and key) was seen before.
    Replay,
}

impl ProofError {
    /// A fixed description for the caller (no content of the proof).
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Malformed => "the DPoP proof is missing or malformed",
            Self::Type => "the DPoP proof's typ is not dpop+jwt",
            Self::Alg => "the DPoP proof's signature algorithm is not accepted",
            Self::Key => "the DPoP proof's jwk is missing, private or unusable",
            Self::Signature => "the DPoP proof's signature is invalid",
            Self::Method => "the DPoP proof's htm is not the request method",
            Self::Url => "the DPoP proof's htu is not the request URL",
            Self::Time => "the DPoP proof's iat is outside the accepted window",
            Self::TokenHash => "the DPoP proof's ath is not the hash of the access token",
            Self::Replay => "the DPoP proof was used before",
        }
    }
}

/// A proof whose signature, type and claims checked out.
#[derive(Debug)]
pub(crate) struct Proof {
    /// The JWK thumbprint (RFC 7638) of the proof's key, base64url.
    pub(crate) jkt: String,
    pub(crate) jti: String,
    pub(crate) iat: u64,
}

/// What the proof must match.
#[derive(Debug)]
pub(crate) struct Expected<'a> {
    pub(crate) method: &'a str,
    /// The request URL as the caller saw it (public scheme, host and port), without query.
    pub(crate) url: &'a url::Url,
    /// The access token the proof goes with (`ath` required), or none (a token request:
    /// `ath` must be absent).
    pub(crate) access_token: Option<&'a str>,
    pub(crate) now: u64,
    /// Oldest accepted `iat`: `now - max_age`.
    pub(crate) max_age: u64,
    /// Newest accepted `iat`: `now + leeway`.
    pub(crate) leeway: u64,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    htm: Option<String>,
    #[serde(default)]
    htu: Option<String>,
    #[serde(default)]
    iat: Option<f64>,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// Members that only private keys have (RFC 7517 §6.2.2, §6.3.2, RFC 8037).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks `proof` against the request (RFC 9449 §4.3, steps 2 to 11 but replay): returns the
/// proof and its `nonce` claim.
pub(crate) fn check(
    proof: &str,
    expected: &Expected<'_>,
) -> Result<(Proof, Option<String>), ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Malformed);
    }
    let jws = Unverified::parse(proof).map_err(|_| ProofError::Malformed)?;
    if !jws
        .header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(ProofError::Type);
    }
    jws.alg(PROOF_ALGS).map_err(|_| ProofError::Alg)?;
    let jwk = jws.header.jwk.clone().ok_or(ProofError::Key)?;
    let object = jwk.as_object().ok_or(ProofError::Key)?;
    if PRIVATE_MEMBERS.iter().any(|m| object.contains_key(*m)) {
        return Err(ProofError::Key);
    }
    let jkt = thumbprint(&jwk).ok_or(ProofError::Key)?;
    let keys = JwkSet::single(jwk).ok_or(ProofError::Key)?;
    match jws.verify(&keys, PROOF_ALGS) {
        Ok(_) => {}
        Err(JwtError::BadSignature) => return Err(ProofError::Signature),
        Err(_) => return Err(ProofError::Key),
    }
    let claims: Claims =
        serde_json::from_slice(&jws.into_payload()).map_err(|_| ProofError::Malformed)?;
    let (Some(jti), Some(htm), Some(htu), Some(iat)) =
        (claims.jti, claims.htm, claims.htu, claims.iat)
    else {
        return Err(ProofError::Malformed);
    };
    if jti.is_empty() || jti.len() > 256 {
        return Err(ProofError::Malformed);
    }
    if htm != expected.method {
        return Err(ProofError::Method);
    }
    if !same_url(&htu, expected.url) {
        return Err(ProofError::Url);
    }
    let now = expected.now as f64;
    if !iat.is_finite() || iat < now - expected.max_age as f64 || iat > now + expected.leeway as f64
    {
        return Err(ProofError::Time);
    }
    let ath_ok = match (expected.access_token, &claims.ath) {
        (Some(token), Some(ath)) => bool::from(subtle::ConstantTimeEq::ct_eq(
            ath.as_bytes(),
            token_hash(token).as_bytes(),
        )),
        (None, None) => true,
        _ => false,
    };
    if !ath_ok {
        return Err(ProofError::TokenHash);
    }
    Ok((
        Proof {
            jkt,
            jti,
            iat: iat.max(0.0) as u64,
        },
        claims.nonce,
    ))
}

/// `ath`: base64url of the SHA-256 of the access token (RFC 9449 §4.2).
pub(crate) fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// Whether `htu` names `url`: same scheme, host and port, and the same path, with query and
/// fragment ignored (RFC 9449 §4.3, step 9), after the normalization URL parsing does
/// (case of scheme and host, default ports, dot segments).
fn same_url(htu: &str, url: &url::Url) -> bool {
    let Ok(htu) = url::Url::parse(htu) else {
        return false;
    };
    htu.scheme() == url.scheme()
        && htu.host() == url.host()
        && htu.port_or_known_default() == url.port_or_known_default()
        && htu.path() == url.path()
}

/// The JWK thumbprint (RFC 7638) of a public key: SHA-256 over its required members in
/// lexicographic order, base64url. `None` for a key type without one here.
pub(crate) fn thumbprint(jwk: &Value) -> Option<String> {
    let member = |name: &str| -> Option<String> {
        let value = jwk.get(name)?.as_str()?;
        serde_json::to_string(value).ok()
    };
    let canonical = match jwk.get("kty")?.as_str()? {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        "RSA" => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            member("e")?,
            member("n")?
        ),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            member("crv")?,
            member("x")?
        ),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    )))
}

/// Proofs seen, by a hash of key thumbprint and `jti`, until their `iat` leaves the window:
/// bounded; when full of live entries, new proofs are refused (fail closed) rather than
/// forgetting live ones (which would allow a replay).
#[derive(Debug)]
pub(crate) struct ReplayCache {
    seen: Mutex<Recorded>,
    capacity: usize,
}

/// The proofs recorded, each with the last second it is live.
#[derive(Debug)]
struct Recorded {
    live_until: HashMap<[u8; 32], u64>,
    /// The smallest of them (`u64::MAX` when none): while it is not past, a full cache has
    /// nothing to drop, and is answered full without a scan.
    earliest: u64,
}

/// Whether a proof may be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// First use: recorded.
    Fresh,
    /// Used before.
    Replay,
    /// The cache is full of live proofs.
    Full,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(Recorded {
                live_until: HashMap::new(),
                earliest: u64::MAX,
            }),
            capacity: capacity.max(1),
        }
    }

    /// Records `proof` (live until `iat + window`); whether it was seen before.
    pub(crate) fn record(&self, proof: &Proof, window: u64, now: u64) -> Seen {
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        hasher.update(proof.jkt.as_bytes());
        hasher.update(b".");
        hasher.update(proof.jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(hasher.finish().as_ref());
        let until = proof.iat.saturating_add(window);
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(live) = seen.live_until.get(&key) {
            if *live >= now {
                return Seen::Replay;
            }
        }
        if seen.live_until.len() >= self.capacity {
            if seen.earliest >= now {
                return Seen::Full;
            }
            seen.live_until.retain(|_, until| *until >= now);
            seen.earliest = seen.live_until.values().copied().min().unwrap_or(u64::MAX);
            if seen.live_until.len() >= self.capacity {
                return Seen::Full;
            }
        }
        seen.live_until.insert(key, until);
        seen.earliest = seen.earliest.min(until);
        Seen::Fresh
    }
}

/// Stateless server nonces (RFC 9449 §8): the time slot and an HMAC of it with a key of this
/// process; a nonce of the current or the previous slot is fresh.
#[derive(Debug)]
pub(crate) struct Nonces {
    key: ring::hmac::Key,
    slot_secs: u64,
}

impl Nonces {
    pub(crate) fn new(slot_secs: u64) -> Self {
        let mut secret = [0u8; 32];
        crate::session::cookie::fill_random(&mut secret);
        Self {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            slot_secs: slot_secs.max(1),
        }
    }

    fn for_slot(&self, slot: u64) -> String {
        let tag = ring::hmac::sign(&self.key, &slot.to_be_bytes());
        format!("{slot}.{}", URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16]))
    }

    /// The nonce to hand out now.
    pub(crate) fn current(&self, now: u64) -> String {
        self.for_slot(now / self.slot_secs)
    }

    /// Whether `nonce` was handed out in this slot or the previous one.
    pub(crate) fn is_fresh(&self, nonce: &str, now: u64) -> bool {
        let slot = now / self.slot_secs;
        let Some((given, _)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(given) = given.parse::<u64>() else {
            return false;
        };
        (given == slot || given.saturating_add(1) == slot)
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                nonce.as_bytes(),
                self.for_slot(given).as_bytes(),
            ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_advertised_algs_are_the_accepted_ones() {
        let advertised: Vec<Alg> = ALGS_PARAM
            .split(' ')
            .map(|name| Alg::from_name(name).unwrap_or_else(|| panic!("unknown {name}")))
            .collect();
        assert_eq!(advertised, PROOF_ALGS);
    }
    use crate::dpop::key::DpopKey;

    const TOKEN: &str = "the-access-token";
    const NOW: u64 = 1_700_000_000;

    fn url() -> url::Url {
        url::Url::parse("https://api.example.com/orders").expect("URL")
    }

    fn expected(url: &url::Url) -> Expected<'_> {
        Expected {
            method: "GET",
            url,
            access_token: Some(TOKEN),
            now: NOW,
            max_age: 60,
            leeway: 5,
        }
    }

    fn claims() -> Value {
        json!({
            "jti": "j-1",
            "htm": "GET",
            "htu": "https://api.example.com/orders",
            "iat": NOW,
            "ath": token_hash(TOKEN),
        })
    }

    fn signed(key: &DpopKey, header: Value, claims: Value) -> String {
        key.sign(&header, &claims).expect("signed")
    }

    fn header(key: &DpopKey) -> Value {
        json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk() })
    }

    #[test]
    fn a_fresh_proof_is_accepted_with_its_key_thumbprint() {
        let key = DpopKey::generate().expect("key");
        let url = url();
        let proof = key
            .proof(
                "GET",
                "https://api.example.com/orders?x=1#f",
                Some(TOKEN),
                Some("n-1"),
                NOW,
            )
            .expect("proof");
        let (proof, nonce) = check(&proof, &expected(&url)).expect("accepted");
        assert_eq!(proof.jkt, key.thumbprint());
        assert_eq!(proof.iat, NOW);
        assert_eq!(nonce.as_deref(), Some("n-1"));
    }

    #[test]
    fn every_claim_and_header_rule_refuses() {
        let key = DpopKey::generate().expect("key");
        let url = url();
        let with = |name: &str, value: Value| {
            let mut c = claims();
            c[name] = value;
            c
        };
        let without = |name: &str| {
            let mut c = claims();
            c.as_object_mut().expect("object").remove(name);
            c
        };
        let cases: Vec<(Value, Value, ProofError)> = vec![
            (
                json!({ "typ": "JWT", "alg": "ES256", "jwk": key.jwk() }),
                claims(),
                ProofError::Type,
            ),
            (
                json!({ "alg": "ES256", "jwk": key.jwk() }),
                claims(),
                ProofError::Type,
            ),
            (
                json!({ "typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk() }),
                claims(),
                ProofError::Alg,
            ),
            (
                json!({ "typ": "dpop+jwt", "alg": "none", "jwk": key.jwk() }),
                claims(),
                ProofError::Alg,
            ),
            (
                json!({ "typ": "dpop+jwt", "alg": "ES256" }),
                claims(),
                ProofError::Key,
            ),
            (
                json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": { "kty": "oct", "k": "c2VjcmV0" } }),
                claims(),
                ProofError::Key,
            ),
            (
                {
                    let mut jwk = key.jwk().clone();
                    jwk["d"] = "cHJpdmF0ZQ".into();
                    json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk })
                },
                claims(),
                ProofError::Key,
            ),
            (header(&key), with("htm", "POST".into()), ProofError::Method),
            (
                header(&key),
                with("htu", "https://api.example.com/other".into()),
                ProofError::Url,
            ),
            (
                header(&key),
                with("htu", "https://evil.example.com/orders".into()),
                ProofError::Url,
            ),
            (
                header(&key),
                with("htu", "http://api.example.com/orders".into()),
                ProofError::Url,
            ),
            (
                header(&key),
                with("iat", (NOW - 61).into()),
                ProofError::Time,
            ),
            (
                header(&key),
                with("iat", (NOW + 6).into()),
                ProofError::Time,
            ),
            (
                header(&key),
                with("ath", token_hash("another-token").into()),
                ProofError::TokenHash,
            ),
            (header(&key), without("ath"), ProofError::TokenHash),
            (header(&key), without("jti"), ProofError::Malformed),
            (header(&key), without("htm"), ProofError::Malformed),
            (header(&key), without("htu"), ProofError::Malformed),
            (header(&key), without("iat"), ProofError::Malformed),
        ];
        for (header, claims, why) in cases {
            let proof = signed(&key, header.clone(), claims.clone());
            assert_eq!(
                check(&proof, &expected(&url)).map(|_| ()),
                Err(why),
                "{header} {claims}"
            );
        }
    }

    #[test]
    fn a_signature_by_another_key_or_tampered_is_refused() {
        let key = DpopKey::generate().expect("key");
        let other = DpopKey::generate().expect("key");
        let url = url();
        // Signed by `other`, but naming `key`'s public key.
        let forged = signed(&other, header(&key), claims());
        assert_eq!(
            check(&forged, &expected(&url)).map(|_| ()),
            Err(ProofError::Signature)
        );
        let good = signed(&key, header(&key), claims());
        let mut parts: Vec<&str> = good.split('.').collect();
        let changed = URL_SAFE_NO_PAD.encode(with_htm_post().to_string());
        parts[1] = &changed;
        assert_eq!(
            check(&parts.join("."), &expected(&url)).map(|_| ()),
            Err(ProofError::Signature)
        );
        assert_eq!(
            check("not.a.jws", &expected(&url)).map(|_| ()),
            Err(ProofError::Malformed)
        );
        let huge = "a".repeat(MAX_PROOF_LEN + 1);
        assert_eq!(
            check(&huge, &expected(&url)).map(|_| ()),
            Err(ProofError::Malformed)
        );
    }

    fn with_htm_post() -> Value {
        let mut c = claims();
        c["htm"] = "POST".into();
        c
    }

    #[test]
    fn htu_compares_after_normalization() {
        let key = DpopKey::generate().expect("key");
        let url = url::Url::parse("https://api.example.com/orders").expect("URL");
        for htu in [
            "https://API.example.com:443/orders",
            "HTTPS://api.example.com/orders?page=2",
            "https://api.example.com/a/../orders#x",
        ] {
            let mut c = claims();
            c["htu"] = htu.into();
            let proof = signed(&key, header(&key), c);
            assert!(check(&proof, &expected(&url)).is_ok(), "{htu}");
        }
    }

    #[test]
    fn thumbprint_matches_rfc_7638() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29",
        });
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert_eq!(thumbprint(&json!({ "kty": "oct", "k": "x" })), None);
        assert_eq!(
            thumbprint(&json!({ "kty": "EC", "crv": "P-256", "x": "a" })),
            None
        );
    }

    #[test]
    fn the_replay_cache_refuses_a_second_use_and_fails_closed_when_full() {
        let cache = ReplayCache::new(2);
        let proof = |jti: &str, iat: u64| Proof {
            jkt: "k".into(),
            jti: jti.into(),
            iat,
        };
        assert_eq!(cache.record(&proof("a", NOW), 60, NOW), Seen::Fresh);
        assert_eq!(cache.record(&proof("a", NOW), 60, NOW + 10), Seen::Replay);
        let other_key = Proof {
            jkt: "other".into(),
            ..proof("a", NOW)
        };
        assert_eq!(cache.record(&other_key, 60, NOW), Seen::Fresh);
        assert_eq!(cache.record(&proof("b", NOW), 60, NOW), Seen::Full);
        // Once the first ones are out of the window, room is made.
        assert_eq!(
            cache.record(&proof("b", NOW + 100), 60, NOW + 100),
            Seen::Fresh
        );
    }

    #[test]
    fn nonces_are_fresh_for_two_slots_and_unforgeable() {
        let nonces = Nonces::new(60);
        let n = nonces.current(NOW);
        assert!(nonces.is_fresh(&n, NOW));
        assert!(nonces.is_fresh(&n, NOW + 60));
        assert!(!nonces.is_fresh(&n, NOW + 120));
        let slot = NOW / 60;
        assert!(!nonces.is_fresh(&format!("{slot}.AAAAAAAAAAAAAAAAAAAAAA"), NOW));
        assert!(!nonces.is_fresh("garbage", NOW));
        assert!(!Nonces::new(60).is_fresh(&n, NOW), "another process's key");
    }
}
