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

// --- DPoP at the resource server (RFC 9449) ---

mod dpop_rs {
    use reqwest::StatusCode;
    use serde_json::json;
    use tower_oidc::dev::{DevProvider, Fault};

    use super::support::app::{start_app, TestApp};
    use super::support::dpop::TestDpopKey;

    struct Setup {
        dev: DevProvider,
        app: TestApp,
        key: TestDpopKey,
        token: String,
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs()
    }

    /// A JWT access token of the dev provider bound to `jkt` (or unbound).
    fn access_token(dev: &DevProvider, jkt: Option<&str>) -> String {
        let mut claims = json!({
            "iss": dev.issuer(), "sub": "alice", "aud": dev.confidential_client().id,
            "client_id": dev.confidential_client().id, "scope": "openid api",
            "exp": now() + 300, "iat": now(),
        });
        if let Some(jkt) = jkt {
            claims["cnf"] = json!({ "jkt": jkt });
        }
        dev.sign_jwt("at+jwt", &claims)
    }

    async fn setup_with(
        configure: impl FnOnce(tower_oidc::ConfigBuilder) -> tower_oidc::ConfigBuilder,
    ) -> Setup {
        let dev = DevProvider::start().await.expect("dev provider");
        let client = dev.confidential_client().clone();
        let app = start_app(dev.issuer(), &client.id, |b| {
            configure(b.client_secret(client.secret.clone().expect("secret")))
        })
        .await
        .expect("app starts");
        let key = TestDpopKey::new();
        let token = access_token(&dev, Some(&key.thumbprint()));
        Setup {
            dev,
            app,
            key,
            token,
        }
    }

    async fn setup() -> Setup {
        setup_with(|b| b).await
    }

    async fn send(
        app: &TestApp,
        method: reqwest::Method,
        path: &str,
        authorization: &str,
        proof: Option<&str>,
    ) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .request(method, app.url(path))
            .header("accept", "application/json")
            .header("authorization", authorization);
        if let Some(proof) = proof {
            req = req.header("dpop", proof);
        }
        req.send().await.expect("request")
    }

    async fn get(s: &Setup, proof: &str) -> reqwest::Response {
        send(
            &s.app,
            reqwest::Method::GET,
            "/whoami",
            &format!("DPoP {}", s.token),
            Some(proof),
        )
        .await
    }

    /// Asserts a `401` with a DPoP challenge naming `error` and the accepted algorithms.
    fn assert_refused(res: &reqwest::Response, error: &str) {
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let challenge = res.headers()["www-authenticate"].to_str().expect("text");
        assert!(challenge.starts_with("DPoP "), "{challenge}");
        assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{challenge}"
        );
        assert!(
            challenge.contains("algs=\"ES256 PS256 RS256 EdDSA\""),
            "{challenge}"
        );
    }

    #[tokio::test]
    async fn a_fresh_proof_is_accepted_and_its_replay_refused() {
        let s = setup().await;
        let url = s.app.url("/whoami");
        let proof = s.key.proof("GET", url.as_str(), &s.token);
        let res = get(&s, &proof).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.text().await.expect("body").contains("alice"));
        // A new proof for the next request is fine (and the token is now cached).
        let res = get(&s, &s.key.proof("GET", url.as_str(), &s.token)).await;
        assert_eq!(res.status(), StatusCode::OK);
        // The first proof again: a replay.
        let res = get(&s, &proof).await;
        assert_refused(&res, "invalid_dpop_proof");
    }

    #[tokio::test]
    async fn a_proof_for_another_url_is_refused() {
        let s = setup().await;
        let other = s.app.url("/roles");
        let res = get(&s, &s.key.proof("GET", other.as_str(), &s.token)).await;
        assert_refused(&res, "invalid_dpop_proof");
        let elsewhere = format!(
            "http://evil.example.com:{}/whoami",
            s.app.base.port().expect("port")
        );
        let res = get(&s, &s.key.proof("GET", &elsewhere, &s.token)).await;
        assert_refused(&res, "invalid_dpop_proof");
    }

    #[tokio::test]
    async fn a_proof_for_another_method_is_refused() {
        let s = setup().await;
        let url = s.app.url("/whoami");
        let res = get(&s, &s.key.proof("POST", url.as_str(), &s.token)).await;
        assert_refused(&res, "invalid_dpop_proof");
    }

    #[tokio::test]
    async fn a_proof_for_another_token_is_refused() {
        let s = setup().await;
        let url = s.app.url("/whoami");
        let res = get(&s, &s.key.proof("GET", url.as_str(), "another-token")).await;
        assert_refused(&res, "invalid_dpop_proof");
        let res = get(
            &s,
            &s.key.proof_with("GET", url.as_str(), &s.token, |c| {
                c.as_object_mut().expect("object").remove("ath");
            }),
        )
        .await;
        assert_refused(&res, "invalid_dpop_proof");
    }

    #[tokio::test]
    async fn an_old_proof_is_refused() {
        let s = setup().await;
        let url = s.app.url("/whoami");
        let res = get(
            &s,
            &s.key.proof_with("GET", url.as_str(), &s.token, |c| {
                c["iat"] = (now() - 600).into();
            }),
        )
        .await;
        assert_refused(&res, "invalid_dpop_proof");
    }

    #[tokio::test]
    async fn a_proof_by_another_key_than_the_bound_one_is_refused() {
        let s = setup().await;
        let url = s.app.url("/whoami");
        let thief = TestDpopKey::new();
        let res = get(&s, &thief.proof("GET", url.as_str(), &s.token)).await;
        assert_refused(&res, "invalid_token");
    }

    #[tokio::test]
    async fn an_unbound_token_is_refused_as_dpop_but_works_as_bearer() {
        let s = setup().await;
        let url = s.app.url("/whoami");
        let plain = access_token(&s.dev, None);
        let res = send(
            &s.app,
            reqwest::Method::GET,
            "/whoami",
            &format!("DPoP {plain}"),
            Some(&s.key.proof("GET", url.as_str(), &plain)),
        )
        .await;
        assert_refused(&res, "invalid_token");
        let res = send(
            &s.app,
            reqwest::Method::GET,
            "/whoami",
            &format!("Bearer {plain}"),
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_bound_token_sent_as_bearer_is_refused_before_and_after_caching() {
        let s = setup().await;
        let bearer = format!("Bearer {}", s.token);
        let res = send(&s.app, reqwest::Method::GET, "/whoami", &bearer, None).await;
        assert_refused(&res, "invalid_token");
        // Validated once through DPoP, the token is cached: still refused as Bearer.
        let url = s.app.url("/whoami");
        let res = get(&s, &s.key.proof("GET", url.as_str(), &s.token)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = send(&s.app, reqwest::Method::GET, "/whoami", &bearer, None).await;
        assert_refused(&res, "invalid_token");
    }

    #[tokio::test]
    async fn a_missing_or_doubled_proof_is_refused() {
        let s = setup().await;
        let res = send(
            &s.app,
            reqwest::Method::GET,
            "/whoami",
            &format!("DPoP {}", s.token),
            None,
        )
        .await;
        assert_refused(&res, "invalid_dpop_proof");
        let url = s.app.url("/whoami");
        let res = reqwest::Client::new()
            .get(url.clone())
            .header("accept", "application/json")
            .header("authorization", format!("DPoP {}", s.token))
            .header("dpop", s.key.proof("GET", url.as_str(), &s.token))
            .header("dpop", s.key.proof("GET", url.as_str(), &s.token))
            .send()
            .await
            .expect("request");
        assert_refused(&res, "invalid_dpop_proof");
    }

    #[tokio::test]
    async fn behind_a_proxy_htu_is_the_public_url() {
        let s = setup_with(|b| b.redirect_url("https://app.example.com/auth/callback")).await;
        let public = "https://app.example.com/whoami";
        let res = get(&s, &s.key.proof("GET", public, &s.token)).await;
        assert_eq!(res.status(), StatusCode::OK);
        // The address the request reached is not the URL the caller used.
        let local = s.app.url("/whoami");
        let res = get(&s, &s.key.proof("GET", local.as_str(), &s.token)).await;
        assert_refused(&res, "invalid_dpop_proof");
    }

    #[tokio::test]
    async fn a_server_nonce_is_demanded_and_then_accepted() {
        let s = setup_with(|b| b.dpop_nonce(true)).await;
        let url = s.app.url("/whoami");
        let res = get(&s, &s.key.proof("GET", url.as_str(), &s.token)).await;
        assert_refused(&res, "use_dpop_nonce");
        let nonce = res.headers()["dpop-nonce"]
            .to_str()
            .expect("nonce")
            .to_owned();
        let res = get(
            &s,
            &s.key.proof_with("GET", url.as_str(), &s.token, |c| {
                c["nonce"] = nonce.clone().into();
            }),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = get(
            &s,
            &s.key.proof_with("GET", url.as_str(), &s.token, |c| {
                c["nonce"] = "1.forged".into();
            }),
        )
        .await;
        assert_refused(&res, "use_dpop_nonce");
    }

    #[tokio::test]
    async fn an_introspected_token_bound_by_cnf_needs_its_key() {
        let dev = DevProvider::builder()
            .opaque_access_tokens(true)
            .start()
            .await
            .expect("dev provider");
        dev.set_auto_login(Some("alice"));
        let client = dev.confidential_client().clone();
        let app = start_app(dev.issuer(), &client.id, |b| {
            b.client_secret(client.secret.clone().expect("secret"))
        })
        .await
        .expect("app starts");
        let tokens = super::support::app::dev_tokens(&dev, &client, "openid").await;
        let token = tokens["access_token"].as_str().expect("token").to_owned();
        let key = TestDpopKey::new();
        dev.set_fault(Fault::IntrospectionClaims(json!({
            "cnf": { "jkt": key.thumbprint() }
        })));
        let url = app.url("/whoami");
        let res = send(
            &app,
            reqwest::Method::GET,
            "/whoami",
            &format!("Bearer {token}"),
            None,
        )
        .await;
        assert_refused(&res, "invalid_token");
        let res = send(
            &app,
            reqwest::Method::GET,
            "/whoami",
            &format!("DPoP {token}"),
            Some(&TestDpopKey::new().proof("GET", url.as_str(), &token)),
        )
        .await;
        assert_refused(&res, "invalid_token");
        let res = send(
            &app,
            reqwest::Method::GET,
            "/whoami",
            &format!("DPoP {token}"),
            Some(&key.proof("GET", url.as_str(), &token)),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

// --- DPoP as a client (RFC 9449): session tokens bound to the session's key ---

mod dpop_client {
    use std::time::Duration;

    use reqwest::StatusCode;
    use tower_oidc::dev::DevProvider;

    use super::support::app::{new_session_cookie, start_app, Browser, TestApp};
    use super::support::clock::TestClock;

    /// Short enough that advancing the layer's clock past it keeps its proofs within the
    /// provider's leeway (the provider checks `iat` on its real clock).
    const ACCESS_TTL: Duration = Duration::from_secs(30);

    async fn setup(nonce: bool, clock: &TestClock) -> (DevProvider, TestApp) {
        let dev = DevProvider::builder()
            .access_token_ttl(ACCESS_TTL)
            .dpop_nonce(nonce)
            .start()
            .await
            .expect("dev provider");
        dev.set_auto_login(Some("alice"));
        let client = dev.confidential_client().clone();
        let app = start_app(dev.issuer(), &client.id, |b| {
            b.client_secret(client.secret.clone().expect("secret"))
                .scopes(["openid", "profile", "email", "offline_access"])
                .dpop(true)
                .userinfo(true)
                .require_userinfo(true)
                .refresh_margin(Duration::ZERO)
                .clock(clock.closure())
        })
        .await
        .expect("app starts");
        (dev, app)
    }

    /// The session's `Authorization` and a handler-made proof for `GET /whoami`.
    async fn headers(app: &TestApp, cookie: &str) -> (serde_json::Value, Option<String>) {
        let target = app.url("/whoami");
        let query: String = form_urlencoded::byte_serialize(target.as_str().as_bytes()).collect();
        let res = app
            .api_get_with_cookie(&format!("/dpop-proof?{query}"), cookie)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let refreshed = new_session_cookie(&res);
        let body = res.text().await.expect("body");
        (serde_json::from_str(&body).expect("JSON"), refreshed)
    }

    async fn call(app: &TestApp, authorization: &str, proof: Option<&str>) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .get(app.url("/whoami"))
            .header("accept", "application/json")
            .header("authorization", authorization);
        if let Some(proof) = proof {
            req = req.header("dpop", proof);
        }
        req.send().await.expect("request")
    }

    #[tokio::test]
    async fn a_dpop_login_binds_the_tokens_and_handlers_make_proofs_an_api_accepts() {
        let clock = TestClock::new();
        let (dev, app) = setup(false, &clock).await;
        let browser = Browser::new();
        let landing = browser.follow(&app.url("/me")).await;
        assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
        // Userinfo (required here) answered the DPoP-bound token with its proof.
        assert_eq!(landing.json()["email"], "alice@example.com");
        assert!(dev.stats().userinfo_requests >= 1);
        let cookie = browser.session_cookie(&app);
        let (h, _) = headers(&app, &cookie).await;
        assert_eq!(h["bound"], true);
        let authorization = h["authorization"].as_str().expect("authorization");
        assert!(authorization.starts_with("DPoP "), "{authorization}");
        let proof = h["proof"].as_str().expect("a proof");
        // The app's own API (the layer as resource server) accepts the bound token with it...
        let res = call(&app, authorization, Some(proof)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.text().await.expect("body").contains("alice"));
        // ...once, and never as a bearer token.
        let res = call(&app, authorization, Some(proof)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let token = authorization.trim_start_matches("DPoP ");
        let res = call(&app, &format!("Bearer {token}"), None).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn refresh_with_dpop_and_a_provider_nonce_keeps_the_binding() {
        let clock = TestClock::new();
        let (dev, app) = setup(true, &clock).await;
        let browser = Browser::new();
        let landing = browser.follow(&app.url("/me")).await;
        assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
        // The code exchange was asked for the nonce once and sent again.
        assert_eq!(dev.stats().token_requests, 2);
        let cookie = browser.session_cookie(&app);
        let (before, _) = headers(&app, &cookie).await;

        clock.advance(ACCESS_TTL + Duration::from_secs(1));
        let (after, refreshed) = headers(&app, &cookie).await;
        let refreshed = refreshed.expect("a refreshed session cookie");
        assert_eq!(
            dev.stats().token_requests,
            4,
            "refresh: nonce asked, then sent"
        );
        assert_eq!(after["bound"], true);
        assert_ne!(after["authorization"], before["authorization"]);
        // The refreshed token is bound to the same session key: its proof is accepted.
        let res = call(
            &app,
            after["authorization"].as_str().expect("authorization"),
            after["proof"].as_str(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = app.api_get_with_cookie("/me", &refreshed).await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn without_dpop_the_session_token_is_a_bearer_token() {
        let dev = DevProvider::start().await.expect("dev provider");
        dev.set_auto_login(Some("alice"));
        let client = dev.confidential_client().clone();
        let app = start_app(dev.issuer(), &client.id, |b| {
            b.client_secret(client.secret.clone().expect("secret"))
        })
        .await
        .expect("app starts");
        let browser = Browser::new();
        let cookie = browser.log_in(&app).await;
        let (h, _) = headers(&app, &cookie).await;
        assert_eq!(h["bound"], false);
        assert!(h["proof"].is_null(), "no proof for an unbound token");
        let res = call(
            &app,
            h["authorization"].as_str().expect("authorization"),
            None,
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

mod dpop_token_type {
    use reqwest::StatusCode;
    use tower_oidc::dev::{DevProvider, Fault};

    use super::support::app::{start_app, Browser};

    #[tokio::test]
    async fn token_type_dpop_without_a_proof_is_refused() {
        let dev = DevProvider::start().await.expect("dev provider");
        dev.set_auto_login(Some("alice"));
        dev.set_fault(Fault::TokenType("DPoP".into()));
        let client = dev.confidential_client().clone();
        let app = start_app(dev.issuer(), &client.id, |b| {
            b.client_secret(client.secret.clone().expect("secret"))
        })
        .await
        .expect("app starts");
        let landing = Browser::new().follow(&app.url("/me")).await;
        assert_eq!(landing.status, StatusCode::BAD_REQUEST, "{}", landing.body);
    }
}
