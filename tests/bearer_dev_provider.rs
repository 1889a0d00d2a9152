//! `Authorization: Bearer` access tokens from the dev provider: accepted, cached, and every
//! rejection (expired, other issuer, other audience, bad signature, `alg: none`, unknown key,
//! ID token used as access token, insufficient scope), answered as 401/403 or a gRPC status,
//! never as a redirect.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::app::{dev_tokens, start_app, TestApp};
use support::clock::TestClock;
use tower_oidc::dev::{DevProvider, Fault};
use tower_oidc::ConfigBuilder;

struct Setup {
    dev: DevProvider,
    app: TestApp,
    http: reqwest::Client,
}

async fn setup(configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Setup {
    let dev = DevProvider::builder()
        .access_token_audience("https://api.example.test")
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    let client = dev.confidential_client().clone();
    let secret = client.secret.clone().expect("secret");
    let app = start_app(dev.issuer(), &client.id, |b| {
        configure(b.client_secret(secret))
    })
    .await
    .expect("app");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Setup { dev, app, http }
}

impl Setup {
    async fn tokens(&self, scope: &str) -> Value {
        dev_tokens(&self.dev, self.dev.confidential_client(), scope).await
    }

    async fn access_token(&self) -> String {
        self.tokens("openid profile").await["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    async fn get(&self, path: &str, token: &str, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self
            .http
            .get(self.app.url(path))
            .header("authorization", format!("Bearer {token}"));
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request")
    }

    /// Valid access-token claims for alice, to be altered by the caller.
    fn claims(&self) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({
            "iss": self.dev.issuer(),
            "sub": "alice",
            "aud": self.dev.confidential_client().id,
            "client_id": self.dev.confidential_client().id,
            "scope": "openid profile",
            "iat": now,
            "exp": now + 300,
        })
    }
}

async fn assert_invalid_token(res: reqwest::Response, description: &str) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(challenge.contains(description), "{challenge}");
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn valid_access_token_is_accepted_and_cached() {
    let s = setup(|b| b).await;
    let token = s.access_token().await;
    let res = s.get("/whoami", &token, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "Bearer alice [openid profile]");
    let me: Value =
        serde_json::from_str(&s.get("/me", &token, &[]).await.text().await.unwrap()).unwrap();
    assert_eq!(me["sub"], "alice");
    // Cached by hash: even after the provider drops the signing key, the token it verified
    // stays valid until it expires, without another JWKS fetch.
    let jwks_before = s.dev.stats().jwks_requests;
    s.dev.rotate_keys();
    let res = s.get("/whoami", &token, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(s.dev.stats().jwks_requests, jwks_before);
}

/// The cache finds a token by its exact bytes: a copy of a cached token changed anywhere is
/// validated anew (and refused), never answered from the cache.
#[tokio::test]
async fn changed_copy_of_a_cached_token_is_refused() {
    let s = setup(|b| b).await;
    let token = s.access_token().await;
    assert_eq!(s.get("/whoami", &token, &[]).await.status(), StatusCode::OK);
    let dot = token.rfind('.').unwrap();
    for at in [token.len() - 2, dot + 5, dot - 5, 10] {
        let mut bytes = token.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        assert_invalid_token(s.get("/whoami", &changed, &[]).await, "").await;
    }
    // Dropping or adding a character is another token too.
    assert_invalid_token(s.get("/whoami", &token[..token.len() - 1], &[]).await, "").await;
    assert_invalid_token(s.get("/whoami", &format!("{token}A"), &[]).await, "").await;
    // The same bytes still hit.
    assert_eq!(s.get("/whoami", &token, &[]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn configured_api_audience_is_required() {
    let s = setup(|b| b.api_audience("https://api.example.test")).await;
    let token = s.access_token().await;
    assert_eq!(s.get("/me", &token, &[]).await.status(), StatusCode::OK);
    let other = setup(|b| b.api_audience("https://other.example.test")).await;
    let token = other.access_token().await;
    assert_invalid_token(other.get("/me", &token, &[]).await, "another audience").await;
}

#[tokio::test]
async fn expired_token_is_refused() {
    let s = setup(|b| b).await;
    let mut claims = s.claims();
    claims["exp"] = json!(claims["iat"].as_u64().unwrap() - 3600);
    claims["iat"] = json!(claims["iat"].as_u64().unwrap() - 7200);
    let token = s.dev.sign_jwt("at+jwt", &claims);
    assert_invalid_token(s.get("/me", &token, &[]).await, "expired").await;
    // within the clock skew it is still fine
    let mut claims = s.claims();
    claims["exp"] = json!(claims["iat"].as_u64().unwrap() - 10);
    let token = s.dev.sign_jwt("at+jwt", &claims);
    assert_eq!(s.get("/me", &token, &[]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_not_yet_valid_or_from_the_future_is_refused() {
    let s = setup(|b| b).await;
    let mut claims = s.claims();
    claims["nbf"] = json!(claims["iat"].as_u64().unwrap() + 3600);
    let token = s.dev.sign_jwt("at+jwt", &claims);
    assert_invalid_token(s.get("/me", &token, &[]).await, "not yet valid").await;
    let mut claims = s.claims();
    claims["iat"] = json!(claims["iat"].as_u64().unwrap() + 3600);
    let token = s.dev.sign_jwt("at+jwt", &claims);
    assert_invalid_token(s.get("/me", &token, &[]).await, "future").await;
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let s = setup(|b| b).await;
    let mut claims = s.claims();
    claims["iss"] = json!("https://evil.example.com");
    let token = s.dev.sign_jwt("at+jwt", &claims);
    assert_invalid_token(s.get("/me", &token, &[]).await, "another issuer").await;
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let s = setup(|b| b).await;
    let mut claims = s.claims();
    claims["aud"] = json!(["someone-else"]);
    let token = s.dev.sign_jwt("at+jwt", &claims);
    assert_invalid_token(s.get("/me", &token, &[]).await, "another audience").await;
}

#[tokio::test]
async fn missing_expiry_is_refused() {
    let s = setup(|b| b).await;
    let mut claims = s.claims();
    claims.as_object_mut().unwrap().remove("exp");
    let token = s.dev.sign_jwt("at+jwt", &claims);
    assert_invalid_token(s.get("/me", &token, &[]).await, "no expiry").await;
}

#[tokio::test]
async fn bad_signature_is_refused() {
    let s = setup(|b| b).await;
    let token = s.access_token().await;
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 0x55;
    let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_invalid_token(s.get("/me", &forged, &[]).await, "signature").await;
    // the payload swapped under the original signature
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = s.claims();
    claims["sub"] = json!("mallory");
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_invalid_token(s.get("/me", &swapped, &[]).await, "signature").await;
}

#[tokio::test]
async fn alg_none_and_hmac_are_refused() {
    let s = setup(|b| b).await;
    let payload = URL_SAFE_NO_PAD.encode(s.claims().to_string());
    for alg in ["none", "HS256"] {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "at+jwt"}).to_string());
        let token = format!("{header}.{payload}.c2ln");
        assert_invalid_token(s.get("/me", &token, &[]).await, "algorithm").await;
    }
}

#[tokio::test]
async fn unknown_kid_is_accepted_after_rotation_and_refetch() {
    let s = setup(|b| b).await;
    let before = s.dev.stats().jwks_requests;
    s.dev.rotate_keys();
    let token = s.access_token().await;
    assert_eq!(s.get("/me", &token, &[]).await.status(), StatusCode::OK);
    assert_eq!(s.dev.stats().jwks_requests, before + 1);
}

#[tokio::test]
async fn provider_down_during_refetch_is_503() {
    let s = setup(|b| b).await;
    s.dev.rotate_keys();
    let token = s.access_token().await;
    s.dev.set_fault(Fault::Down);
    let res = s
        .get("/me", &token, &[("accept", "application/json")])
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let grpc = s
        .get("/me", &token, &[("content-type", "application/grpc")])
        .await;
    assert_eq!(grpc.headers()["grpc-status"], "14");
}

#[tokio::test]
async fn id_token_is_not_an_access_token() {
    let s = setup(|b| b).await;
    let tokens = s.tokens("openid").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_invalid_token(s.get("/me", id_token, &[]).await, "not an access token").await;
}

#[tokio::test]
async fn at_jwt_type_can_be_required() {
    let s = setup(|b| b.require_access_token_type(true)).await;
    let token = s.access_token().await;
    assert_eq!(s.get("/me", &token, &[]).await.status(), StatusCode::OK);
    let plain = s.dev.sign_jwt("JWT", &s.claims());
    assert_invalid_token(s.get("/me", &plain, &[]).await, "typ at+jwt").await;
}

#[tokio::test]
async fn bearer_failures_never_redirect() {
    let s = setup(|b| b.require_login(true)).await;
    let nav = [("accept", "text/html"), ("sec-fetch-mode", "navigate")];
    let res = s.get("/me", "not-a-jwt", &nav).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = s
        .http
        .get(s.app.url("/me"))
        .header("authorization", "Bearer two words")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let grpc = s
        .get("/me", "x.y.z", &[("content-type", "application/grpc")])
        .await;
    assert_eq!(grpc.status(), StatusCode::OK);
    assert_eq!(grpc.headers()["grpc-status"], "16");
    assert!(grpc.headers().get("location").is_none());
}

#[tokio::test]
async fn insufficient_scope_is_403_or_grpc_7() {
    let s = setup(|b| b).await;
    let token = s.access_token().await;
    let res = s.get("/admin", &token, &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"admin\""), "{challenge}");
    let grpc = s
        .get("/admin", &token, &[("content-type", "application/grpc")])
        .await;
    assert_eq!(grpc.status(), StatusCode::OK);
    assert_eq!(grpc.headers()["grpc-status"], "7");
    // without credentials it is a missing login, not a scope problem
    let anon = s
        .http
        .get(s.app.url("/admin"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    // with the scope it passes
    let mut claims = s.claims();
    claims["scope"] = json!("openid admin");
    let admin = s.dev.sign_jwt("at+jwt", &claims);
    assert_eq!(s.get("/admin", &admin, &[]).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn bearer_can_be_turned_off() {
    let s = setup(|b| b.bearer(false)).await;
    let token = s.access_token().await;
    let res = s
        .get("/me", &token, &[("accept", "application/json")])
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn bearer_writes_need_no_csrf_header() {
    let s = setup(|b| b.csrf_header("x-csrf")).await;
    let token = s.access_token().await;
    let res = s
        .http
        .post(s.app.url("/action"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn handlers_get_the_bearer_token_for_downstream_calls() {
    let s = setup(|b| b).await;
    let token = s.access_token().await;
    let res = s.get("/token", &token, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), token);
}

#[tokio::test]
async fn token_with_id_token_only_claims_is_refused() {
    let s = setup(|b| b).await;
    let mut claims = s.claims();
    claims["at_hash"] = json!("abc");
    let token = s.dev.sign_jwt("JWT", &claims);
    assert_invalid_token(s.get("/me", &token, &[]).await, "not an access token").await;
}

#[tokio::test]
async fn logout_tokens_are_not_access_tokens() {
    let s = setup(|b| b).await;
    let mut claims = s.claims();
    claims["events"] = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    let token = s.dev.sign_jwt("JWT", &claims);
    assert_invalid_token(s.get("/me", &token, &[]).await, "not an access token").await;
    let typed = s.dev.sign_jwt("logout+jwt", &s.claims());
    assert_invalid_token(s.get("/me", &typed, &[]).await, "not an access token").await;
}

#[tokio::test]
async fn old_keys_stop_being_trusted_after_the_maximum_age() {
    let clock = TestClock::new();
    let max_age = std::time::Duration::from_secs(60);
    let s = setup(|b| {
        b.clock(clock.closure())
            .jwks_max_age(max_age)
            .jwks_refetch_interval(std::time::Duration::ZERO)
            .bearer_cache_capacity(0)
    })
    .await;
    let old_key_token = s.dev.sign_jwt("at+jwt", &s.claims());
    assert_eq!(
        s.get("/me", &old_key_token, &[]).await.status(),
        StatusCode::OK
    );
    // the provider rotates (the old key leaves its JWKS); while the cached keys are young,
    // the old key is still trusted...
    s.dev.rotate_keys();
    assert_eq!(
        s.get("/me", &old_key_token, &[]).await.status(),
        StatusCode::OK
    );
    // ...and after the maximum age (by the layer's clock; the token, valid 300 s, is not yet
    // expired) they are fetched again: the old key is gone
    clock.advance(max_age + std::time::Duration::from_secs(1));
    assert_invalid_token(s.get("/me", &old_key_token, &[]).await, "signature").await;
}
