//! Real app shapes against the development provider: nested routers, a prefix-stripping
//! reverse proxy, CORS preflights with `require_login`, and WebSocket upgrades with the
//! session cookie.

mod support;

use std::convert::Infallible;

use axum::body::Body;
use axum::routing::{any, get};
use axum::Router;
use reqwest::header::{ACCEPT, COOKIE, LOCATION};
use reqwest::{Method, StatusCode};
use support::app::{bind_loopback, serve_router, Browser, TestApp};
use tower::ServiceExt;
use tower_oidc::dev::DevProvider;
use tower_oidc::{Config, ConfigBuilder, Identity, OidcLayer, SessionKey};

async fn provider() -> DevProvider {
    let dev = DevProvider::start().await.expect("dev provider");
    dev.set_auto_login(Some("alice"));
    dev
}

/// The layer for an app on `listener`, whose callback is at `callback_path`.
async fn layer(
    dev: &DevProvider,
    listener: &tokio::net::TcpListener,
    callback_path: &str,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> OidcLayer {
    let addr = listener.local_addr().expect("address");
    let client = dev.confidential_client().clone();
    let config = configure(
        Config::builder(dev.issuer(), &client.id)
            .client_secret(client.secret.clone().expect("secret"))
            .redirect_url(format!("http://{addr}{callback_path}"))
            .session_key(SessionKey::generate()),
    )
    .build()
    .expect("config");
    OidcLayer::discover(config).await.expect("discovery")
}

fn me() -> Router {
    Router::new().route(
        "/me",
        get(|id: Identity| async move { format!("me: {}", id.subject()) }),
    )
}

#[tokio::test]
async fn a_login_from_a_nested_router_returns_to_the_original_uri() {
    let dev = provider().await;
    let listener = bind_loopback().await;
    let oidc = layer(&dev, &listener, "/auth/callback", |b| b).await;
    let app = serve_router(listener, Router::new().nest("/app", me()).layer(oidc));
    let landing = Browser::new().follow(&app.url("/app/me?tab=2")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.url.path(), "/app/me");
    assert_eq!(landing.url.query(), Some("tab=2"));
    assert_eq!(landing.body, "me: alice");
}

/// Serves `app` as a reverse proxy would that maps `/app/...` to `/...`: other paths are
/// 404, and the app never sees the prefix.
fn behind_proxy(app: Router) -> Router {
    Router::new().fallback_service(tower::service_fn(move |mut req: http::Request<Body>| {
        let app = app.clone();
        async move {
            let Some(rest) = req.uri().path_and_query().and_then(|pq| {
                pq.as_str()
                    .strip_prefix("/app")
                    .filter(|r| r.starts_with('/'))
                    .map(str::to_owned)
            }) else {
                let mut res = http::Response::new(Body::from("not behind /app"));
                *res.status_mut() = http::StatusCode::NOT_FOUND;
                return Ok::<_, Infallible>(res);
            };
            *req.uri_mut() = rest.parse().expect("a path");
            // What the app receives carries no trace of the proxy's prefix.
            req.extensions_mut().clear();
            app.oneshot(req).await
        }
    }))
}

#[tokio::test]
async fn a_layer_behind_a_prefix_stripping_proxy_keeps_working() {
    let dev = provider().await;
    let listener = bind_loopback().await;
    let oidc = layer(&dev, &listener, "/app/auth/callback", |b| {
        b.external_prefix("/app")
    })
    .await;
    let app = serve_router(listener, behind_proxy(me().layer(oidc)));
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/app/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.url.path(), "/app/me");
    assert_eq!(landing.body, "me: alice");
    // A finished login's callback opened again (back button) lands on the prefixed root.
    let callback = landing
        .visited
        .iter()
        .find(|u| u.path() == "/app/auth/callback")
        .expect("the callback went through the proxy")
        .clone();
    let res = browser.get(&callback).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()[LOCATION], "/app/");
    // A prefix that is no path is refused at build time.
    let bad = Config::builder(dev.issuer(), "c")
        .external_prefix("app")
        .redirect_url("http://127.0.0.1:1/app/auth/callback")
        .session_key(SessionKey::generate())
        .build();
    assert!(bad.is_err());
}

#[tokio::test]
async fn cors_preflights_are_never_answered_401_by_require_login() {
    let dev = provider().await;
    let listener = bind_loopback().await;
    let oidc = layer(&dev, &listener, "/auth/callback", |b| b.require_login(true)).await;
    // A stand-in for the CORS layer: it answers preflights itself.
    let router = Router::new().route(
        "/api",
        any(|method: http::Method| async move {
            if method == http::Method::OPTIONS {
                (http::StatusCode::NO_CONTENT, "preflight answered")
            } else {
                (http::StatusCode::OK, "data")
            }
        }),
    );
    let app: TestApp = serve_router(listener, router.layer(oidc));
    let client = reqwest::Client::new();
    let send = |method: Method, preflight: bool| {
        let mut req = client
            .request(method, app.url("/api"))
            .header("origin", "https://spa.example.test")
            .header(ACCEPT, "*/*");
        if preflight {
            req = req
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "x-csrf");
        }
        req.send()
    };
    let res = send(Method::OPTIONS, true).await.expect("preflight");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Not a preflight: login required as ever.
    let res = send(Method::OPTIONS, false).await.expect("plain OPTIONS");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = send(Method::GET, false).await.expect("GET");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_websocket_upgrade_is_authenticated_by_the_session_cookie() {
    let dev = provider().await;
    let listener = bind_loopback().await;
    let oidc = layer(&dev, &listener, "/auth/callback", |b| {
        b.session_lifetime(std::time::Duration::from_secs(3600))
    })
    .await;
    let router = me().route(
        "/ws",
        get(|id: Identity| async move {
            let ends = id
                .session_expires_at()
                .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
                .map_or(0, |d| d.as_secs());
            format!("{} until {}", id.subject(), ends)
        }),
    );
    let app = serve_router(listener, router.layer(oidc));
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    let upgrade = |cookie: Option<&str>| {
        let mut req = reqwest::Client::new()
            .get(app.url("/ws"))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-fetch-mode", "websocket")
            .header("origin", app.url("/").as_str().trim_end_matches('/'));
        if let Some(cookie) = cookie {
            req = req.header(COOKIE, cookie);
        }
        req.send()
    };
    let res = upgrade(Some(&cookie)).await.expect("upgrade");
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.text().await.expect("body");
    let (who, left) = body.split_once(" until ").expect("answer");
    assert_eq!(who, "alice");
    let left: u64 = left.parse().expect("seconds");
    assert!((3500..=3600).contains(&left), "{left}");
    // Without the cookie: 401, never a redirect (a WebSocket cannot follow one).
    let res = upgrade(None).await.expect("upgrade");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
