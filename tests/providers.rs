//! What the providers people must use do differently, reproduced by the dev provider's
//! switches: roles where Keycloak, Cognito and others put them; sessions that outlive short
//! access tokens (Google).
//!
//! Deadlines pass by advancing the layer's clock ([`TestClock`]), never by sleeping.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::app::{start_app, Browser, TestApp};
use support::clock::TestClock;
use tower_oidc::dev::{DevProvider, Fault};
use tower_oidc::ConfigBuilder;

async fn provider() -> DevProvider {
    let dev = DevProvider::start().await.expect("dev provider");
    dev.set_auto_login(Some("alice"));
    dev
}

async fn app(dev: &DevProvider, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> TestApp {
    let client = dev.confidential_client().clone();
    let secret = client.secret.clone().expect("secret");
    start_app(dev.issuer(), &client.id, |b| {
        configure(b.client_secret(secret))
    })
    .await
    .expect("app")
}

/// Logs in and returns `/roles`.
async fn roles_after_login(app: &TestApp) -> serde_json::Value {
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/roles")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    landing.json()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn roles_from_a_keycloak_shaped_access_token() {
    let dev = provider().await;
    let client_id = dev.confidential_client().id.clone();
    // Keycloak: roles only in the access token, whose audience is `account`.
    dev.set_fault(Fault::AccessTokenClaims(json!({
        "aud": "account",
        "typ": "Bearer",
        "azp": client_id,
        "realm_access": { "roles": ["admin", "user"] },
        "resource_access": {
            client_id.clone(): { "roles": ["editor"] },
            "another-client": { "roles": ["not-ours"] },
        },
    })));
    let app = app(&dev, |b| b).await;
    assert_eq!(
        roles_after_login(&app).await,
        json!(["admin", "user", "editor"])
    );
}

#[tokio::test]
async fn roles_from_an_extra_claim_path() {
    let dev = provider().await;
    dev.set_fault(Fault::AccessTokenClaims(json!({
        "app_metadata": { "authorization": { "roles": ["auditor"] } },
    })));
    let app = app(&dev, |b| b.roles_claim("app_metadata.authorization.roles")).await;
    assert_eq!(roles_after_login(&app).await, json!(["auditor"]));
    // without the setting the claim means nothing
    let app = self::app(&dev, |b| b).await;
    assert_eq!(roles_after_login(&app).await, json!([]));
}

#[tokio::test]
async fn an_access_token_that_does_not_verify_grants_no_roles() {
    let dev = provider().await;
    // The access token names another issuer: signed by the provider, but not its token.
    dev.set_fault(Fault::AccessTokenClaims(json!({
        "iss": "https://elsewhere.example.com",
        "realm_access": { "roles": ["admin"] },
    })));
    let app = app(&dev, |b| b).await;
    assert_eq!(roles_after_login(&app).await, json!([]));
    // ... or another user
    dev.set_fault(Fault::AccessTokenClaims(json!({
        "sub": "bob",
        "realm_access": { "roles": ["admin"] },
    })));
    assert_eq!(roles_after_login(&app).await, json!([]));
}

/// Roles count only from a live access token about this user, issued to this client (or for
/// its API): a signed token of the same provider for another party grants nothing.
#[tokio::test]
async fn an_access_token_for_another_party_grants_no_roles() {
    let dev = provider().await;
    let client_id = dev.confidential_client().id.clone();
    let app = app(&dev, |b| b).await;
    let admin = json!({ "roles": ["admin"] });
    let cases = [
        // Another audience and authorized party (Keycloak-shaped, another client's token).
        json!({"aud": "another-api", "azp": "another-client", "client_id": "another-client",
               "typ": "Bearer", "realm_access": admin}),
        json!({"aud": ["account", "another-api"], "azp": null, "client_id": null,
               "realm_access": admin}),
        // No subject.
        json!({"sub": null, "realm_access": admin}),
        // Expired an hour ago, or no expiry at all.
        json!({"exp": now() - 3600, "realm_access": admin}),
        json!({"exp": null, "realm_access": admin}),
    ];
    for claims in cases {
        dev.clear_faults();
        dev.set_fault(Fault::AccessTokenClaims(claims.clone()));
        assert_eq!(roles_after_login(&app).await, json!([]), "{claims}");
    }
    // The Keycloak shape for this client (`aud: account`, `azp` this client) still counts.
    dev.clear_faults();
    dev.set_fault(Fault::AccessTokenClaims(json!({
        "aud": "account", "azp": client_id, "client_id": null, "realm_access": admin,
    })));
    assert_eq!(roles_after_login(&app).await, json!(["admin"]));
}

#[tokio::test]
async fn cognito_groups_on_a_bearer_token() {
    let dev = provider().await;
    let client_id = dev.confidential_client().id.clone();
    let app = app(&dev, |b| b.roles_claim("custom:tier")).await;
    // Cognito's access token: `token_use: access`, `client_id`, groups in `cognito:groups`
    // (and here an `aud`: accepting `client_id` as the audience is another setting).
    let token = dev.sign_jwt(
        "JWT",
        &json!({
            "iss": dev.issuer(), "sub": "alice", "aud": client_id, "client_id": client_id,
            "token_use": "access", "scope": "openid",
            "cognito:groups": ["ops", "admins"], "custom:tier": "gold",
            "iat": now(), "exp": now() + 300,
        }),
    );
    let res = reqwest::Client::new()
        .get(app.url("/roles"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&res.text().await.unwrap()).unwrap(),
        json!(["ops", "admins", "gold"])
    );
}

/// A provider whose access tokens live 5 seconds and who issues no refresh token (as Google
/// without `access_type=offline`), and an app on `clock` whose sessions live a minute.
async fn short_tokens(
    clock: &TestClock,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (DevProvider, TestApp) {
    let dev = DevProvider::builder()
        .access_token_ttl(Duration::from_secs(5))
        .id_token_ttl(Duration::from_secs(3600))
        .refresh_tokens(false)
        .auto_login(Some("alice".into()))
        .start()
        .await
        .expect("dev provider");
    let app = app(&dev, |b| {
        configure(
            b.session_lifetime(Duration::from_secs(60))
                .clock(clock.closure()),
        )
    })
    .await;
    (dev, app)
}

async fn status_of(browser: &Browser, app: &TestApp, path: &str) -> (StatusCode, String) {
    let res = browser
        .client
        .get(app.url(path))
        .header("accept", "application/json")
        .send()
        .await
        .expect("request");
    (res.status(), res.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_session_outlives_its_access_token_without_a_refresh_token() {
    let clock = TestClock::frozen();
    let (dev, app) = short_tokens(&clock, |b| b).await;
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);

    clock.advance(Duration::from_secs(10));
    let (status, body) = status_of(&browser, &app, "/me").await;
    assert_eq!(status, StatusCode::OK, "the session lives on: {body}");
    // the handler sees that the access token expired
    let (status, expires) = status_of(&browser, &app, "/token-expires").await;
    assert_eq!(status, StatusCode::OK);
    let expires: u64 = expires.parse().expect("seconds");
    let now = clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expires != 0 && expires < now, "{expires} < {now}");
    assert_eq!(dev.stats().token_requests, 1, "nothing to refresh with");

    // the session's own lifetime still ends it
    clock.advance(Duration::from_secs(51));
    let (status, _) = status_of(&browser, &app, "/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_session_can_be_told_to_end_with_its_access_token() {
    let clock = TestClock::frozen();
    let (_dev, app) = short_tokens(&clock, |b| b.session_ends_with_access_token(true)).await;
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    clock.advance(Duration::from_secs(10));
    let (status, _) = status_of(&browser, &app, "/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_login_succeeds_while_userinfo_answers_401() {
    let dev = provider().await;
    // Entra: userinfo lives on Graph and refuses access tokens minted for another API.
    dev.set_fault(Fault::UserinfoStatus(401));
    let app = app(&dev, |b| b).await;
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    let claims = landing.json();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["name"], "Alice Example", "the ID token's claims");
    assert_eq!(dev.stats().userinfo_requests, 1);

    // strict: the login fails
    let strict = self::app(&dev, |b| b.require_userinfo(true)).await;
    let landing = Browser::new().follow(&strict.url("/me")).await;
    assert_eq!(landing.status, StatusCode::BAD_REQUEST, "{}", landing.body);

    // a userinfo answer about another user fails the login whatever the setting
    dev.clear_faults();
    dev.set_fault(Fault::UserinfoSubMismatch);
    let landing = Browser::new().follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::BAD_REQUEST, "{}", landing.body);
}

#[tokio::test]
async fn a_refresh_goes_on_while_userinfo_answers_401() {
    let clock = TestClock::frozen();
    let dev = DevProvider::builder()
        .access_token_ttl(Duration::from_secs(60))
        .id_token_ttl(Duration::from_secs(3600))
        .auto_login(Some("alice".into()))
        .start()
        .await
        .expect("dev provider");
    let app = app(&dev, |b| {
        b.scopes(["openid", "profile", "email", "offline_access"])
            .refresh_margin(Duration::ZERO)
            .clock(clock.closure())
    })
    .await;
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    dev.set_fault(Fault::UserinfoStatus(401));
    clock.advance(Duration::from_secs(61));
    let (status, body) = status_of(&browser, &app, "/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(dev.stats().token_requests, 2, "refreshed");
    let claims: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(claims["email"], "alice@example.com", "the claims of before");
}

/// The authorization request the app sends for a login.
async fn authorization_request(app: &TestApp) -> url::Url {
    let browser = Browser::new();
    let landing = browser
        .follow_until(&app.url("/auth/login"), |next| {
            next.path().ends_with("/authorize")
        })
        .await;
    landing.url
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn offline_access_the_google_way() {
    let clock = TestClock::frozen();
    let dev = DevProvider::builder()
        .access_token_ttl(Duration::from_secs(60))
        .id_token_ttl(Duration::from_secs(3600))
        .auto_login(Some("alice".into()))
        .start()
        .await
        .expect("dev provider");
    // Google: `offline_access` is refused with `invalid_scope`.
    dev.set_fault(Fault::OfflineAccessByParameter);
    let scopes = ["openid", "profile", "email", "offline_access"];
    let app = app(&dev, |b| {
        b.scopes(scopes)
            .refresh_margin(Duration::ZERO)
            .clock(clock.closure())
    })
    .await;
    let request = authorization_request(&app).await;
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("openid profile email")
    );
    assert_eq!(param(&request, "access_type").as_deref(), Some("offline"));
    assert_eq!(param(&request, "prompt").as_deref(), Some("consent"));

    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(
        landing.status,
        StatusCode::OK,
        "no invalid_scope: {}",
        landing.body
    );
    // a refresh token came: the expired access token is refreshed
    clock.advance(Duration::from_secs(61));
    let (status, body) = status_of(&browser, &app, "/me").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(dev.stats().token_requests, 2, "refreshed");

    // a prompt the app chose stays
    let app = self::app(&dev, |b| {
        b.scopes(scopes).auth_param("prompt", "select_account")
    })
    .await;
    let request = authorization_request(&app).await;
    assert_eq!(param(&request, "prompt").as_deref(), Some("select_account"));
    assert_eq!(param(&request, "access_type").as_deref(), Some("offline"));

    // a provider that lists offline_access gets the scope, and no extra parameters
    dev.clear_faults();
    let app = self::app(&dev, |b| b.scopes(scopes)).await;
    let request = authorization_request(&app).await;
    assert_eq!(
        param(&request, "scope").as_deref(),
        Some("openid profile email offline_access")
    );
    assert_eq!(param(&request, "access_type"), None);
    assert_eq!(param(&request, "prompt"), None);
}

#[tokio::test]
async fn a_cognito_style_logout_url() {
    let dev = provider().await;
    // Cognito: no end_session_endpoint in discovery; logout at the hosted UI's `/logout`.
    dev.set_fault(Fault::DiscoveryWithout("end_session_endpoint".into()));
    let template = "https://my-app.auth.eu-west-1.amazoncognito.com/logout\
                    ?client_id={client_id}&logout_uri={post_logout_redirect_uri}";
    let app = app(&dev, |b| b.end_session_url(template)).await;
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    let landing = browser
        .follow_until(&app.url("/auth/logout"), |next| {
            next.host_str() != Some("127.0.0.1")
        })
        .await;
    let expected = format!(
        "https://my-app.auth.eu-west-1.amazoncognito.com/logout?client_id=dev-client&logout_uri={}",
        form_urlencoded::byte_serialize(app.url("/").as_str().as_bytes()).collect::<String>()
    );
    assert_eq!(landing.url.as_str(), expected);
    // the session is over here too
    let (status, _) = status_of(&browser, &app, "/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // without the template, such a provider's logout ends at the app
    let app = self::app(&dev, |b| b).await;
    let browser = Browser::new();
    browser.follow(&app.url("/me")).await;
    let landing = browser.follow(&app.url("/auth/logout")).await;
    assert_eq!(landing.url, app.url("/"));
}

#[tokio::test]
async fn a_logout_url_template_carries_the_id_token() {
    let dev = provider().await;
    dev.set_fault(Fault::DiscoveryWithout("end_session_endpoint".into()));
    // the dev provider's own endpoint, reached through the template
    let template = format!(
        "{}/end_session?id_token_hint={{id_token_hint}}&client_id={{client_id}}\
         &post_logout_redirect_uri={{post_logout_redirect_uri}}",
        dev.issuer()
    );
    let app = app(&dev, |b| b.end_session_url(template)).await;
    let browser = Browser::new();
    browser.follow(&app.url("/me")).await;
    let landing = browser.follow(&app.url("/auth/logout")).await;
    assert_eq!(landing.url, app.url("/"), "{}", landing.body);
    assert_eq!(dev.stats().end_session_requests, 1);
    let hint = landing
        .visited
        .iter()
        .find(|u| u.path().ends_with("/end_session"))
        .and_then(|u| param(u, "id_token_hint"))
        .unwrap_or_default();
    assert_eq!(
        hint.split('.').count(),
        3,
        "the ID token was kept for the hint"
    );
}
