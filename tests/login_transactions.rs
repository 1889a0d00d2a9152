//! Login-transaction cookies stay few and small whatever arrives: a fixed set of slot names
//! (parallel logins overwrite slots, never add names), a capped `return_to`, and no login
//! started by requests that are not top-level navigations (hidden iframes, images, scripts).

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::StatusCode;
use support::app::{set_cookies, start_app, Browser, TestApp};
use tower_oidc::dev::DevProvider;
use tower_oidc::ConfigBuilder;
use url::Url;

const TX_PREFIX: &str = "oidc_tx_";

async fn provider() -> DevProvider {
    let dev = DevProvider::start().await.expect("dev provider starts");
    dev.set_auto_login(Some("alice"));
    dev
}

async fn app_with(
    dev: &DevProvider,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> TestApp {
    let client = dev.confidential_client();
    let secret = client.secret.clone().expect("secret");
    start_app(dev.issuer(), &client.id, |b| {
        configure(b.client_secret(secret))
    })
    .await
    .expect("app starts")
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

/// Names of the transaction cookies a response sets (not the removals).
fn tx_cookies_set(headers: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    set_cookies(headers)
        .iter()
        .filter(|c| c.starts_with(TX_PREFIX) && !c.contains("Max-Age=0"))
        .filter_map(|c| {
            let pair = c.split(';').next()?;
            let (name, value) = pair.split_once('=')?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

fn tx_names_in(cookie_header: &str) -> BTreeSet<String> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('=').map(|(n, _)| n.to_owned()))
        .filter(|n| n.starts_with(TX_PREFIX))
        .collect()
}

#[tokio::test]
async fn fifty_parallel_logins_set_at_most_the_configured_number_of_cookie_names() {
    let dev = provider().await;
    let app = app_with(&dev, |b| b).await;
    let login = app.url("/auth/login?return_to=/me");
    // Some cookies the browser already holds (two earlier logins), sent with every request.
    let browser = Browser::new();
    for _ in 0..2 {
        let res = browser.get(&login).await;
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    let carried = browser.cookies(&app.url("/auth/callback"));
    assert_eq!(tx_names_in(&carried).len(), 2);

    let http = no_redirects();
    let requests = (0..50).map(|_| {
        http.get(login.clone())
            .header("accept", "text/html")
            .header("cookie", carried.clone())
            .send()
    });
    let mut names: BTreeSet<String> = tx_names_in(&carried);
    for res in futures_util::future::join_all(requests).await {
        let res = res.expect("login answered");
        assert_eq!(res.status(), StatusCode::FOUND);
        let set = tx_cookies_set(res.headers());
        assert_eq!(set.len(), 1, "one transaction cookie per login");
        names.extend(set.into_iter().map(|(n, _)| n));
    }
    assert!(
        names.len() <= 3,
        "at most max_concurrent_logins (3) names: {names:?}"
    );

    // The same from a cookie-keeping client whose jar changes while the requests race.
    let jar = Arc::new(Jar::default());
    let racing = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let requests = (0..50).map(|_| {
        racing
            .get(login.clone())
            .header("accept", "text/html")
            .send()
    });
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.expect("login answered").status(), StatusCode::FOUND);
    }
    let held = jar
        .cookies(&app.url("/auth/callback"))
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let held = tx_names_in(&held);
    assert!(!held.is_empty() && held.len() <= 3, "{held:?}");
}

#[tokio::test]
async fn the_configured_number_of_slots_bounds_the_names_too() {
    let dev = provider().await;
    let app = app_with(&dev, |b| b.max_concurrent_logins(2)).await;
    let http = no_redirects();
    let requests = (0..50).map(|i| {
        http.get(app.url(&format!("/auth/login?return_to=/me%3Fn%3D{i}")))
            .header("accept", "text/html")
            .header("cookie", "oidc_tx_0=garbage; oidc_tx_1=garbage")
            .send()
    });
    let mut names = BTreeSet::new();
    for res in futures_util::future::join_all(requests).await {
        let res = res.unwrap();
        names.extend(tx_cookies_set(res.headers()).into_iter().map(|(n, _)| n));
    }
    assert!(names.len() <= 2, "{names:?}");
    assert!(
        names.iter().all(|n| n == "oidc_tx_0" || n == "oidc_tx_1"),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_login_overwritten_in_its_slot_is_unknown_and_the_newer_one_completes() {
    let dev = provider().await;
    let app = app_with(&dev, |b| b.max_concurrent_logins(1)).await;
    let browser = Browser::new();
    let is_callback = |u: &Url| u.path() == "/auth/callback";
    let first = browser
        .follow_until(&app.url("/auth/login?return_to=/me%3Ftab%3D1"), is_callback)
        .await
        .url;
    let second = browser
        .follow_until(&app.url("/auth/login?return_to=/me%3Ftab%3D2"), is_callback)
        .await
        .url;
    let res = browser.get(&first).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // the slot holds the second login's transaction: it is not cleared
    assert!(
        !set_cookies(res.headers())
            .iter()
            .any(|c| c.starts_with(TX_PREFIX)),
        "{:?}",
        set_cookies(res.headers())
    );
    let landing = browser.follow(&second).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.url.query(), Some("tab=2"));
    assert_eq!(dev.stats().token_requests, 1);
}

#[tokio::test]
async fn an_overlong_return_to_is_not_sealed_and_the_login_lands_on_the_root() {
    let dev = provider().await;
    let app = app_with(&dev, |b| b).await;
    let http = no_redirects();
    let short = http
        .get(app.url("/auth/login?return_to=/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let (_, short) = tx_cookies_set(short.headers())
        .pop()
        .expect("a transaction cookie");
    let long_path = format!("/me?pad={}", "a".repeat(600));
    let long = http
        .get(app.url("/auth/login"))
        .query(&[("return_to", &long_path)])
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), StatusCode::FOUND);
    let (_, sealed) = tx_cookies_set(long.headers())
        .pop()
        .expect("a transaction cookie");
    assert_eq!(
        sealed.len(),
        short.len(),
        "the long return_to was dropped, not sealed"
    );
    assert!(sealed.len() < 400, "{}", sealed.len());

    let landing = Browser::new()
        .follow(&app.url(&format!(
            "/auth/login?return_to={}",
            form_urlencoded::byte_serialize(long_path.as_bytes()).collect::<String>()
        )))
        .await;
    assert_eq!(landing.status, StatusCode::OK);
    assert_eq!(landing.url.path(), "/");
    assert_eq!(landing.body, "hello alice");

    // A return_to within the cap is kept.
    let kept = format!("/me?pad={}", "b".repeat(240));
    let landing = Browser::new()
        .follow(&app.url(&format!(
            "/auth/login?return_to={}",
            form_urlencoded::byte_serialize(kept.as_bytes()).collect::<String>()
        )))
        .await;
    assert_eq!(landing.status, StatusCode::OK);
    assert_eq!(landing.url.path(), "/me");
    assert_eq!(landing.url.query(), Some(&kept[4..]));
}

/// A request as a browser sends it, with these `Sec-Fetch-*` headers.
async fn fetch(
    app: &TestApp,
    path: &str,
    mode: &str,
    dest: &str,
    accept: &str,
) -> reqwest::Response {
    no_redirects()
        .get(app.url(path))
        .header("accept", accept)
        .header("sec-fetch-mode", mode)
        .header("sec-fetch-dest", dest)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn logins_start_only_from_top_level_navigations() {
    let dev = provider().await;
    let app = app_with(&dev, |b| b).await;
    let html = "text/html,application/xhtml+xml,*/*;q=0.8";
    for path in ["/auth/login?return_to=/me", "/me"] {
        for (mode, dest, accept) in [
            ("cors", "empty", "*/*"),
            ("navigate", "iframe", html),
            ("no-cors", "image", "image/avif,image/webp,*/*"),
            ("navigate", "frame", html),
            ("navigate", "object", html),
            ("no-cors", "script", "*/*"),
        ] {
            let res = fetch(&app, path, mode, dest, accept).await;
            let what = format!("{path} {mode}/{dest}");
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
            assert!(
                !set_cookies(res.headers())
                    .iter()
                    .any(|c| c.starts_with(TX_PREFIX)),
                "{what}: {:?}",
                set_cookies(res.headers())
            );
            assert!(res.headers().get("location").is_none(), "{what}");
        }
    }
    // a script gets the JSON answer
    let res = fetch(&app, "/auth/login", "cors", "empty", "*/*").await;
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let body: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "unauthenticated");
    // a top-level navigation logs in
    let res = fetch(
        &app,
        "/auth/login?return_to=/me",
        "navigate",
        "document",
        html,
    )
    .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(tx_cookies_set(res.headers()).len(), 1);
    let res = fetch(&app, "/me", "navigate", "document", html).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(tx_cookies_set(res.headers()).len(), 1);
    assert_eq!(dev.stats().authorization_requests, 0);
}

#[tokio::test]
async fn the_automatic_login_of_require_login_refuses_iframes_too() {
    let dev = provider().await;
    let app = app_with(&dev, |b| b.require_login(true)).await;
    let html = "text/html";
    let res = fetch(&app, "/", "navigate", "iframe", html).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        set_cookies(res.headers()).is_empty(),
        "{:?}",
        set_cookies(res.headers())
    );
    let res = fetch(&app, "/", "navigate", "document", html).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    // and a browser without Sec-Fetch-* headers still logs in
    let landing = Browser::new().follow(&app.url("/")).await;
    assert_eq!(landing.body, "hello alice");
}

#[tokio::test]
async fn transaction_cookies_of_the_older_format_are_cleared_at_the_next_login() {
    let dev = provider().await;
    let app = app_with(&dev, |b| b).await;
    let old = "oidc_tx_Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmE";
    let res = no_redirects()
        .get(app.url("/auth/login?return_to=/me"))
        .header("accept", "text/html")
        .header("cookie", format!("{old}=AAAA; theme=dark"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let cookies = set_cookies(res.headers());
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("{old}=;")) && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    assert_eq!(tx_cookies_set(res.headers()).len(), 1);
    // its callback is an unknown login: an explanation with a way to start again, no 500
    let res = no_redirects()
        .get(app.url("/auth/callback?code=c&state=Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmE"))
        .header("accept", "text/html")
        .header("cookie", format!("{old}=AAAA"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.unwrap().contains("/auth/login"));
}

/// Bytes of the login-transaction cookies a browser sends with every request (`name=value`
/// pairs and their `; ` separators) after `logins` logins, each with `return_to`.
async fn tx_bytes_after_logins(app: &TestApp, logins: usize, return_to: &str) -> (usize, usize) {
    let browser = Browser::new();
    for _ in 0..logins {
        let res = browser
            .get(&app.url(&format!(
                "/auth/login?return_to={}",
                form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
            )))
            .await;
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    let sent = browser.cookies(&app.url("/auth/callback"));
    let pairs: Vec<&str> = sent
        .split("; ")
        .filter(|pair| pair.starts_with(TX_PREFIX))
        .collect();
    let bytes = pairs.iter().map(|p| p.len() + 2).sum();
    (pairs.len(), bytes)
}

#[tokio::test]
async fn every_slot_filled_with_the_longest_return_to_stays_within_the_cookie_budget() {
    let dev = provider().await;
    // Return-to paths of every length the layer ever kept, made of characters that stay as
    // they are: whichever is kept, the slots hold the longest transaction possible.
    let longest = |len: usize| format!("/{}", "a".repeat(len - 1));
    let app = app_with(&dev, |b| b).await;
    for len in [256, 512] {
        // More logins than slots: a popup re-navigated again and again, or a hostile tenant
        // redirecting straight back to the login.
        let (count, bytes) = tx_bytes_after_logins(&app, 12, &longest(len)).await;
        assert!(
            count <= 3,
            "default: at most 3 transaction cookies, {count}"
        );
        assert!(
            bytes <= 2_500,
            "default: at most 2.5 KB of transaction cookies per request, {bytes} bytes \
             (return_to of {len} bytes)"
        );
    }
    // The most slots allowed bound the total too.
    let app = app_with(&dev, |b| b.max_concurrent_logins(8)).await;
    for len in [256, 512] {
        let (count, bytes) = tx_bytes_after_logins(&app, 20, &longest(len)).await;
        assert!(count <= 8, "{count}");
        assert!(bytes <= 5_000, "{bytes} bytes (return_to of {len} bytes)");
    }
    assert!(
        tower_oidc::Config::builder("https://id.example.com", "app")
            .client_secret("s")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(tower_oidc::SessionKey::generate())
            .max_concurrent_logins(9)
            .build()
            .is_err(),
        "more than 8 slots are refused"
    );
}

#[tokio::test]
async fn automatic_logins_in_several_tabs_take_distinct_slots() {
    let dev = provider().await;
    let extractor = app_with(&dev, |b| b).await;
    let required = app_with(&dev, |b| b.require_login(true)).await;
    // Rounds of three tabs, each sent to the login by a protected page (not a path under the
    // route prefix; by the `Identity` extractor or by `require_login`): each takes a free
    // slot, and every tab's login completes.
    for (app, page) in [(&extractor, "/me"), (&required, "/"), (&extractor, "/me")] {
        let browser = Browser::new();
        let is_callback = |u: &Url| u.path() == "/auth/callback";
        let mut callbacks = Vec::new();
        for tab in 0..3 {
            let url = app.url(&format!("{page}?tab={tab}"));
            callbacks.push(browser.follow_until(&url, is_callback).await.url);
        }
        let held = tx_names_in(&browser.cookies(&app.url("/auth/callback")));
        assert_eq!(held.len(), 3, "three logins, three slots: {held:?}");
        for (tab, callback) in callbacks.iter().enumerate() {
            let landing = browser.follow(callback).await;
            assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
            assert_eq!(
                landing.url.query(),
                Some(format!("tab={tab}").as_str()),
                "{}",
                landing.url
            );
        }
    }
}
