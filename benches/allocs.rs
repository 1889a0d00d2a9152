//! Heap allocations per request: what `OidcLayer` allocates on its hot paths (a session seen
//! before, a bearer token seen before), counted by an instrumented global allocator.
//!
//! Setup logs in for real against the in-process dev provider (see `support/login.rs`). Each
//! scenario then sends [`REQUESTS`] requests through an axum `Router` with
//! `tower::ServiceExt::oneshot` on a current-thread Tokio runtime, after a few unmeasured
//! ones (the first request of a session opens its cookie and fills the cache). The layer's
//! own allocations are the difference with the bare router receiving the same headers (the
//! request, the router and the handler's `format!` allocate the same in both). A third router
//! with a layer that does nothing (`MapRequestLayer` with the identity function) shows what
//! axum's `Router::layer` itself costs any layer (it boxes the layered route's service and
//! futures), so the table also gives what the crate's own code adds over that.
//!
//! ```sh
//! cargo bench --bench allocs
//! ```

use std::alloc::System;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::ServiceExt;

#[path = "support/login.rs"]
mod login;

use login::{app, SESSION_COOKIE};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Measured requests per scenario.
const REQUESTS: u64 = 10_000;
/// [`REQUESTS`], or `ALLOCS_REQUESTS` from the environment (e.g. a few, to trace each
/// allocation with `perf probe`).
fn requests() -> u64 {
    std::env::var("ALLOCS_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(REQUESTS)
}

/// Unmeasured requests before.
const WARM_UP: u64 = 100;

/// One scenario: a router and the header it receives.
struct Scenario {
    name: &'static str,
    router: Router,
    header: (axum::http::HeaderName, HeaderValue),
    body: &'static str,
}

/// Allocations and allocated bytes per request.
fn measure(rt: &tokio::runtime::Runtime, s: &Scenario) -> (f64, f64) {
    let call = || {
        let mut req = Request::new(Body::empty());
        req.headers_mut()
            .insert(s.header.0.clone(), s.header.1.clone());
        rt.block_on(async {
            let res = s
                .router
                .clone()
                .oneshot(req)
                .await
                .unwrap_or_else(|e| match e {});
            assert_eq!(res.status(), StatusCode::OK, "{}", s.name);
            let body = res.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(body, s.body.as_bytes(), "{}", s.name);
        });
    };
    for _ in 0..WARM_UP {
        call();
    }
    let region = Region::new(GLOBAL);
    for _ in 0..requests() {
        call();
    }
    let change = region.change();
    (
        change.allocations as f64 / requests() as f64,
        change.bytes_allocated as f64 / requests() as f64,
    )
}

fn main() {
    let setup = login::setup_runtime();
    let login = setup.block_on(login::log_in());
    drop(setup);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cookie = HeaderValue::from_str(&format!("{SESSION_COOKIE}={}", login.sealed))
        .expect("cookie header");
    let bearer =
        HeaderValue::from_str(&format!("Bearer {}", login.access_token)).expect("bearer header");
    let layered = app().layer(login.layer.clone());
    let noop = app().layer(tower::util::MapRequestLayer::new(
        |r: Request<Body>| -> Request<Body> { r },
    ));
    let scenario = |name, router: &Router, header: &HeaderValue, name_of, body| Scenario {
        name,
        router: router.clone(),
        header: (name_of, header.clone()),
        body,
    };
    let triples = [
        (
            scenario("bare+cookie", &app(), &cookie, COOKIE, "hello stranger"),
            scenario("noop+cookie", &noop, &cookie, COOKIE, "hello stranger"),
            scenario("layer+session", &layered, &cookie, COOKIE, "hello alice"),
        ),
        (
            scenario(
                "bare+bearer",
                &app(),
                &bearer,
                AUTHORIZATION,
                "hello stranger",
            ),
            scenario(
                "noop+bearer",
                &noop,
                &bearer,
                AUTHORIZATION,
                "hello stranger",
            ),
            scenario(
                "layer+bearer",
                &layered,
                &bearer,
                AUTHORIZATION,
                "hello alice",
            ),
        ),
    ];
    println!();
    println!(
        "| scenario | allocations / request | bytes / request | vs bare (allocations) | \
         vs no-op layer (allocations) | vs no-op layer (bytes) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (bare, noop, layer) in &triples {
        let (bare_n, bare_b) = measure(&rt, bare);
        let (noop_n, noop_b) = measure(&rt, noop);
        let (n, b) = measure(&rt, layer);
        println!(
            "| `{}` | {bare_n:.2} | {bare_b:.0} | – | – | – |",
            bare.name
        );
        println!(
            "| `{}` | {noop_n:.2} | {noop_b:.0} | {:+.2} | – | – |",
            noop.name,
            noop_n - bare_n
        );
        println!(
            "| `{}` | {n:.2} | {b:.0} | {:+.2} | {:+.2} | {:+.0} |",
            layer.name,
            n - bare_n,
            n - noop_n,
            b - noop_b
        );
    }
}
