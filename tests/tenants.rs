//! Several providers (tenants) in one layer: picked per login, answering at redirect URIs of
//! their own, remembered by the session, and deciding bearer tokens by their issuer — with
//! dev providers whose issuers differ by path, and with a second real `oidc-provider`
//! instance as the second tenant.

mod support;

use reqwest::StatusCode;
use serde_json::Value;
use support::app::{bind_loopback, dev_tokens, serve_app, Browser, TestApp};
use support::oidc_provider::{login, ClientConfig, NodeProvider, ProviderOptions};
use tower_oidc::dev::DevProvider;
use tower_oidc::{Config, ConfigError, OidcLayer, SessionKey};
use url::Url;

async fn dev(path: &str) -> DevProvider {
    let dev = DevProvider::builder()
        .issuer_path(path)
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    dev
}

/// The configuration of tenant `name`, with its own redirect URL `{base}auth/callback/{name}`.
fn config(dev: &DevProvider, base: &str, key: &SessionKey, name: &str) -> Config {
    let client = dev.confidential_client();
    Config::builder(dev.issuer(), &client.id)
        .client_secret(client.secret.clone().expect("secret"))
        .redirect_url(format!("{base}auth/callback/{name}"))
        .session_key(key.clone())
        .build()
        .expect("config")
}

async fn two_tenants() -> (DevProvider, DevProvider, TestApp) {
    let (a, b) = (dev("/tenants/a").await, dev("/tenants/b").await);
    let listener = bind_loopback().await;
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let key = SessionKey::generate();
    let layer = OidcLayer::discover_many([
        ("a", config(&a, &base, &key, "a")),
        ("b", config(&b, &base, &key, "b")),
    ])
    .await
    .expect("layer");
    (a, b, serve_app(listener, layer))
}

#[tokio::test]
async fn login_picks_the_provider_and_the_session_remembers_it() {
    let (a, b, app) = two_tenants().await;
    let browser = Browser::new();
    let landing = browser.follow(&app.url("/auth/login?return_to=/me")).await;
    assert_eq!(landing.json()["iss"], a.issuer());

    let browser = Browser::new();
    let landing = browser
        .follow(&app.url("/auth/login?provider=b&return_to=/me"))
        .await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.json()["iss"], b.issuer());
    assert!(landing
        .visited
        .iter()
        .any(|u| u.as_str().starts_with(b.issuer())));
    // the answer came to tenant b's own redirect URI
    assert!(landing
        .visited
        .iter()
        .any(|u| u.path() == "/auth/callback/b"));
    // logout goes to the provider that issued the session
    let res = browser.get(&app.url("/auth/logout")).await;
    let location = Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(b.issuer()), "{location}");

    let unknown = Browser::new()
        .follow(&app.url("/auth/login?provider=nope"))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bearer_tokens_are_checked_by_their_issuer() {
    let (a, b, app) = two_tenants().await;
    let http = reqwest::Client::new();
    let whoami = |token: String| {
        http.get(app.url("/whoami"))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    for dev in [&a, &b] {
        let tokens = dev_tokens(dev, dev.confidential_client(), "openid profile").await;
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let res = whoami(token).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "token of {}", dev.issuer());
    }
    // a token naming tenant b but signed with tenant a's key is refused
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = a.sign_jwt(
        "at+jwt",
        &serde_json::json!({
            "iss": b.issuer(), "sub": "mallory", "aud": "dev-client",
            "iat": now, "exp": now + 300,
        }),
    );
    assert_eq!(
        whoami(forged).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn shared_settings_must_match() {
    let (a, b) = (dev("/tenants/a").await, dev("/tenants/b").await);
    let key = SessionKey::generate();
    let other = Config::builder(b.issuer(), "dev-client")
        .client_secret("dev-secret")
        .redirect_url("http://127.0.0.1:1/auth/callback")
        .session_key(key.clone())
        .cookie_name("other")
        .build()
        .unwrap();
    let err = OidcLayer::discover_many([
        ("a", config(&a, "http://127.0.0.1:1/", &key, "a")),
        ("b", other),
    ])
    .await
    .unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
    let err = OidcLayer::discover_many([
        ("a", config(&a, "http://127.0.0.1:1/", &key, "a")),
        ("a", config(&b, "http://127.0.0.1:1/", &key, "b")),
    ])
    .await
    .unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
    let none: [(&str, Config); 0] = [];
    assert!(OidcLayer::discover_many(none).await.is_err());
}

#[tokio::test]
async fn a_redirect_url_shared_by_two_providers_is_a_config_error() {
    let (a, b) = (dev("/tenants/a").await, dev("/tenants/b").await);
    let key = SessionKey::generate();
    let base = "http://127.0.0.1:1/";
    // the same URL, and the same path on another host: either way one path for two providers
    for other_base in [base, "http://localhost:1/"] {
        let err = OidcLayer::discover_many([
            ("a", config(&a, base, &key, "x")),
            ("b", config(&b, other_base, &key, "x")),
        ])
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    field: "redirect_url",
                    ..
                }
            ),
            "{err}"
        );
    }
    // the plain callback URL for both, as before each provider had its own
    let plain = |dev: &DevProvider| {
        Config::builder(dev.issuer(), "dev-client")
            .client_secret("dev-secret")
            .redirect_url(format!("{base}auth/callback"))
            .session_key(key.clone())
            .build()
            .unwrap()
    };
    let err = OidcLayer::discover_many([("a", plain(&a)), ("b", plain(&b))])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                field: "redirect_url",
                ..
            }
        ),
        "{err}"
    );
    // one provider may keep the plain callback URL
    OidcLayer::discover_many([("a", plain(&a)), ("b", config(&b, base, &key, "b"))])
        .await
        .expect("distinct redirect URLs");
}

#[tokio::test]
async fn second_oidc_provider_instance_as_a_second_tenant() {
    let listener = bind_loopback().await;
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let callback = |name: &str| format!("{base}auth/callback/{name}");
    let start = |path: &'static str, callback: String| async move {
        NodeProvider::start(
            ProviderOptions::new()
                .path(path)
                .client(ClientConfig::confidential("rp-app", "rp-secret").redirect_uri(&callback)),
        )
        .await
    };
    let (first, second) = tokio::join!(
        start("/tenant-a", callback("a")),
        start("/tenant-b", callback("b"))
    );
    let key = SessionKey::generate();
    let cfg = |p: &NodeProvider, name: &str| {
        Config::builder(p.issuer(), "rp-app")
            .client_secret("rp-secret")
            .redirect_url(callback(name))
            .session_key(key.clone())
            .build()
            .expect("config")
    };
    let layer = OidcLayer::discover_many([("a", cfg(&first, "a")), ("b", cfg(&second, "b"))])
        .await
        .expect("layer");
    let app = serve_app(listener, layer);
    let browser = Browser::new();
    let nav = login(
        &browser.client,
        second.issuer(),
        app.url("/auth/login?provider=b&return_to=/me").as_str(),
        "bob",
        "bob",
    )
    .await;
    assert_eq!(
        nav.status,
        StatusCode::OK,
        "{}\n{}",
        nav.body,
        second.logs()
    );
    let claims: Value = nav.json();
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["iss"], second.issuer());
    assert!(second.issuer().ends_with("/tenant-b"));
}

#[tokio::test]
async fn backchannel_logout_from_the_second_tenant_ends_its_sessions() {
    let (_a, b, app) = two_tenants().await;
    let browser = Browser::new();
    let landing = browser
        .follow(&app.url("/auth/login?provider=b&return_to=/me"))
        .await;
    let sid = landing.json()["sid"].as_str().expect("sid").to_owned();
    let cookie = browser.cookies(&app.url("/"));
    let me = |cookie: String| {
        reqwest::Client::new()
            .get(app.url("/me"))
            .header("accept", "application/json")
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(me(cookie.clone()).await.unwrap().status(), StatusCode::OK);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = b.sign_jwt(
        "logout+jwt",
        &serde_json::json!({
            "iss": b.issuer(), "aud": "dev-client", "iat": now, "jti": "j1", "sid": sid,
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        }),
    );
    let res = reqwest::Client::new()
        .post(app.url("/auth/backchannel-logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("logout_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(me(cookie).await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn session_of_a_provider_no_longer_configured_is_no_session() {
    let (a, b) = (dev("/tenants/a").await, dev("/tenants/b").await);
    let key = SessionKey::generate();
    let both = bind_loopback().await;
    let both_base = format!("http://{}/", both.local_addr().unwrap());
    let layer = OidcLayer::discover_many([
        ("a", config(&a, &both_base, &key, "a")),
        ("b", config(&b, &both_base, &key, "b")),
    ])
    .await
    .expect("layer");
    let app_both = serve_app(both, layer);
    // The same deployment later configured with tenant a only (same key and cookie name).
    let only_a = bind_loopback().await;
    let only_a_base = format!("http://{}/", only_a.local_addr().unwrap());
    let layer = OidcLayer::discover(config(&a, &only_a_base, &key, "a"))
        .await
        .expect("layer");
    let app_a = serve_app(only_a, layer);

    let browser = Browser::new();
    let landing = browser
        .follow(&app_both.url("/auth/login?provider=b&return_to=/me"))
        .await;
    assert_eq!(landing.status, StatusCode::OK);
    let cookie = browser.cookies(&app_both.url("/"));
    let res = reqwest::Client::new()
        .get(app_a.url("/me"))
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("oidc_session=;")));
}
