//! The post-login hook (`ConfigBuilder::on_login`) against the development provider: app
//! claims and an app subject in the session, a refusal with the app's page, errors and panics
//! failing the login cleanly, Apple's `user` field from a `form_post` callback, and the hook at
//! refresh.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use reqwest::header::{ACCEPT, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::app::{
    bind_loopback, new_session_cookie, serve_router, set_cookies, Browser, TestApp,
};
use support::clock::TestClock;
use tower_oidc::dev::{DevProvider, Fault};
use tower_oidc::{Config, ConfigBuilder, Identity, Login, LoginRejected, OidcLayer, SessionKey};

const ACCESS_TTL: Duration = Duration::from_secs(600);

async fn provider() -> DevProvider {
    let dev = DevProvider::builder()
        .access_token_ttl(ACCESS_TTL)
        .id_token_ttl(Duration::from_secs(3600))
        .refresh_tokens(true)
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    dev
}

/// `/me`: the identity with its app subject and claims, as JSON.
async fn app(dev: &DevProvider, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> TestApp {
    app_and_layer(dev, configure).await.0
}

/// [`app`], and its layer (for its metrics).
async fn app_and_layer(
    dev: &DevProvider,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (TestApp, OidcLayer) {
    let listener = bind_loopback().await;
    let addr = listener.local_addr().expect("address");
    let client = dev.confidential_client().clone();
    let config = configure(
        Config::builder(dev.issuer(), &client.id)
            .client_secret(client.secret.clone().expect("secret"))
            .redirect_url(format!("http://{addr}/auth/callback"))
            .session_key(SessionKey::generate()),
    )
    .build()
    .expect("config");
    let oidc = OidcLayer::discover(config).await.expect("discovery");
    let router = Router::new()
        .route(
            "/me",
            get(|id: Identity| async move {
                Json(json!({
                    "sub": id.subject(),
                    "app_sub": id.app_subject(),
                    "app": id.app_claims(),
                }))
            }),
        )
        .layer(oidc.clone());
    (serve_router(listener, router), oidc)
}

/// Counts its runs, maps the subject to `app-<sub>`, adds `plan` and refuses bob.
fn provisioning(runs: Arc<AtomicUsize>) -> impl Fn(ConfigBuilder) -> ConfigBuilder {
    move |b: ConfigBuilder| {
        let runs = runs.clone();
        b.on_login(move |mut login: Login| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                if login.subject() == "bob" {
                    let page = http::Response::builder()
                        .status(403)
                        .header("content-type", "text/html; charset=utf-8")
                        .body("<h1>No account for you here</h1>")?;
                    return Err(LoginRejected::page(page));
                }
                let app_sub = format!("app-{}", login.subject());
                login.set_app_subject(app_sub);
                login.set_app_claim("plan", json!("pro"));
                login.set_app_claim("refreshed", json!(login.is_refresh()));
                Ok(login)
            }
        })
    }
}

#[tokio::test]
async fn the_hook_runs_once_per_login_and_its_app_claims_reach_the_handlers() {
    let dev = provider().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let app = app(&dev, provisioning(runs.clone())).await;
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(
        landing.json(),
        json!({
            "sub": "alice",
            "app_sub": "app-alice",
            "app": { "plan": "pro", "refreshed": false },
        })
    );
    // Later requests read the session; the hook does not run again.
    for _ in 0..3 {
        let res = browser.get(&app.url("/me")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_hook_refuses_a_login_with_the_apps_page_and_no_session() {
    let dev = provider().await;
    dev.set_auto_login(Some("bob"));
    let runs = Arc::new(AtomicUsize::new(0));
    let (app, oidc) = app_and_layer(&dev, provisioning(runs.clone())).await;
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::FORBIDDEN);
    let metrics = oidc.metrics();
    assert_eq!((metrics.logins, metrics.logins_refused_by_app), (0, 1));
    assert_eq!(landing.body, "<h1>No account for you here</h1>");
    assert!(landing.headers["cache-control"]
        .to_str()
        .expect("cache-control")
        .contains("no-store"));
    assert!(set_cookies(&landing.headers)
        .iter()
        .all(|c| !c.starts_with("oidc_session")));
    assert!(browser.session_cookie(&app).is_empty());
    // Still nobody logged in.
    let res = browser.get(&app.url("/me")).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_error_or_a_panic_in_the_hook_fails_the_login_cleanly() {
    let dev = provider().await;
    let failing = app(&dev, |b| {
        b.on_login(|_login: Login| async move {
            Err(std::io::Error::other("database at db.internal:5432, password hunter2").into())
        })
    })
    .await;
    let panicking = app(&dev, |b| {
        b.on_login(|login: Login| async move {
            if login.subject() == "alice" {
                panic!("the hook broke at db.internal");
            }
            Ok(login)
        })
    })
    .await;
    for app in [failing, panicking] {
        let browser = Browser::new();
        let landing = browser.follow(&app.url("/me")).await;
        assert_eq!(landing.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!landing.body.contains("db.internal"), "{}", landing.body);
        assert!(!landing.body.contains("hunter2"), "{}", landing.body);
        assert!(landing.body.contains("Log in again"), "{}", landing.body);
        assert!(browser.session_cookie(&app).is_empty());
        // A script gets JSON, without details either.
        let res = reqwest::Client::new()
            .get(app.url("/me"))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn apples_user_field_from_a_form_post_callback_reaches_the_hook() {
    let dev = provider().await;
    dev.set_fault(Fault::AuthorizationResponseParams(vec![(
        "user".to_owned(),
        r#"{"name":{"firstName":"Alice","lastName":"Example"},"email":"a@example.test"}"#
            .to_owned(),
    )]));
    let app = app(&dev, |b| {
        b.response_mode(tower_oidc::ResponseMode::FormPost)
            .on_login(|mut login: Login| async move {
                let user: Value = login
                    .callback_param("user")
                    .and_then(|u| serde_json::from_str(u).ok())
                    .unwrap_or_default();
                if let Some(first) = user["name"]["firstName"].as_str() {
                    login.set_app_claim("first_name", json!(first));
                }
                // The layer's own fields are not handed on as extra fields.
                assert_eq!(login.callback_param("code"), None);
                assert_eq!(login.callback_param("state"), None);
                Ok(login)
            })
    })
    .await;
    let browser = Browser::new();
    let res = browser.get(&app.url("/auth/login?return_to=/me")).await;
    let authorize =
        url::Url::parse(res.headers()[LOCATION].to_str().expect("Location")).expect("URL");
    let page = browser.get(&authorize).await.text().await.expect("page");
    let form =
        support::html::find_form(&page, |a| a.ends_with("/auth/callback")).expect("form_post page");
    let res = browser
        .client
        .post(&form.action)
        .form(&form.hidden_fields())
        .send()
        .await
        .expect("callback");
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(new_session_cookie(&res).is_some());
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.json()["app"], json!({ "first_name": "Alice" }));
}

#[tokio::test]
async fn the_hook_runs_at_refresh_when_asked_and_its_refusal_ends_the_session() {
    let dev = provider().await;
    let clock = TestClock::new();
    let runs = Arc::new(AtomicUsize::new(0));
    let refuse = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook_runs = runs.clone();
    let hook_refuses = refuse.clone();
    let layer_clock = clock.closure();
    let app = app(&dev, move |b| {
        b.scopes(["openid", "profile", "offline_access"])
            .refresh_margin(Duration::ZERO)
            .clock(layer_clock)
            .on_login_at_refresh(true)
            .on_login(move |mut login: Login| {
                let (runs, refuse) = (hook_runs.clone(), hook_refuses.clone());
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    if login.is_refresh() && refuse.load(Ordering::SeqCst) {
                        return Err(LoginRejected::failed("account closed"));
                    }
                    // The app's data of the session is handed back at refresh.
                    let seen = login.app_claims().get("logins").and_then(Value::as_u64);
                    login.set_app_claim("logins", json!(seen.unwrap_or(0) + 1));
                    Ok(login)
                }
            })
    })
    .await;
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.json()["app"]["logins"], 1);

    clock.advance(ACCESS_TTL + Duration::from_secs(1));
    let res = browser.get(&app.url("/me")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = serde_json::from_str(&res.text().await.expect("body")).expect("JSON");
    assert_eq!(body["app"]["logins"], 2);
    assert_eq!(body["app_sub"], Value::Null);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(dev.stats().token_requests, 2);

    refuse.store(true, Ordering::SeqCst);
    clock.advance(ACCESS_TTL + Duration::from_secs(1));
    let res = browser.get(&app.url("/me")).await;
    assert_eq!(res.status(), StatusCode::FOUND, "the session ended");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}
