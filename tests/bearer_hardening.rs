//! Bearer-path hardening against the dev provider: ID tokens (and other tokens that are not
//! access tokens) are refused whatever their shape, JWS `crit` is refused, and introspection of
//! opaque tokens is bounded (single flight per token, a cap on calls in flight and per second
//! that fails closed with 503 + `Retry-After`, invalid answers cached apart from valid ones).

mod support;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::app::{bind_loopback, dev_tokens, start_app, TestApp};
use support::wait;
use tower_oidc::dev::{DevProvider, Fault};
use tower_oidc::{Config, ConfigBuilder, Identity, OidcLayer, SessionKey};

/// A clock that stands still unless moved (the introspection budget counts seconds of it).
#[derive(Clone)]
struct StillClock(Arc<AtomicU64>);

impl StillClock {
    fn new() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970");
        Self(Arc::new(AtomicU64::new(now.as_secs() * 1000)))
    }

    fn closure(&self) -> impl Fn() -> SystemTime + Send + Sync + 'static {
        let ms = self.0.clone();
        move || UNIX_EPOCH + Duration::from_millis(ms.load(Ordering::SeqCst))
    }

    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

async fn dev(opaque: bool) -> DevProvider {
    let dev = DevProvider::builder()
        .opaque_access_tokens(opaque)
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    dev
}

async fn app(dev: &DevProvider, configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> TestApp {
    let client = dev.confidential_client().clone();
    let secret = client.secret.clone().expect("secret");
    start_app(dev.issuer(), &client.id, |b| {
        configure(b.client_secret(secret))
    })
    .await
    .expect("app")
}

async fn get(app_url: reqwest::Url, token: &str) -> reqwest::Response {
    http()
        .get(app_url)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("request")
}

async fn assert_refused(res: reqwest::Response, description: &str) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert!(challenge.contains(description), "{challenge}");
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of an ID token issued on refresh: no `nonce`, no `at_hash`.
fn refreshed_id_token_claims(dev: &DevProvider) -> Value {
    let client = &dev.confidential_client().id;
    json!({
        "iss": dev.issuer(),
        "sub": "alice",
        "aud": client,
        "azp": client,
        "exp": now() + 300,
        "iat": now(),
        "auth_time": now() - 60,
        "sid": "a-session",
        "name": "Alice Example",
        "email": "alice@example.com",
    })
}

#[tokio::test]
async fn refreshed_id_token_is_not_an_access_token() {
    let dev = dev(false).await;
    let app = app(&dev, |b| b).await;
    let id_token = dev.sign_jwt("JWT", &refreshed_id_token_claims(&dev));
    assert_refused(get(app.url("/me"), &id_token).await, "not an access token").await;
    // A real access token of the same provider still passes.
    let tokens = dev_tokens(&dev, dev.confidential_client(), "openid profile").await;
    let access = tokens["access_token"].as_str().expect("access token");
    assert_eq!(get(app.url("/me"), access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unmarked_tokens_pass_only_when_the_app_opts_in() {
    let dev = dev(false).await;
    let app = app(&dev, |b| b.accept_unmarked_access_tokens(true)).await;
    let unmarked = dev.sign_jwt("JWT", &refreshed_id_token_claims(&dev));
    assert_eq!(
        get(app.url("/me"), &unmarked).await.status(),
        StatusCode::OK
    );
    // Tokens that say they are something else stay refused.
    for (claim, value) in [
        ("typ", "ID"),
        ("typ", "Refresh"),
        ("typ", "Logout"),
        ("token_use", "id"),
        ("nonce", "n"),
    ] {
        let mut claims = refreshed_id_token_claims(&dev);
        claims[claim] = json!(value);
        let token = dev.sign_jwt("JWT", &claims);
        assert_refused(get(app.url("/me"), &token).await, "not an access token").await;
    }
}

#[tokio::test]
async fn keycloak_shaped_id_token_is_refused() {
    let dev = dev(false).await;
    let app = app(&dev, |b| b).await;
    let mut claims = refreshed_id_token_claims(&dev);
    claims["typ"] = json!("ID");
    claims["session_state"] = json!("5b0c7a6e");
    claims["scope"] = json!("openid profile");
    let id_token = dev.sign_jwt("JWT", &claims);
    assert_refused(get(app.url("/me"), &id_token).await, "not an access token").await;
    // Keycloak's access token: `typ: Bearer`, and no other access-token marker (no `scope`),
    // so `typ: Bearer` alone makes it one.
    claims["typ"] = json!("Bearer");
    claims.as_object_mut().unwrap().remove("scope");
    let access = dev.sign_jwt("JWT", &claims);
    assert_eq!(get(app.url("/me"), &access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn mainstream_access_token_shapes_pass() {
    let dev = dev(false).await;
    let app = app(&dev, |b| b).await;
    let client = dev.confidential_client().id.clone();
    let base = || {
        json!({
            "iss": dev.issuer(), "sub": "alice", "aud": client,
            "iat": now(), "exp": now() + 300,
        })
    };
    let shapes = [
        (
            "Entra v2 delegated",
            json!({"ver": "2.0", "scp": "User.Read", "azp": client, "azpacr": "1"}),
        ),
        (
            "Entra v1 app-only",
            json!({"ver": "1.0", "roles": ["Reader"], "appid": client, "appidacr": "1"}),
        ),
        (
            "Okta",
            json!({"ver": 1, "cid": client, "scp": ["openid"], "uid": "00u1"}),
        ),
        (
            "Auth0 default profile",
            json!({"azp": client, "scope": "openid read:things"}),
        ),
        (
            "Cognito",
            json!({"token_use": "access", "client_id": client, "scope": "openid"}),
        ),
    ];
    for (name, extra) in shapes {
        let mut claims = base();
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let token = dev.sign_jwt("JWT", &claims);
        let res = get(app.url("/me"), &token).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}: {:?}", res.headers());
    }
    // RFC 9068 (Auth0's RFC 9068 profile, oidc-provider): the header type alone suffices.
    let typed = dev.sign_jwt("at+jwt", &base());
    assert_eq!(get(app.url("/me"), &typed).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn critical_header_extensions_are_refused() {
    let dev = dev(false).await;
    let app = app(&dev, |b| b).await;
    let claims = json!({
        "iss": dev.issuer(), "sub": "alice", "aud": dev.confidential_client().id,
        "client_id": dev.confidential_client().id, "scope": "openid",
        "iat": now(), "exp": now() + 300,
    });
    let plain = dev.sign_jwt_with_header(&json!({"typ": "at+jwt"}), &claims);
    assert_eq!(get(app.url("/me"), &plain).await.status(), StatusCode::OK);
    let critical = dev.sign_jwt_with_header(
        &json!({"typ": "at+jwt", "crit": ["urn:example:ext"], "urn:example:ext": 1}),
        &claims,
    );
    assert_refused(get(app.url("/me"), &critical).await, "crit").await;
}

/// An opaque token the dev provider knows (active at introspection).
async fn opaque_token(dev: &DevProvider) -> String {
    let tokens = dev_tokens(dev, dev.confidential_client(), "openid profile").await;
    let token = tokens["access_token"].as_str().expect("access token");
    assert_eq!(token.split('.').count(), 1, "opaque: {token}");
    token.to_owned()
}

/// Introspection answers vouch for a token being active, not for it being an access token for
/// this API: answers that name another kind of token, and answers without `aud` for another
/// client, are refused (unless the app opts out of the latter).
#[tokio::test]
async fn introspected_tokens_must_be_access_tokens_for_this_client() {
    let dev = dev(true).await;
    let strict = app(&dev, |b| b).await;
    let check = |shape: Value, ok: bool| {
        let (dev, strict) = (&dev, &strict);
        async move {
            dev.clear_faults();
            dev.set_fault(Fault::IntrospectionClaims(shape.clone()));
            let token = opaque_token(dev).await;
            let res = get(strict.url("/me"), &token).await;
            if ok {
                assert_eq!(res.status(), StatusCode::OK, "{shape}");
            } else {
                assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{shape}");
                let challenge = res.headers()["www-authenticate"].to_str().unwrap();
                assert!(challenge.contains("invalid_token"), "{shape}: {challenge}");
            }
        }
    };
    // The usual answer, and one without `aud` for this client, pass.
    check(json!({}), true).await;
    check(json!({"aud": null}), true).await;
    check(json!({"token_type": "access_token"}), true).await;
    check(json!({"token_type": "bearer"}), true).await;
    // Without `aud`, issued to another client (or to no client named): refused.
    check(json!({"aud": null, "client_id": "another-client"}), false).await;
    check(json!({"aud": null, "client_id": null}), false).await;
    // Another kind of token the provider knows is active: refused.
    for shape in [
        json!({"token_type": "refresh_token"}),
        json!({"token_type": "id_token"}),
        json!({"token_type": 1}),
        json!({"typ": "Refresh"}),
        json!({"typ": "Offline"}),
        json!({"typ": "ID"}),
        json!({"typ": "Logout"}),
        json!({"token_use": "id"}),
        json!({"nonce": "n"}),
        json!({"at_hash": "x"}),
    ] {
        check(shape, false).await;
    }
    // The app may opt out of the client check (not of the others).
    let lenient = app(&dev, |b| b.accept_introspected_tokens_of_any_client(true)).await;
    for (shape, ok) in [
        (json!({"aud": null, "client_id": "another-client"}), true),
        (
            json!({"aud": "another-api", "client_id": "another-client"}),
            false,
        ),
        (json!({"token_type": "refresh_token"}), false),
    ] {
        dev.clear_faults();
        dev.set_fault(Fault::IntrospectionClaims(shape.clone()));
        let token = opaque_token(&dev).await;
        let status = get(lenient.url("/me"), &token).await.status();
        let want = if ok {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, want, "{shape}");
    }
}

/// A caller's garbage never becomes a `500`: the introspection endpoint refusing the token
/// (a `4xx`) refuses it (cached like an inactive answer), and refusing our client (`401`,
/// `403`) answers `503`, the provider being unusable for us.
#[tokio::test]
async fn introspection_refusals_are_not_internal_errors() {
    let dev = dev(true).await;
    let app = app(&dev, |b| b).await;
    let answer = |status: u16| Fault::IntrospectionAnswer {
        status,
        content_type: "application/json".into(),
        body: r#"{"error":"invalid_request"}"#.into(),
    };
    dev.set_fault(answer(400));
    let res = get(app.url("/me"), "garbage-token-400").await;
    assert_refused(res, "refused the token").await;
    let calls = dev.stats().introspection_requests;
    let res = get(app.url("/me"), "garbage-token-400").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(dev.stats().introspection_requests, calls, "cached");
    for (i, status) in [401, 403].into_iter().enumerate() {
        dev.clear_faults();
        dev.set_fault(answer(status));
        let res = get(app.url("/me"), &random_token(i)).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{status}");
    }
}

fn random_token(i: usize) -> String {
    format!("bogus-opaque-token-{i}")
}

#[tokio::test]
async fn introspection_flood_is_capped_and_fails_closed() {
    let dev = dev(true).await;
    let clock = StillClock::new();
    let app = app(&dev, |b| b.clock(clock.closure())).await;
    let good = opaque_token(&dev).await;
    let res = get(app.url("/whoami"), &good).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "Bearer alice [openid profile]");
    assert_eq!(dev.stats().introspection_requests, 1);

    // The provider holds every introspection call: 40 random tokens at once.
    dev.set_fault(Fault::HoldIntrospection);
    let refused = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for i in 0..40 {
        let (url, refused) = (app.url("/me"), refused.clone());
        flood.push(tokio::spawn(async move {
            let res = get(url, &random_token(i)).await;
            if res.status() == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(res.headers()["retry-after"], "1");
                refused.fetch_add(1, Ordering::SeqCst);
            }
            res.status()
        }));
    }
    // Default cap: 16 calls in flight; the other 24 are refused at once.
    wait::until("the flood to be capped", wait::PATIENCE, || async {
        let calls = dev.stats().introspection_requests - 1;
        match refused.load(Ordering::SeqCst) {
            24 if calls == 16 => Ok(()),
            _ if calls > 16 => Ok(()), // uncapped: fails below
            n => Err((n, calls)),
        }
    })
    .await;
    assert_eq!(
        dev.stats().introspection_requests - 1,
        16,
        "calls in flight"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 24);
    // The cached good token keeps working meanwhile.
    assert_eq!(get(app.url("/me"), &good).await.status(), StatusCode::OK);

    dev.clear_faults();
    let mut statuses = Vec::new();
    for task in flood {
        statuses.push(task.await.expect("request task"));
    }
    let unauthorized = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(unauthorized, 16, "{statuses:?}");
    assert_eq!(dev.stats().introspection_requests, 17);
}

#[tokio::test]
async fn introspection_budget_per_second_follows_the_layer_clock() {
    let dev = dev(true).await;
    let clock = StillClock::new();
    let app = app(&dev, |b| b.clock(clock.closure())).await;
    let good = opaque_token(&dev).await;
    assert_eq!(get(app.url("/me"), &good).await.status(), StatusCode::OK);
    // The default budget is 100 calls per second: the good token used one.
    for i in 0..99 {
        assert_refused(get(app.url("/me"), &random_token(i)).await, "not active").await;
    }
    let res = get(app.url("/me"), &random_token(99)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    // Known tokens cost no call: still answered.
    assert_eq!(get(app.url("/me"), &good).await.status(), StatusCode::OK);
    assert_refused(get(app.url("/me"), &random_token(0)).await, "not active").await;
    assert_eq!(dev.stats().introspection_requests, 100);
    // A second later (by the layer's clock) the budget is back.
    clock.advance(Duration::from_secs(1));
    assert_refused(get(app.url("/me"), &random_token(99)).await, "not active").await;
    assert_eq!(dev.stats().introspection_requests, 101);
}

#[tokio::test]
async fn inactive_answers_do_not_evict_a_cached_good_token() {
    let dev = dev(true).await;
    let app = app(&dev, |b| b.bearer_cache_capacity(16)).await;
    let good = opaque_token(&dev).await;
    assert_eq!(get(app.url("/me"), &good).await.status(), StatusCode::OK);
    for i in 0..90 {
        assert_refused(
            get(app.url("/me"), &format!("bogus-{i}")).await,
            "not active",
        )
        .await;
    }
    assert_eq!(dev.stats().introspection_requests, 91);
    assert_eq!(get(app.url("/me"), &good).await.status(), StatusCode::OK);
    assert_eq!(
        dev.stats().introspection_requests,
        91,
        "the good token is still cached"
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_token_share_one_introspection() {
    let dev = dev(true).await;
    let client = dev.confidential_client().clone();
    // The app, with a counter of requests that reached it (outside the layer).
    let listener = bind_loopback().await;
    let addr = listener.local_addr().unwrap();
    let config = Config::builder(dev.issuer(), &client.id)
        .client_secret(client.secret.clone().unwrap())
        .redirect_url(format!("http://{addr}/auth/callback"))
        .session_key(SessionKey::generate())
        .build()
        .unwrap();
    let oidc = OidcLayer::discover(config).await.unwrap();
    let arrived = Arc::new(AtomicUsize::new(0));
    let counter = arrived.clone();
    let router = Router::new()
        .route(
            "/me",
            axum::routing::get(|id: Identity| async move { id.subject().to_owned() }),
        )
        .layer(oidc)
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                counter.fetch_add(1, Ordering::SeqCst);
                next.run(req)
            },
        ));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let url = reqwest::Url::parse(&format!("http://{addr}/me")).unwrap();

    let token = opaque_token(&dev).await;
    dev.set_fault(Fault::HoldIntrospection);
    const N: usize = 8;
    let requests: Vec<_> = (0..N)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move { get(url, &token).await.status() })
        })
        .collect();
    // Every request is in the layer and a call is held at the provider; then release.
    wait::until("all requests to arrive", wait::PATIENCE, || async {
        let (n, calls) = (
            arrived.load(Ordering::SeqCst),
            dev.stats().introspection_requests,
        );
        if n == N && calls >= 1 {
            Ok(())
        } else {
            Err((n, calls))
        }
    })
    .await;
    dev.clear_faults();
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(dev.stats().introspection_requests, 1);
    server.abort();
}
