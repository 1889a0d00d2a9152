//! Session cookies against a stolen or foreign cookie: sealing bound to the client, logout as
//! a revocation of the session, no caching of answers that carry a session, the `__Host-`
//! prefix on https, and public paths compared after normalization.
//!
//! Deadlines pass by advancing the layer's clock ([`TestClock`]), never by sleeping.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CACHE_CONTROL, SET_COOKIE};
use reqwest::StatusCode;
use support::app::{clears_session, new_session_cookie, set_cookies, start_app, Browser, TestApp};
use support::clock::TestClock;
use tower::ServiceExt;
use tower_oidc::dev::DevProvider;
use tower_oidc::{
    Config, ConfigBuilder, ConfigError, MemoryRevocationStore, OidcLayer, SessionKey,
};

async fn dev_provider() -> DevProvider {
    let dev = DevProvider::builder()
        .refresh_tokens(true)
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    dev
}

/// An app of the dev provider's confidential client, with `key`.
async fn app(
    dev: &DevProvider,
    key: &SessionKey,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> TestApp {
    let client = dev.confidential_client().clone();
    let secret = client.secret.clone().expect("secret");
    let key = key.clone();
    start_app(dev.issuer(), &client.id, |b| {
        configure(b.client_secret(secret).session_key(key))
    })
    .await
    .expect("app")
}

async fn whoami(app: &TestApp, cookie: &str) -> reqwest::Response {
    app.api_get_with_cookie("/whoami", cookie).await
}

// ---- #3: sealing bound to issuer and client id -------------------------------------------

#[tokio::test]
async fn cookie_of_another_client_with_the_same_key_and_issuer_is_no_session() {
    let dev = dev_provider().await;
    let key = SessionKey::generate();
    let app_a = app(&dev, &key, |b| b).await;
    // Another app of the same provider with the same SESSION_KEY, but another client.
    let app_b = start_app(dev.issuer(), "another-client", |b| {
        b.client_secret("other").session_key(key.clone())
    })
    .await
    .expect("app b");

    let browser = Browser::new();
    let cookie = browser.log_in(&app_a).await;
    let at_a = whoami(&app_a, &cookie).await;
    assert_eq!(at_a.status(), StatusCode::OK, "the same client still works");

    let at_b = whoami(&app_b, &cookie).await;
    assert_eq!(at_b.status(), StatusCode::UNAUTHORIZED);
    assert!(clears_session(&at_b), "the foreign cookie is cleared");
}

#[tokio::test]
async fn key_rotation_still_opens_sessions_of_the_previous_key() {
    let dev = dev_provider().await;
    let old_key = SessionKey::new([1u8; 32]).unwrap();
    let rotated = SessionKey::new([2u8; 32])
        .unwrap()
        .with_previous([1u8; 32])
        .unwrap();
    let old_app = app(&dev, &old_key, |b| b).await;
    let new_app = app(&dev, &rotated, |b| b).await;

    let browser = Browser::new();
    let old_cookie = browser.log_in(&old_app).await;
    assert_eq!(whoami(&new_app, &old_cookie).await.status(), StatusCode::OK);

    let browser = Browser::new();
    let new_cookie = browser.log_in(&new_app).await;
    assert_eq!(whoami(&new_app, &new_cookie).await.status(), StatusCode::OK);
    assert_eq!(
        whoami(&old_app, &new_cookie).await.status(),
        StatusCode::UNAUTHORIZED,
        "sealed with the new key, which the old app does not have"
    );
}

// ---- #8: logout revokes the session ------------------------------------------------------

#[tokio::test]
async fn copied_cookie_is_refused_after_logout_wherever_the_store_is_shared() {
    let dev = dev_provider().await;
    let key = SessionKey::generate();
    let store = Arc::new(MemoryRevocationStore::default());
    let replica_a = app(&dev, &key, |b| b.revocation_store(store.clone())).await;
    let replica_b = app(&dev, &key, |b| b.revocation_store(store.clone())).await;

    let browser = Browser::new();
    let copy = browser.log_in(&replica_a).await;
    assert_eq!(whoami(&replica_b, &copy).await.status(), StatusCode::OK);

    let logout = browser.get(&replica_a.url("/auth/logout")).await;
    assert_eq!(logout.status(), StatusCode::FOUND);

    for replica in [&replica_a, &replica_b] {
        let res = whoami(replica, &copy).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(clears_session(&res));
    }

    // A new login is a new session, not affected by the revocation.
    let browser = Browser::new();
    let again = browser.log_in(&replica_a).await;
    assert_eq!(whoami(&replica_b, &again).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn session_id_survives_refresh_so_a_refreshed_copy_is_refused_after_logout() {
    let dev = DevProvider::builder()
        .access_token_ttl(Duration::from_secs(600))
        .id_token_ttl(Duration::from_secs(3600))
        .refresh_tokens(true)
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    let clock = TestClock::new();
    let key = SessionKey::generate();
    let app = app(&dev, &key, |b| {
        b.scopes(["openid", "profile", "offline_access"])
            .refresh_margin(Duration::ZERO)
            .clock(clock.closure())
    })
    .await;
    let browser = Browser::new();
    let original = browser.log_in(&app).await;

    // The access token expires: a request refreshes and gets a new cookie.
    clock.advance(Duration::from_secs(601));
    let refreshed = whoami(&app, &original).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(
        refreshed.headers()[CACHE_CONTROL.as_str()],
        "private, no-store"
    );
    let refreshed_cookie = new_session_cookie(&refreshed).unwrap_or_default();
    assert!(!refreshed_cookie.is_empty(), "a refreshed session cookie");

    // Logging out with the original cookie ends the refreshed one too: same session.
    let logout = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/auth/logout"))
        .header("cookie", &original)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::FOUND);
    assert_eq!(
        whoami(&app, &refreshed_cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// The session cookie a response sets (not a removal), as a `Cookie` header.
fn session_set(res: &reqwest::Response) -> String {
    new_session_cookie(res).unwrap_or_default()
}

#[tokio::test]
async fn logout_with_an_idle_cookie_still_ends_a_copy_kept_alive_elsewhere() {
    // Tokens that outlive the test: no refresh interferes with the idle deadline.
    let dev = DevProvider::builder()
        .access_token_ttl(Duration::from_secs(24 * 3600))
        .id_token_ttl(Duration::from_secs(24 * 3600))
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    let clock = TestClock::new();
    let key = SessionKey::generate();
    let app = app(&dev, &key, |b| {
        b.idle_timeout(Duration::from_secs(600))
            .session_lifetime(Duration::from_secs(8 * 3600))
            .clock(clock.closure())
    })
    .await;
    let browser = Browser::new();
    let victims = browser.log_in(&app).await;

    // An attacker holding a copy keeps it alive with a request now and then (each past half the
    // idle timeout re-issues the cookie), while the victim's own cookie goes idle.
    let mut copy = victims.clone();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(400));
        let res = whoami(&app, &copy).await;
        assert_eq!(res.status(), StatusCode::OK);
        let renewed = session_set(&res);
        assert!(!renewed.is_empty(), "the copy is renewed");
        copy = renewed;
    }
    assert_eq!(
        whoami(&app, &victims).await.status(),
        StatusCode::UNAUTHORIZED,
        "the victim's cookie is idle"
    );

    // The victim logs out with the idle cookie: the session ends, the copy included.
    let logout = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/auth/logout"))
        .header("cookie", &victims)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::FOUND);
    assert!(clears_session(&logout));
    let res = whoami(&app, &copy).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the copy is refused"
    );
    assert!(clears_session(&res));

    // A forged or foreign cookie at logout revokes nothing (and is no error).
    let browser = Browser::new();
    let other = browser.log_in(&app).await;
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/auth/logout"))
        .header(
            "cookie",
            "oidc_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FOUND);
    assert_eq!(whoami(&app, &other).await.status(), StatusCode::OK);
}

// ---- #9: Cache-Control on answers that carry a session -----------------------------------

#[tokio::test]
async fn callback_touch_and_logout_answers_are_not_cacheable() {
    let dev = dev_provider().await;
    let clock = TestClock::new();
    let key = SessionKey::generate();
    let app = app(&dev, &key, |b| {
        b.idle_timeout(Duration::from_secs(600))
            .clock(clock.closure())
    })
    .await;
    let browser = Browser::new();
    // The callback's redirect sets the session.
    let landing = browser
        .follow_until(&app.url("/me"), |next| next.path() == "/me")
        .await;
    assert_eq!(landing.url.path(), "/me");
    assert!(set_cookies(&landing.headers)
        .iter()
        .any(|c| c.starts_with("oidc_session=")));
    assert_eq!(landing.headers[CACHE_CONTROL.as_str()], "private, no-store");
    let cookie = browser.session_cookie(&app);

    // Past half the idle timeout, a request re-issues the cookie (touch).
    clock.advance(Duration::from_secs(400));
    let touched = whoami(&app, &cookie).await;
    assert_eq!(touched.status(), StatusCode::OK);
    assert!(set_cookies(touched.headers())
        .iter()
        .any(|c| c.starts_with("oidc_session=") && !c.contains("Max-Age=0")));
    assert_eq!(
        touched.headers()[CACHE_CONTROL.as_str()],
        "private, no-store"
    );

    let logout = browser.get(&app.url("/auth/logout")).await;
    assert!(set_cookies(logout.headers())
        .iter()
        .any(|c| c.contains("Max-Age=0")));
    assert_eq!(
        logout.headers()[CACHE_CONTROL.as_str()],
        "private, no-store"
    );

    // An ordinary request that sets no cookie keeps the app's own caching.
    let plain = reqwest::get(app.url("/")).await.unwrap();
    assert!(set_cookies(plain.headers()).is_empty());
    assert!(plain.headers().get(CACHE_CONTROL.as_str()).is_none());
}

/// A layer built offline (no network), for requests through `oneshot`.
fn offline_layer(configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> OidcLayer {
    offline_layer_with(SessionKey::generate(), configure)
}

fn offline_layer_with(
    key: SessionKey,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> OidcLayer {
    let discovery = serde_json::json!({
        "issuer": "https://id.example.com",
        "authorization_endpoint": "https://id.example.com/authorize",
        "token_endpoint": "https://id.example.com/token",
        "jwks_uri": "https://id.example.com/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let config = configure(
        Config::builder("https://id.example.com", "my-client")
            .client_secret("s3cret")
            .redirect_url("http://127.0.0.1:3000/auth/callback")
            .session_key(key),
    )
    .build()
    .expect("config");
    OidcLayer::from_provider_metadata(config, discovery.to_string().as_bytes(), None)
        .expect("layer")
}

/// Calls `layer` around an app that answers `200 <path> <subject or ->` with long-lived
/// public caching headers (for browsers, shared caches and CDNs).
async fn call(layer: &OidcLayer, path: &str, cookie: Option<&str>) -> http::Response<String> {
    let inner = tower::service_fn(|req: http::Request<String>| async move {
        let who = req
            .extensions()
            .get::<tower_oidc::Identity>()
            .map_or("-", |id| id.subject())
            .to_owned();
        let res = http::Response::builder()
            .header(CACHE_CONTROL, "public, max-age=3600")
            .header("expires", "Thu, 01 Jan 2099 00:00:00 GMT")
            .header("surrogate-control", "max-age=3600")
            .header("cdn-cache-control", "max-age=3600")
            .body(format!("{} {who}", req.uri().path()))
            .expect("response");
        Ok::<_, Infallible>(res)
    });
    let svc = tower::Layer::layer(layer, inner);
    let mut req = http::Request::get(path).header("accept", "application/json");
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let res = svc
        .oneshot(req.body(String::new()).expect("request"))
        .await
        .unwrap_or_else(|e: Infallible| match e {});
    let (parts, body) = res.into_parts();
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    http::Response::from_parts(parts, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn clearing_a_stale_cookie_overrides_the_apps_cache_header() {
    let layer = offline_layer(|b| b);
    let res = call(
        &layer,
        "/page",
        Some("oidc_session=not-a-session; theme=dark"),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("oidc_session=;")));
    let cache: Vec<_> = res.headers().get_all(CACHE_CONTROL).iter().collect();
    assert_eq!(cache, ["private, no-store"]);

    let plain = call(&layer, "/page", Some("theme=dark")).await;
    assert_eq!(plain.headers()[CACHE_CONTROL], "public, max-age=3600");
}

#[tokio::test]
async fn a_response_that_sets_a_session_cookie_keeps_no_caching_header_of_the_app() {
    let layer = offline_layer(|b| b);
    let others = ["expires", "surrogate-control", "cdn-cache-control"];
    let res = call(&layer, "/page", Some("oidc_session=not-a-session")).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key(SET_COOKIE));
    assert_eq!(res.headers()[CACHE_CONTROL], "private, no-store");
    for name in others {
        assert!(
            res.headers().get(name).is_none(),
            "{name}: {:?}",
            res.headers().get(name)
        );
    }
    // Without a cookie of ours the app's caching stays as it is.
    let plain = call(&layer, "/page", None).await;
    for name in others {
        assert!(plain.headers().contains_key(name), "{name}");
    }
}

/// A session cookie as this crate sealed it before sealing was bound to the client and
/// sessions had an id: HKDF info `session` and `key-id` only, encoding version 1.
fn legacy_session_cookie(secret: &[u8; 32], issuer: &str, now: u64) -> String {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use base64::Engine;
    struct Len(usize);
    impl ring::hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"tower-oidc/v1").extract(secret);
    let expand = |info: &[u8], out: &mut [u8]| {
        let infos = [info];
        prk.expand(&infos, Len(out.len()))
            .and_then(|okm| okm.fill(out))
            .expect("HKDF");
    };
    let (mut key, mut id) = ([0u8; 32], [0u8; 1]);
    expand(b"session", &mut key);
    expand(b"key-id", &mut id);
    let mut plain = vec![1u8];
    let bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&u32::try_from(b.len()).unwrap().to_be_bytes());
        out.extend_from_slice(b);
    };
    for t in [now - 10, now + 3600, now + 3600] {
        plain.extend_from_slice(&t.to_be_bytes());
    }
    bytes(&mut plain, b"alice");
    bytes(&mut plain, issuer.as_bytes());
    bytes(&mut plain, br#"{"sub":"alice"}"#);
    plain.extend_from_slice(&[0, 0, 0]); // no id, access or refresh token
    bytes(&mut plain, b"openid");
    plain.extend_from_slice(&now.to_be_bytes());
    plain.push(0); // no sid
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
    let nonce = [3u8; 12];
    let tag = cipher
        .encrypt_inout_detached(
            &aes_gcm::Nonce::from(nonce),
            b"oidc_session",
            plain.as_mut_slice().into(),
        )
        .unwrap();
    let mut sealed = vec![id[0]];
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&plain);
    sealed.extend_from_slice(&tag);
    format!(
        "oidc_session={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
    )
}

#[tokio::test]
async fn session_sealed_before_the_upgrade_is_cleanly_refused() {
    let secret = [7u8; 32];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cookie = legacy_session_cookie(&secret, "https://id.example.com", now);
    let key = || SessionKey::new(secret).unwrap();

    // Optional login: the page is served without an identity, and the cookie cleared.
    let layer = offline_layer_with(key(), |b| b);
    let res = call(&layer, "/page", Some(&cookie)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.body(), "/page -");
    assert!(res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("oidc_session=;")));

    // Login required: the usual 401 (a navigation would be sent to log in), never a 500.
    let layer = offline_layer_with(key(), |b| b.require_login(true));
    let res = call(&layer, "/page", Some(&cookie)).await;
    assert_eq!(res.status(), 401);
}

// ---- #9: the `__Host-` prefix for a custom cookie name on https --------------------------

#[test]
fn custom_cookie_name_on_https_needs_the_host_prefix() {
    let https = || {
        Config::builder("https://id.example.com", "c")
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::generate())
    };
    let err = https().cookie_name("app_session").build().unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                field: "cookie_name",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("__Host-"), "{err}");
    let ok = https().cookie_name("__Host-app_session").build().unwrap();
    assert_eq!(ok.route_prefix(), "/auth");

    // On plain http browsers refuse `__Host-`/`__Secure-` cookies (they need `Secure`).
    let http = || {
        Config::builder("http://127.0.0.1:9", "c")
            .redirect_url("http://127.0.0.1:3000/auth/callback")
            .session_key(SessionKey::generate())
    };
    assert!(http().cookie_name("app_session").build().is_ok());
    for name in ["__Host-app_session", "__Secure-app_session"] {
        assert!(matches!(
            http().cookie_name(name).build(),
            Err(ConfigError::Invalid {
                field: "cookie_name",
                ..
            })
        ));
    }
}

// ---- #9: public paths are compared after normalization -----------------------------------

#[tokio::test]
async fn public_paths_are_compared_on_the_normalized_path() {
    let layer = offline_layer(|b| b.require_login(true).public_path("/public/"));
    for public in [
        "/public/x",
        "/public/",
        "/public//x",
        "/public/./x",
        "/public/a/../x",
        "/public/%78",
    ] {
        let res = call(&layer, public, None).await;
        assert_eq!(res.status(), 200, "{public} is public");
    }
    for private in [
        "/admin",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/..",
        "/public//../../admin",
        "/admin/../public/x",
        "//public/x",
        "/%70ublic/x",
    ] {
        let res = call(&layer, private, None).await;
        assert_eq!(res.status(), 401, "{private} is not public");
    }
}

#[tokio::test]
async fn encoded_slashes_and_backslashes_are_never_public() {
    // A server or framework that decodes `%2F` or treats `\` as `/` would route these to
    // /admin: the layer fails closed.
    let layer = offline_layer(|b| b.require_login(true).public_path("/public/"));
    for private in [
        "/public/..%2fadmin",
        "/public/..%2Fadmin",
        "/public/%2e%2e%2fadmin",
        "/public/..%5cadmin",
        "/public/..%5Cadmin",
        "/public/x%2Fy",
        "/public/..\\admin",
        "/public\\x",
    ] {
        let res = call(&layer, private, None).await;
        assert_eq!(res.status(), 401, "{private} is not public");
    }
    assert_eq!(call(&layer, "/public/x%20y", None).await.status(), 200);
}
