//! Login-path and startup hardening against the dev provider: ID tokens and logout tokens
//! with JWS `crit` are refused, ID tokens listing an audience the client does not trust are
//! refused unless configured, and discovery refuses plain-http endpoints off loopback and
//! oversized documents.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::app::{start_app, Browser, TestApp};
use tower_oidc::dev::{DevProvider, Fault, IdTokenFault};
use tower_oidc::{ConfigBuilder, ConfigError};

async fn provider() -> DevProvider {
    let dev = DevProvider::start().await.expect("dev provider");
    dev.set_auto_login(Some("alice"));
    dev
}

async fn app_with(
    dev: &DevProvider,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Result<TestApp, ConfigError> {
    let client = dev.confidential_client().clone();
    let secret = client.secret.clone().expect("secret");
    start_app(dev.issuer(), &client.id, |b| {
        configure(b.client_secret(secret))
    })
    .await
}

/// Logs in from `/me`; the landing's status and body.
async fn login(browser: &Browser, app: &TestApp) -> (StatusCode, String) {
    let landing = browser.follow(&app.url("/me")).await;
    (landing.status, landing.body)
}

#[tokio::test]
async fn id_token_with_a_critical_header_is_refused() {
    let dev = provider().await;
    let app = app_with(&dev, |b| b).await.expect("app");
    dev.set_fault(Fault::IdToken(IdTokenFault::CriticalHeader));
    let (status, body) = login(&Browser::new(), &app).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("crit"), "{body}");
    dev.clear_faults();
    let (status, body) = login(&Browser::new(), &app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn id_token_listing_an_untrusted_audience_is_refused() {
    let dev = provider().await;
    dev.set_fault(Fault::IdToken(IdTokenFault::UntrustedAudience));
    let app = app_with(&dev, |b| b).await.expect("app");
    let (status, body) = login(&Browser::new(), &app).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("does not trust"), "{body}");
    // Trusted when configured.
    let trusting = app_with(&dev, |b| {
        b.trusted_audience("https://untrusted.example.test")
    })
    .await
    .expect("app");
    let (status, body) = login(&Browser::new(), &trusting).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(claims["sub"], "alice");
}

#[tokio::test]
async fn logout_token_with_a_critical_header_is_refused() {
    let dev = provider().await;
    let app = app_with(&dev, |b| b).await.expect("app");
    let browser = Browser::new();
    let (status, body) = login(&browser, &app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sid = serde_json::from_str::<Value>(&body).expect("JSON")["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": dev.issuer(), "aud": dev.confidential_client().id,
        "iat": now, "exp": now + 120, "jti": format!("jti-{now}"), "sid": sid,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    });
    let post = |token: String| {
        let url = app.url("/auth/backchannel-logout");
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("logout_token={token}"))
                .send()
                .await
                .expect("back-channel request")
                .status()
        }
    };
    let me = || async {
        browser
            .client
            .get(app.url("/me"))
            .header("accept", "application/json")
            .send()
            .await
            .expect("request")
            .status()
    };
    let critical = dev.sign_jwt_with_header(
        &json!({"typ": "logout+jwt", "crit": ["urn:example:ext"], "urn:example:ext": 1}),
        &claims,
    );
    assert_eq!(post(critical).await, StatusCode::BAD_REQUEST);
    assert_eq!(me().await, StatusCode::OK, "still logged in");
    let plain = dev.sign_jwt_with_header(&json!({"typ": "logout+jwt"}), &claims);
    assert_eq!(post(plain).await, StatusCode::OK);
    assert_eq!(me().await, StatusCode::UNAUTHORIZED, "logged out");
}

#[tokio::test]
async fn plain_http_provider_off_loopback_is_refused_at_startup() {
    let dev = provider().await;
    dev.set_fault(Fault::DiscoveryField(
        "token_endpoint".into(),
        "http://id.example.test/token".into(),
    ));
    let err = app_with(&dev, |b| b).await.err().expect("refused");
    assert!(
        matches!(&err, ConfigError::UnsupportedProvider(m) if m.contains("token_endpoint")),
        "{err}"
    );
    // Unless the app allows it (a private development network).
    app_with(&dev, |b| b.allow_http_provider(true))
        .await
        .expect("allowed explicitly");
    // https elsewhere is fine; so is plain http on loopback (the dev provider itself).
    dev.set_fault(Fault::DiscoveryField(
        "jwks_uri".into(),
        "ftp://id.example.test/jwks".into(),
    ));
    let err = app_with(&dev, |b| b).await.err().expect("refused");
    assert!(
        matches!(&err, ConfigError::UnsupportedProvider(m) if m.contains("jwks_uri")),
        "{err}"
    );
    // An issuer on plain http off loopback is refused before any request.
    let err = start_app("http://id.example.test", "c", |b| b)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&err, ConfigError::UnsupportedProvider(m) if m.contains("issuer")),
        "{err}"
    );
}

#[tokio::test]
async fn oversized_discovery_and_jwks_are_refused_at_startup() {
    let dev = provider().await;
    dev.set_fault(Fault::OversizedDiscovery);
    let err = app_with(&dev, |b| b).await.err().expect("refused");
    assert!(
        matches!(
            &err,
            ConfigError::Discovery {
                what: "discovery document",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("too large"), "{err}");
    dev.clear_faults();
    dev.set_fault(Fault::OversizedJwks);
    let err = app_with(&dev, |b| b).await.err().expect("refused");
    assert!(
        matches!(&err, ConfigError::Discovery { what: "JWKS", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("too large"), "{err}");
    dev.clear_faults();
    app_with(&dev, |b| b).await.expect("normal documents");
}
