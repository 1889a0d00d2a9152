//! Session lifecycle against the dev provider: automatic refresh (single flight, rotation,
//! grace window), refresh failures, rolling and absolute expiry with an injectable clock,
//! the access token for downstream calls, and leftover cookie chunks.
//!
//! Deadlines pass by advancing the layer's clock ([`TestClock`]), never by sleeping.

mod support;

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use support::app::{new_session_cookie, set_cookies, start_app, Browser, TestApp};
use support::clock::TestClock;
use tower_oidc::dev::{DevProvider, Fault};
use tower_oidc::ConfigBuilder;
use url::Url;

const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The provider's access-token lifetime: long enough that no refresh happens by itself during
/// a test, however slow the machine; tests make tokens expire with [`expire_access_token`].
const ACCESS_TTL: Duration = Duration::from_secs(600);

/// A provider whose access tokens live [`ACCESS_TTL`] and ID tokens an hour, with refresh
/// tokens, and an app on `clock` asking for `offline_access` that refreshes only once a token
/// has expired.
async fn setup(
    clock: &TestClock,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (DevProvider, TestApp) {
    let dev = DevProvider::builder()
        .access_token_ttl(ACCESS_TTL)
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
                .refresh_margin(Duration::ZERO)
                .clock(clock.closure()),
        )
    })
    .await
    .expect("app");
    (dev, app)
}

/// Moves the layer's clock past the lifetime of the access tokens issued so far. The
/// provider's refreshed ID tokens (issued at real time, valid an hour) stay valid for it.
fn expire_access_token(clock: &TestClock) {
    clock.advance(ACCESS_TTL + Duration::from_secs(1));
}

#[tokio::test]
async fn expired_access_token_is_refreshed_and_the_cookie_updated() {
    let clock = TestClock::new();
    let (dev, app) = setup(&clock, |b| b).await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    let old = browser.session_cookie(&app);
    let old_token = app
        .api_get_with_cookie("/token", &old)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(dev.stats().token_requests, 1);

    expire_access_token(&clock);
    let res = app.api_get_with_cookie("/token", &old).await;
    assert_eq!(res.status(), StatusCode::OK);
    let new = new_session_cookie(&res).expect("a refreshed session cookie");
    let new_token = res.text().await.unwrap();
    assert_ne!(
        new_token, old_token,
        "handlers get the refreshed access token"
    );
    assert_eq!(dev.stats().token_requests, 2);

    // the new cookie needs no refresh
    let res = app.api_get_with_cookie("/me", &new).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(new_session_cookie(&res).is_none());
    assert_eq!(dev.stats().token_requests, 2);
}

#[tokio::test]
async fn fifty_concurrent_requests_share_one_refresh() {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, |b| b).await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    let old = browser.session_cookie(&app);
    expire_access_token(&clock);
    let before = dev.stats().token_requests;

    let requests = (0..50).map(|_| app.api_get_with_cookie("/whoami", &old));
    let responses = futures_util::future::join_all(requests).await;
    let mut cookies = std::collections::HashSet::new();
    for res in responses {
        assert_eq!(res.status(), StatusCode::OK);
        cookies.insert(new_session_cookie(&res).expect("each answer carries the new session"));
        assert_eq!(res.text().await.unwrap().split(' ').nth(1), Some("alice"));
    }
    assert_eq!(
        dev.stats().token_requests,
        before + 1,
        "exactly one refresh"
    );
    assert_eq!(cookies.len(), 50, "fresh nonces, one session");

    // Within the grace window (`refresh_grace`, 30 s by the layer's clock) the old cookie
    // still works without replaying the rotated refresh token (the provider would refuse it
    // and revoke the grant).
    clock.advance(Duration::from_secs(29));
    let late = app.api_get_with_cookie("/whoami", &old).await;
    assert_eq!(late.status(), StatusCode::OK);
    assert!(new_session_cookie(&late).is_some());
    assert_eq!(dev.stats().token_requests, before + 1);
    // After it, the old cookie is no longer answered from memory: its rotated refresh token
    // goes to the provider, which refuses it.
    clock.advance(Duration::from_secs(2));
    let stale = app.api_get_with_cookie("/whoami", &old).await;
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(dev.stats().token_requests, before + 2);
}

#[tokio::test]
async fn refused_refresh_ends_the_session() {
    let clock = TestClock::new();
    let (dev, app) = setup(&clock, |b| b.require_login(true)).await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    let old = browser.session_cookie(&app);
    expire_access_token(&clock);
    dev.set_fault(Fault::TokenError("invalid_grant".into()));

    let api = app.api_get_with_cookie("/whoami", &old).await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(api.headers())
        .iter()
        .any(|c| c.starts_with("oidc_session=;") && c.contains("Max-Age=0")));
    let nav = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/whoami"))
        .header("accept", "text/html")
        .header("cookie", &old)
        .send()
        .await
        .unwrap();
    assert_eq!(nav.status(), StatusCode::FOUND);
    assert!(nav.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with(dev.issuer()));
}

#[tokio::test]
async fn userinfo_subject_mismatch_after_refresh_ends_the_session() {
    let clock = TestClock::new();
    let (dev, app) = setup(&clock, |b| b).await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    let old = browser.session_cookie(&app);
    expire_access_token(&clock);
    dev.set_fault(Fault::UserinfoSubMismatch);
    let res = app.api_get_with_cookie("/whoami", &old).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn provider_down_during_refresh_keeps_the_session() {
    let clock = TestClock::frozen();
    let (dev, app) = setup(&clock, |b| b).await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    let old = browser.session_cookie(&app);
    expire_access_token(&clock);
    dev.set_fault(Fault::Down);
    let res = app.api_get_with_cookie("/whoami", &old).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(new_session_cookie(&res).is_none());
    let attempts = dev.stats().token_requests;
    // the outage is remembered for a moment (2 s by the layer's clock): no new attempt, the
    // session goes on
    clock.advance(Duration::from_secs(1));
    let res = app.api_get_with_cookie("/whoami", &old).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(new_session_cookie(&res).is_none());
    assert_eq!(dev.stats().token_requests, attempts);
    // back up: the refresh happens on the first request after the outage memory
    dev.clear_faults();
    clock.advance(Duration::from_millis(1500));
    let res = app.api_get_with_cookie("/whoami", &old).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(new_session_cookie(&res).is_some());
    assert_eq!(dev.stats().token_requests, attempts + 1);
}

/// An app on `clock`, against a provider whose access tokens outlive every clock offset used.
async fn clocked(
    clock: &TestClock,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (DevProvider, TestApp) {
    let dev = DevProvider::builder()
        .access_token_ttl(Duration::from_secs(3 * 3600))
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    let client = dev.confidential_client().clone();
    let secret = client.secret.clone().expect("secret");
    let app = start_app(dev.issuer(), &client.id, move |b| {
        configure(b.client_secret(secret).clock(clock.closure()))
    })
    .await
    .expect("app");
    (dev, app)
}

#[tokio::test]
async fn rolling_idle_timeout_reissues_the_cookie_only_near_the_deadline() {
    let clock = TestClock::new();
    let (_dev, app) = clocked(&clock, |b| b.idle_timeout(Duration::from_secs(600))).await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    let first = browser.session_cookie(&app);

    clock.set_offset(Duration::from_secs(200));
    let res = app.api_get_with_cookie("/me", &first).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        new_session_cookie(&res).is_none(),
        "not re-issued on every request"
    );

    clock.set_offset(Duration::from_secs(400));
    let res = app.api_get_with_cookie("/me", &first).await;
    assert_eq!(res.status(), StatusCode::OK);
    let touched = new_session_cookie(&res).expect("re-issued past half the idle time");

    clock.set_offset(Duration::from_secs(900));
    assert_eq!(
        app.api_get_with_cookie("/me", &touched).await.status(),
        StatusCode::OK
    );
    let idle = app.api_get_with_cookie("/me", &first).await;
    assert_eq!(idle.status(), StatusCode::UNAUTHORIZED, "idle for 900 s");
}

#[tokio::test]
async fn absolute_lifetime_ends_an_active_session() {
    let clock = TestClock::new();
    let (_dev, app) = clocked(&clock, |b| {
        b.idle_timeout(Duration::from_secs(600))
            .session_lifetime(Duration::from_secs(1000))
    })
    .await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    let mut cookie = browser.session_cookie(&app);
    for step in [400, 800] {
        clock.set_offset(Duration::from_secs(step));
        let res = app.api_get_with_cookie("/me", &cookie).await;
        assert_eq!(res.status(), StatusCode::OK);
        cookie = new_session_cookie(&res).unwrap_or(cookie);
    }
    clock.set_offset(Duration::from_secs(1001));
    assert_eq!(
        app.api_get_with_cookie("/me", &cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn size_choices_shrink_the_session() {
    let (_dev, full) = setup(&TestClock::new(), |b| b).await;
    let browser = Browser::new();
    browser.log_in(&full).await;
    let full_len = browser.session_cookie(&full).len();

    let (_dev, small) = setup(&TestClock::new(), |b| {
        b.keep_claims(["email"])
            .store_access_token(false)
            .store_id_token(false)
    })
    .await;
    let browser = Browser::new();
    browser.log_in(&small).await;
    let small_cookie = browser.session_cookie(&small);
    assert!(
        small_cookie.len() * 2 < full_len,
        "{} vs {full_len}",
        small_cookie.len()
    );
    let me: serde_json::Value = serde_json::from_str(
        &small
            .api_get_with_cookie("/me", &small_cookie)
            .await
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(me["email"], "alice@example.com");
    assert!(me.get("name").is_none());
    // no access token kept: a handler asking for it is a server configuration mistake
    assert_eq!(
        small
            .api_get_with_cookie("/token", &small_cookie)
            .await
            .status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn leftover_chunks_of_a_larger_session_are_cleared() {
    let (_dev, app) = setup(&TestClock::new(), |b| b).await;
    let browser = Browser::new();
    let stop = browser
        .follow_until(&app.url("/me"), |u: &Url| u.path() == "/auth/callback")
        .await;
    let cookie = format!(
        "{}; oidc_session.0=old; oidc_session.1=old",
        browser.cookies(&stop.url)
    );
    let res = browser
        .client
        .get(stop.url.clone())
        .header("accept", "text/html")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let cookies = set_cookies(res.headers());
    for chunk in ["oidc_session.0=;", "oidc_session.1=;"] {
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with(chunk) && c.contains("Max-Age=0")),
            "{chunk} cleared: {cookies:?}"
        );
    }
}

async fn backchannel(app: &TestApp, token: &str) -> (StatusCode, String) {
    let res = reqwest::Client::new()
        .post(app.url("/auth/backchannel-logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("logout_token={token}"))
        .send()
        .await
        .expect("back-channel request");
    let status = res.status();
    (status, res.text().await.unwrap_or_default())
}

fn logout_claims(dev: &DevProvider, sid: &str) -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({
        "iss": dev.issuer(),
        "aud": dev.confidential_client().id,
        "iat": now,
        "exp": now + 120,
        "jti": format!("jti-{sid}-{now}"),
        "sid": sid,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    })
}

#[tokio::test]
async fn backchannel_logout_token_revokes_the_session_and_every_bad_token_is_refused() {
    let (dev, app) = setup(&TestClock::new(), |b| b).await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    let cookie = browser.session_cookie(&app);
    let me: serde_json::Value = serde_json::from_str(
        &app.api_get_with_cookie("/me", &cookie)
            .await
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let sid = me["sid"].as_str().expect("sid claim").to_owned();

    let good = logout_claims(&dev, &sid);
    let refused: Vec<(&str, String)> = vec![
        ("wrong type", dev.sign_jwt("at+jwt", &good)),
        ("bad signature", {
            let t = dev.sign_jwt("logout+jwt", &good);
            format!("{}AAAA", &t[..t.len() - 4])
        }),
        ("nonce", {
            let mut c = good.clone();
            c["nonce"] = "n".into();
            dev.sign_jwt("logout+jwt", &c)
        }),
        ("no events", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("events");
            dev.sign_jwt("logout+jwt", &c)
        }),
        ("other audience", {
            let mut c = good.clone();
            c["aud"] = "someone-else".into();
            dev.sign_jwt("logout+jwt", &c)
        }),
        ("other issuer", {
            let mut c = good.clone();
            c["iss"] = "https://evil.example.com".into();
            dev.sign_jwt("logout+jwt", &c)
        }),
        ("no sid or sub", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("sid");
            dev.sign_jwt("logout+jwt", &c)
        }),
        ("not a JWT", "garbage".to_owned()),
    ];
    for (what, token) in refused {
        let (status, body) = backchannel(&app, &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert!(body.contains("invalid_request"), "{what}: {body}");
    }
    assert_eq!(
        app.api_get_with_cookie("/me", &cookie).await.status(),
        StatusCode::OK,
        "still logged in"
    );

    let token = dev.sign_jwt("logout+jwt", &good);
    assert_eq!(backchannel(&app, &token).await.0, StatusCode::OK);
    assert_eq!(
        app.api_get_with_cookie("/me", &cookie).await.status(),
        StatusCode::UNAUTHORIZED,
        "revoked"
    );
    let (status, body) = backchannel(&app, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "replayed jti: {body}");
    let get = reqwest::Client::new()
        .get(app.url("/auth/backchannel-logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);

    // A new login after the logout is a new session, untouched by the old revocation.
    let browser = Browser::new();
    browser.log_in(&app).await;
    let fresh = browser.session_cookie(&app);
    assert_eq!(
        app.api_get_with_cookie("/me", &fresh).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn refreshed_id_token_is_validated() {
    let clock = TestClock::new();
    let (dev, app) = setup(&clock, |b| b).await;
    let browser = Browser::new();
    browser.log_in(&app).await;
    let old = browser.session_cookie(&app);
    expire_access_token(&clock);
    dev.set_fault(Fault::IdToken(tower_oidc::dev::IdTokenFault::BadSignature));
    let res = app.api_get_with_cookie("/whoami", &old).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the session ends");
}

#[tokio::test]
async fn a_login_that_took_too_long_is_refused() {
    let clock = TestClock::new();
    let (_dev, app) = clocked(&clock, |b| b.login_timeout(Duration::from_secs(300))).await;
    let browser = Browser::new();
    let stop = browser
        .follow_until(&app.url("/me"), |u: &Url| u.path() == "/auth/callback")
        .await;
    clock.set_offset(Duration::from_secs(301));
    let landing = browser.follow(&stop.url).await;
    assert_eq!(landing.status, StatusCode::BAD_REQUEST);
    assert!(landing.body.contains("took too long"), "{}", landing.body);
}
