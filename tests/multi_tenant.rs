//! Multi-tenant providers (Microsoft Entra ID's `common` and `organizations` endpoints),
//! reproduced by the dev provider's multi-tenant switch: discovery names the issuer template
//! `…/{tenantid}`, each token carries its tenant in `tid` and that tenant's issuer in `iss`.
//! A login is accepted only from an allowed tenant whose issuer the token names; the session
//! records the concrete issuer.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::app::{start_app, Browser, TestApp};
use tower_oidc::dev::{DevProvider, Fault, IdTokenFault};
use tower_oidc::{ConfigBuilder, ConfigError};

const TENANT_A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const TENANT_B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const FOREIGN: &str = "ffffffff-0000-4000-8000-000000000009";

/// An Entra-like multi-tenant provider (`…/common`), without RFC 9207 `iss` (as Entra) unless
/// `iss_parameter`.
async fn entra_like(iss_parameter: bool) -> DevProvider {
    let dev = DevProvider::builder()
        .issuer_path("/common")
        .multi_tenant(true)
        .authorization_response_iss(iss_parameter)
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    dev
}

async fn app(
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

async fn claims_after_login(app: &TestApp) -> (StatusCode, String) {
    let landing = Browser::new().follow(&app.url("/me")).await;
    (landing.status, landing.body)
}

#[tokio::test]
async fn logins_from_allowed_tenants_record_their_own_issuer() {
    let dev = entra_like(false).await;
    let app = app(&dev, |b| b.tenants([TENANT_A, TENANT_B]))
        .await
        .expect("a template issuer is accepted when tenants are configured");
    for tenant in [TENANT_A, TENANT_B] {
        dev.set_tenant(tenant);
        let browser = Browser::new();
        let landing = browser.follow(&app.url("/me")).await;
        assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
        let claims = landing.json();
        assert_eq!(claims["iss"], json!(dev.tenant_issuer(tenant)));
        assert_eq!(claims["tid"], json!(tenant));
        // The session (recording the concrete issuer) goes on.
        let cookie = browser.session_cookie(&app);
        let again = app.api_get_with_cookie("/me", &cookie).await;
        assert_eq!(again.status(), StatusCode::OK);
        let again: Value = serde_json::from_str(&again.text().await.expect("body")).expect("JSON");
        assert_eq!(again["iss"], json!(dev.tenant_issuer(tenant)));
    }
}

#[tokio::test]
async fn a_foreign_tenant_is_refused() {
    for iss_parameter in [false, true] {
        let dev = entra_like(iss_parameter).await;
        let app = app(&dev, |b| b.tenants([TENANT_A])).await.expect("app");
        dev.set_tenant(FOREIGN);
        let (status, body) = claims_after_login(&app).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "iss parameter {iss_parameter}: {body}"
        );
        dev.set_tenant(TENANT_A);
        let (status, body) = claims_after_login(&app).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn any_tenant_accepts_every_tenant() {
    let dev = entra_like(true).await;
    let app = app(&dev, ConfigBuilder::any_tenant).await.expect("app");
    dev.set_tenant(FOREIGN);
    let landing = Browser::new().follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.json()["iss"], json!(dev.tenant_issuer(FOREIGN)));
}

#[tokio::test]
async fn an_issuer_of_another_tenant_than_tid_is_refused() {
    let dev = entra_like(false).await;
    // Even with every tenant allowed: the token's `iss` must carry its own `tid`.
    let app = app(&dev, ConfigBuilder::any_tenant).await.expect("app");
    dev.set_fault(Fault::IdToken(IdTokenFault::OtherTenantIssuer));
    let (status, body) = claims_after_login(&app).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// The authorization response's `iss` names one allowed tenant, the ID token another (also
/// allowed, and consistent in itself): refused, the response and the token must agree.
#[tokio::test]
async fn an_id_token_of_another_tenant_than_the_responses_iss_is_refused() {
    let dev = entra_like(true).await;
    let app = app(&dev, |b| b.tenants([TENANT_A, TENANT_B]))
        .await
        .expect("app");
    dev.set_tenant(TENANT_A);
    let browser = Browser::new();
    let callback = app.url("/auth/callback");
    let stop = browser
        .follow_until(&app.url("/me"), |next| next.path() == callback.path())
        .await;
    assert!(
        stop.url.query().unwrap_or_default().contains("iss="),
        "{}",
        stop.url
    );
    dev.set_tenant(TENANT_B);
    let landing = browser.follow(&stop.url).await;
    assert_eq!(landing.status, StatusCode::BAD_REQUEST, "{}", landing.body);
}

#[tokio::test]
async fn discovery_of_a_template_issuer_needs_tenants_and_its_own_location() {
    let dev = entra_like(false).await;
    let err = app(&dev, |b| b).await.err().expect("refused");
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                field: "tenants",
                ..
            }
        ),
        "{err:?}"
    );
    // A template for another place than the configured issuer.
    dev.set_fault(Fault::DiscoveryField(
        "issuer".into(),
        "http://127.0.0.1:9/{tenantid}".into(),
    ));
    let err = app(&dev, ConfigBuilder::any_tenant)
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, ConfigError::IssuerMismatch { .. }), "{err:?}");
    // Tenants configured for a provider with one exact issuer: a mistake, said at start.
    let single = DevProvider::start().await.expect("dev provider");
    let err = app(&single, |b| b.tenants([TENANT_A]))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                field: "tenants",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn tenant_lists_are_checked_when_built() {
    let dev = entra_like(false).await;
    for bad in [vec![], vec!["a/b"], vec![""]] {
        let err = app(&dev, |b| b.tenants(bad.clone()))
            .await
            .err()
            .expect("refused");
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    field: "tenants",
                    ..
                }
            ),
            "{bad:?}: {err:?}"
        );
    }
}

/// Bearer tokens of a multi-tenant provider: the same rules as ID tokens.
#[tokio::test]
async fn bearer_tokens_name_an_allowed_tenant_and_its_issuer() {
    let dev = entra_like(false).await;
    let client_id = dev.confidential_client().id.clone();
    let app = app(&dev, |b| b.tenants([TENANT_A])).await.expect("app");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |iss_tenant: &str, tid: Option<&str>| {
        let mut claims = json!({
            "iss": dev.tenant_issuer(iss_tenant), "sub": "alice", "aud": client_id,
            "scope": "openid", "exp": now + 300, "iat": now,
        });
        if let Some(tid) = tid {
            claims["tid"] = json!(tid);
        }
        dev.sign_jwt("at+jwt", &claims)
    };
    let status = |token: String| {
        let url = app.url("/me");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    assert_eq!(
        status(token(TENANT_A, Some(TENANT_A))).await,
        StatusCode::OK
    );
    // A foreign tenant, a token without `tid`, and `iss` of another tenant than `tid`.
    assert_eq!(
        status(token(FOREIGN, Some(FOREIGN))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(token(TENANT_A, None)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(token(TENANT_A, Some(FOREIGN))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(token(FOREIGN, Some(TENANT_A))).await,
        StatusCode::UNAUTHORIZED
    );
}

/// A session of a tenant that the app (here: another deployment sharing the session key)
/// does not allow is no session.
#[tokio::test]
async fn a_session_of_a_tenant_that_is_not_allowed_is_no_session() {
    let dev = entra_like(false).await;
    let key = tower_oidc::SessionKey::generate();
    let with_key = |tenant: &'static str| {
        let key = key.clone();
        move |b: ConfigBuilder| b.tenants([tenant]).session_key(key)
    };
    let for_a = app(&dev, with_key(TENANT_A)).await.expect("app");
    let for_b = app(&dev, with_key(TENANT_B)).await.expect("app");
    dev.set_tenant(TENANT_A);
    let browser = Browser::new();
    let cookie = browser.log_in(&for_a).await;
    assert_eq!(
        for_a.api_get_with_cookie("/me", &cookie).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        for_b.api_get_with_cookie("/me", &cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Refresh at a multi-tenant provider: the refreshed ID token must name the session's own
/// tenant issuer; one of another (even allowed) tenant ends the session.
#[tokio::test]
async fn refreshed_id_tokens_keep_the_sessions_tenant() {
    use std::time::Duration;
    let access_ttl = Duration::from_secs(600);
    let dev = DevProvider::builder()
        .issuer_path("/common")
        .multi_tenant(true)
        .authorization_response_iss(false)
        .access_token_ttl(access_ttl)
        .id_token_ttl(Duration::from_secs(3600))
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    let clock = support::clock::TestClock::new();
    let closure = clock.closure();
    let app = app(&dev, move |b| {
        b.tenants([TENANT_A, TENANT_B])
            .scopes(["openid", "profile", "email", "offline_access"])
            .refresh_margin(Duration::ZERO)
            .clock(closure)
    })
    .await
    .expect("app");
    dev.set_tenant(TENANT_A);
    let browser = Browser::new();
    let cookie = browser.log_in(&app).await;
    let tokens_before = dev.stats().token_requests;

    // Same tenant: refreshed, the session goes on with its issuer.
    clock.advance(access_ttl + Duration::from_secs(1));
    let res = app.api_get_with_cookie("/me", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(dev.stats().token_requests, tokens_before + 1);
    let cookie = support::app::new_session_cookie(&res).expect("the refreshed session's cookie");
    let claims: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(claims["iss"], json!(dev.tenant_issuer(TENANT_A)));

    // The provider now answers for another tenant: the refreshed ID token names another
    // issuer, and the session ends.
    dev.set_tenant(TENANT_B);
    clock.advance(access_ttl + Duration::from_secs(1));
    let res = app.api_get_with_cookie("/me", &cookie).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(support::app::clears_session(&res));
    assert_eq!(dev.stats().token_requests, tokens_before + 2);
}
