//! Integration tests of the development provider, driven over HTTP.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;
use tower_oidc::dev::{DevClient, DevProvider, DevSigningAlg, DevUser, Fault, IdTokenFault};
use url::Url;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const SCOPE: &str = "openid profile email offline_access";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

fn challenge(verifier: &str) -> String {
    B64.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

async fn auto_provider() -> DevProvider {
    DevProvider::builder()
        .auto_login(Some("alice".to_owned()))
        .start()
        .await
        .expect("provider starts")
}

/// Authorization request parameters with overrides; `("name", "")` removes a default.
fn authorize_url(p: &DevProvider, client_id: &str, overrides: &[(&str, &str)]) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), client_id.into()),
        ("redirect_uri".into(), REDIRECT.into()),
        ("scope".into(), SCOPE.into()),
        ("state".into(), "st-1".into()),
        ("nonce".into(), "n-1".into()),
    ];
    for (k, v) in overrides {
        params.retain(|(name, _)| name != k);
        if !v.is_empty() {
            params.push(((*k).into(), (*v).into()));
        }
    }
    let mut url = Url::parse(&format!("{}/authorize", p.issuer())).expect("url");
    url.query_pairs_mut().extend_pairs(params);
    url.to_string()
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

async fn redirect_of(resp: reqwest::Response) -> HashMap<String, String> {
    assert_eq!(resp.status(), StatusCode::FOUND, "expected a redirect");
    let location = resp.headers()["location"].to_str().expect("location");
    let url = Url::parse(location).expect("absolute location");
    assert!(location.starts_with(REDIRECT), "{location}");
    query(&url)
}

/// Runs `/authorize` with automatic login and returns the redirect's parameters.
async fn authorize(
    p: &DevProvider,
    c: &reqwest::Client,
    client_id: &str,
    overrides: &[(&str, &str)],
) -> HashMap<String, String> {
    let resp = c
        .get(authorize_url(p, client_id, overrides))
        .send()
        .await
        .expect("authorize");
    redirect_of(resp).await
}

async fn code_for(
    p: &DevProvider,
    c: &reqwest::Client,
    client_id: &str,
    o: &[(&str, &str)],
) -> String {
    let q = authorize(p, c, client_id, o).await;
    assert_eq!(q.get("state").map(String::as_str), Some("st-1"));
    assert_eq!(q.get("iss").map(String::as_str), Some(p.issuer()));
    q.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {q:?}"))
}

struct TokenResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn token(
    p: &DevProvider,
    c: &reqwest::Client,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> TokenResponse {
    let mut req = c.post(format!("{}/token", p.issuer())).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.expect("token request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    TokenResponse {
        status,
        headers,
        body,
    }
}

async fn exchange_basic(p: &DevProvider, c: &reqwest::Client, code: &str) -> TokenResponse {
    token(
        p,
        c,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ],
        Some(("dev-client", "dev-secret")),
    )
    .await
}

fn decode(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let header = B64.decode(parts.next().expect("header")).expect("b64");
    let claims = B64.decode(parts.next().expect("claims")).expect("b64");
    (
        serde_json::from_slice(&header).expect("json"),
        serde_json::from_slice(&claims).expect("json"),
    )
}

async fn get_json(c: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let resp = c.get(url).send().await.expect("get");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Verifies a JWS against the provider's JWKS; returns whether it verified.
async fn verify(p: &DevProvider, c: &reqwest::Client, jwt: &str) -> bool {
    let (_, jwks) = get_json(c, &format!("{}/jwks", p.issuer())).await;
    let (header, _) = decode(jwt);
    let Some((input, sig)) = jwt.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = B64.decode(sig) else {
        return false;
    };
    let Some(jwk) = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    let field = |name: &str| B64.decode(jwk[name].as_str().expect("field")).expect("b64");
    match header["alg"].as_str() {
        Some("RS256") => {
            assert_eq!(jwk["kty"], "RSA");
            ring::signature::RsaPublicKeyComponents {
                n: field("n"),
                e: field("e"),
            }
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &sig,
            )
            .is_ok()
        }
        Some("ES256") => {
            assert_eq!(jwk["kty"], "EC");
            let mut point = vec![4u8];
            point.extend(field("x"));
            point.extend(field("y"));
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(input.as_bytes(), &sig)
            .is_ok()
        }
        _ => false,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

async fn userinfo(p: &DevProvider, c: &reqwest::Client, access_token: &str) -> reqwest::Response {
    c.get(format!("{}/userinfo", p.issuer()))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("userinfo")
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Finds the `<form>` carrying `marker` and returns its action and fields.
fn form_with(page: &str, marker: &str) -> (String, Vec<(String, String)>) {
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in page"));
    let start = page[..at].rfind("<form").expect("form start");
    let end = at + page[at..].find("</form>").expect("form end");
    let form = &page[start..end];
    let attr = |text: &str, name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let i = text.find(&key)? + key.len();
        let j = text[i..].find('"')? + i;
        Some(html_unescape(&text[i..j]))
    };
    let action = attr(form, "action").expect("action");
    let mut fields = Vec::new();
    for tag in form
        .split('<')
        .filter(|t| t.starts_with("input") || t.starts_with("button"))
    {
        if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((n, v));
        }
    }
    (action, fields)
}

#[tokio::test]
async fn discovery_document() {
    let p = DevProvider::start().await.expect("start");
    let c = http();
    let (status, doc) = get_json(
        &c,
        &format!("{}/.well-known/openid-configuration", p.issuer()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let iss = p.issuer();
    assert!(iss.starts_with("http://127.0.0.1:") && !iss.ends_with('/'));
    assert_eq!(
        p.addr().port().to_string(),
        iss.rsplit(':').next().unwrap_or_default()
    );
    assert_eq!(doc["issuer"], iss);
    assert_eq!(doc["authorization_endpoint"], format!("{iss}/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{iss}/token"));
    assert_eq!(doc["userinfo_endpoint"], format!("{iss}/userinfo"));
    assert_eq!(doc["jwks_uri"], format!("{iss}/jwks"));
    assert_eq!(doc["end_session_endpoint"], format!("{iss}/end_session"));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256", "plain"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    for scope in ["openid", "profile", "email", "offline_access"] {
        assert!(doc["scopes_supported"]
            .as_array()
            .expect("scopes")
            .contains(&scope.into()));
    }
    for claim in ["sub", "iss", "name", "email", "email_verified", "sid"] {
        assert!(doc["claims_supported"]
            .as_array()
            .expect("claims")
            .contains(&claim.into()));
    }
    assert!(doc["grant_types_supported"]
        .as_array()
        .expect("grants")
        .contains(&"refresh_token".into()));
    assert_eq!(p.stats().discovery_requests, 1);
}

#[tokio::test]
async fn jwks_lists_the_signing_key() {
    let p = DevProvider::start().await.expect("start");
    let (status, jwks) = get_json(&http(), &format!("{}/jwks", p.issuer())).await;
    assert_eq!(status, StatusCode::OK);
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k["kty"], "RSA");
    assert_eq!(k["alg"], "RS256");
    assert_eq!(k["use"], "sig");
    assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()));
    let n = B64.decode(k["n"].as_str().expect("n")).expect("b64");
    assert_eq!(n.len(), 256, "2048-bit modulus");
    assert_eq!(k["e"], "AQAB");
    assert_eq!(p.stats().jwks_requests, 1);
}

#[tokio::test]
async fn confidential_client_code_flow_with_basic_auth() {
    let p = auto_provider().await;
    let c = http();
    let code = code_for(&p, &c, "dev-client", &[]).await;
    let t = exchange_basic(&p, &c, &code).await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert_eq!(t.headers["cache-control"], "no-store");
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["expires_in"], 600);
    assert_eq!(t.body["scope"], SCOPE);
    assert!(t.body["refresh_token"].is_string());
    let access = t.body["access_token"].as_str().expect("access token");
    let id = t.body["id_token"].as_str().expect("id token");

    let (header, claims) = decode(id);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert!(
        verify(&p, &c, id).await,
        "ID token signature verifies against the JWKS"
    );
    assert_eq!(claims["iss"], p.issuer());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "dev-client");
    assert_eq!(claims["azp"], "dev-client");
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["email_verified"], true);
    assert!(claims["sid"].is_string());
    let (iat, exp) = (
        claims["iat"].as_i64().expect("iat"),
        claims["exp"].as_i64().expect("exp"),
    );
    assert!((iat - now()).abs() <= 5);
    assert_eq!(exp - iat, 300);
    assert!(claims["auth_time"].as_i64().expect("auth_time") <= iat);
    let digest = ring::digest::digest(&ring::digest::SHA256, access.as_bytes());
    assert_eq!(claims["at_hash"], B64.encode(&digest.as_ref()[..16]));

    let (at_header, at) = decode(access);
    assert_eq!(at_header["typ"], "at+jwt");
    assert!(verify(&p, &c, access).await);
    assert_eq!(at["iss"], p.issuer());
    assert_eq!(at["sub"], "alice");
    assert_eq!(at["aud"], "dev-client");
    assert_eq!(at["client_id"], "dev-client");
    assert_eq!(at["scope"], SCOPE);
    assert!(at["jti"].is_string() && at["exp"].is_i64() && at["iat"].is_i64());

    let resp = userinfo(&p, &c, access).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let info: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["name"], "Alice Example");
    let stats = p.stats();
    assert_eq!((stats.token_requests, stats.userinfo_requests), (1, 1));
}

#[tokio::test]
async fn confidential_client_with_post_auth_and_narrow_scope() {
    let p = DevProvider::builder()
        .auto_login(Some("bob".to_owned()))
        .access_token_audience("https://api.example")
        .start()
        .await
        .expect("start");
    let c = http();
    let code = code_for(&p, &c, "dev-client", &[("scope", "openid"), ("nonce", "")]).await;
    let t = token(
        &p,
        &c,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "dev-client"),
            ("client_secret", "dev-secret"),
        ],
        None,
    )
    .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    assert!(
        t.body.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    let (_, claims) = decode(t.body["id_token"].as_str().expect("id token"));
    assert_eq!(claims["sub"], "bob");
    assert!(claims.get("nonce").is_none() && claims.get("email").is_none());
    let (_, at) = decode(t.body["access_token"].as_str().expect("access"));
    assert_eq!(
        at["aud"],
        serde_json::json!(["dev-client", "https://api.example"])
    );
    let resp = userinfo(&p, &c, t.body["access_token"].as_str().expect("access")).await;
    let info: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_eq!(info, serde_json::json!({ "sub": "bob" }));
}

#[tokio::test]
async fn public_client_logs_in_through_the_login_page_with_pkce() {
    let p = DevProvider::start().await.expect("start");
    let c = http();
    let url = authorize_url(
        &p,
        "dev-public",
        &[
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
            ("state", "a&b<\"c\">"),
        ],
    );
    let resp = c.get(url).send().await.expect("authorize");
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.expect("page");
    assert!(page.contains("data-sub=\"alice\"") && page.contains("data-sub=\"bob\""));
    let (action, fields) = form_with(&page, "data-sub=\"bob\"");
    assert_eq!(action, format!("{}/authorize/login", p.issuer()));
    let resp = c.post(&action).form(&fields).send().await.expect("login");
    let q = redirect_of(resp).await;
    assert_eq!(q["state"], "a&b<\"c\">");
    assert_eq!(q["iss"], p.issuer());
    let code = &q["code"];

    let t = token(
        &p,
        &c,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "dev-public"),
            ("code_verifier", VERIFIER),
        ],
        None,
    )
    .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
    let (_, claims) = decode(t.body["id_token"].as_str().expect("id token"));
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["aud"], "dev-public");

    // Cancel on the login page.
    let resp = c
        .get(authorize_url(&p, "dev-client", &[]))
        .send()
        .await
        .expect("authorize");
    let (action, fields) = form_with(&resp.text().await.expect("page"), "data-action=\"cancel\"");
    let resp = c.post(&action).form(&fields).send().await.expect("cancel");
    let q = redirect_of(resp).await;
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-1");
}

#[tokio::test]
async fn authorization_errors() {
    let p = auto_provider().await;
    let c = http();

    // Untrusted client or redirect URI: an error page, never a redirect.
    for (client, overrides) in [
        ("nobody", vec![]),
        (
            "dev-client",
            vec![("redirect_uri", "https://evil.example/cb")],
        ),
        ("dev-client", vec![("redirect_uri", "")]),
    ] {
        let resp = c
            .get(authorize_url(&p, client, &overrides))
            .send()
            .await
            .expect("authorize");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.headers().get("location").is_none());
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html"));
    }

    type Case = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "dev-client",
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            "dev-client",
            vec![("scope", "profile email")],
            "invalid_scope",
        ),
        ("dev-public", vec![], "invalid_request"),
        (
            "dev-client",
            vec![
                ("code_challenge", "x".repeat(43).leak()),
                ("code_challenge_method", "S512"),
            ],
            "invalid_request",
        ),
        (
            "dev-client",
            vec![("response_mode", "fragment")],
            "invalid_request",
        ),
    ];
    for (client, overrides, error) in cases {
        let q = authorize(&p, &c, client, &overrides).await;
        assert_eq!(
            q.get("error").map(String::as_str),
            Some(error),
            "{overrides:?}: {q:?}"
        );
        assert_eq!(q["state"], "st-1");
        assert_eq!(q["iss"], p.issuer());
        assert!(q.contains_key("error_description") && !q.contains_key("code"));
    }

    p.set_auto_login(None);
    let q = authorize(&p, &c, "dev-client", &[("prompt", "none")]).await;
    assert_eq!(q["error"], "login_required");
    assert_eq!(p.stats().authorization_requests, 9);
}

#[tokio::test]
async fn registered_redirect_uris_are_matched_exactly() {
    let p = DevProvider::builder()
        .client(DevClient::confidential("app", "s3cret").redirect_uri("https://app.example/cb"))
        .auto_login(Some("alice".to_owned()))
        .start()
        .await
        .expect("start");
    let c = http();
    let ok = c
        .get(authorize_url(
            &p,
            "app",
            &[("redirect_uri", "https://app.example/cb")],
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(ok.status(), StatusCode::FOUND);
    assert!(ok.headers()["location"]
        .to_str()
        .unwrap_or_default()
        .starts_with("https://app.example/cb?code="));
    let loopback = c
        .get(authorize_url(&p, "app", &[]))
        .send()
        .await
        .expect("authorize");
    assert_eq!(loopback.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn token_errors() {
    let p = auto_provider().await;
    let c = http();

    // Wrong secret over Basic: 401 with a Basic challenge.
    let code = code_for(&p, &c, "dev-client", &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let t = token(&p, &c, &form, Some(("dev-client", "wrong"))).await;
    assert_eq!(t.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.body["error"], "invalid_client");
    assert!(t.headers["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .starts_with("Basic"));
    // Unknown client in the body: 401.
    let t = token(
        &p,
        &c,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "nobody"),
            ("client_secret", "x"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (t.status, t.body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    // redirect_uri differs.
    let t = token(
        &p,
        &c,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
        ],
        Some(("dev-client", "dev-secret")),
    )
    .await;
    assert_eq!(
        (t.status, t.body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // Unsupported grant type, missing grant type.
    let t = token(
        &p,
        &c,
        &[("grant_type", "password")],
        Some(("dev-client", "dev-secret")),
    )
    .await;
    assert_eq!(t.body["error"], "unsupported_grant_type");
    let t = token(
        &p,
        &c,
        &[("code", &code)],
        Some(("dev-client", "dev-secret")),
    )
    .await;
    assert_eq!(t.body["error"], "invalid_request");
    // The code is still good after those failures.
    let t = exchange_basic(&p, &c, &code).await;
    assert_eq!(t.status, StatusCode::OK);

    // PKCE: wrong verifier, missing verifier, then the right one.
    let pkce = [
        ("code_challenge", challenge(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
    ];
    let pkce: Vec<(&str, &str)> = pkce.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let code = code_for(&p, &c, "dev-public", &pkce).await;
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", "dev-public"),
    ];
    let wrong_verifier = "A".repeat(43);
    let wrong = [&base[..], &[("code_verifier", wrong_verifier.as_str())]].concat();
    let t = token(&p, &c, &wrong, None).await;
    assert_eq!(
        (t.status, t.body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let t = token(&p, &c, &base, None).await;
    assert_eq!(t.body["error"], "invalid_grant");
    let right = [&base[..], &[("code_verifier", VERIFIER)]].concat();
    assert_eq!(token(&p, &c, &right, None).await.status, StatusCode::OK);

    // Plain PKCE.
    let code = code_for(
        &p,
        &c,
        "dev-public",
        &[
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
        ],
    )
    .await;
    let t = token(
        &p,
        &c,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "dev-public"),
            ("code_verifier", VERIFIER),
        ],
        None,
    )
    .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.body);
}

#[tokio::test]
async fn code_replay_revokes_tokens() {
    let p = auto_provider().await;
    let c = http();
    let code = code_for(&p, &c, "dev-client", &[]).await;
    let first = exchange_basic(&p, &c, &code).await;
    assert_eq!(first.status, StatusCode::OK);
    let access = first.body["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    assert_eq!(userinfo(&p, &c, &access).await.status(), StatusCode::OK);

    let second = exchange_basic(&p, &c, &code).await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(second.body["error"], "invalid_grant");

    let resp = userinfo(&p, &c, &access).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .contains("error=\"invalid_token\""));
    let refresh = first.body["refresh_token"].as_str().expect("refresh");
    let t = token(
        &p,
        &c,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        Some(("dev-client", "dev-secret")),
    )
    .await;
    assert_eq!(t.body["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let p = auto_provider().await;
    let c = http();
    let code = code_for(&p, &c, "dev-client", &[]).await;
    let first = exchange_basic(&p, &c, &code).await;
    let r1 = first.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let (_, first_claims) = decode(first.body["id_token"].as_str().expect("id"));
    let refresh = |rt: String| {
        let (p, c) = (&p, &c);
        async move {
            token(
                p,
                c,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                Some(("dev-client", "dev-secret")),
            )
            .await
        }
    };

    let second = refresh(r1.clone()).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let r2 = second.body["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(r1, r2);
    let id = second.body["id_token"].as_str().expect("new ID token");
    assert!(verify(&p, &c, id).await);
    let (_, claims) = decode(id);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["sid"], first_claims["sid"]);
    assert_eq!(claims["auth_time"], first_claims["auth_time"]);
    assert!(claims.get("nonce").is_none());
    let access2 = second.body["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    assert_eq!(userinfo(&p, &c, &access2).await.status(), StatusCode::OK);

    // Narrowing the scope is allowed, widening is not.
    let t = token(
        &p,
        &c,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r2),
            ("scope", "openid admin"),
        ],
        Some(("dev-client", "dev-secret")),
    )
    .await;
    assert_eq!(t.body["error"], "invalid_scope");

    // Reusing the rotated token: refused, and the whole family is revoked.
    let reuse = refresh(r1).await;
    assert_eq!(
        (reuse.status, reuse.body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(refresh(r2).await.body["error"], "invalid_grant");
    assert_eq!(
        userinfo(&p, &c, &access2).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn userinfo_requires_a_valid_bearer_token() {
    let p = DevProvider::start().await.expect("start");
    let c = http();
    let resp = c
        .get(format!("{}/userinfo", p.issuer()))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .starts_with("Bearer"));
    let resp = userinfo(&p, &c, "not-a-token").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .contains("invalid_token"));
    let resp = c
        .post(format!("{}/userinfo", p.issuer()))
        .bearer_auth("nope")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn end_session_redirects_to_registered_uris() {
    let p = auto_provider().await;
    let c = http();
    let code = code_for(&p, &c, "dev-client", &[]).await;
    let t = exchange_basic(&p, &c, &code).await;
    let hint = t.body["id_token"].as_str().expect("id").to_owned();
    let end = |params: Vec<(&'static str, String)>| {
        let mut url = Url::parse(&format!("{}/end_session", p.issuer())).expect("url");
        url.query_pairs_mut().extend_pairs(params);
        c.get(url.to_string()).send()
    };

    let resp = end(vec![
        ("id_token_hint", hint.clone()),
        (
            "post_logout_redirect_uri",
            "http://localhost:3000/bye".into(),
        ),
        ("state", "s-9".into()),
    ])
    .await
    .expect("logout");
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        resp.headers()["location"],
        "http://localhost:3000/bye?state=s-9"
    );

    // Client identified by client_id instead of the hint.
    let resp = end(vec![
        ("client_id", "dev-public".into()),
        ("post_logout_redirect_uri", "http://127.0.0.1:3000/".into()),
    ])
    .await
    .expect("logout");
    assert_eq!(resp.status(), StatusCode::FOUND);

    // Not registered (not loopback): signed-out page, no redirect.
    let resp = end(vec![
        ("id_token_hint", hint.clone()),
        ("post_logout_redirect_uri", "https://evil.example/".into()),
    ])
    .await
    .expect("logout");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.expect("page").contains("signed out"));

    // No parameters at all.
    assert_eq!(end(vec![]).await.expect("logout").status(), StatusCode::OK);

    // A forged hint is refused.
    let (h, rest) = hint.split_once('.').expect("jwt");
    let mut claims = decode(&hint).1;
    claims["sub"] = "mallory".into();
    let forged = format!(
        "{h}.{}.{}",
        B64.encode(claims.to_string()),
        rest.rsplit('.').next().unwrap_or_default()
    );
    let resp = end(vec![("id_token_hint", forged)]).await.expect("logout");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(p.stats().end_session_requests, 5);
}

#[tokio::test]
async fn key_rotation_changes_the_kid() {
    let p = auto_provider().await;
    let c = http();
    let (_, before) = get_json(&c, &format!("{}/jwks", p.issuer())).await;
    let old_kid = before["keys"][0]["kid"].clone();
    let code = code_for(&p, &c, "dev-client", &[]).await;
    let old_id = exchange_basic(&p, &c, &code).await.body["id_token"]
        .as_str()
        .expect("id")
        .to_owned();

    p.rotate_keys();
    let (_, after) = get_json(&c, &format!("{}/jwks", p.issuer())).await;
    let keys = after["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0]["kid"], old_kid);
    let code = code_for(&p, &c, "dev-client", &[]).await;
    let id = exchange_basic(&p, &c, &code).await.body["id_token"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(decode(&id).0["kid"], keys[0]["kid"]);
    assert!(verify(&p, &c, &id).await);
    assert!(
        !verify(&p, &c, &old_id).await,
        "old key is gone from the JWKS"
    );

    // An ID token signed with the retired key is still a valid logout hint.
    let resp = c
        .get(format!(
            "{}/end_session?id_token_hint={old_id}&post_logout_redirect_uri=http://127.0.0.1/",
            p.issuer()
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn es256_with_issuer_path_and_custom_users() {
    let p = DevProvider::builder()
        .issuer_path("/tenant-a/")
        .signing_alg(DevSigningAlg::Es256)
        .user(DevUser::new("carol", "Carol Example", "carol@example.com"))
        .auto_login(Some("carol".to_owned()))
        .id_token_ttl(Duration::from_secs(60))
        .start()
        .await
        .expect("start");
    assert!(p.issuer().ends_with("/tenant-a"));
    assert_eq!(p.users().len(), 1);
    let c = http();
    let (_, doc) = get_json(
        &c,
        &format!("{}/.well-known/openid-configuration", p.issuer()),
    )
    .await;
    assert_eq!(doc["issuer"], p.issuer());
    assert_eq!(doc["token_endpoint"], format!("{}/token", p.issuer()));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    let (_, jwks) = get_json(&c, &format!("{}/jwks", p.issuer())).await;
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
    assert_eq!(jwks["keys"][0]["alg"], "ES256");

    let code = code_for(&p, &c, "dev-client", &[]).await;
    let t = exchange_basic(&p, &c, &code).await;
    let id = t.body["id_token"].as_str().expect("id");
    assert_eq!(decode(id).0["alg"], "ES256");
    assert!(verify(&p, &c, id).await);
    let claims = decode(id).1;
    assert_eq!(claims["sub"], "carol");
    assert_eq!(
        claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0),
        60
    );
    assert!(DevProvider::builder()
        .issuer_path("/a b")
        .start()
        .await
        .is_err());
}

#[tokio::test]
async fn debug_output_hides_secrets() {
    let p = DevProvider::start().await.expect("start");
    assert_eq!(
        p.confidential_client().secret.as_deref(),
        Some("dev-secret")
    );
    assert!(p.public_client().secret.is_none());
    let text = format!("{p:?} {:?}", DevProvider::builder());
    assert!(text.contains("dev-client") && text.contains("[redacted]"));
    assert!(!text.contains("dev-secret"));
}

#[tokio::test]
async fn faults_have_observable_effects() {
    let p = auto_provider().await;
    let c = http();
    let iss = p.issuer().to_owned();

    // Down: every endpoint answers 503.
    p.set_fault(Fault::Down);
    for path in [
        "/.well-known/openid-configuration",
        "/jwks",
        "/userinfo",
        "/end_session",
        "/authorize",
    ] {
        let resp = c.get(format!("{iss}{path}")).send().await.expect("get");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
    }
    let resp = c
        .post(format!("{iss}/token"))
        .form(&[("grant_type", "x")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    p.clear_faults();
    assert_eq!(get_json(&c, &format!("{iss}/jwks")).await.0, StatusCode::OK);

    // Delay.
    p.set_fault(Fault::Delay(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    get_json(&c, &format!("{iss}/jwks")).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    p.clear_faults();

    // Authorization endpoint faults.
    p.set_fault(Fault::AuthorizeError("temporarily_unavailable".into()));
    let q = authorize(&p, &c, "dev-client", &[]).await;
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()),
        ("temporarily_unavailable", "st-1", iss.as_str())
    );
    p.clear_faults();
    p.set_fault(Fault::WrongAuthorizationIss);
    let q = authorize(&p, &c, "dev-client", &[]).await;
    assert!(q.contains_key("code"));
    assert_ne!(q["iss"], iss);
    p.clear_faults();

    // Token endpoint faults.
    p.set_fault(Fault::TokenError("slow_down".into()));
    let code = code_for(&p, &c, "dev-client", &[]).await;
    let t = exchange_basic(&p, &c, &code).await;
    assert_eq!(
        (t.status, t.body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("slow_down"))
    );
    p.clear_faults();
    p.set_fault(Fault::TokenType("DPoP".into()));
    p.set_fault(Fault::MissingIdToken);
    let t = exchange_basic(&p, &c, &code).await;
    assert_eq!(t.status, StatusCode::OK);
    assert_eq!(t.body["token_type"], "DPoP");
    assert!(t.body.get("id_token").is_none());
    p.clear_faults();

    // Userinfo with a different subject.
    p.set_fault(Fault::UserinfoSubMismatch);
    let resp = userinfo(&p, &c, t.body["access_token"].as_str().expect("access")).await;
    let info: Value = serde_json::from_str(&resp.text().await.expect("body")).expect("json");
    assert_ne!(info["sub"], "alice");
    p.clear_faults();

    // ID token faults.
    let faults = [
        IdTokenFault::BadSignature,
        IdTokenFault::WrongIssuer,
        IdTokenFault::WrongAudience,
        IdTokenFault::Expired,
        IdTokenFault::IssuedInFuture,
        IdTokenFault::WrongNonce,
        IdTokenFault::AlgNone,
        IdTokenFault::UnknownKid,
        IdTokenFault::WrongAtHash,
        IdTokenFault::HmacWithPublicKey,
        IdTokenFault::MultipleAudiencesWithoutAzp,
    ];
    for fault in faults {
        p.clear_faults();
        p.set_fault(Fault::IdToken(fault));
        let code = code_for(&p, &c, "dev-client", &[]).await;
        let t = exchange_basic(&p, &c, &code).await;
        let id = t.body["id_token"].as_str().expect("id token").to_owned();
        let access = t.body["access_token"].as_str().expect("access").to_owned();
        let (header, claims) = decode(&id);
        let verified = verify(&p, &c, &id).await;
        match fault {
            IdTokenFault::BadSignature => assert!(!verified),
            IdTokenFault::WrongIssuer => assert!(verified && claims["iss"] != iss.as_str()),
            IdTokenFault::WrongAudience => assert!(verified && claims["aud"] != "dev-client"),
            IdTokenFault::Expired => {
                assert!(claims["exp"].as_i64().unwrap_or(i64::MAX) < now() - 60)
            }
            IdTokenFault::IssuedInFuture => {
                assert!(claims["iat"].as_i64().unwrap_or(0) > now() + 60)
            }
            IdTokenFault::WrongNonce => assert!(verified && claims["nonce"] != "n-1"),
            IdTokenFault::AlgNone => {
                assert_eq!(header["alg"], "none");
                assert!(id.ends_with('.'));
            }
            IdTokenFault::UnknownKid => assert!(!verified && header["alg"] == "RS256"),
            IdTokenFault::WrongAtHash => {
                let digest = ring::digest::digest(&ring::digest::SHA256, access.as_bytes());
                assert!(
                    verified && claims["at_hash"] != B64.encode(&digest.as_ref()[..16]).as_str()
                );
            }
            IdTokenFault::HmacWithPublicKey => assert_eq!(header["alg"], "HS256"),
            IdTokenFault::MultipleAudiencesWithoutAzp => {
                assert!(verified && claims["aud"].as_array().is_some_and(|a| a.len() == 2));
                assert!(claims.get("azp").is_none());
            }
            _ => unreachable!("new fault without a check"),
        }
    }
    p.clear_faults();
    let code = code_for(&p, &c, "dev-client", &[]).await;
    let t = exchange_basic(&p, &c, &code).await;
    assert!(verify(&p, &c, t.body["id_token"].as_str().expect("id")).await);
}

#[tokio::test]
async fn malformed_requests_get_errors_not_panics() {
    let p = DevProvider::start().await.expect("start");
    let c = http();
    let iss = p.issuer();
    for raw in [
        "%%%",
        "client_id=dev-client&client_id=x",
        "client_id=%FF%FE",
        "redirect_uri=::",
    ] {
        let resp = c
            .get(format!("{iss}/authorize?{raw}"))
            .send()
            .await
            .expect("authorize");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{raw}");
    }
    let resp = c
        .post(format!("{iss}/token"))
        .header("authorization", "Basic !!!")
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = c
        .post(format!("{iss}/token"))
        .body("{}")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = c
        .get(format!("{iss}/end_session?id_token_hint=a.b.c"))
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = c
        .post(format!("{iss}/authorize/login"))
        .form(&[
            ("client_id", "dev-client"),
            ("redirect_uri", REDIRECT),
            ("sub", "nobody"),
            ("response_type", "code"),
            ("scope", "openid"),
        ])
        .send()
        .await
        .expect("login");
    let q = redirect_of(resp).await;
    assert_eq!(q["error"], "invalid_request");
}

#[tokio::test]
async fn form_post_response_mode_and_post_authorization_requests() {
    let p = auto_provider().await;
    let c = http();
    let resp = c
        .get(authorize_url(
            &p,
            "dev-client",
            &[("response_mode", "form_post")],
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.expect("page");
    let (action, fields) = form_with(&page, "name=\"code\"");
    assert_eq!(action, REDIRECT);
    let fields: HashMap<_, _> = fields.into_iter().collect();
    assert_eq!(fields["state"], "st-1");
    assert_eq!(fields["iss"], p.issuer());
    assert!(exchange_basic(&p, &c, &fields["code"]).await.status == StatusCode::OK);

    // Authorization request sent by POST; prompt=none succeeds with automatic login.
    let url = Url::parse(&authorize_url(&p, "dev-client", &[("prompt", "none")])).expect("url");
    let form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let resp = c
        .post(format!("{}/authorize", p.issuer()))
        .form(&form)
        .send()
        .await
        .expect("authorize");
    let q = redirect_of(resp).await;
    assert!(q.contains_key("code"), "{q:?}");
}

#[tokio::test]
async fn issuer_host_and_drop_stops_the_server() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DevProvider>();

    let p = DevProvider::builder()
        .issuer_host("localhost")
        .start()
        .await
        .expect("start");
    assert_eq!(p.issuer(), format!("http://localhost:{}", p.addr().port()));
    let (status, doc) = get_json(
        &http(),
        &format!("{}/.well-known/openid-configuration", p.issuer()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["issuer"], p.issuer());
    assert!(DevProvider::builder()
        .issuer_host("a/b")
        .start()
        .await
        .is_err());

    let addr = p.addr();
    drop(p);
    // The server task ends once the runtime gets to the abort: polled, not guessed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let result = http()
            .get(format!("http://{addr}/jwks"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if result.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server still answers 30 s after the drop: {result:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn multi_tenant_mode_and_public_origin() {
    // Multi-tenant mode needs a path segment to stand for the tenant.
    let err = DevProvider::builder()
        .multi_tenant(true)
        .start()
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let p = DevProvider::builder()
        .issuer_path("/common")
        .multi_tenant(true)
        .start()
        .await
        .expect("start");
    let doc: Value = reqwest::get(format!("{}/.well-known/openid-configuration", p.issuer()))
        .await
        .expect("discovery")
        .text()
        .await
        .map(|t| serde_json::from_str(&t).expect("JSON"))
        .expect("body");
    let template = p.issuer().replace("/common", "/{tenantid}");
    assert_eq!(doc["issuer"], template.as_str());
    assert_eq!(p.tenant_issuer("t1"), template.replace("{tenantid}", "t1"));
    // A public origin must be an origin.
    for bad in [
        "ftp://localhost:1",
        "https://localhost:1/path",
        "https://localhost:1/",
        "nope",
    ] {
        let err = DevProvider::builder()
            .public_origin(bad)
            .start()
            .await
            .expect_err(bad);
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
    }
    let p = DevProvider::builder()
        .public_origin("https://localhost:8443")
        .issuer_path("/realm")
        .start()
        .await
        .expect("start");
    assert_eq!(p.issuer(), "https://localhost:8443/realm");
}
