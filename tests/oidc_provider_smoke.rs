//! Proves the `oidc-provider` test support without tower-oidc's layer: discovery, a hand-made
//! authorization code flow with PKCE for both default clients, userinfo, and an issuer with a path.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use std::collections::HashMap;

use serde_json::Value;
use support::html;
use support::oidc_provider::{
    browser_client, login, login_until, logout_until, ClientConfig, NodeProvider, ProviderOptions,
    CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_CLIENT_SECRET, DEFAULT_API_AUDIENCE,
    DEFAULT_POST_LOGOUT_REDIRECT_URI, DEFAULT_REDIRECT_URI, PUBLIC_CLIENT_ID,
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

/// One hand-made authorization code flow.
struct Flow<'a> {
    client_id: &'a str,
    secret: Option<&'a str>,
    scope: &'a str,
    authorize_extra: Vec<(&'a str, &'a str)>,
    token_extra: Vec<(&'a str, &'a str)>,
    /// A client that already has a provider session (`None`: a fresh one, which must log in).
    http: Option<reqwest::Client>,
}

impl<'a> Flow<'a> {
    fn new(client_id: &'a str, secret: Option<&'a str>) -> Self {
        Self {
            client_id,
            secret,
            scope: "openid email profile",
            authorize_extra: Vec::new(),
            token_extra: Vec::new(),
            http: None,
        }
    }
}

/// What a flow produced.
struct FlowResult {
    http: reqwest::Client,
    metadata: Value,
    tokens: Value,
}

async fn token_request(
    http: &reqwest::Client,
    metadata: &Value,
    client_id: &str,
    secret: Option<&str>,
    mut form: Vec<(&str, &str)>,
) -> (reqwest::StatusCode, Value) {
    let request = http.post(endpoint(metadata, "token_endpoint"));
    let request = match secret {
        Some(secret) => request.basic_auth(client_id, Some(secret)),
        None => {
            form.push(("client_id", client_id));
            request
        }
    };
    let response = request.form(&form).send().await.expect("token request");
    let status = response.status();
    let body = response.text().await.expect("read the token response");
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|err| panic!("token response is not JSON ({err}): {status} {body}"));
    (status, json)
}

async fn userinfo(
    http: &reqwest::Client,
    metadata: &Value,
    access_token: &str,
) -> (reqwest::StatusCode, String) {
    let response = http
        .get(endpoint(metadata, "userinfo_endpoint"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo request");
    let status = response.status();
    (
        status,
        response.text().await.expect("read the userinfo response"),
    )
}

/// Decodes a JWT's payload without checking anything.
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {jwt}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("JWT payload is JSON")
}

/// Runs the code flow by hand for one client, checks the token response and userinfo.
async fn code_flow(provider: &NodeProvider, flow: Flow<'_>) -> FlowResult {
    let signed_in = flow.http.is_some();
    let http = flow.http.clone().unwrap_or_else(browser_client);
    let metadata = discovery(&http, provider).await;

    let verifier = random_token();
    let state = random_token();
    let nonce = random_token();
    let mut authorize =
        Url::parse(&endpoint(&metadata, "authorization_endpoint")).expect("authorization URL");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", flow.client_id)
        .append_pair("redirect_uri", DEFAULT_REDIRECT_URI)
        .append_pair("scope", flow.scope)
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(flow.authorize_extra.iter());

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
    let posted = |suffix: &str| visited.iter().any(|p| p.ends_with(suffix));
    assert_eq!(
        (posted("/login"), posted("/confirm")),
        (!signed_in, !signed_in),
        "login and consent posted only without a provider session: {visited:?}"
    );

    let params: HashMap<String, String> = callback.query_pairs().into_owned().collect();
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
    form.extend(flow.token_extra.iter().copied());
    let (status, tokens) = token_request(&http, &metadata, flow.client_id, flow.secret, form).await;
    assert!(status.is_success(), "token endpoint: {status}: {tokens:#}");
    let id_token = tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {tokens:#}"));
    assert_eq!(tokens["token_type"], "Bearer", "{tokens:#}");
    let id_claims = jwt_claims(id_token);
    assert_eq!(id_claims["nonce"], nonce.as_str(), "{id_claims:#}");
    assert_eq!(id_claims["aud"], flow.client_id, "{id_claims:#}");
    assert_eq!(id_claims["iss"], provider.issuer(), "{id_claims:#}");

    let access_token = tokens["access_token"].as_str().expect("access_token");
    if !access_token.contains('.') {
        // An opaque token is for userinfo; a JWT is for the resource server.
        let (status, body) = userinfo(&http, &metadata, access_token).await;
        assert!(status.is_success(), "userinfo: {status}: {body}");
        let claims: Value = serde_json::from_str(&body).expect("userinfo is JSON");
        assert_eq!(claims["sub"], "alice", "{claims:#}");
        assert_eq!(claims["email"], "alice@example.test", "{claims:#}");
    }
    FlowResult {
        http,
        metadata,
        tokens,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_with_the_confidential_client() {
    let provider = NodeProvider::start(ProviderOptions::new()).await;
    let result = code_flow(
        &provider,
        Flow::new(CONFIDENTIAL_CLIENT_ID, Some(CONFIDENTIAL_CLIENT_SECRET)),
    )
    .await;
    assert!(
        result.tokens.get("refresh_token").is_none(),
        "{:#}",
        result.tokens
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_flow_with_the_public_client() {
    let provider = NodeProvider::start(ProviderOptions::new()).await;
    code_flow(&provider, Flow::new(PUBLIC_CLIENT_ID, None)).await;
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
    let result = code_flow(
        &provider,
        Flow::new(CONFIDENTIAL_CLIENT_ID, Some(CONFIDENTIAL_CLIENT_SECRET)),
    )
    .await;
    assert!(
        result.tokens.get("refresh_token").is_none(),
        "{:#}",
        result.tokens
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_access_and_resource_indicators() {
    let provider = NodeProvider::start(ProviderOptions::new()).await;
    // Public client: offline_access gives a refresh token (no prompt=consent needed), and a
    // resource indicator at both endpoints gives a JWT access token for that audience.
    let mut flow = Flow::new(PUBLIC_CLIENT_ID, None);
    flow.scope = "openid email offline_access api:read";
    flow.authorize_extra = vec![("resource", DEFAULT_API_AUDIENCE)];
    flow.token_extra = vec![("resource", DEFAULT_API_AUDIENCE)];
    let result = code_flow(&provider, flow).await;
    let tokens = &result.tokens;
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token: {tokens:#}"));
    let access = jwt_claims(tokens["access_token"].as_str().expect("access_token"));
    assert_eq!(access["aud"], DEFAULT_API_AUDIENCE, "{access:#}");
    assert_eq!(access["scope"], "api:read", "{access:#}");
    assert_eq!(access["sub"], "alice", "{access:#}");

    // Refresh without a resource: an opaque token for userinfo; the public client's refresh
    // token rotates.
    let (status, refreshed) = token_request(
        &result.http,
        &result.metadata,
        PUBLIC_CLIENT_ID,
        None,
        vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await;
    assert!(status.is_success(), "refresh: {status}: {refreshed:#}");
    assert!(refreshed["id_token"].is_string(), "{refreshed:#}");
    assert_ne!(
        refreshed["refresh_token"], tokens["refresh_token"],
        "{refreshed:#}"
    );
    let (status, body) = userinfo(
        &result.http,
        &result.metadata,
        refreshed["access_token"].as_str().expect("access_token"),
    )
    .await;
    assert!(status.is_success(), "userinfo: {status}: {body}");

    // With the provider session, offline_access is granted again without any page.
    let mut again = Flow::new(PUBLIC_CLIENT_ID, None);
    again.scope = "openid email offline_access";
    again.http = Some(result.http.clone());
    let again = code_flow(&provider, again).await;
    assert!(
        again.tokens["refresh_token"].is_string(),
        "{:#}",
        again.tokens
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_and_logout() {
    let provider = NodeProvider::start(ProviderOptions::new()).await;
    let result = code_flow(
        &provider,
        Flow::new(CONFIDENTIAL_CLIENT_ID, Some(CONFIDENTIAL_CLIENT_SECRET)),
    )
    .await;

    let (status, tokens) = token_request(
        &result.http,
        &result.metadata,
        CONFIDENTIAL_CLIENT_ID,
        Some(CONFIDENTIAL_CLIENT_SECRET),
        vec![
            ("grant_type", "client_credentials"),
            ("resource", DEFAULT_API_AUDIENCE),
            ("scope", "api:write"),
        ],
    )
    .await;
    assert!(
        status.is_success(),
        "client_credentials: {status}: {tokens:#}"
    );
    let access = jwt_claims(tokens["access_token"].as_str().expect("access_token"));
    assert_eq!(access["aud"], DEFAULT_API_AUDIENCE, "{access:#}");
    assert_eq!(access["client_id"], CONFIDENTIAL_CLIENT_ID, "{access:#}");

    // RP-initiated logout through the confirmation form, back to the client with its state.
    let mut end_session =
        Url::parse(&endpoint(&result.metadata, "end_session_endpoint")).expect("end session URL");
    end_session
        .query_pairs_mut()
        .append_pair(
            "id_token_hint",
            result.tokens["id_token"].as_str().expect("id_token"),
        )
        .append_pair("post_logout_redirect_uri", DEFAULT_POST_LOGOUT_REDIRECT_URI)
        .append_pair("state", "bye");
    let navigation = logout_until(
        &result.http,
        provider.issuer(),
        end_session.as_str(),
        |url| url.as_str().starts_with(DEFAULT_POST_LOGOUT_REDIRECT_URI),
    )
    .await;
    let back = navigation.stopped_at.clone().unwrap_or_else(|| {
        panic!(
            "logout did not return to the client: {} {}\n{}",
            navigation.status, navigation.url, navigation.body
        )
    });
    assert!(
        navigation
            .visited
            .iter()
            .any(|url| url.path().ends_with("/session/end/confirm")),
        "{:#?}",
        navigation.visited
    );
    assert_eq!(
        back.query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned()),
        Some("bye".to_owned()),
        "{back}"
    );

    // The provider session is gone: the next authorization request asks for a login again.
    let mut authorize = Url::parse(&endpoint(&result.metadata, "authorization_endpoint"))
        .expect("authorization URL");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CONFIDENTIAL_CLIENT_ID)
        .append_pair("redirect_uri", DEFAULT_REDIRECT_URI)
        .append_pair("scope", "openid")
        .append_pair("code_challenge", &pkce_challenge(&random_token()))
        .append_pair("code_challenge_method", "S256");
    let navigation = login_until(
        &result.http,
        provider.issuer(),
        authorize.as_str(),
        "alice",
        "wrong password",
        |url| url.as_str().starts_with(DEFAULT_REDIRECT_URI),
    )
    .await;
    assert_eq!(navigation.stopped_at, None);
    assert!(
        navigation.body.contains("Invalid login or password"),
        "{}",
        navigation.body
    );

    // Cancelling the login sends access_denied to the client.
    let abort = navigation.url.join("abort").expect("abort URL");
    assert!(
        navigation.body.contains(abort.path()),
        "{}",
        navigation.body
    );
    let navigation = login_until(
        &result.http,
        provider.issuer(),
        abort.as_str(),
        "alice",
        "alice",
        |url| url.as_str().starts_with(DEFAULT_REDIRECT_URI),
    )
    .await;
    let callback = navigation.stopped_at.expect("redirect to the client");
    let params: HashMap<String, String> = callback.query_pairs().into_owned().collect();
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("access_denied"),
        "{callback}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_form_post_and_backchannel_logout() {
    // A relying party's back-channel logout endpoint on a loopback port.
    let (logout_tx, mut logout_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/backchannel-logout",
        axum::routing::post(move |body: String| {
            let logout_tx = logout_tx.clone();
            async move {
                let _ = logout_tx.send(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the back-channel logout receiver");
    let rp = listener.local_addr().expect("receiver address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    // http://localhost redirect URIs for a `code id_token` client (implicit-force-https and
    // implicit-forbid-localhost are off in provider.mjs).
    let redirect_uri = format!("http://localhost:{}/auth/callback", rp.port());
    let client = ClientConfig::confidential("rp-hybrid", "hybrid-secret")
        .response_types(&["code id_token", "code"])
        .grant_types(&["authorization_code", "implicit", "refresh_token"])
        .redirect_uri(&redirect_uri)
        .post_logout_redirect_uri(DEFAULT_POST_LOGOUT_REDIRECT_URI)
        .backchannel_logout_uri(&format!("http://{rp}/backchannel-logout"));
    let provider = NodeProvider::start(ProviderOptions::new().client(client)).await;
    let http = browser_client();
    let metadata = discovery(&http, &provider).await;

    let nonce = random_token();
    let mut authorize =
        Url::parse(&endpoint(&metadata, "authorization_endpoint")).expect("authorization URL");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code id_token")
        .append_pair("response_mode", "form_post")
        .append_pair("client_id", "rp-hybrid")
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid email")
        .append_pair("state", "hybrid-state")
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &pkce_challenge(&random_token()))
        .append_pair("code_challenge_method", "S256");
    let navigation = login(&http, provider.issuer(), authorize.as_str(), "bob", "bob").await;
    // The last page is the provider's auto-submitting form to the redirect URI.
    let form = html::find_form(&navigation.body, |action| action == redirect_uri)
        .unwrap_or_else(|| panic!("no form_post page: {}\n{}", navigation.url, navigation.body));
    assert_eq!(form.method, "post");
    let fields: HashMap<String, String> = form.hidden_fields().into_iter().collect();
    assert_eq!(
        fields.get("state").map(String::as_str),
        Some("hybrid-state")
    );
    // oidc-provider leaves `iss` out of a response that carries an ID token (RFC 9207 §2.4).
    assert_eq!(fields.get("iss"), None, "{fields:?}");
    assert!(fields.contains_key("code"), "{fields:?}");
    let id_token = fields.get("id_token").expect("front-channel id_token");
    let claims = jwt_claims(id_token);
    assert_eq!(claims["sub"], "bob", "{claims:#}");
    assert_eq!(claims["nonce"], nonce.as_str(), "{claims:#}");
    assert!(claims["c_hash"].is_string(), "{claims:#}");
    let sid = claims["sid"]
        .as_str()
        .expect("sid in the ID token")
        .to_owned();

    // Ending the provider session notifies the client over the back channel.
    let mut end_session =
        Url::parse(&endpoint(&metadata, "end_session_endpoint")).expect("end session URL");
    end_session
        .query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", DEFAULT_POST_LOGOUT_REDIRECT_URI);
    let navigation = logout_until(&http, provider.issuer(), end_session.as_str(), |url| {
        url.as_str().starts_with(DEFAULT_POST_LOGOUT_REDIRECT_URI)
    })
    .await;
    assert!(navigation.stopped_at.is_some(), "{}", navigation.body);
    // The provider notifies on its own schedule: a generous deadline, not a guess.
    let body = tokio::time::timeout(std::time::Duration::from_secs(30), logout_rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no back-channel logout; provider log:\n{}", provider.logs()))
        .expect("logout receiver open");
    let logout_token = form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no logout_token in {body}"));
    let logout_claims = jwt_claims(&logout_token);
    assert_eq!(logout_claims["sid"], sid.as_str(), "{logout_claims:#}");
    assert_eq!(logout_claims["aud"], "rp-hybrid", "{logout_claims:#}");
    assert!(
        logout_claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object(),
        "{logout_claims:#}"
    );
}
