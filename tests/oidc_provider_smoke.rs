//! Proves the `oidc-provider` test support without tower-oidc's layer: discovery, a hand-made
//! authorization code flow with PKCE for both default clients, userinfo, and an issuer with a path.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::Value;
use support::oidc_provider::{
    browser_client, login_until, NodeProvider, ProviderOptions, CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET, DEFAULT_REDIRECT_URI, PUBLIC_CLIENT_ID,
};
use url::Url;

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random generator");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let status = response.status();
    let body = response.text().await.expect("read the response body");
    assert!(status.is_success(), "GET {url}: {status}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|err| panic!("GET {url}: not JSON ({err}): {body}"))
}

async fn discovery(client: &reqwest::Client, provider: &NodeProvider) -> Value {
    let metadata = get_json(client, &provider.discovery_url()).await;
    assert_eq!(metadata["issuer"], provider.issuer(), "{metadata:#}");
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"], true,
        "{metadata:#}"
    );
    metadata
}

fn endpoint(metadata: &Value, name: &str) -> String {
    metadata[name]
        .as_str()
        .unwrap_or_else(|| panic!("discovery has no {name}: {metadata:#}"))
        .to_owned()
}

/// Runs the code flow by hand for one client and returns the token response.
async fn code_flow(provider: &NodeProvider, client_id: &str, secret: Option<&str>) -> Value {
    let http = browser_client();
    let metadata = discovery(&http, provider).await;

    let verifier = random_token();
    let state = random_token();
    let nonce = random_token();
    let mut authorize =
        Url::parse(&endpoint(&metadata, "authorization_endpoint")).expect("authorization URL");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", DEFAULT_REDIRECT_URI)
        .append_pair("scope", "openid email profile")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");

    let navigation = login_until(
        &http,
        provider.issuer(),
        authorize.as_str(),
        "alice",
        "alice",
        |url| url.as_str().starts_with(DEFAULT_REDIRECT_URI),
    )
    .await;
    let callback = navigation.stopped_at.clone().unwrap_or_else(|| {
        panic!(
            "no redirect to the client: {} {}\n{}\nvisited: {:#?}\nprovider log:\n{}",
            navigation.status,
            navigation.url,
            navigation.body,
            navigation.visited,
            provider.logs()
        )
    });
    let visited: Vec<&str> = navigation.visited.iter().map(Url::path).collect();
    assert!(
        visited.iter().any(|p| p.ends_with("/login"))
            && visited.iter().any(|p| p.ends_with("/confirm")),
        "login and consent were posted: {visited:?}"
    );

    let params: std::collections::HashMap<String, String> =
        callback.query_pairs().into_owned().collect();
    assert_eq!(params.get("state"), Some(&state), "{callback}");
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(provider.issuer()),
        "{callback}"
    );
    let code = params
        .get("code")
        .unwrap_or_else(|| panic!("no code in {callback}"));

    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", DEFAULT_REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    let token_request = http.post(endpoint(&metadata, "token_endpoint"));
    let token_request = match secret {
        Some(secret) => token_request.basic_auth(client_id, Some(secret)),
        None => {
            form.push(("client_id", client_id));
            token_request
        }
    };
    let response = token_request
        .form(&form)
        .send()
        .await
        .expect("token request");
    let status = response.status();
    let body = response.text().await.expect("read the token response");
    assert!(status.is_success(), "token endpoint: {status}: {body}");
    let tokens: Value = serde_json::from_str(&body).expect("token response is JSON");
    assert!(tokens["id_token"].is_string(), "{tokens:#}");
    assert_eq!(tokens["token_type"], "Bearer", "{tokens:#}");
    let access_token = tokens["access_token"].as_str().expect("access_token");

    let response = http
        .get(endpoint(&metadata, "userinfo_endpoint"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo request");
    let status = response.status();
    let body = response.text().await.expect("read the userinfo response");
    assert!(status.is_success(), "userinfo: {status}: {body}");
    let userinfo: Value = serde_json::from_str(&body).expect("userinfo is JSON");
    assert_eq!(userinfo["sub"], "alice", "{userinfo:#}");
    assert_eq!(userinfo["email"], "alice@example.test", "{userinfo:#}");
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_with_the_confidential_client() {
    let provider = NodeProvider::start(ProviderOptions::new()).await;
    code_flow(
        &provider,
        CONFIDENTIAL_CLIENT_ID,
        Some(CONFIDENTIAL_CLIENT_SECRET),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_with_the_public_client() {
    let provider = NodeProvider::start(ProviderOptions::new()).await;
    code_flow(&provider, PUBLIC_CLIENT_ID, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_with_a_path_prefix() {
    let provider = NodeProvider::start(ProviderOptions::new().path("/tenant-a")).await;
    assert!(
        provider.issuer().ends_with("/tenant-a"),
        "{}",
        provider.issuer()
    );
    let http = browser_client();
    let metadata = discovery(&http, &provider).await;
    for name in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
    ] {
        let url = endpoint(&metadata, name);
        assert!(
            url.starts_with(&format!("{}/", provider.issuer())),
            "{name} {url} is under the issuer"
        );
    }
    let jwks = get_json(&http, &endpoint(&metadata, "jwks_uri")).await;
    let algs: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("jwks keys")
        .iter()
        .filter_map(|k| k["alg"].as_str())
        .collect();
    assert!(
        algs.contains(&"RS256") && algs.contains(&"ES256"),
        "{jwks:#}"
    );
    code_flow(
        &provider,
        CONFIDENTIAL_CLIENT_ID,
        Some(CONFIDENTIAL_CLIENT_SECRET),
    )
    .await;
}
