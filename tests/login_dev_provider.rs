//! The whole browser login flow against the in-process dev provider, with a negative test for
//! every rejection the callback makes.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::app::{set_cookies, start_app, Browser, Landing, TestApp};
use tower_oidc::dev::{DevProvider, Fault, IdTokenFault};
use tower_oidc::{ClientAuth, ConfigBuilder, ConfigError};
use url::Url;

async fn provider() -> DevProvider {
    let dev = DevProvider::start().await.expect("dev provider starts");
    dev.set_auto_login(Some("alice"));
    dev
}

async fn confidential_app(dev: &DevProvider) -> TestApp {
    confidential_app_with(dev, |b| b).await
}

async fn confidential_app_with(
    dev: &DevProvider,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> TestApp {
    let client = dev.confidential_client();
    let secret = client
        .secret
        .clone()
        .expect("confidential client has a secret");
    start_app(dev.issuer(), &client.id, |b| {
        configure(b.client_secret(secret))
    })
    .await
    .expect("app starts")
}

fn is_callback(url: &Url) -> bool {
    url.path() == "/auth/callback"
}

/// Logs in from `/me` and checks the landing is `/me`'s JSON for alice.
async fn login(browser: &Browser, app: &TestApp) -> Landing {
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.url.path(), "/me");
    landing
}

#[tokio::test]
async fn confidential_client_logs_in_and_reaches_me() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let browser = Browser::new();
    let landing = login(&browser, &app).await;
    let claims = landing.json();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], dev.issuer());
    assert_eq!(claims["email"], "alice@example.com");
    assert!(claims["name"].is_string());
    assert!(
        claims.get("nonce").is_none(),
        "token-only claims are dropped"
    );
    // the path went through the provider and our callback
    assert!(landing.visited.iter().any(|u| u.path() == "/authorize"));
    assert!(landing.visited.iter().any(is_callback));
    // the session now answers directly, and userinfo was consulted once
    let again = browser.get(&app.url("/me")).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(dev.stats().token_requests, 1);
    assert_eq!(dev.stats().userinfo_requests, 1);
}

#[tokio::test]
async fn public_client_logs_in_with_pkce_only() {
    let dev = provider().await;
    let client = dev.public_client().clone();
    assert!(client.secret.is_none());
    let app = start_app(dev.issuer(), &client.id, |b| b)
        .await
        .expect("app");
    let browser = Browser::new();
    assert_eq!(login(&browser, &app).await.json()["sub"], "alice");
}

#[tokio::test]
async fn client_secret_post_logs_in() {
    let dev = provider().await;
    let app = confidential_app_with(&dev, |b| b.client_auth(ClientAuth::ClientSecretPost)).await;
    assert_eq!(login(&Browser::new(), &app).await.json()["sub"], "alice");
}

#[tokio::test]
async fn wrong_client_secret_fails_cleanly() {
    let dev = provider().await;
    let client = dev.confidential_client().clone();
    let app = start_app(dev.issuer(), &client.id, |b| b.client_secret("wrong"))
        .await
        .expect("app");
    let landing = Browser::new().follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::BAD_REQUEST);
    assert!(landing.body.contains("Log in again"), "{}", landing.body);
}

#[tokio::test]
async fn missing_login_is_answered_by_caller_kind() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let nav = client
        .get(app.url("/me"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(nav.status(), StatusCode::FOUND);
    let location = nav.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{}/authorize?", dev.issuer())),
        "{location}"
    );
    for param in [
        "code_challenge_method=S256",
        "state=",
        "nonce=",
        "code_challenge=",
    ] {
        assert!(location.contains(param), "{param} in {location}");
    }
    let json = client
        .get(app.url("/me"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json.headers()["www-authenticate"], "Bearer");
    let fetch = client
        .get(app.url("/me"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(fetch.status(), StatusCode::UNAUTHORIZED);
    let grpc = client
        .get(app.url("/me"))
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(grpc.status(), StatusCode::OK);
    assert_eq!(grpc.headers()["grpc-status"], "16");
    // the public page works without login
    let home = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(home.text().await.unwrap(), "hello stranger");
}

#[tokio::test]
async fn return_to_survives_the_round_trip() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me?tab=2&x=%2F")).await;
    assert_eq!(landing.status, StatusCode::OK);
    assert_eq!(landing.url.as_str(), app.url("/me?tab=2&x=%2F").as_str());
    // an explicit login with a hostile return_to lands on `/`
    let browser = Browser::new();
    let landing = browser
        .follow(&app.url("/auth/login?return_to=%2F%2Fevil.example"))
        .await;
    assert_eq!(landing.url.as_str(), app.url("/").as_str());
    assert_eq!(landing.body, "hello alice");
}

#[tokio::test]
async fn session_cookie_flags_and_stripping() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let browser = Browser::new();
    let callback = browser.follow_until(&app.url("/me"), is_callback).await;
    let res = browser.get(&callback.url).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let cookies = set_cookies(res.headers());
    let session = cookies
        .iter()
        .find(|c| c.starts_with("oidc_session="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("oidc_tx_") && c.contains("Max-Age=0")),
        "the transaction cookie is deleted on use: {cookies:?}"
    );
    // the inner service never sees our cookies, but sees the app's own
    let echoed = browser
        .client
        .get(app.url("/echo-cookies"))
        .header("cookie", "theme=dark")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!echoed.contains("oidc_"), "{echoed}");
    assert!(echoed.contains("theme=dark"), "{echoed}");
}

/// Starts a login and stops at the redirect to our callback; returns its URL.
async fn callback_url(browser: &Browser, app: &TestApp) -> Url {
    let stop = browser.follow_until(&app.url("/me"), is_callback).await;
    assert!(is_callback(&stop.url), "stopped at {}", stop.url);
    stop.url
}

/// Runs a login with `fault` active and checks it is refused with `status`, without a
/// session.
async fn assert_login_refused(fault: Fault, status: StatusCode) -> Landing {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    dev.set_fault(fault);
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, status, "{}", landing.body);
    assert!(
        !set_cookies(&landing.headers)
            .iter()
            .any(|c| c.starts_with("oidc_session=") && !c.contains("Max-Age=0")),
        "no session is created"
    );
    assert!(!browser.cookies(&app.url("/")).contains("oidc_session="));
    let me = browser
        .client
        .get(app.url("/me"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    landing
}

#[tokio::test]
async fn bad_signature_is_refused() {
    assert_login_refused(
        Fault::IdToken(IdTokenFault::BadSignature),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    assert_login_refused(
        Fault::IdToken(IdTokenFault::WrongIssuer),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    assert_login_refused(
        Fault::IdToken(IdTokenFault::WrongAudience),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn several_audiences_without_azp_are_refused() {
    assert_login_refused(
        Fault::IdToken(IdTokenFault::MultipleAudiencesWithoutAzp),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn expired_id_token_is_refused() {
    assert_login_refused(
        Fault::IdToken(IdTokenFault::Expired),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn id_token_issued_in_the_future_is_refused() {
    assert_login_refused(
        Fault::IdToken(IdTokenFault::IssuedInFuture),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn nonce_mismatch_is_refused() {
    assert_login_refused(
        Fault::IdToken(IdTokenFault::WrongNonce),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    assert_login_refused(
        Fault::IdToken(IdTokenFault::AlgNone),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn hmac_keyed_with_the_public_key_is_refused() {
    assert_login_refused(
        Fault::IdToken(IdTokenFault::HmacWithPublicKey),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn wrong_at_hash_is_refused() {
    assert_login_refused(
        Fault::IdToken(IdTokenFault::WrongAtHash),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn unknown_kid_is_refused_after_one_refetch() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let before = dev.stats().jwks_requests;
    dev.set_fault(Fault::IdToken(IdTokenFault::UnknownKid));
    let landing = Browser::new().follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::BAD_REQUEST);
    assert_eq!(dev.stats().jwks_requests, before + 1, "refetched once");
    // a second bad token within the rate limit does not refetch again
    let landing = Browser::new().follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::BAD_REQUEST);
    assert_eq!(dev.stats().jwks_requests, before + 1, "rate limited");
}

#[tokio::test]
async fn key_rotation_is_accepted_after_refetch() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let before = dev.stats().jwks_requests;
    dev.rotate_keys();
    let browser = Browser::new();
    assert_eq!(login(&browser, &app).await.json()["sub"], "alice");
    assert_eq!(dev.stats().jwks_requests, before + 1);
    // the next login uses the cached new key
    login(&Browser::new(), &app).await;
    assert_eq!(dev.stats().jwks_requests, before + 1);
}

#[tokio::test]
async fn provider_error_gives_a_clear_page() {
    let landing = assert_login_refused(
        Fault::AuthorizeError("access_denied".into()),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(landing.body.contains("access_denied"), "{}", landing.body);
    assert!(
        landing
            .body
            .contains("href=\"/auth/login?return_to=%2Fme\""),
        "{}",
        landing.body
    );
}

#[tokio::test]
async fn authorization_response_from_another_issuer_is_refused() {
    assert_login_refused(Fault::WrongAuthorizationIss, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn token_type_other_than_bearer_is_refused() {
    assert_login_refused(Fault::TokenType("mac".into()), StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn token_response_without_id_token_is_refused() {
    assert_login_refused(Fault::MissingIdToken, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn token_endpoint_error_is_refused() {
    assert_login_refused(
        Fault::TokenError("invalid_grant".into()),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn userinfo_subject_mismatch_is_refused() {
    assert_login_refused(Fault::UserinfoSubMismatch, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn provider_down_at_callback_is_503() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let browser = Browser::new();
    let callback = callback_url(&browser, &app).await;
    dev.set_fault(Fault::Down);
    let landing = browser.follow(&callback).await;
    assert_eq!(landing.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn state_mismatch_is_refused() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let browser = Browser::new();
    let mut callback = callback_url(&browser, &app).await;
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    callback.query_pairs_mut().clear().extend_pairs(pairs);
    let landing = browser.follow(&callback).await;
    assert_eq!(landing.status, StatusCode::BAD_REQUEST);
    assert!(
        landing.body.contains("Start the login again"),
        "{}",
        landing.body
    );
    assert_eq!(dev.stats().token_requests, 0, "the code is never exchanged");
}

#[tokio::test]
async fn replayed_callback_is_refused() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let browser = Browser::new();
    let callback = callback_url(&browser, &app).await;
    let tx_cookie = browser.cookies(&callback);
    assert!(tx_cookie.contains("oidc_tx_"));
    let first = browser.get(&callback).await;
    assert_eq!(first.status(), StatusCode::FOUND);

    // Replayed elsewhere, with the transaction cookie an attacker kept: the provider
    // refuses the used code.
    let attacker = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let replay = attacker
        .get(callback.clone())
        .header("accept", "text/html")
        .header("cookie", &tx_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(!set_cookies(replay.headers())
        .iter()
        .any(|c| c.starts_with("oidc_session=") && !c.contains("Max-Age=0")));
    // Replayed without it: unknown login.
    let replay = attacker
        .get(callback.clone())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    // The user's own back button, with a session: back to the app, no error.
    let back = browser.get(&callback).await;
    assert_eq!(back.status(), StatusCode::FOUND);
    assert_eq!(back.headers()["location"], "/");
}

#[tokio::test]
async fn tampered_session_cookie_is_no_session() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let browser = Browser::new();
    login(&browser, &app).await;
    let cookies = browser.cookies(&app.url("/"));
    let session = cookies
        .split("; ")
        .find(|c| c.starts_with("oidc_session="))
        .expect("session cookie")
        .to_owned();
    let client = reqwest::Client::new();
    let send = |cookie: String| {
        let client = client.clone();
        let url = app.url("/me");
        async move {
            client
                .get(url)
                .header("accept", "application/json")
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(send(session.clone()).await.status(), StatusCode::OK);
    let value = session.trim_start_matches("oidc_session=");
    let mut flipped: Vec<char> = value.chars().collect();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == 'A' { 'B' } else { 'A' };
    let tampered: String = flipped.into_iter().collect();
    for bad in [
        format!("oidc_session={tampered}"),
        format!("oidc_session={}", &value[..value.len() / 2]),
        "oidc_session=".to_owned(),
        "oidc_session=%%%".to_owned(),
        format!("oidc_session={}", "A".repeat(40_000)),
    ] {
        let res = send(bad).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(
            set_cookies(res.headers())
                .iter()
                .any(|c| c.starts_with("oidc_session=;") && c.contains("Max-Age=0")),
            "the bad cookie is cleared"
        );
    }
}

#[tokio::test]
async fn logout_clears_the_session_and_ends_it_at_the_provider() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let browser = Browser::new();
    login(&browser, &app).await;
    let res = browser.get(&app.url("/auth/logout")).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/end_session");
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert!(params.contains_key("id_token_hint"));
    assert_eq!(params["post_logout_redirect_uri"], app.url("/").as_str());
    assert_eq!(params["client_id"], dev.confidential_client().id);
    assert!(set_cookies(res.headers())
        .iter()
        .any(|c| c.starts_with("oidc_session=;") && c.contains("Max-Age=0")));
    let landing = browser.follow(&location).await;
    assert_eq!(landing.url.as_str(), app.url("/").as_str());
    assert_eq!(landing.body, "hello stranger");
    assert_eq!(dev.stats().end_session_requests, 1);
}

#[tokio::test]
async fn logins_in_several_tabs_do_not_collide() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    let browser = Browser::new();
    let first = browser
        .follow_until(&app.url("/me?tab=1"), is_callback)
        .await
        .url;
    let second = browser
        .follow_until(&app.url("/me?tab=2"), is_callback)
        .await
        .url;
    let landing = browser.follow(&second).await;
    assert_eq!(landing.url.query(), Some("tab=2"));
    let landing = browser.follow(&first).await;
    assert_eq!(landing.status, StatusCode::OK);
    assert_eq!(landing.url.query(), Some("tab=1"));
}

#[tokio::test]
async fn logins_started_on_protected_pages_take_free_slots() {
    // Logins started by the extractor on an app page (not on /auth/login) must see the
    // transactions the browser holds, although the layer strips its cookies before the app.
    let dev = provider().await;
    let app = confidential_app_with(&dev, |b| b.max_concurrent_logins(3)).await;
    let browser = Browser::new();
    let mut callbacks = Vec::new();
    for tab in 0..3 {
        let url = app.url(&format!("/me?tab={tab}"));
        callbacks.push(browser.follow_until(&url, is_callback).await.url);
    }
    let slots: std::collections::HashSet<String> = callbacks
        .iter()
        .filter_map(|u| u.query_pairs().find(|(k, _)| k == "state"))
        .filter_map(|(_, state)| state.split_once('_').map(|(slot, _)| slot.to_owned()))
        .collect();
    assert_eq!(slots.len(), 3, "three logins, three slots: {callbacks:?}");
    for (tab, callback) in callbacks.iter().enumerate().rev() {
        let landing = browser.follow(callback).await;
        assert_eq!(landing.status, StatusCode::OK);
        assert_eq!(landing.url.query(), Some(format!("tab={tab}").as_str()));
    }
}

#[tokio::test]
async fn concurrent_logins_are_capped_oldest_first() {
    let dev = provider().await;
    let app = confidential_app_with(&dev, |b| b.max_concurrent_logins(2)).await;
    let browser = Browser::new();
    let mut callbacks = Vec::new();
    for i in 0..3 {
        let url = app.url(&format!("/auth/login?return_to=/me%3Ftab%3D{i}"));
        callbacks.push(browser.follow_until(&url, is_callback).await.url);
    }
    let tx_count = browser
        .cookies(&app.url("/auth/callback"))
        .matches("oidc_tx_")
        .count();
    assert_eq!(tx_count, 2);
    // the oldest was evicted; the newer two still work
    let oldest = browser.follow(&callbacks[0]).await;
    assert_eq!(oldest.status, StatusCode::BAD_REQUEST);
    let newest = browser.follow(&callbacks[2]).await;
    assert_eq!(newest.status, StatusCode::OK);
}

#[tokio::test]
async fn require_login_on_the_whole_layer() {
    let dev = provider().await;
    let app =
        confidential_app_with(&dev, |b| b.require_login(true).public_path("/echo-cookies")).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let home = client
        .get(app.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::FOUND);
    let public = client.get(app.url("/echo-cookies")).send().await.unwrap();
    assert_eq!(public.status(), StatusCode::OK);
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/")).await;
    assert_eq!(landing.body, "hello alice");
}

#[tokio::test]
async fn issuer_with_a_path_works() {
    let dev = DevProvider::builder()
        .issuer_path("/tenants/a")
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("bob"));
    assert!(dev.issuer().ends_with("/tenants/a"));
    let app = confidential_app(&dev).await;
    let landing = login(&Browser::new(), &app).await;
    assert_eq!(landing.json()["sub"], "bob");
    assert_eq!(landing.json()["iss"], dev.issuer());
}

#[tokio::test]
async fn discovery_mistakes_fail_at_startup() {
    let dev = provider().await;
    let client = dev.confidential_client().clone();
    // issuer differs from the metadata's by a trailing slash
    let err = start_app(&format!("{}/", dev.issuer()), &client.id, |b| b)
        .await
        .err()
        .expect("issuer mismatch");
    assert!(matches!(err, ConfigError::IssuerMismatch { .. }), "{err}");
    // nothing there
    let err = start_app(&format!("{}/nope", dev.issuer()), &client.id, |b| b)
        .await
        .err()
        .expect("no discovery document");
    assert!(matches!(err, ConfigError::Discovery { .. }), "{err}");
    // provider down
    dev.set_fault(Fault::Down);
    let err = start_app(dev.issuer(), &client.id, |b| b)
        .await
        .err()
        .expect("provider down");
    assert!(matches!(err, ConfigError::Discovery { .. }), "{err}");
}

#[tokio::test]
async fn slow_provider_times_out_with_503() {
    let dev = provider().await;
    let app = confidential_app_with(&dev, |b| b.http_timeout(Duration::from_millis(300))).await;
    let browser = Browser::new();
    let callback = callback_url(&browser, &app).await;
    dev.set_fault(Fault::Delay(Duration::from_secs(3)));
    let landing = browser.follow(&callback).await;
    assert_eq!(landing.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn csrf_header_is_required_for_session_writes() {
    let dev = provider().await;
    let app = confidential_app_with(&dev, |b| b.csrf_header("x-csrf")).await;
    let browser = Browser::new();
    login(&browser, &app).await;
    let post = |with_header: bool| {
        let mut req = browser
            .client
            .post(app.url("/action"))
            .header("accept", "application/json");
        if with_header {
            req = req.header("x-csrf", "1");
        }
        req.send()
    };
    let refused = post(false).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("csrf_check_failed"));
    let allowed = post(true).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.text().await.unwrap(), "done for alice");
    // reads need no header, and logout (the layer's own route) neither
    assert_eq!(browser.get(&app.url("/me")).await.status(), StatusCode::OK);
    let logout = browser
        .client
        .post(app.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn silent_login_failure_returns_not_logged_in() {
    let dev = DevProvider::start().await.expect("dev provider");
    // no auto login: the provider answers prompt=none with login_required
    let app = confidential_app(&dev).await;
    let browser = Browser::new();
    let landing = browser
        .follow(&app.url("/auth/login?prompt=none&return_to=/"))
        .await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.url.as_str(), app.url("/").as_str());
    assert_eq!(landing.body, "hello stranger");
    assert!(landing.visited.iter().any(|u| u
        .query()
        .unwrap_or_default()
        .contains("error=login_required")));
}

#[tokio::test]
async fn per_login_parameters_are_allow_listed() {
    let dev = provider().await;
    let app = confidential_app_with(&dev, |b| {
        b.auth_param("ui_locales", "nb-NO")
            .login_param("tenant_hint")
    })
    .await;
    let res = Browser::new()
        .get(&app.url(
            "/auth/login?login_hint=bob&tenant_hint=acme&evil=1&ui_locales=en&scope=admin&return_to=/me",
        ))
        .await;
    let location = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    let params: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let get = |n: &str| {
        params
            .iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("login_hint"), ["bob"]);
    assert_eq!(get("tenant_hint"), ["acme"]);
    assert!(get("evil").is_empty());
    assert_eq!(get("ui_locales"), ["nb-NO"], "configured values win");
    assert_eq!(
        get("scope"),
        ["openid profile email"],
        "reserved parameters stay ours"
    );
}

#[tokio::test]
async fn form_post_transaction_cookie_is_cross_site_and_mode_is_enforced() {
    let dev = provider().await;
    let app = confidential_app_with(&dev, |b| {
        b.response_mode(tower_oidc::ResponseMode::FormPost)
    })
    .await;
    let browser = Browser::new();
    let res = browser.get(&app.url("/auth/login?return_to=/me")).await;
    let tx = set_cookies(res.headers())
        .into_iter()
        .find(|c| c.starts_with("oidc_tx_"))
        .expect("transaction cookie");
    assert!(
        tx.contains("SameSite=None") && tx.contains("Secure"),
        "{tx}"
    );
    let location = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location
        .query()
        .unwrap()
        .contains("response_mode=form_post"));
    // The dev provider answers with a form; an attacker replaying the answer as a GET query
    // (another response mode) is refused.
    let page = browser.get(&location).await.text().await.unwrap();
    let fields = support::html::find_form(&page, |a| a.ends_with("/auth/callback"))
        .expect("form_post page")
        .hidden_fields();
    let mut as_query = app.url("/auth/callback");
    as_query.query_pairs_mut().extend_pairs(&fields);
    let refused = browser.get(&as_query).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn max_age_exceeded_is_refused() {
    let dev = DevProvider::builder()
        .id_token_ttl(Duration::from_secs(3600))
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    // The app's clock runs 10 minutes ahead: a login is "10 minutes old" when it arrives.
    let app = confidential_app_with(&dev, |b| {
        b.clock(|| std::time::SystemTime::now() + Duration::from_secs(600))
    })
    .await;
    let landing = Browser::new()
        .follow(&app.url("/auth/login?max_age=120&return_to=/me"))
        .await;
    assert_eq!(landing.status, StatusCode::BAD_REQUEST, "{}", landing.body);
    assert!(landing.body.contains("max_age"), "{}", landing.body);
    // without max_age the same login passes
    let landing = Browser::new().follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
}

#[tokio::test]
async fn signed_userinfo_is_verified() {
    let dev = provider().await;
    let app = confidential_app(&dev).await;
    dev.set_fault(Fault::SignedUserinfo);
    let landing = login(&Browser::new(), &app).await;
    assert_eq!(landing.json()["email"], "alice@example.com");
    assert_eq!(dev.stats().userinfo_requests, 1);
}

#[tokio::test]
async fn signed_userinfo_with_a_bad_signature_is_refused() {
    assert_login_refused(Fault::SignedUserinfoBadSignature, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn signed_userinfo_of_another_issuer_or_for_another_client_is_refused() {
    let other_issuer = Fault::SignedUserinfoClaims(json!({ "iss": "https://evil.example.com" }));
    assert_login_refused(other_issuer, StatusCode::BAD_REQUEST).await;
    let other_client = Fault::SignedUserinfoClaims(json!({ "aud": ["someone-else"] }));
    assert_login_refused(other_client, StatusCode::BAD_REQUEST).await;
}
