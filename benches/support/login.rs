//! Setup shared by `benches/load.rs` and `benches/flood.rs`: a real login against the
//! in-process dev provider (the session cookie the callback sets) and a real JWT access token
//! from the provider's token endpoint, plus the layers that accept them.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::{ACCEPT, LOCATION};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::cookie::{CookieStore, Jar};
use tower_oidc::dev::DevProvider;
use tower_oidc::{Config, Identity, OidcLayer, SessionKey};
use url::Url;

/// Name of the session cookie (set explicitly, so the benches do not depend on the default).
pub(crate) const SESSION_COOKIE: &str = "oidc_session";

/// The audience the dev provider adds to its access tokens and the app accepts.
pub(crate) const API_AUDIENCE: &str = "https://api.bench.test";

/// Upper bound on the redirects followed during the login.
const MAX_REDIRECTS: usize = 20;

/// The handler every router serves at `/`.
/// (Both answers are built at their exact length, as a `String` the body takes without
/// copying: a `format!` string has spare capacity, which costs the body one more allocation
/// and would be counted against the layer in `allocs.rs`.)
async fn hello(id: Option<Identity>) -> String {
    match id {
        Some(id) => {
            let mut text = String::with_capacity("hello ".len() + id.subject().len());
            text.push_str("hello ");
            text.push_str(id.subject());
            text
        }
        None => "hello stranger".to_owned(),
    }
}

/// The hello-world app, without any layer.
pub(crate) fn app() -> Router {
    Router::new().route("/", get(hello))
}

/// What the setup produced.
pub(crate) struct Login {
    /// The provider; its signing key is still usable after its runtime is gone.
    #[allow(dead_code)] // Only `flood.rs` signs more tokens.
    pub(crate) dev: DevProvider,
    /// Layer that served the login: public routes, bearer tokens accepted for
    /// [`API_AUDIENCE`], session cookies sealed with its key.
    pub(crate) layer: OidcLayer,
    /// Same provider, client and key without the cache of opened session cookies: every
    /// request opens the cookie (what the first request of a session costs).
    #[allow(dead_code)] // Only `load.rs` measures it.
    pub(crate) uncached: OidcLayer,
    /// Same provider and client with `require_login(true)`.
    #[allow(dead_code)] // Only `load.rs` measures the redirect.
    pub(crate) guarded: OidcLayer,
    /// The sealed session value (the cookie's value) for `alice`.
    pub(crate) sealed: String,
    /// A JWT access token for `alice` from the token endpoint.
    #[allow(dead_code)] // Not every bench sends bearer tokens.
    pub(crate) access_token: String,
    /// What another layer for the same provider, client and session key needs.
    #[allow(dead_code)] // Only `load.rs` builds more layers.
    pub(crate) settings: Settings,
}

/// The provider, client and session key of the login, to build other layers that open its
/// session cookie.
#[allow(dead_code)] // Only `load.rs` builds more layers.
pub(crate) struct Settings {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) secret: String,
    pub(crate) callback: String,
    pub(crate) key: SessionKey,
}

impl Settings {
    /// A builder with the settings of the login's layer (public routes, the API audience).
    #[allow(dead_code)] // Only `load.rs` builds more layers.
    pub(crate) fn builder(&self) -> tower_oidc::ConfigBuilder {
        Config::builder(&self.issuer, &self.client_id)
            .client_secret(self.secret.clone())
            .redirect_url(self.callback.clone())
            .cookie_name(SESSION_COOKIE)
            .session_key(self.key.clone())
            .api_audience(API_AUDIENCE)
    }
}

/// Starts the dev provider, logs in as `alice` through the app served on a loopback port
/// and fetches an access token. Must run on a Tokio runtime with I/O and time enabled; the
/// app server is stopped before returning, the provider keeps running on that runtime.
pub(crate) async fn log_in() -> Login {
    let dev = DevProvider::builder()
        // No refresh token: the session ends with the access token; keep it well past a run.
        .access_token_ttl(Duration::from_secs(3600))
        .access_token_audience(API_AUDIENCE)
        .start()
        .await
        .expect("dev provider starts");
    dev.set_auto_login(Some("alice"));
    let client = dev.confidential_client().clone();
    let secret = client.secret.clone().expect("confidential client secret");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let callback = format!("http://{addr}/auth/callback");
    let key = SessionKey::generate();
    let config = |require_login: bool, session_cache: usize| {
        Config::builder(dev.issuer(), &client.id)
            .client_secret(secret.clone())
            .redirect_url(callback.clone())
            .cookie_name(SESSION_COOKIE)
            .session_key(key.clone())
            .api_audience(API_AUDIENCE)
            .require_login(require_login)
            .session_cache(session_cache)
            .build()
            .expect("config")
    };
    let layer = OidcLayer::discover(config(false, 2048))
        .await
        .expect("discovery");
    let guarded = OidcLayer::discover(config(true, 2048))
        .await
        .expect("discovery");
    let uncached = OidcLayer::discover(config(false, 0))
        .await
        .expect("discovery");

    let server = tokio::spawn({
        let app = app().layer(layer.clone());
        async move { axum::serve(listener, app).await.expect("serve the app") }
    });
    let base = Url::parse(&format!("http://{addr}/")).expect("base URL");
    let sealed = browser_login(&base).await;
    server.abort();

    let access_token = token_by_hand(&dev, &client.id, &secret, &callback).await;
    let settings = Settings {
        issuer: dev.issuer().to_owned(),
        client_id: client.id.clone(),
        secret: secret.clone(),
        callback: callback.clone(),
        key: key.clone(),
    };
    Login {
        dev,
        layer,
        guarded,
        uncached,
        settings,
        sealed,
        access_token,
    }
}

/// Follows `/auth/login` to the end with a cookie-keeping client; the session cookie's value.
async fn browser_login(base: &Url) -> String {
    let jar = Arc::new(Jar::default());
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let mut url = base.join("/auth/login?return_to=/").expect("login URL");
    for _ in 0..MAX_REDIRECTS {
        let res = browser
            .get(url.clone())
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        if let Some(location) = res.headers().get(LOCATION) {
            let location = location.to_str().expect("ASCII Location");
            url = url.join(location).expect("a valid Location");
            continue;
        }
        let status = res.status();
        let body = res.text().await.expect("body");
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, "hello alice"),
            "the login lands on / as alice ({url})"
        );
        let cookies = jar.cookies(base).expect("cookies for the app");
        let cookies = cookies.to_str().expect("ASCII cookies");
        return cookies
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == SESSION_COOKIE)
            .map(|(_, value)| value.to_owned())
            .unwrap_or_else(|| panic!("no {SESSION_COOKIE} cookie in {cookies:?}"));
    }
    panic!("the login did not end within {MAX_REDIRECTS} redirects");
}

/// An authorization code (auto-login, PKCE S256) exchanged at the token endpoint by hand;
/// the access token of the answer.
async fn token_by_hand(dev: &DevProvider, client_id: &str, secret: &str, redirect: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let verifier = "load-bench-pkce-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let mut authorize = Url::parse(&format!("{}/authorize", dev.issuer())).expect("URL");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid profile")
        .append_pair("state", "bench-state")
        .append_pair("nonce", "bench-nonce")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let res = http.get(authorize).send().await.expect("authorize");
    let location = res
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .expect("authorize redirects back");
    let location = Url::parse(location).expect("an absolute Location");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"));
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_verifier", verifier)
        .append_pair("client_id", client_id)
        .append_pair("client_secret", secret)
        .finish();
    let text = http
        .post(format!("{}/token", dev.issuer()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token request")
        .text()
        .await
        .expect("token body");
    let answer: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("token answer ({e}): {text}"));
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token in {text}"))
        .to_owned()
}

/// A runtime for the setup: current-thread, I/O and timers.
pub(crate) fn setup_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("setup runtime")
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`...); `None` off Linux.
#[allow(dead_code)] // Only `flood.rs` reads memory.
pub(crate) fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Whether this run measures: `cargo bench` passes `--bench`, `cargo test --benches` does
/// not (then the benches run a short smoke version).
#[allow(dead_code)] // Criterion benches use `ratio::measured` instead.
pub(crate) fn measured() -> bool {
    std::env::args().any(|a| a == "--bench")
}
