//! `private_key_jwt` client assertions against the real `oidc-provider` package told to accept
//! one audience only: the issuer by default (draft-ietf-oauth-rfc7523bis), or the token endpoint
//! URL when the app is configured for it; the token endpoint and introspection alike.

mod support;

use reqwest::StatusCode;
use support::app::{bind_loopback, start_app_on};
use support::oidc_provider::{
    browser_client, login_alice, ClientConfig, NodeProvider, ProviderOptions,
};
use tower_oidc::{AssertionAudience, ClientAuth, ClientKey, ConfigBuilder};

fn client_key() -> ClientKey {
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
    ClientKey::from_pem(&pem)
        .expect("PEM key")
        .with_kid("rp-key-1")
}

/// Logs in with `private_key_jwt` at a provider that accepts only `required` as assertion
/// audience, then uses the session's (opaque) access token as a bearer token, which the app
/// introspects with another assertion.
async fn login_and_introspect(
    required: &str,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) {
    let key = client_key();
    let listener = bind_loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let provider = NodeProvider::start(
        ProviderOptions::new()
            .set("client_assertion_audience", required)
            .client(
                ClientConfig::public("rp-signed")
                    .auth_method("private_key_jwt")
                    .set("jwks", serde_json::json!({ "keys": [key.public_jwk()] }))
                    .set("token_endpoint_auth_signing_alg", "ES256")
                    .redirect_uri(&format!("{base}/auth/callback")),
            ),
    )
    .await;
    let app = start_app_on(listener, provider.issuer(), "rp-signed", |b| {
        configure(b.client_key(key).client_auth(ClientAuth::PrivateKeyJwt))
    })
    .await
    .unwrap_or_else(|e| panic!("app starts: {e}"));
    let http = browser_client();
    let nav = login_alice(&http, &provider, &app.url("/auth/login?return_to=/me")).await;
    assert_eq!(nav.json()["sub"], "alice", "{}", provider.logs());

    let res = http.get(app.url("/token")).send().await.expect("token");
    assert_eq!(res.status(), StatusCode::OK);
    let token = res.text().await.expect("token text");
    assert_eq!(token.split('.').count(), 1, "opaque: {token}");
    let res = reqwest::Client::new()
        .get(app.url("/whoami"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("bearer request");
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{body}\n{}", provider.logs());
    assert!(body.starts_with("Bearer alice"), "{body}");
}

#[tokio::test]
async fn client_assertions_name_the_issuer_by_default() {
    login_and_introspect("issuer", |b| b).await;
}

#[tokio::test]
async fn client_assertions_can_name_the_token_endpoint() {
    login_and_introspect("token_endpoint", |b| {
        b.client_assertion_audience(AssertionAudience::TokenEndpoint)
    })
    .await;
}
