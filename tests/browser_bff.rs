//! The backend-for-frontend example (`examples/bff`) end to end in headless Chromium: the SPA
//! finds nobody logged in, the user logs in through the development provider, the SPA calls
//! its backend with the session cookie and the anti-CSRF header, and the backend calls the
//! orders API with the user's access token. A cross-site-style call without the header is
//! refused.

mod support;

#[path = "../examples/bff/mod.rs"]
mod bff;

use serde_json::Value;
use support::app::{bind_loopback, serve_router};
use support::browser::{Session, WAIT};
use tower_oidc::dev::DevProvider;
use tower_oidc::{Config, OidcLayer, SessionKey};

/// The text of the element with this id.
async fn text_of(browser: &Session, id: &str) -> String {
    browser
        .execute(
            "return document.getElementById(arguments[0]).textContent;",
            vec![Value::String(id.to_owned())],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until the element with this id has a text starting with `prefix`, and returns it.
async fn wait_for_text(browser: &Session, id: &str, prefix: &str) -> String {
    browser
        .wait_until(&format!("#{id} to read {prefix:?}..."), WAIT, || async {
            let text = text_of(browser, id).await;
            text.starts_with(prefix).then_some(text)
        })
        .await
}

#[tokio::test]
async fn the_bff_example_logs_in_and_calls_the_api_with_the_users_token() {
    let dev = DevProvider::start().await.expect("dev provider");
    dev.set_auto_login(Some("alice"));
    let client = dev.confidential_client().clone();
    let secret = client.secret.clone().expect("secret");
    let config = |addr: std::net::SocketAddr| {
        Config::builder(dev.issuer(), &client.id)
            .client_secret(secret.clone())
            .redirect_url(format!("http://{addr}/auth/callback"))
            .session_key(SessionKey::generate())
    };

    let api_listener = bind_loopback().await;
    let api_addr = api_listener.local_addr().expect("address");
    let api_layer = OidcLayer::discover(config(api_addr).build().expect("config"))
        .await
        .expect("discovery");
    let _api = serve_router(api_listener, bff::orders_api(api_layer));

    let listener = bind_loopback().await;
    let addr = listener.local_addr().expect("address");
    let bff_layer = OidcLayer::discover(
        config(addr)
            .csrf_header(bff::CSRF_HEADER)
            .build()
            .expect("config"),
    )
    .await
    .expect("discovery");
    let backend = bff::Backend {
        orders_url: format!("http://{api_addr}/orders"),
        http: reqwest::Client::new(),
    };
    let app = serve_router(listener, bff::bff(bff_layer, backend));

    let browser = Session::start("bff_example").await;
    browser.goto(app.url("/")).await;
    wait_for_text(&browser, "who", "not logged in").await;
    let login = browser.wait_for("#login:not([hidden])", WAIT).await;
    browser.click_and_wait_for_navigation(&login).await;
    // The provider logs alice in by itself and the login returns to the SPA.
    let who = wait_for_text(&browser, "who", "logged in as").await;
    assert_eq!(who, "logged in as alice");
    assert_eq!(browser.url().await.path(), "/");

    let orders = browser.wait_for("#orders:not([hidden])", WAIT).await;
    browser.click(&orders).await;
    let out = wait_for_text(&browser, "out", "200").await;
    let body: Value = serde_json::from_str(out.trim_start_matches("200 ")).expect("JSON");
    assert_eq!(body["for"], "alice", "the API saw the user's token: {out}");
    assert_eq!(body["orders"][0], "book");

    // The same call without the anti-CSRF header, as a form of another site would send it.
    let status = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/api/orders', { method: 'POST', credentials: 'same-origin' })\
               .then(r => done(r.status), e => done(String(e)));",
        )
        .await;
    assert_eq!(status, 403);
}
