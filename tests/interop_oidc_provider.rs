//! The layer against a real, OpenID-certified provider: the `oidc-provider` npm package, run
//! by the test support code. The app runs on `127.0.0.1`, the provider on `localhost`.

mod support;

use reqwest::StatusCode;
use support::app::{bind_loopback, new_session_cookie, start_app_on, Browser, TestApp};
use support::clock::TestClock;
use support::oidc_provider::{
    browser_client, login, login_alice, logout, ClientConfig, NodeProvider, ProviderOptions,
};
use support::wait;
use tower_oidc::ConfigBuilder;

const CONFIDENTIAL: (&str, &str) = ("rp-app", "rp-app-secret");
const PUBLIC: &str = "rp-spa";

/// One provider with a confidential and a public client registered for the app's port, and
/// the app for `client_id`.
async fn setup(
    client_id: &str,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (NodeProvider, TestApp) {
    let listener = bind_loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let callback = format!("{base}/auth/callback");
    let after_logout = format!("{base}/");
    let provider = NodeProvider::start(
        ProviderOptions::new()
            .client(
                ClientConfig::confidential(CONFIDENTIAL.0, CONFIDENTIAL.1)
                    .redirect_uri(&callback)
                    .post_logout_redirect_uri(&after_logout),
            )
            .client(
                ClientConfig::public(PUBLIC)
                    .redirect_uri(&callback)
                    .post_logout_redirect_uri(&after_logout),
            ),
    )
    .await;
    let app = start_app_on(listener, provider.issuer(), client_id, configure)
        .await
        .unwrap_or_else(|e| panic!("app starts against oidc-provider: {e}"));
    (provider, app)
}

async fn login_reaches_me(client_id: &str, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) {
    let (provider, app) = setup(client_id, configure).await;
    let browser = browser_client();
    let start = app.url("/auth/login?return_to=/me");
    let nav = login_alice(&browser, &provider, &start).await;
    assert_eq!(nav.url.as_str(), app.url("/me").as_str());
    let claims = nav.json();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], provider.issuer());
    // with response_type=code, oidc-provider puts scope claims in userinfo only
    assert_eq!(claims["email"], "alice@example.test", "{claims}");
    assert!(claims["name"].is_string(), "{claims}");
    // the provider's login and consent pages were used
    assert!(nav
        .visited
        .iter()
        .any(|u| u.path().contains("/interaction/")));
}

#[tokio::test]
async fn confidential_client_logs_in_through_the_real_pages() {
    login_reaches_me(CONFIDENTIAL.0, |b| b.client_secret(CONFIDENTIAL.1)).await;
}

#[tokio::test]
async fn public_client_logs_in_with_pkce() {
    login_reaches_me(PUBLIC, |b| b).await;
}

#[tokio::test]
async fn logout_ends_the_session_at_the_provider() {
    let (provider, app) = setup(CONFIDENTIAL.0, |b| b.client_secret(CONFIDENTIAL.1)).await;
    let browser = browser_client();
    let start = app.url("/auth/login?return_to=/me");
    let nav = login(
        &browser,
        provider.issuer(),
        start.as_str(),
        "alice",
        "alice",
    )
    .await;
    assert_eq!(nav.status, StatusCode::OK, "{}", nav.body);

    let nav = logout(
        &browser,
        provider.issuer(),
        app.url("/auth/logout").as_str(),
    )
    .await;
    assert_eq!(nav.url.as_str(), app.url("/").as_str(), "{:?}", nav.visited);
    assert_eq!(nav.body, "hello stranger");
    assert!(nav
        .visited
        .iter()
        .any(|u| u.path().ends_with("/session/end/confirm")));

    // The provider session is over: a new login shows the login page again.
    let again = browser
        .get(app.url("/auth/login?return_to=/me"))
        .send()
        .await
        .expect("login starts");
    assert_eq!(again.status(), StatusCode::FOUND);
    let mut url = reqwest::Url::parse(again.headers()["location"].to_str().unwrap()).unwrap();
    let mut saw_login_form = false;
    for _ in 0..10 {
        let res = browser
            .get(url.clone())
            .send()
            .await
            .expect("provider answers");
        if let Some(next) = res.headers().get("location") {
            url = url.join(next.to_str().unwrap()).unwrap();
            continue;
        }
        saw_login_form = res.text().await.unwrap().contains("name=\"password\"");
        break;
    }
    assert!(saw_login_form, "the provider asks for the password again");
}

/// `client_credentials` at the provider's token endpoint; returns the access token.
async fn client_credentials(provider: &NodeProvider, extra: &[(&str, &str)]) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let res = reqwest::Client::new()
        .post(provider.url("/token"))
        .basic_auth(CONFIDENTIAL.0, Some(CONFIDENTIAL.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token request");
    let text = res.text().await.expect("token body");
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    json["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {text}\n{}", provider.logs()))
        .to_owned()
}

async fn call(app: &TestApp, path: &str, token: &str) -> (StatusCode, String) {
    let res = reqwest::Client::new()
        .get(app.url(path))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("request");
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = res.text().await.expect("body");
    (status, challenge.unwrap_or(body))
}

const API: &str = "https://api.example.test";

#[tokio::test]
async fn jwt_access_token_for_the_api_is_accepted() {
    let (provider, app) = setup(CONFIDENTIAL.0, |b| {
        b.client_secret(CONFIDENTIAL.1).api_audience(API)
    })
    .await;
    let token = client_credentials(&provider, &[("resource", API), ("scope", "api:read")]).await;
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let (status, body) = call(&app, "/whoami", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, format!("Bearer {} [api:read]", CONFIDENTIAL.0));
    // scope checks apply to bearer callers
    let (status, challenge) = call(&app, "/admin", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
}

#[tokio::test]
async fn jwt_access_token_for_another_audience_is_refused() {
    // The app expects tokens for its client id (the default), not for the API resource.
    let (provider, app) = setup(CONFIDENTIAL.0, |b| b.client_secret(CONFIDENTIAL.1)).await;
    let token = client_credentials(&provider, &[("resource", API), ("scope", "api:read")]).await;
    let (status, challenge) = call(&app, "/me", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("another audience"), "{challenge}");
}

#[tokio::test]
async fn opaque_tokens_are_introspected_active_and_revoked() {
    let (provider, app) = setup(CONFIDENTIAL.0, |b| b.client_secret(CONFIDENTIAL.1)).await;
    let token = client_credentials(&provider, &[]).await;
    assert_eq!(token.split('.').count(), 1, "opaque: {token}");
    let (status, body) = call(&app, "/whoami", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", provider.logs());
    assert!(
        body.starts_with(&format!("Bearer {}", CONFIDENTIAL.0)),
        "{body}"
    );

    // A second opaque token, revoked at the provider before first use: inactive.
    let revoked = client_credentials(&provider, &[]).await;
    let res = reqwest::Client::new()
        .post(provider.url("/token/revocation"))
        .basic_auth(CONFIDENTIAL.0, Some(CONFIDENTIAL.1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={revoked}"))
        .send()
        .await
        .expect("revocation");
    assert!(res.status().is_success(), "{}", res.status());
    let (status, challenge) = call(&app, "/me", &revoked).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("not active"), "{challenge}");
    // A made-up opaque token is inactive too.
    let (status, _) = call(&app, "/me", "made-up-token-value").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The provider's access-token lifetime in the lifecycle tests: long enough that no refresh
/// happens by itself, however slow the machine; tests make tokens expire by advancing the
/// layer's clock past it.
const ACCESS_TTL_SECS: u64 = 600;

/// A provider with rotating refresh tokens and back-channel logout to the app; the app, on
/// `clock`, asks for `offline_access`.
async fn lifecycle_setup(clock: &TestClock) -> (NodeProvider, TestApp) {
    let listener = bind_loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let provider = NodeProvider::start(
        ProviderOptions::new()
            .access_token_ttl(ACCESS_TTL_SECS)
            .rotate_refresh_tokens(true)
            .client(
                ClientConfig::confidential(CONFIDENTIAL.0, CONFIDENTIAL.1)
                    .redirect_uri(&format!("{base}/auth/callback"))
                    .post_logout_redirect_uri(&format!("{base}/"))
                    .backchannel_logout_uri(&format!("{base}/auth/backchannel-logout")),
            ),
    )
    .await;
    let app = start_app_on(listener, provider.issuer(), CONFIDENTIAL.0, |b| {
        b.client_secret(CONFIDENTIAL.1)
            .scopes(["openid", "profile", "email", "offline_access"])
            .refresh_margin(std::time::Duration::ZERO)
            .clock(clock.closure())
    })
    .await
    .unwrap_or_else(|e| panic!("app starts: {e}"));
    (provider, app)
}

async fn whoami_with_cookie(app: &TestApp, cookie: &str) -> reqwest::Response {
    app.api_get_with_cookie("/whoami", cookie).await
}

/// Logs in through the provider's pages; returns the browser and the app's session cookie.
async fn logged_in(provider: &NodeProvider, app: &TestApp) -> (Browser, String) {
    let browser = Browser::new();
    let start = app.url("/auth/login?return_to=/me");
    login_alice(&browser.client, provider, &start).await;
    let cookie = browser.session_cookie(app);
    assert!(!cookie.is_empty());
    (browser, cookie)
}

/// Moves the layer's clock past the lifetime of the access tokens issued so far (the
/// provider's ID tokens, valid an hour, stay valid for it).
fn expire_access_token(clock: &TestClock) {
    clock.advance(std::time::Duration::from_secs(ACCESS_TTL_SECS + 1));
}

#[tokio::test]
async fn refresh_with_rotation() {
    let clock = TestClock::frozen();
    let (provider, app) = lifecycle_setup(&clock).await;
    let (_browser, old) = logged_in(&provider, &app).await;
    expire_access_token(&clock);
    let res = whoami_with_cookie(&app, &old).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", provider.logs());
    let new = new_session_cookie(&res).expect("refreshed session cookie");
    // within the grace window (30 s by the layer's clock) the old cookie gets the same
    // refreshed session, without replaying the rotated refresh token
    clock.advance(std::time::Duration::from_secs(20));
    let again = app.api_get_with_cookie("/token", &old).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert!(new_session_cookie(&again).is_some());
    let shared_token = again.text().await.expect("body");
    let current = app.api_get_with_cookie("/token", &new).await;
    assert_eq!(
        current.text().await.expect("body"),
        shared_token,
        "one refresh"
    );
    // and after the next expiry the new cookie refreshes with the rotated token
    expire_access_token(&clock);
    let res = whoami_with_cookie(&app, &new).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", provider.logs());
    assert!(new_session_cookie(&res).is_some());
    // long after the grace window, the old cookie's refresh token (rotated away) goes to the
    // provider, which refuses it
    let stale = whoami_with_cookie(&app, &old).await;
    assert_eq!(
        stale.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        provider.logs()
    );
}

#[tokio::test]
async fn backchannel_logout_ends_the_app_session() {
    let (provider, app) = lifecycle_setup(&TestClock::new()).await;
    let (browser, cookie) = logged_in(&provider, &app).await;
    assert_eq!(
        whoami_with_cookie(&app, &cookie).await.status(),
        StatusCode::OK
    );
    // End the session at the provider, not through the app.
    let end = logout(
        &browser.client,
        provider.issuer(),
        &provider.url("/session/end"),
    )
    .await;
    assert!(end.status.is_success(), "{} {}", end.status, end.body);
    // The provider notifies the app over the back channel on its own schedule.
    wait::until("the back-channel logout", wait::PATIENCE, || async {
        match whoami_with_cookie(&app, &cookie).await.status() {
            StatusCode::UNAUTHORIZED => Ok(()),
            status => Err(format!("{status}; provider log:\n{}", provider.logs())),
        }
    })
    .await;
}

/// Introspection with credentials of its own (as Zitadel requires of an API application):
/// the web client's own credentials are refused (`503`, never an accepted token), another
/// registered client's work.
#[tokio::test]
async fn introspection_with_credentials_of_its_own() {
    const API: (&str, &str) = ("rp-api", "rp-api-secret");
    let listener = bind_loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let provider = NodeProvider::start(
        ProviderOptions::new()
            .client(
                ClientConfig::confidential(CONFIDENTIAL.0, CONFIDENTIAL.1)
                    .redirect_uri(&format!("{base}/auth/callback")),
            )
            .client(
                ClientConfig::confidential(API.0, API.1).redirect_uri(&format!("{base}/unused")),
            ),
    )
    .await;
    let token = client_credentials(&provider, &[]).await;
    let second_listener = bind_loopback().await;
    // The web client's secret is not what the provider knows: its own introspection fails.
    let refused = start_app_on(listener, provider.issuer(), CONFIDENTIAL.0, |b| {
        b.client_secret("not-the-secret")
    })
    .await
    .expect("app");
    let (status, _) = call(&refused, "/me", &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let api = start_app_on(second_listener, provider.issuer(), CONFIDENTIAL.0, |b| {
        b.client_secret("not-the-secret")
            .introspection_client(API.0, API.1)
    })
    .await
    .expect("app");
    let (status, body) = call(&api, "/whoami", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", provider.logs());
    let (status, _) = call(&api, "/me", "made-up-token-value").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
