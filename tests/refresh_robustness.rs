//! Refresh under pressure, against the dev provider: short-lived tokens (no refresh while a
//! token is young, no login loop when the provider refuses right after login, no expired
//! access token from the grace window), temporary provider failures (the session is kept and
//! the refresh tried again later), and bounded work (refusals remembered, attempts per
//! session capped).
//!
//! Time is the layer's clock ([`TestClock`]), frozen unless a test moves it: no real sleeps.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use support::app::{clears_session, new_session_cookie, start_app, Browser, TestApp};
use support::clock::TestClock;
use tower_oidc::dev::{DevProvider, Fault, IdTokenFault};
use tower_oidc::ConfigBuilder;

const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A provider whose access tokens live `access_ttl` (ID tokens an hour) with refresh tokens,
/// and an app on `clock` with the default refresh settings.
async fn setup(
    clock: &TestClock,
    access_ttl: Duration,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (DevProvider, TestApp) {
    let dev = DevProvider::builder()
        .access_token_ttl(access_ttl)
        .id_token_ttl(Duration::from_secs(3600))
        .refresh_tokens(true)
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    let client = dev.confidential_client().clone();
    let secret = client.secret.clone().expect("secret");
    let app = start_app(dev.issuer(), &client.id, |b| {
        configure(
            b.client_secret(secret)
                .scopes(SCOPES)
                .clock(clock.closure()),
        )
    })
    .await
    .expect("app");
    (dev, app)
}

const SHORT: Duration = Duration::from_secs(4);
const LONG: Duration = Duration::from_secs(600);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn token_requests(dev: &DevProvider) -> u64 {
    dev.stats().token_requests
}

// ---- #6: short-lived tokens ----

#[tokio::test]
async fn a_young_token_is_not_refreshed() {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, SHORT, |b| b).await;
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    // The default margin (30 s) exceeds the 4 s lifetime; it is capped at half of it.
    assert_eq!(token_requests(&dev), 1, "no refresh right after the login");
    clock.advance(secs(1));
    let res = app.api_get_with_cookie("/whoami", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(new_session_cookie(&res).is_none());
    assert_eq!(
        token_requests(&dev),
        1,
        "no refresh of a token younger than half its life"
    );
    clock.advance(secs(1));
    let res = app.api_get_with_cookie("/whoami", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        new_session_cookie(&res).is_some(),
        "refreshed at half its life"
    );
    assert_eq!(token_requests(&dev), 2);
}

#[tokio::test]
async fn a_refresh_refused_right_after_login_shows_a_page_instead_of_looping() {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, SHORT, |b| b).await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    let authorizations = dev.stats().authorization_requests;
    clock.advance(secs(3));
    dev.set_fault(Fault::TokenError("invalid_grant".into()));

    let landing = browser.follow(&app.url("/me?tab=2")).await;
    assert_eq!(
        landing.visited.len(),
        1,
        "no redirect: {:?}",
        landing.visited
    );
    assert_eq!(landing.status, StatusCode::UNAUTHORIZED, "{}", landing.body);
    assert!(landing.body.contains("Log in again"), "{}", landing.body);
    assert!(
        landing
            .body
            .contains("/auth/login?return_to=%2Fme%3Ftab%3D2"),
        "{}",
        landing.body
    );
    assert_eq!(
        dev.stats().authorization_requests,
        authorizations,
        "the browser was not sent to the provider"
    );
    assert!(
        browser.session_cookie(&app).is_empty(),
        "the refused session is cleared"
    );

    // The link is the user's choice: it logs in again, back to the page.
    dev.clear_faults();
    let again = browser
        .follow(&app.url("/auth/login?return_to=%2Fme%3Ftab%3D2"))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.url.path(), "/me");
}

#[tokio::test]
async fn an_older_session_refused_at_refresh_still_goes_to_the_login() {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, LONG, |b| b).await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    clock.advance(LONG + secs(1));
    dev.set_fault(Fault::TokenError("invalid_grant".into()));
    let stop = browser
        .follow_until(&app.url("/me"), |u| u.as_str().starts_with(dev.issuer()))
        .await;
    assert_eq!(
        stop.status,
        StatusCode::FOUND,
        "a new login, as for any ended session"
    );
}

#[tokio::test]
async fn the_grace_window_never_hands_out_an_expired_access_token() {
    let clock = TestClock::frozen();
    // Refresh only once a token has expired, to see what the grace window hands out.
    let (dev, app) = setup(&clock, SHORT, |b| b.refresh_margin(Duration::ZERO)).await;
    let browser = Browser::new();
    let first = browser.log_in(&app).await;

    clock.advance(secs(4));
    let res = app.api_get_with_cookie("/token", &first).await;
    assert_eq!(res.status(), StatusCode::OK);
    let second = new_session_cookie(&res).expect("refreshed");
    let second_token = res.text().await.unwrap();
    assert_eq!(token_requests(&dev), 2);

    // 5 s later the first cookie is still within the grace window (30 s), but the refreshed
    // access token it would get from there expired at +8 s.
    clock.advance(secs(5));
    let res = app.api_get_with_cookie("/token", &first).await;
    assert_eq!(res.status(), StatusCode::OK);
    let third = new_session_cookie(&res).expect("a newer session");
    let third_token = res.text().await.unwrap();
    assert_ne!(third_token, second_token, "not the expired token");
    assert_eq!(
        token_requests(&dev),
        3,
        "refreshed again with the newer refresh token"
    );
    // The second cookie shares that refresh.
    let res = app.api_get_with_cookie("/token", &second).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), third_token);
    assert_eq!(token_requests(&dev), 3);
    assert_eq!(
        app.api_get_with_cookie("/whoami", &third).await.status(),
        StatusCode::OK
    );
}

// ---- #7: temporary provider failures keep the session ----

/// Logs in, makes the access token due, sets `fault`, and checks that a request keeps the
/// session (no new cookie, nothing cleared); then clears the fault and checks that a request
/// after the outage memory refreshes.
async fn assert_kept_then_retried(fault: Fault, configure: fn(ConfigBuilder) -> ConfigBuilder) {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, LONG, configure).await;
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    clock.advance(LONG + secs(1));
    dev.set_fault(fault.clone());
    let res = app.api_get_with_cookie("/whoami", &cookie).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{fault:?}: the session is kept"
    );
    assert!(!clears_session(&res), "{fault:?}");
    assert!(new_session_cookie(&res).is_none(), "{fault:?}");
    assert_eq!(res.text().await.unwrap().split(' ').nth(1), Some("alice"));
    let attempts = token_requests(&dev);

    dev.clear_faults();
    clock.advance(secs(3));
    let res = app.api_get_with_cookie("/whoami", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK, "{fault:?}");
    assert!(
        new_session_cookie(&res).is_some(),
        "{fault:?}: refreshed once the provider is back"
    );
    assert_eq!(token_requests(&dev), attempts + 1);
}

fn json_answer(status: u16, body: &str) -> Fault {
    Fault::TokenAnswer {
        status,
        content_type: "application/json".into(),
        body: body.into(),
    }
}

fn html_answer(status: u16) -> Fault {
    Fault::TokenAnswer {
        status,
        content_type: "text/html".into(),
        body: "<html><body><h1>Oops</h1></body></html>".into(),
    }
}

#[tokio::test]
async fn too_many_requests_keeps_the_session() {
    assert_kept_then_retried(json_answer(429, r#"{"error":"slow_down"}"#), |b| b).await;
    assert_kept_then_retried(html_answer(429), |b| b).await;
}

#[tokio::test]
async fn server_errors_with_odd_bodies_keep_the_session() {
    assert_kept_then_retried(html_answer(502), |b| b).await;
    assert_kept_then_retried(json_answer(500, r#"{"error":"invalid_grant"}"#), |b| b).await;
    assert_kept_then_retried(Fault::Down, |b| b).await;
}

#[tokio::test]
async fn an_answer_that_is_no_token_response_keeps_the_session() {
    assert_kept_then_retried(html_answer(200), |b| b).await;
    assert_kept_then_retried(json_answer(200, r#"{"access_token": 42}"#), |b| b).await;
    // a proxy's or firewall's page instead of an OAuth error
    assert_kept_then_retried(html_answer(403), |b| b).await;
}

#[tokio::test]
async fn a_timeout_keeps_the_session() {
    // The timeout applies to every provider call (discovery, keys, the login), so it is well
    // above a normal call on a busy machine, and the delay far above it.
    assert_kept_then_retried(Fault::Delay(secs(60)), |b| b.http_timeout(secs(3))).await;
}

/// Logs in, makes the access token due, sets `fault`, and checks that a request ends the
/// session (401, cookie cleared).
async fn assert_ended(fault: Fault) {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, LONG, |b| b).await;
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    clock.advance(LONG + secs(1));
    dev.set_fault(fault.clone());
    let res = app.api_get_with_cookie("/whoami", &cookie).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{fault:?}");
    assert!(clears_session(&res), "{fault:?}");
}

#[tokio::test]
async fn a_refusal_of_the_client_ends_the_session() {
    // The app was disabled or removed at the provider: its sessions must not go on until
    // session_lifetime.
    assert_ended(Fault::TokenError("invalid_client".into())).await;
    assert_ended(Fault::TokenError("unauthorized_client".into())).await;
    assert_ended(json_answer(401, r#"{"error":"invalid_client"}"#)).await;
}

#[tokio::test]
async fn oauth_errors_that_say_not_now_keep_the_session() {
    assert_kept_then_retried(
        json_answer(400, r#"{"error":"temporarily_unavailable"}"#),
        |b| b,
    )
    .await;
    assert_kept_then_retried(json_answer(400, r#"{"error":"server_error"}"#), |b| b).await;
    assert_kept_then_retried(Fault::TokenError("temporarily_unavailable".into()), |b| b).await;
}

/// Logs in, makes the access token due, then `break_userinfo` makes userinfo fail: the
/// refresh at the token endpoint goes through and the session is kept with the claims it had
/// (the new tokens too: the refresh token may have been rotated). Once userinfo works again,
/// the next refresh fetches it.
async fn assert_userinfo_failure_keeps_the_session(
    what: &str,
    break_userinfo: impl FnOnce(&DevProvider),
) {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, LONG, |b| b).await;
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    let before: serde_json::Value = serde_json::from_str(
        &app.api_get_with_cookie("/me", &cookie)
            .await
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(before["email"], "alice@example.com", "{what}");
    clock.advance(LONG + secs(1));
    break_userinfo(&dev);
    let userinfo_before = dev.stats().userinfo_requests;
    let res = app.api_get_with_cookie("/me", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK, "{what}: the session is kept");
    assert!(!clears_session(&res), "{what}");
    assert!(
        dev.stats().userinfo_requests > userinfo_before,
        "{what}: userinfo was asked"
    );
    let newer = new_session_cookie(&res).unwrap_or_else(|| cookie.clone());
    let after: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(after["sub"], "alice", "{what}");
    assert_eq!(
        after["email"], before["email"],
        "{what}: the claims of before"
    );

    dev.clear_faults();
    clock.advance(LONG + secs(1));
    let userinfo_before = dev.stats().userinfo_requests;
    let res = app.api_get_with_cookie("/me", &newer).await;
    assert_eq!(res.status(), StatusCode::OK, "{what}");
    assert!(
        new_session_cookie(&res).is_some(),
        "{what}: refreshed later"
    );
    assert!(dev.stats().userinfo_requests > userinfo_before, "{what}");
}

fn userinfo_answer(status: u16, content_type: &str, body: &str) -> Fault {
    Fault::UserinfoAnswer {
        status,
        content_type: content_type.into(),
        body: body.into(),
    }
}

#[tokio::test]
async fn userinfo_failures_during_refresh_keep_the_session() {
    let html = "<html><body><h1>Oops</h1></body></html>";
    for (status, content_type, body) in [
        (429, "application/json", r#"{"error":"slow_down"}"#),
        (408, "text/html", html),
        (502, "text/html", html),
        (503, "application/json", "{}"),
        // a proxy's or captive portal's page instead of userinfo
        (200, "text/html", html),
        (200, "application/json", "[1, 2]"),
        // a 4xx without the RFC 6750 challenge: a middlebox's page, not a refusal
        (403, "text/html", html),
    ] {
        assert_userinfo_failure_keeps_the_session(&format!("{status} {content_type}"), |dev| {
            dev.set_fault(userinfo_answer(status, content_type, body));
        })
        .await;
    }
    assert_userinfo_failure_keeps_the_session("userinfo down", |dev| {
        dev.set_fault(userinfo_answer(503, "text/plain", "down"));
    })
    .await;
}

#[tokio::test]
async fn signed_userinfo_with_the_keys_unavailable_keeps_the_session() {
    assert_userinfo_failure_keeps_the_session("signed userinfo, keys unavailable", |dev| {
        dev.set_fault(Fault::SignedUserinfo);
        dev.rotate_keys();
        dev.set_fault(Fault::JwksDown);
    })
    .await;
}

#[tokio::test]
async fn userinfo_about_another_user_or_badly_signed_ends_the_session() {
    for fault in [
        Fault::UserinfoSubMismatch,
        Fault::SignedUserinfoBadSignature,
    ] {
        assert_ended(fault).await;
    }
}

#[tokio::test]
async fn an_id_token_signed_with_a_new_key_during_the_refetch_throttle_keeps_the_session() {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, LONG, |b| b).await;
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    clock.advance(LONG + secs(1));
    // Someone presents a bearer token with a random `kid`: the layer refetches the key set
    // (the provider's current keys), and further refetches wait for the interval.
    let forged = dev.sign_jwt_with_header(
        &serde_json::json!({ "typ": "at+jwt", "kid": "random-kid-1" }),
        &serde_json::json!({ "iss": dev.issuer(), "sub": "mallory", "scope": "openid" }),
    );
    let jwks_before = dev.stats().jwks_requests;
    let res = reqwest::Client::new()
        .get(app.url("/whoami"))
        .header("accept", "application/json")
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(dev.stats().jwks_requests, jwks_before + 1, "refetched");
    // Now the provider rotates its key: the refreshed ID token is signed with a key the
    // layer may not fetch yet.
    dev.rotate_keys();
    let res = app.api_get_with_cookie("/me", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK, "the session is kept");
    assert!(!clears_session(&res));
    assert_eq!(
        dev.stats().jwks_requests,
        jwks_before + 1,
        "no refetch within the interval"
    );
    let newer = new_session_cookie(&res).expect("the new tokens are kept");
    let after: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(after["sub"], "alice");
    // Past the interval the new key is fetched and the next refresh checks its ID token.
    clock.advance(LONG + secs(1));
    let res = app.api_get_with_cookie("/me", &newer).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(new_session_cookie(&res).is_some());
    assert_eq!(dev.stats().jwks_requests, jwks_before + 2);
}

/// The `kid` in the header of a JWT.
fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = jwt.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url header");
    let header: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON header");
    header["kid"].as_str().unwrap_or_default().to_owned()
}

/// The `id_token_hint` a logout with `cookie` sends to the provider.
async fn id_token_hint_at_logout(app: &TestApp, cookie: &str) -> String {
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/auth/logout"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.into_owned())
        .expect("an id_token_hint")
}

/// Logs in, makes the access token due, then rotates the provider's key and takes its key set
/// down: the refresh keeps the session (checked here) with the new tokens. Returns the `kid`
/// of the key that signed the login's ID token and the refreshed session's cookie.
async fn refresh_with_the_keys_unavailable(
    dev: &DevProvider,
    app: &TestApp,
    clock: &TestClock,
) -> (String, String) {
    let browser = Browser::new();
    let cookie = browser.log_in(app).await;
    let before: serde_json::Value = serde_json::from_str(
        &app.api_get_with_cookie("/me", &cookie)
            .await
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let jwks = reqwest::get(format!("{}/jwks", dev.issuer()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    let login_kid = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    clock.advance(LONG + secs(1));
    // The refreshed ID token is signed with a key the app has not seen, and the key set
    // cannot be fetched.
    dev.rotate_keys();
    dev.set_fault(Fault::JwksDown);
    let res = app.api_get_with_cookie("/me", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK, "the session is kept");
    assert!(!clears_session(&res));
    // The provider rotated the refresh token already: the new tokens are kept.
    let newer = new_session_cookie(&res).expect("the new tokens are kept");
    let after: serde_json::Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(after["sub"], "alice");
    assert_eq!(after["email"], before["email"]);
    dev.clear_faults();
    (login_kid, newer)
}

#[tokio::test]
async fn keys_unavailable_while_checking_the_refreshed_id_token_keep_the_session() {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, LONG, |b| b).await;
    // The kept refresh token works: the session refreshes once the keys are back.
    let (_, newer) = refresh_with_the_keys_unavailable(&dev, &app, &clock).await;
    clock.advance(LONG + secs(1));
    let res = app.api_get_with_cookie("/me", &newer).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(new_session_cookie(&res).is_some());

    // The unchecked ID token is not stored: a logout still names the login's ID token (signed
    // with the key of before), never the one signed with the key nobody checked.
    let (login_kid, newer) = refresh_with_the_keys_unavailable(&dev, &app, &clock).await;
    let hint = id_token_hint_at_logout(&app, &newer).await;
    assert_eq!(kid_of(&hint), login_kid, "the checked ID token is the hint");
}

#[tokio::test]
async fn an_unchecked_refreshed_id_token_naming_another_user_is_not_accepted() {
    for fault in [IdTokenFault::OtherSubject, IdTokenFault::WrongIssuer] {
        let clock = TestClock::frozen();
        let (dev, app) = setup(&clock, LONG, |b| b).await;
        let browser = Browser::new();
        let cookie = browser.log_in(&app).await;
        clock.advance(LONG + secs(1));
        // Keys unavailable: the new ID token cannot be checked, and it names someone else.
        dev.rotate_keys();
        dev.set_fault(Fault::JwksDown);
        dev.set_fault(Fault::IdToken(fault));
        let res = app.api_get_with_cookie("/me", &cookie).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{fault:?}");
        assert!(clears_session(&res), "{fault:?}");
        assert!(new_session_cookie(&res).is_none(), "{fault:?}");
        // And it stays refused (remembered), even once the keys are back.
        dev.clear_faults();
        clock.advance(secs(31));
        let res = app.api_get_with_cookie("/me", &cookie).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{fault:?}");
    }
}

#[tokio::test]
async fn invalid_grant_still_ends_the_session() {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, LONG, |b| b).await;
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    clock.advance(LONG + secs(1));
    dev.set_fault(Fault::TokenError("invalid_grant".into()));
    let res = app.api_get_with_cookie("/whoami", &cookie).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(clears_session(&res));
}

// ---- the outage memory, on the layer's clock ----

#[tokio::test]
async fn a_busy_session_retries_once_the_outage_memory_has_passed() {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, LONG, |b| b).await;
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    clock.advance(LONG + secs(1));
    dev.set_fault(Fault::Down);
    assert_eq!(
        app.api_get_with_cookie("/whoami", &cookie).await.status(),
        StatusCode::OK
    );
    let attempts = token_requests(&dev);
    // Requests answered from the outage memory (2 s) do not extend it.
    for _ in 0..3 {
        clock.advance(Duration::from_millis(600));
        let res = app.api_get_with_cookie("/whoami", &cookie).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(
        token_requests(&dev),
        attempts,
        "no attempt during the memory"
    );
    clock.advance(Duration::from_millis(300));
    let res = app.api_get_with_cookie("/whoami", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(token_requests(&dev), attempts + 1, "tried again after 2 s");
}

// ---- #5: bounded refresh work ----

#[tokio::test]
async fn a_replayed_refused_cookie_does_not_reach_the_provider() {
    let clock = TestClock::frozen();
    // No grace window at all: refusals are remembered apart from it.
    let (dev, app) = setup(&clock, LONG, |b| b.refresh_grace(Duration::ZERO)).await;
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    clock.advance(LONG + secs(1));
    dev.set_fault(Fault::TokenError("invalid_grant".into()));
    let res = app.api_get_with_cookie("/whoami", &cookie).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let refused_at = token_requests(&dev);
    dev.clear_faults();
    for _ in 0..20 {
        clock.advance(secs(31));
        let res = app.api_get_with_cookie("/whoami", &cookie).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(clears_session(&res));
    }
    assert_eq!(
        token_requests(&dev),
        refused_at,
        "replays answered from memory"
    );
}

#[tokio::test]
async fn refresh_attempts_beyond_the_cap_are_not_sent() {
    // Default cap: 10 per minute per session. A 4 s token is due every 2 s.
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, SHORT, |b| b).await;
    let browser = Browser::new();
    let mut cookie = browser.log_in(&app).await;
    for _ in 0..20 {
        clock.advance(secs(2));
        let res = app.api_get_with_cookie("/whoami", &cookie).await;
        assert_eq!(res.status(), StatusCode::OK, "the session goes on");
        cookie = new_session_cookie(&res).unwrap_or(cookie);
    }
    assert_eq!(
        token_requests(&dev),
        1 + 10,
        "ten refreshes in the first minute"
    );
    clock.advance(secs(30));
    let res = app.api_get_with_cookie("/whoami", &cookie).await;
    assert!(new_session_cookie(&res).is_some(), "a new window");
    assert_eq!(token_requests(&dev), 1 + 11);
}

#[tokio::test]
async fn the_cap_bounds_retries_during_an_outage() {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, LONG, |b| b.refresh_attempts(3, secs(60))).await;
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    clock.advance(LONG + secs(1));
    dev.set_fault(Fault::Down);
    let before = token_requests(&dev);
    for _ in 0..10 {
        let res = app.api_get_with_cookie("/whoami", &cookie).await;
        assert_eq!(res.status(), StatusCode::OK);
        clock.advance(secs(3));
    }
    assert_eq!(token_requests(&dev), before + 3);
    dev.clear_faults();
    clock.advance(secs(60));
    let res = app.api_get_with_cookie("/whoami", &cookie).await;
    assert!(new_session_cookie(&res).is_some());
    assert_eq!(token_requests(&dev), before + 4);
}

#[test]
fn refresh_attempts_must_allow_one() {
    for (max, per) in [(0, secs(60)), (3, Duration::ZERO)] {
        let err = tower_oidc::Config::builder("https://id.example.com", "c")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(tower_oidc::SessionKey::generate())
            .refresh_attempts(max, per)
            .build()
            .expect_err("refused");
        assert!(err.to_string().contains("refresh_attempts"), "{err}");
    }
}
