//! The flows the provider guides ask for, against the real `oidc-provider` package: hybrid
//! `code id_token` with `form_post`, `form_post` for the code flow, `prompt=login` and
//! `max_age`.

mod support;

use std::collections::HashMap;

use reqwest::StatusCode;
use support::app::{bind_loopback, start_app_on, TestApp};
use support::html;
use support::oidc_provider::{
    browser_client, login, login_alice, ClientConfig, NodeProvider, ProviderOptions,
};
use tower_oidc::{ConfigBuilder, ResponseMode, ResponseType};

const CLIENT: (&str, &str) = ("rp-web", "rp-web-secret");

async fn setup(
    response_types: &[&str],
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (NodeProvider, TestApp) {
    let listener = bind_loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let mut grants = vec!["authorization_code", "refresh_token"];
    if response_types.iter().any(|t| t.contains("id_token")) {
        grants.push("implicit");
    }
    let provider = NodeProvider::start(
        ProviderOptions::new().client(
            ClientConfig::confidential(CLIENT.0, CLIENT.1)
                .redirect_uri(&format!("{base}/auth/callback"))
                .post_logout_redirect_uri(&format!("{base}/"))
                .response_types(response_types)
                .grant_types(&grants),
        ),
    )
    .await;
    let app = start_app_on(listener, provider.issuer(), CLIENT.0, |b| {
        configure(b.client_secret(CLIENT.1))
    })
    .await
    .unwrap_or_else(|e| panic!("app starts: {e}"));
    (provider, app)
}

/// Logs in; when the provider answers with its auto-submitting form_post page, submits it
/// like the browser would, and follows the app's redirects to the end.
async fn login_with_form_post(
    http: &reqwest::Client,
    provider: &NodeProvider,
    app: &TestApp,
    start: &str,
) -> (StatusCode, String, HashMap<String, String>) {
    let nav = login(
        http,
        provider.issuer(),
        app.url(start).as_str(),
        "alice",
        "alice",
    )
    .await;
    let callback = app.url("/auth/callback");
    let form = html::find_form(&nav.body, |action| action == callback.as_str())
        .unwrap_or_else(|| panic!("no form_post page at {}: {}", nav.url, nav.body));
    assert_eq!(form.method, "post");
    let fields: HashMap<String, String> = form.hidden_fields().into_iter().collect();
    let res = http
        .post(callback)
        .form(&fields)
        .send()
        .await
        .expect("form post");
    assert_eq!(
        res.status(),
        StatusCode::FOUND,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let set_cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    assert!(
        set_cookie
            .iter()
            .any(|c| c.starts_with("oidc_session=") && !c.contains("Max-Age=0")),
        "{set_cookie:?}"
    );
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let me = http
        .get(app.url(&location))
        .header("accept", "text/html")
        .send()
        .await
        .expect("return_to");
    let status = me.status();
    (status, me.text().await.unwrap_or_default(), fields)
}

#[tokio::test]
async fn hybrid_flow_with_form_post() {
    let (provider, app) = setup(&["code id_token"], |b| {
        b.response_type(ResponseType::CodeIdToken)
    })
    .await;
    let http = browser_client();
    let (status, body, fields) =
        login_with_form_post(&http, &provider, &app, "/auth/login?return_to=/me").await;
    assert!(fields.contains_key("id_token"), "hybrid answer: {fields:?}");
    assert!(fields.contains_key("code"));
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(claims["sub"], "alice");
    assert!(
        claims.get("c_hash").is_none(),
        "token-only claims are dropped"
    );
}

#[tokio::test]
async fn hybrid_form_post_replayed_is_refused() {
    let (provider, app) = setup(&["code id_token"], |b| {
        b.response_type(ResponseType::CodeIdToken)
    })
    .await;
    let http = browser_client();
    let (status, _, fields) =
        login_with_form_post(&http, &provider, &app, "/auth/login?return_to=/me").await;
    assert_eq!(status, StatusCode::OK);
    // The same form posted again from another browser: no transaction, refused.
    let replay = reqwest::Client::new()
        .post(app.url("/auth/callback"))
        .header("accept", "text/html")
        .form(&fields)
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn code_flow_with_form_post() {
    let (provider, app) = setup(&["code"], |b| b.response_mode(ResponseMode::FormPost)).await;
    let http = browser_client();
    let (status, body, fields) =
        login_with_form_post(&http, &provider, &app, "/auth/login?return_to=/me").await;
    assert!(!fields.contains_key("id_token"));
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn prompt_login_asks_for_the_password_again() {
    let (provider, app) = setup(&["code"], |b| b).await;
    let http = browser_client();
    let nav = login(
        &http,
        provider.issuer(),
        app.url("/auth/login?return_to=/me").as_str(),
        "alice",
        "alice",
    )
    .await;
    assert_eq!(nav.status, StatusCode::OK, "{}", nav.body);

    // Without prompt the provider session logs in silently...
    let silent = walk_to_end(&http, app.url("/auth/login?return_to=/me")).await;
    assert!(silent.contains("\"sub\":\"alice\""), "{silent}");
    // ...with prompt=login it shows its login form.
    let page = walk_to_end(&http, app.url("/auth/login?return_to=/me&prompt=login")).await;
    assert!(page.contains("name=\"password\""), "{page}");
}

#[tokio::test]
async fn max_age_is_sent_and_auth_time_checked() {
    let (provider, app) = setup(&["code"], |b| b).await;
    let http = browser_client();
    let nav = login(
        &http,
        provider.issuer(),
        app.url("/auth/login?return_to=/me&max_age=300").as_str(),
        "alice",
        "alice",
    )
    .await;
    assert_eq!(nav.status, StatusCode::OK, "{}", nav.body);
    assert!(nav
        .visited
        .iter()
        .any(|u| u.query().unwrap_or_default().contains("max_age=300")));
    assert!(nav.json()["auth_time"].is_u64(), "{}", nav.body);
}

/// Follows redirects (GET) to the first non-redirect; its body.
async fn walk_to_end(http: &reqwest::Client, start: url::Url) -> String {
    let mut url = start;
    for _ in 0..20 {
        let res = http
            .get(url.clone())
            .header("accept", "text/html")
            .send()
            .await
            .expect("request");
        match res.headers().get("location") {
            Some(next) => url = url.join(next.to_str().unwrap()).unwrap(),
            None => return res.text().await.unwrap_or_default(),
        }
    }
    panic!("too many redirects");
}

#[tokio::test]
async fn private_key_jwt_client_authentication() {
    use base64::Engine;
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .expect("key");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
    );
    let key = tower_oidc::ClientKey::from_pem(&pem)
        .expect("PEM key")
        .with_kid("rp-key-1");

    let listener = bind_loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let provider = NodeProvider::start(
        ProviderOptions::new().client(
            ClientConfig::public("rp-signed")
                .auth_method("private_key_jwt")
                .set("jwks", serde_json::json!({ "keys": [key.public_jwk()] }))
                .set("token_endpoint_auth_signing_alg", "ES256")
                .redirect_uri(&format!("{base}/auth/callback")),
        ),
    )
    .await;
    let app = start_app_on(listener, provider.issuer(), "rp-signed", |b| {
        b.client_key(key)
            .client_auth(tower_oidc::ClientAuth::PrivateKeyJwt)
    })
    .await
    .unwrap_or_else(|e| panic!("app starts: {e}"));
    let http = browser_client();
    let nav = login_alice(&http, &provider, &app.url("/auth/login?return_to=/me")).await;
    assert_eq!(nav.json()["sub"], "alice");
}
