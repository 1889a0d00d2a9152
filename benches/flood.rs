//! Memory and time of `OidcLayer` under floods of distinct bogus credentials (DESIGN.md §7:
//! "every cache bounded; memory flat under a flood of distinct bogus tokens or cookies").
//!
//! Setup as in `benches/load.rs` (`support/login.rs`): a real session cookie and a real JWT
//! access token from the in-process dev provider. Then, in-process with
//! `tower::ServiceExt::oneshot` on a current-thread runtime (no sockets), one request at a
//! time through the hello-world app behind the layer:
//!
//! - `tampered cookies`: [`FLOOD`] distinct session cookies, the real sealed value with 22
//!   characters in the middle of the ciphertext replaced (a counter and random bytes, so no
//!   two are alike): each costs one failed AES-GCM open and answers 200 `hello stranger`
//!   with the cookie cleared;
//! - `bogus bearer JWTs`: [`FLOOD`] distinct JWT-shaped tokens, the real token's header
//!   (real `kid` and `alg`, so no JWKS refetch is attempted), a random claims set and a
//!   random signature of the right length (below the modulus): each costs one signature
//!   check and answers 401.
//!
//! Each flood stops early at [`FLOOD_TIME_LIMIT`]; the table says how many were sent. Peak
//! (`VmHWM`) and current (`VmRSS`) resident memory are read from `/proc/self/status` before
//! and after each flood. The time per request is the time spent inside the router (building
//! the requests is not counted); for scale the bare app's time for the same kind of request
//! is measured too, and so are distinct *valid* tokens seen for the first time (signature
//! check, then cached), the same tokens seen again (cache hits) and the ring RSA verify floor
//! on the real token.
//!
//! ```sh
//! cargo bench --bench flood
//! ```
//!
//! Without `--bench` (`cargo test --benches`) every flood is a few thousand requests.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::{HeaderValue, Request};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::BodyExt;
use tokio::runtime::Runtime;
use tower::ServiceExt;

#[path = "support/login.rs"]
mod login;

use login::{proc_status_kib, SESSION_COOKIE};

/// Distinct bogus credentials per flood.
const FLOOD: u64 = 1_000_000;
/// Per-flood size of a smoke run (`cargo test --benches`).
const SMOKE_FLOOD: u64 = 2_000;
/// A flood stops here even if not all were sent.
const FLOOD_TIME_LIMIT: Duration = Duration::from_secs(30);
/// Requests of the bare-app reference rows.
const REFERENCE: u64 = 200_000;
/// Distinct valid tokens signed for the first-sight row (signing is slow, pure-Rust RSA).
const VALID_TOKENS: usize = 300;
/// Iterations of the ring verify floor.
const FLOOR_ITERATIONS: u32 = 3_000;
/// Characters of the sealed cookie value replaced per tampered cookie (16 bytes, base64url).
const TAMPER_CHARS: usize = 22;

/// A small deterministic generator (SplitMix64); quality is ample for bogus input.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// Memory figures in KiB.
#[derive(Clone, Copy)]
struct Memory {
    rss: u64,
    hwm: u64,
}

fn memory() -> Memory {
    Memory {
        rss: proc_status_kib("VmRSS").unwrap_or(0),
        hwm: proc_status_kib("VmHWM").unwrap_or(0),
    }
}

/// What one flood (or reference loop) measured.
struct Outcome {
    name: &'static str,
    sent: u64,
    /// Time inside the router, per request.
    per_request: Duration,
    status: u16,
    unexpected: u64,
    before: Memory,
    after: Memory,
}

/// Sends up to `count` requests made by `make` through `router`, one at a time, for at most
/// [`FLOOD_TIME_LIMIT`]; every answer must have status `status` and pass `check`.
fn flood(
    rt: &Runtime,
    name: &'static str,
    router: &Router,
    count: u64,
    status: u16,
    mut make: impl FnMut(u64) -> Request<Body>,
    check: impl Fn(&axum::http::response::Parts, &[u8]) -> bool,
) -> Outcome {
    let before = memory();
    let began = Instant::now();
    let mut inside = Duration::ZERO;
    let mut sent = 0;
    let mut unexpected = 0;
    rt.block_on(async {
        for i in 0..count {
            if began.elapsed() >= FLOOD_TIME_LIMIT {
                break;
            }
            let req = make(i);
            let start = Instant::now();
            let res = router
                .clone()
                .oneshot(req)
                .await
                .unwrap_or_else(|e| match e {});
            let (parts, body) = res.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            inside += start.elapsed();
            sent += 1;
            if parts.status.as_u16() != status || !check(&parts, &body) {
                unexpected += 1;
            }
        }
    });
    let after = memory();
    Outcome {
        name,
        sent,
        per_request: inside / u32::try_from(sent.max(1)).unwrap_or(u32::MAX),
        status,
        unexpected,
        before,
        after,
    }
}

/// The real sealed value with [`TAMPER_CHARS`] characters in the middle replaced by `n` and
/// random bytes: distinct for distinct `n`, still base64url, same length.
fn tampered(sealed: &str, n: u64, rng: &mut SplitMix) -> String {
    let mut patch = [0u8; 16];
    patch[..8].copy_from_slice(&n.to_le_bytes());
    rng.fill(&mut patch[8..]);
    let patch = URL_SAFE_NO_PAD.encode(patch);
    let mid = sealed.len() / 2;
    format!(
        "{}{}{}",
        &sealed[..mid],
        patch,
        &sealed[mid + TAMPER_CHARS..]
    )
}

/// The parts of the real access token the bogus ones reuse.
struct TokenShape {
    /// Header segment, as is (real `kid` and `alg`).
    header: String,
    /// Decoded claims.
    claims: serde_json::Value,
    /// Length of the decoded signature.
    signature_len: usize,
}

fn token_shape(token: &str) -> TokenShape {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("the access token is not a JWS: {token}");
    };
    let claims = URL_SAFE_NO_PAD.decode(payload).expect("base64url claims");
    TokenShape {
        header: header.to_owned(),
        claims: serde_json::from_slice(&claims).expect("JSON claims"),
        signature_len: URL_SAFE_NO_PAD
            .decode(signature)
            .expect("base64url signature")
            .len(),
    }
}

/// A JWT-shaped token with the real header, claims carrying a unique random `jti`, and a
/// random signature whose first byte is below 0x80 (so below any RSA modulus of that size:
/// the verifier does the whole computation).
fn bogus_token(shape: &TokenShape, n: u64, rng: &mut SplitMix) -> String {
    let mut claims = shape.claims.clone();
    claims["jti"] = format!("{n:016x}{:016x}", rng.next()).into();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("JSON"));
    let mut signature = vec![0u8; shape.signature_len];
    rng.fill(&mut signature);
    signature[0] &= 0x7f;
    format!(
        "{}.{payload}.{}",
        shape.header,
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn request_with(name: axum::http::HeaderName, value: &str) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    req.headers_mut()
        .insert(name, HeaderValue::from_str(value).expect("header value"));
    req
}

/// The ring RS256 verify floor on `token` with the provider's key `(n, e)`; per verify.
fn ring_floor(token: &str, n: &[u8], e: &[u8], iterations: u32) -> Duration {
    let (message, signature) = token.rsplit_once('.').expect("a JWS");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("signature");
    let key = ring::signature::RsaPublicKeyComponents { n, e };
    let began = Instant::now();
    for _ in 0..iterations {
        key.verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            std::hint::black_box(message.as_bytes()),
            &signature,
        )
        .expect("the real token verifies");
    }
    began.elapsed() / iterations
}

/// The provider's RSA key `(n, e)` for the token's `kid`, from its JWKS.
async fn rsa_key(issuer: &str, kid: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = reqwest::get(format!("{issuer}/jwks"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let jwks: serde_json::Value = serde_json::from_str(&text).ok()?;
    let key = jwks["keys"]
        .as_array()?
        .iter()
        .find(|k| k["kid"] == kid && k["kty"] == "RSA")?;
    let part = |name: &str| URL_SAFE_NO_PAD.decode(key[name].as_str()?).ok();
    Some((part("n")?, part("e")?))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let measured = login::measured();
    let (count, reference, valid_count, floor_iterations) = if measured {
        (FLOOD, REFERENCE, VALID_TOKENS, FLOOR_ITERATIONS)
    } else {
        (SMOKE_FLOOD, SMOKE_FLOOD, 5, 20)
    };

    let setup = login::setup_runtime();
    let login = setup.block_on(login::log_in());
    let shape = token_shape(&login.access_token);
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(&shape.header)
            .expect("base64url header"),
    )
    .expect("JSON header");
    let kid = header["kid"].as_str().unwrap_or_default().to_owned();
    let alg = header["alg"].as_str().unwrap_or_default().to_owned();
    let rsa = setup.block_on(rsa_key(login.dev.issuer(), &kid));
    // Distinct valid tokens, signed by the provider's key before its runtime goes.
    let valid: Vec<String> = (0..valid_count)
        .map(|i| {
            let mut claims = shape.claims.clone();
            claims["jti"] = format!("valid-{i}").into();
            login.dev.sign_jwt("at+jwt", &claims)
        })
        .collect();
    drop(setup);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("flood runtime");
    let bare = login::app();
    let layered = login::app().layer(login.layer.clone());
    let mut rng = SplitMix(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    );
    let stranger = |_: &axum::http::response::Parts, body: &[u8]| body == b"hello stranger";
    let alice = |_: &axum::http::response::Parts, body: &[u8]| body == b"hello alice";
    let cleared = |parts: &axum::http::response::Parts, body: &[u8]| {
        body == b"hello stranger"
            && parts.headers.get_all(SET_COOKIE).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.starts_with(&format!("{SESSION_COOKIE}=;")))
            })
    };
    let no_check = |_: &axum::http::response::Parts, _: &[u8]| true;
    let began = Instant::now();
    let mut outcomes = Vec::new();

    let sealed = login.sealed.clone();
    outcomes.push(flood(
        &rt,
        "bare app, tampered cookies (reference)",
        &bare,
        reference,
        200,
        |n| {
            let value = tampered(&sealed, n, &mut rng);
            request_with(COOKIE, &format!("{SESSION_COOKIE}={value}"))
        },
        stranger,
    ));
    outcomes.push(flood(
        &rt,
        "layer, tampered cookies",
        &layered,
        count,
        200,
        |n| {
            let value = tampered(&sealed, n, &mut rng);
            request_with(COOKIE, &format!("{SESSION_COOKIE}={value}"))
        },
        cleared,
    ));
    outcomes.push(flood(
        &rt,
        "bare app, bogus bearer JWTs (reference)",
        &bare,
        reference,
        200,
        |n| {
            let token = bogus_token(&shape, n, &mut rng);
            request_with(AUTHORIZATION, &format!("Bearer {token}"))
        },
        stranger,
    ));
    outcomes.push(flood(
        &rt,
        "layer, bogus bearer JWTs",
        &layered,
        count,
        401,
        |n| {
            let token = bogus_token(&shape, n, &mut rng);
            request_with(AUTHORIZATION, &format!("Bearer {token}"))
        },
        no_check,
    ));
    let valid_len = valid.len() as u64;
    for name in [
        "layer, valid JWTs, first sight",
        "layer, same valid JWTs, seen before",
    ] {
        outcomes.push(flood(
            &rt,
            name,
            &layered,
            valid_len,
            200,
            |n| {
                let token = &valid[usize::try_from(n).expect("small")];
                request_with(AUTHORIZATION, &format!("Bearer {token}"))
            },
            alice,
        ));
    }
    let floor = match (&rsa, alg.as_str()) {
        (Some((n, e)), "RS256") => Some(ring_floor(&login.access_token, n, e, floor_iterations)),
        _ => None,
    };
    let total = began.elapsed();

    println!();
    println!(
        "In-process floods through `oneshot`, one request at a time on a current-thread \
         runtime; {:.1} s in all. Session cookie value {} bytes; access token {} bytes \
         ({alg}, kid {kid}).",
        total.as_secs_f64(),
        login.sealed.len(),
        login.access_token.len()
    );
    println!();
    println!(
        "| requests | sent | µs per request | status | unexpected | VmRSS before → after (MiB) | VmHWM before → after (MiB) | HWM growth (MiB) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for o in &outcomes {
        println!(
            "| {} | {} | {:.2} | {} | {} | {:.1} → {:.1} | {:.1} → {:.1} | {:+.1} |",
            o.name,
            o.sent,
            o.per_request.as_secs_f64() * 1e6,
            o.status,
            o.unexpected,
            mib(o.before.rss),
            mib(o.after.rss),
            mib(o.before.hwm),
            mib(o.after.hwm),
            mib(o.after.hwm) - mib(o.before.hwm),
        );
    }
    println!();
    match floor {
        Some(floor) => {
            let floor_us = floor.as_secs_f64() * 1e6;
            let first = outcomes
                .iter()
                .find(|o| o.name == "layer, valid JWTs, first sight")
                .map_or(0.0, |o| o.per_request.as_secs_f64() * 1e6);
            let bogus = outcomes
                .iter()
                .find(|o| o.name == "layer, bogus bearer JWTs")
                .map_or(0.0, |o| o.per_request.as_secs_f64() * 1e6);
            println!(
                "ring RS256 verify floor on the real token: {floor_us:.2} µs ({floor_iterations} \
                 verifies). First sight of a valid token: {first:.2} µs per request = \
                 {:.2}× the floor; bogus token: {bogus:.2} µs = {:.2}× the floor (whole \
                 request through the router, not just the verify).",
                first / floor_us,
                bogus / floor_us
            );
        }
        None => println!("no ring RS256 floor: the token is {alg} or the JWKS was unavailable"),
    }
    let unexpected: u64 = outcomes.iter().map(|o| o.unexpected).sum();
    assert_eq!(
        unexpected, 0,
        "some answers were not what their row expects"
    );
}
