//! The high-security profile against the in-process dev provider: pushed authorization
//! requests (RFC 9126), with a test for every refusal.

mod support;

use reqwest::StatusCode;
use support::app::{set_cookies, start_app, Browser, TestApp};
use tower_oidc::dev::{DevProvider, Fault};
use tower_oidc::{ConfigBuilder, ConfigError};
use url::Url;

async fn provider(require_par: bool) -> DevProvider {
    let dev = DevProvider::builder()
        .require_pushed_authorization_requests(require_par)
        .start()
        .await
        .expect("dev provider starts");
    dev.set_auto_login(Some("alice"));
    dev
}

async fn app_with(
    dev: &DevProvider,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Result<TestApp, ConfigError> {
    let client = dev.confidential_client();
    let secret = client.secret.clone().expect("a secret");
    start_app(dev.issuer(), &client.id, |b| {
        configure(b.client_secret(secret))
    })
    .await
}

fn is_authorize(url: &Url) -> bool {
    url.path() == "/authorize"
}

/// The query of the redirect to the provider's authorization endpoint, from `/me`.
async fn authorization_redirect(browser: &Browser, app: &TestApp) -> Vec<(String, String)> {
    let landing = browser.follow_until(&app.url("/me"), is_authorize).await;
    assert!(is_authorize(&landing.url), "{:?}", landing.visited);
    landing.url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn par_login_sends_only_client_id_and_request_uri_through_the_browser() {
    let dev = provider(false).await;
    let app = app_with(&dev, |b| b.pushed_authorization_requests(true))
        .await
        .expect("app starts");
    let browser = Browser::new();
    let query = authorization_redirect(&browser, &app).await;
    let names: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["client_id", "request_uri"], "{query:?}");
    assert_eq!(query[0].1, dev.confidential_client().id);
    assert!(query[1].1.starts_with("urn:ietf:params:oauth:request_uri:"));

    // The whole login goes through.
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.json()["sub"], "alice");
    assert!(landing
        .visited
        .iter()
        .any(|u| u.path() == "/authorize" && u.query_pairs().any(|(k, _)| k == "request_uri")));
}

#[tokio::test]
async fn a_provider_that_requires_par_gets_it_without_configuration() {
    let dev = provider(true).await;
    let app = app_with(&dev, |b| b).await.expect("app starts");
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.json()["sub"], "alice");
}

#[tokio::test]
async fn without_par_the_provider_that_requires_it_refuses_the_login() {
    // The switch in the dev provider is real: an unpushed request is refused.
    let dev = provider(false).await;
    let app = app_with(&dev, |b| b).await.expect("app starts");
    let strict = provider(true).await;
    let browser = Browser::new();
    let query = authorization_redirect(&browser, &app).await;
    assert!(query.iter().any(|(k, _)| k == "state"), "no PAR: {query:?}");
    let mut unpushed = Url::parse(&format!("{}/authorize", strict.issuer())).expect("URL");
    unpushed.query_pairs_mut().extend_pairs(query);
    let res = browser.get(&unpushed).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.text().await.expect("body").contains("pushed"));
}

#[tokio::test]
async fn par_turned_off_for_a_provider_that_requires_it_fails_discovery() {
    let dev = provider(true).await;
    let err = app_with(&dev, |b| b.pushed_authorization_requests(false))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, ConfigError::UnsupportedProvider(_)), "{err}");
    assert!(err.to_string().contains("requires pushed"), "{err}");
}

#[tokio::test]
async fn par_turned_on_without_a_par_endpoint_fails_discovery() {
    let dev = provider(false).await;
    dev.set_fault(Fault::DiscoveryWithout(
        "pushed_authorization_request_endpoint".into(),
    ));
    let err = app_with(&dev, |b| b.pushed_authorization_requests(true))
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("no pushed_authorization_request_endpoint"),
        "{err}"
    );
}

#[tokio::test]
async fn a_par_endpoint_on_plain_http_elsewhere_fails_discovery() {
    let dev = provider(false).await;
    dev.set_fault(Fault::DiscoveryField(
        "pushed_authorization_request_endpoint".into(),
        "http://par.example.com/par".into(),
    ));
    let err = app_with(&dev, |b| b.pushed_authorization_requests(true))
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("pushed_authorization_request_endpoint"),
        "{err}"
    );
}

#[tokio::test]
async fn a_par_refusal_is_an_error_page_that_keeps_the_way_back() {
    let dev = provider(false).await;
    let app = app_with(&dev, |b| b.pushed_authorization_requests(true))
        .await
        .expect("app starts");
    dev.set_fault(Fault::ParError("invalid_request".into()));
    let browser = Browser::new();
    let login = app.url("/auth/login?return_to=%2Fwhoami%3Fx%3D1");
    let res = browser.get(&login).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        set_cookies(res.headers()).is_empty(),
        "no transaction is stored"
    );
    let body = res.text().await.expect("body");
    assert!(body.contains("invalid_request"), "{body}");
    assert!(
        body.contains("/auth/login?return_to=%2Fwhoami%3Fx%3D1"),
        "the retry link keeps return_to: {body}"
    );

    // Once the provider accepts again, the same link completes the login at the deep link.
    dev.clear_faults();
    let landing = browser.follow(&login).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.url.path(), "/whoami");
    assert_eq!(landing.url.query(), Some("x=1"));
}

#[tokio::test]
async fn a_par_endpoint_that_is_unavailable_is_a_503_page() {
    let dev = provider(false).await;
    let app = app_with(&dev, |b| b.pushed_authorization_requests(true))
        .await
        .expect("app starts");
    let browser = Browser::new();
    dev.set_fault(Fault::ParError("temporarily_unavailable".into()));
    let res = browser.get(&app.url("/auth/login")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookies(res.headers()).is_empty());
    dev.set_fault(Fault::Down);
    let res = browser.get(&app.url("/auth/login")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(set_cookies(res.headers()).is_empty());
}

#[tokio::test]
async fn with_par_a_fetch_without_login_is_still_a_401() {
    let dev = provider(false).await;
    let app = app_with(&dev, |b| b.pushed_authorization_requests(true))
        .await
        .expect("app starts");
    let res = reqwest::Client::new()
        .get(app.url("/me"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(dev.stats().authorization_requests, 0);
}
