//! What `OidcLayer` costs on an ordinary request, measured in-process next to the same app
//! without the layer (DESIGN.md §7).
//!
//! Setup logs in for real: it starts the in-process dev provider, serves the app on a loopback
//! port, follows the login redirects over HTTP with a cookie-keeping client and keeps the
//! session cookie the callback set. The session is the natural one for the dev provider's
//! `alice` (claims, ID token and access token, no refresh token), not padded: its sealed value
//! is about 2.6 KB, printed at the start of a run. Then the provider and the app server are
//! dropped and every benchmark drives an axum `Router` with `tower::ServiceExt::oneshot` on a
//! current-thread Tokio runtime; the layered routers share the `OidcLayer` that served the
//! login, so the cookie opens. Each iteration builds the request, calls the router and
//! collects the response body; every scenario's answer is checked once before measuring.
//!
//! | benchmark | router | request |
//! |---|---|---|
//! | `bare/no_cookie` | no layer | `GET /` |
//! | `bare/same_cookie` | no layer | `GET /` with the session `Cookie` header |
//! | `bare/noop_layer_same_cookie` | a layer that does nothing (`MapRequestLayer`, identity) | `GET /` with the session `Cookie` header: what axum's `Router::layer` costs any layer |
//! | `layer/session_2k` | layer | `GET /` with the session cookie: identity present |
//! | `layer/anonymous_public` | layer | `GET /` without a cookie: public route, no identity |
//! | `layer/login_redirect` | layer, `require_login(true)` | navigation without a cookie: 302 to the provider and a new transaction cookie |
//! | `layer/tampered_cookie` | layer | `GET /` with the session cookie, one ciphertext character changed: one failed AES-GCM open, the cookie is cleared |
//!
//! Every router has the same handler, `Option<Identity>` → `"hello <sub>"` or
//! `"hello stranger"`. After the run the table of medians, added nanoseconds and throughput
//! ratios is printed (`cargo bench --bench report` prints it again from the saved results).
//!
//! ```sh
//! cargo bench --bench session
//! ```

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{ACCEPT, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use criterion::{BenchmarkGroup, Criterion};
use http_body_util::BodyExt;
use tokio::runtime::Runtime;
use tower::ServiceExt;

#[path = "support/login.rs"]
mod login;
#[path = "support/ratio.rs"]
mod ratio;

use login::{app, log_in, SESSION_COOKIE};

/// What the benchmarks need, built once.
struct Fixture {
    bare: Router,
    /// The bare app behind a layer that does nothing.
    noop: Router,
    layered: Router,
    guarded: Router,
    /// `Cookie` header carrying the real session.
    session_cookie: HeaderValue,
    /// The same header with one ciphertext character changed.
    tampered_cookie: HeaderValue,
    /// Length of the sealed session value (base64url text, the cookie's value).
    sealed_len: usize,
    issuer: String,
}

/// The sealed value with one base64url character in the middle of the ciphertext changed:
/// it still decodes, and its key id is intact, so exactly one AES-GCM open fails.
fn tamper(sealed: &str) -> String {
    let mut bytes = sealed.as_bytes().to_vec();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

fn fixture() -> Fixture {
    // A runtime of its own for the login, dropped with the provider and the app server
    // before anything is measured.
    let setup = login::setup_runtime();
    let login = setup.block_on(log_in());
    let issuer = login.dev.issuer().to_owned();
    let (layer, guarded, sealed) = (login.layer, login.guarded, login.sealed);
    drop(login.dev);
    drop(setup);

    let header = |value: &str| {
        HeaderValue::from_str(&format!("{SESSION_COOKIE}={value}")).expect("cookie header")
    };
    Fixture {
        bare: app(),
        noop: app().layer(tower::util::MapRequestLayer::new(
            |r: Request<Body>| -> Request<Body> { r },
        )),
        layered: app().layer(layer),
        guarded: app().layer(guarded),
        session_cookie: header(&sealed),
        tampered_cookie: header(&tamper(&sealed)),
        sealed_len: sealed.len(),
        issuer,
    }
}

fn request(cookie: Option<&HeaderValue>, navigation: bool) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    if let Some(cookie) = cookie {
        req.headers_mut().insert(COOKIE, cookie.clone());
    }
    if navigation {
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("text/html"));
    }
    req
}

/// One request through `router`; the response with its body collected.
async fn call(router: &Router, req: Request<Body>) -> axum::http::Response<Bytes> {
    let res = router
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    axum::http::Response::from_parts(parts, body)
}

/// Checks that every scenario answers what its name says before it is measured.
fn check(rt: &Runtime, fx: &Fixture) {
    let set_cookies = |res: &axum::http::Response<Bytes>| -> Vec<String> {
        res.headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ASCII").to_owned())
            .collect()
    };
    rt.block_on(async {
        for (router, cookie) in [
            (&fx.bare, None),
            (&fx.bare, Some(&fx.session_cookie)),
            (&fx.layered, None),
        ] {
            let res = call(router, request(cookie, false)).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.body(), "hello stranger");
            assert!(set_cookies(&res).is_empty());
        }

        let res = call(&fx.layered, request(Some(&fx.session_cookie), false)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body(), "hello alice");
        assert!(set_cookies(&res).is_empty());

        let res = call(&fx.layered, request(Some(&fx.tampered_cookie), false)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body(), "hello stranger");
        let cleared = set_cookies(&res);
        assert!(
            cleared.len() == 1
                && cleared[0].starts_with(&format!("{SESSION_COOKIE}=;"))
                && cleared[0].contains("Max-Age=0"),
            "the tampered cookie is cleared: {cleared:?}"
        );

        let res = call(&fx.guarded, request(None, true)).await;
        assert_eq!(res.status(), StatusCode::FOUND);
        let location = res.headers()[LOCATION].to_str().expect("ASCII");
        assert!(
            location.starts_with(&format!("{}/authorize?", fx.issuer)),
            "{location}"
        );
        let tx = set_cookies(&res);
        assert!(
            tx.len() == 1 && tx[0].starts_with("oidc_tx_"),
            "one transaction cookie: {tx:?}"
        );
    });
}

/// One criterion function: `group/name` runs `router` on requests from `req`.
fn bench<M: criterion::measurement::Measurement>(
    group: &mut BenchmarkGroup<'_, M>,
    rt: &Runtime,
    name: &str,
    router: &Router,
    req: impl Fn() -> Request<Body>,
) {
    group.bench_function(name, |b| {
        b.to_async(rt).iter(|| {
            let req = req();
            async move { black_box(call(router, req).await) }
        })
    });
}

fn main() {
    let fx = fixture();
    let cookie_len = fx.session_cookie.len();
    println!(
        "session cookie: sealed value {} bytes, Cookie header {} bytes ({}=<value>)",
        fx.sealed_len, cookie_len, SESSION_COOKIE
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("bench runtime");
    check(&rt, &fx);

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .sample_size(60)
        .configure_from_args();

    let mut bare = c.benchmark_group("bare");
    bench(&mut bare, &rt, "no_cookie", &fx.bare, || {
        request(None, false)
    });
    bench(&mut bare, &rt, "same_cookie", &fx.bare, || {
        request(Some(&fx.session_cookie), false)
    });
    bench(&mut bare, &rt, "noop_layer_same_cookie", &fx.noop, || {
        request(Some(&fx.session_cookie), false)
    });
    bare.finish();

    let mut layer = c.benchmark_group("layer");
    bench(&mut layer, &rt, "session_2k", &fx.layered, || {
        request(Some(&fx.session_cookie), false)
    });
    bench(&mut layer, &rt, "anonymous_public", &fx.layered, || {
        request(None, false)
    });
    bench(&mut layer, &rt, "login_redirect", &fx.guarded, || {
        request(None, true)
    });
    bench(&mut layer, &rt, "tampered_cookie", &fx.layered, || {
        request(Some(&fx.tampered_cookie), false)
    });
    layer.finish();

    c.final_summary();

    // Only `cargo bench` measures; `cargo test` runs each benchmark once and saves nothing.
    if ratio::measured() {
        println!();
        println!(
            "session cookie: sealed value {} bytes, Cookie header {cookie_len} bytes",
            fx.sealed_len
        );
        print!("{}", ratio::report(&ratio::criterion_dir()));
    }
}
