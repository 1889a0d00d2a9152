//! Authorization with roles, groups and scopes, for session and bearer callers against the
//! development provider: "not logged in" (redirect or `401`) stays apart from "not allowed"
//! (`403`), whatever rule refuses.

mod support;

use axum::routing::get;
use axum::Router;
use reqwest::header::{ACCEPT, LOCATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::json;
use support::app::{bind_loopback, dev_tokens, serve_router, Browser, TestApp};
use tower_oidc::dev::{DevProvider, DevUser};
use tower_oidc::{Config, Forbidden, Identity, OidcLayer, RequireLayer, SessionKey};

/// alice: role `admin`, group `ops`; bob: nothing.
async fn provider() -> DevProvider {
    DevProvider::builder()
        .user(
            DevUser::new("alice", "Alice Example", "alice@example.test")
                .claim("roles", json!(["admin"]))
                .claim("groups", json!(["ops"])),
        )
        .user(DevUser::new("bob", "Bob Example", "bob@example.test"))
        .auto_login(Some("alice".to_owned()))
        .start()
        .await
        .expect("dev provider")
}

/// `/admin` any of the roles admin, owner · `/payouts` all of admin, finance · `/ops` the
/// group ops · `/orders` any of the scopes orders:read, orders:admin · `/ops-handler` the group
/// ops checked in the handler.
async fn app(dev: &DevProvider) -> TestApp {
    let listener = bind_loopback().await;
    let addr = listener.local_addr().expect("address");
    let client = dev.confidential_client().clone();
    let config = Config::builder(dev.issuer(), &client.id)
        .client_secret(client.secret.clone().expect("secret"))
        .redirect_url(format!("http://{addr}/auth/callback"))
        .session_key(SessionKey::generate())
        .build()
        .expect("config");
    let oidc = OidcLayer::discover(config).await.expect("discovery");
    // Each rule on its own route (`route_layer` would wrap every route added before it).
    let router = Router::new()
        .route(
            "/admin",
            get(|| async { "admin area" }).layer(RequireLayer::any_role(["admin", "owner"])),
        )
        .route(
            "/payouts",
            get(|| async { "payouts" }).layer(RequireLayer::all_roles(["admin", "finance"])),
        )
        .route(
            "/ops",
            get(|| async { "ops" }).layer(RequireLayer::group("ops")),
        )
        .route(
            "/orders",
            get(|| async { "orders" })
                .layer(RequireLayer::any_scope(["orders:read", "orders:admin"])),
        )
        .route(
            "/me",
            get(|id: Identity| async move { id.subject().to_owned() }),
        )
        .route(
            "/ops-handler",
            get(|id: Identity| async move {
                id.require_group("ops")?;
                Ok::<_, Forbidden>("ops by hand")
            }),
        )
        .layer(oidc);
    serve_router(listener, router)
}

const PATHS: [&str; 5] = ["/admin", "/payouts", "/ops", "/orders", "/ops-handler"];

/// The status of each of [`PATHS`] for a browser navigation.
async fn statuses(browser: &Browser, app: &TestApp) -> Vec<u16> {
    let mut out = Vec::new();
    for path in PATHS {
        out.push(browser.get(&app.url(path)).await.status().as_u16());
    }
    out
}

#[tokio::test]
async fn session_users_are_refused_403_and_strangers_are_sent_to_login() {
    let dev = provider().await;
    let app = app(&dev).await;

    // Nobody logged in: a navigation goes to login, a script gets 401; never 403.
    let stranger = Browser::new();
    for path in PATHS {
        let res = stranger.get(&app.url(path)).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{path}");
        let location = res.headers()[LOCATION].to_str().expect("Location");
        assert!(location.contains("/authorize"), "{path}: {location}");
        let res = reqwest::Client::new()
            .get(app.url(path))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer", "{path}");
    }

    // alice (admin, ops; the login's scopes only): the role and group rules admit her.
    let alice = Browser::new();
    alice.log_in(&app).await;
    assert_eq!(statuses(&alice, &app).await, [200, 403, 200, 403, 200]);

    // bob: nothing.
    dev.set_auto_login(Some("bob"));
    let bob = Browser::new();
    bob.log_in(&app).await;
    assert_eq!(statuses(&bob, &app).await, [403, 403, 403, 403, 403]);
    let res = bob.get(&app.url("/admin")).await;
    assert!(res.headers().get(LOCATION).is_none());
    let body: serde_json::Value =
        serde_json::from_str(&res.text().await.expect("body")).expect("JSON");
    assert_eq!(body["error"], "insufficient_scope");
}

/// A bearer request to `path` with `token`, when given: status and `WWW-Authenticate`.
async fn bearer(app: &TestApp, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .get(app.url(path))
        .header(ACCEPT, "application/json");
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("request");
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (res.status(), challenge)
}

#[tokio::test]
async fn bearer_callers_are_refused_403_and_missing_or_bad_tokens_401() {
    let dev = provider().await;
    let app = app(&dev).await;
    let client = dev.confidential_client().clone();
    let token_of = |tokens: serde_json::Value| {
        tokens["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    };
    let alice = token_of(dev_tokens(&dev, &client, "openid").await);
    dev.set_auto_login(Some("bob"));
    let bob = token_of(dev_tokens(&dev, &client, "openid").await);

    for path in PATHS {
        let (status, challenge) = bearer(&app, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: no token");
        assert_eq!(challenge, "Bearer", "{path}");
        let (status, challenge) = bearer(&app, path, Some("not-a-token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: bad token");
        assert!(challenge.contains("invalid_token"), "{path}: {challenge}");
        let (status, challenge) = bearer(&app, path, Some(&bob)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: bob");
        assert!(
            challenge.contains("insufficient_scope"),
            "{path}: {challenge}"
        );
    }
    let mut alice_statuses = Vec::new();
    for path in PATHS {
        alice_statuses.push(bearer(&app, path, Some(&alice)).await.0.as_u16());
    }
    assert_eq!(alice_statuses, [200, 403, 200, 403, 200]);
    // A token with one of the scopes passes the scope rule.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let reader = dev.sign_jwt(
        "at+jwt",
        &json!({
            "iss": dev.issuer(), "sub": "carol", "aud": client.id, "client_id": client.id,
            "scope": "openid orders:admin", "iat": now, "exp": now + 300,
        }),
    );
    assert_eq!(
        bearer(&app, "/orders", Some(&reader)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        bearer(&app, "/admin", Some(&reader)).await.0,
        StatusCode::FORBIDDEN
    );
    // The scope rule names the scopes it wants.
    let (_, challenge) = bearer(&app, "/orders", Some(&bob)).await;
    assert_eq!(
        challenge,
        "Bearer error=\"insufficient_scope\", scope=\"orders:read orders:admin\""
    );
}
