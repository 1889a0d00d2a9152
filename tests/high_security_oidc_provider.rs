//! The high-security profile against the real `oidc-provider` package: pushed authorization
//! requests (RFC 9126, `features.pushedAuthorizationRequests`).

mod support;

use reqwest::StatusCode;
use support::app::{bind_loopback, start_app_on, TestApp};
use support::oidc_provider::{
    browser_client, login_alice, ClientConfig, NodeProvider, ProviderOptions,
};
use tower_oidc::ConfigBuilder;

const CLIENT: (&str, &str) = ("rp-fapi", "rp-fapi-secret");

async fn setup(
    options: impl FnOnce(ProviderOptions) -> ProviderOptions,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> (NodeProvider, TestApp) {
    let listener = bind_loopback().await;
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let provider = NodeProvider::start(
        options(ProviderOptions::new()).client(
            ClientConfig::confidential(CLIENT.0, CLIENT.1)
                .redirect_uri(&format!("{base}/auth/callback"))
                .post_logout_redirect_uri(&format!("{base}/")),
        ),
    )
    .await;
    let app = start_app_on(listener, provider.issuer(), CLIENT.0, |b| {
        configure(b.client_secret(CLIENT.1))
    })
    .await
    .unwrap_or_else(|e| panic!("app starts: {e}\n{}", provider.logs()));
    (provider, app)
}

#[tokio::test]
async fn login_through_par_when_the_provider_requires_it() {
    let (provider, app) = setup(|o| o.set("require_par", true), |b| b).await;
    let http = browser_client();
    let nav = login_alice(&http, &provider, &app.url("/auth/login?return_to=%2Fme")).await;
    let claims: serde_json::Value = serde_json::from_str(&nav.body).expect("JSON");
    assert_eq!(claims["sub"], "alice", "{}", nav.body);
    let authorize = nav
        .visited
        .iter()
        .find(|u| u.path().ends_with("/auth") && u.as_str().starts_with(provider.issuer()))
        .unwrap_or_else(|| panic!("no authorization request in {:#?}", nav.visited));
    let names: Vec<String> = authorize
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .collect();
    assert_eq!(names, ["client_id", "request_uri"], "{authorize}");
}

#[tokio::test]
async fn login_through_par_when_configured() {
    let (provider, app) = setup(|o| o, |b| b.pushed_authorization_requests(true)).await;
    let http = browser_client();
    let nav = login_alice(&http, &provider, &app.url("/auth/login?return_to=%2Fme")).await;
    assert_eq!(nav.status, StatusCode::OK);
    assert!(nav
        .visited
        .iter()
        .any(|u| u.query_pairs().any(|(k, _)| k == "request_uri")));
}

mod dpop {
    use std::time::Duration;

    use reqwest::StatusCode;
    use tower_oidc::ConfigBuilder;

    use super::setup;
    use super::support::app::new_session_cookie;
    use super::support::clock::TestClock;
    use super::support::oidc_provider::{browser_client, login_alice};

    const ACCESS_TTL: u64 = 20;

    fn client(clock: &TestClock) -> impl FnOnce(ConfigBuilder) -> ConfigBuilder {
        let clock = clock.clone();
        move |b| {
            b.dpop(true)
                .pushed_authorization_requests(true)
                .scopes(["openid", "profile", "email", "offline_access"])
                .userinfo(true)
                .require_userinfo(true)
                .refresh_margin(Duration::ZERO)
                .clock(clock.closure())
        }
    }

    /// A login through PAR with DPoP-bound tokens (`features.dPoP`, with server nonces),
    /// then a refresh with DPoP once the access token has expired.
    #[tokio::test]
    async fn par_login_with_dpop_bound_tokens_and_refresh_with_a_provider_nonce() {
        let clock = TestClock::new();
        let (provider, app) = setup(
            |o| {
                o.set("dpop_nonce", true)
                    .access_token_ttl(ACCESS_TTL)
                    .always_issue_refresh_tokens()
                    .clock_tolerance(60)
            },
            client(&clock),
        )
        .await;
        let http = browser_client();
        let nav = login_alice(&http, &provider, &app.url("/auth/login?return_to=%2Fme")).await;
        let claims: serde_json::Value = serde_json::from_str(&nav.body).expect("JSON");
        assert_eq!(claims["sub"], "alice", "{}", nav.body);
        assert!(
            claims["email"].is_string(),
            "userinfo with DPoP: {}",
            nav.body
        );
        let proof_url = app.url("/dpop-proof?https%3A%2F%2Fapi.example.test%2F");
        let get = || {
            http.get(proof_url.clone())
                .header("accept", "application/json")
                .send()
        };
        let res = get().await.expect("request");
        let body: serde_json::Value =
            serde_json::from_str(&res.text().await.expect("body")).expect("JSON");
        assert_eq!(body["bound"], true, "{body}");
        let before = body["authorization"].clone();

        clock.advance(Duration::from_secs(ACCESS_TTL + 1));
        let res = get().await.expect("request");
        assert_eq!(res.status(), StatusCode::OK);
        assert!(
            new_session_cookie(&res).is_some(),
            "refreshed\n{}",
            provider.logs()
        );
        let body: serde_json::Value =
            serde_json::from_str(&res.text().await.expect("body")).expect("JSON");
        assert_eq!(body["bound"], true, "{body}");
        assert_ne!(body["authorization"], before, "a new access token");
    }
}

mod fapi2 {
    use reqwest::StatusCode;
    use tower_oidc::{ClientKey, Profile};

    use super::support::app::{bind_loopback, start_app_on};
    use super::support::oidc_provider::{
        browser_client, login_alice, ClientConfig, NodeProvider, ProviderOptions,
    };

    pub(super) fn client_key() -> ClientKey {
        use base64::Engine;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .expect("key");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        ClientKey::from_pem(&pem)
            .expect("PEM")
            .with_kid("fapi-key-1")
    }

    /// The FAPI 2.0 switch alone: PAR, PKCE S256, `private_key_jwt` (assertion `aud` the
    /// issuer, which the provider is told to insist on), DPoP-bound tokens with provider
    /// nonces, `iss` required.
    #[tokio::test]
    async fn the_fapi2_profile_logs_in_with_par_dpop_and_private_key_jwt() {
        let key = client_key();
        let listener = bind_loopback().await;
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let provider = NodeProvider::start(
            ProviderOptions::new()
                .set("require_par", true)
                .set("dpop_nonce", true)
                .set("client_assertion_audience", "issuer")
                .client(
                    ClientConfig::public("rp-fapi2")
                        .auth_method("private_key_jwt")
                        .set("jwks", serde_json::json!({ "keys": [key.public_jwk()] }))
                        .set("token_endpoint_auth_signing_alg", "ES256")
                        .redirect_uri(&format!("{base}/auth/callback")),
                ),
        )
        .await;
        let app = start_app_on(listener, provider.issuer(), "rp-fapi2", |b| {
            b.profile(Profile::Fapi2Security).client_key(key)
        })
        .await
        .unwrap_or_else(|e| panic!("app starts: {e}\n{}", provider.logs()));
        let http = browser_client();
        let nav = login_alice(&http, &provider, &app.url("/auth/login?return_to=%2Fme")).await;
        assert_eq!(nav.status, StatusCode::OK);
        let claims: serde_json::Value = serde_json::from_str(&nav.body).expect("JSON");
        assert_eq!(claims["sub"], "alice");
        assert!(nav
            .visited
            .iter()
            .any(|u| u.query_pairs().any(|(k, _)| k == "request_uri")));
        let res = http
            .get(app.url("/dpop-proof?https%3A%2F%2Fapi.example.test%2F"))
            .header("accept", "application/json")
            .send()
            .await
            .expect("request");
        let body: serde_json::Value =
            serde_json::from_str(&res.text().await.expect("body")).expect("JSON");
        assert_eq!(body["bound"], true, "{body}");
    }
}

mod jar {
    use reqwest::StatusCode;
    use tower_oidc::ClientAuth;

    use super::fapi2::client_key;
    use super::support::app::{bind_loopback, start_app_on};
    use super::support::oidc_provider::{
        browser_client, login_alice, ClientConfig, NodeProvider, ProviderOptions,
    };

    /// A provider that requires signed request objects (`features.requestObjects`) and PAR:
    /// the layer signs without being told (discovery says so), and logs in.
    #[tokio::test]
    async fn a_signed_request_object_is_pushed_when_the_provider_requires_it() {
        let key = client_key();
        let listener = bind_loopback().await;
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let provider = NodeProvider::start(
            ProviderOptions::new()
                .set("require_par", true)
                .set("require_signed_request_object", true)
                .client(
                    ClientConfig::public("rp-jar")
                        .auth_method("private_key_jwt")
                        .set("jwks", serde_json::json!({ "keys": [key.public_jwk()] }))
                        .set("token_endpoint_auth_signing_alg", "ES256")
                        .set("request_object_signing_alg", "ES256")
                        .redirect_uri(&format!("{base}/auth/callback")),
                ),
        )
        .await;
        let app = start_app_on(listener, provider.issuer(), "rp-jar", |b| {
            b.client_key(key).client_auth(ClientAuth::PrivateKeyJwt)
        })
        .await
        .unwrap_or_else(|e| panic!("app starts: {e}\n{}", provider.logs()));
        let http = browser_client();
        let nav = login_alice(&http, &provider, &app.url("/auth/login?return_to=%2Fme")).await;
        assert_eq!(nav.status, StatusCode::OK);
        let claims: serde_json::Value = serde_json::from_str(&nav.body).expect("JSON");
        assert_eq!(claims["sub"], "alice");
    }
}
