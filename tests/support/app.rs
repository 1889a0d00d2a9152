//! A quickstart-style axum app behind the layer, served on a free loopback port, and a
//! cookie-keeping HTTP client that follows redirects by hand.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{HeaderMap, ACCEPT, COOKIE, LOCATION};
use tokio::task::JoinHandle;
use tower_oidc::{
    Config, ConfigBuilder, ConfigError, Identity, OidcLayer, RequireLayer, SessionKey,
};
use url::Url;

/// The app: `/` public, `/me` login required (claims as JSON), `/roles` (the roles as a JSON
/// array), `/echo-cookies` shows the `Cookie` header the inner service received.
pub(crate) struct TestApp {
    pub(crate) base: Url,
    task: JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestApp {
    pub(crate) fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("a valid path")
    }

    /// An API request to `path` (no redirects, `Accept: application/json`) with `cookie` as
    /// the `Cookie` header.
    pub(crate) async fn api_get_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .header(ACCEPT, "application/json")
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("request")
    }
}

/// Starts the app for `issuer`/`client_id`; `configure` adjusts the builder (secret,
/// policies, ...).
pub(crate) async fn start_app(
    issuer: &str,
    client_id: &str,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Result<TestApp, ConfigError> {
    start_app_on(bind_loopback().await, issuer, client_id, configure).await
}

/// A listener on a free loopback port (to know the app's URL before it starts).
pub(crate) async fn bind_loopback() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port")
}

/// [`start_app`] on an already bound listener.
pub(crate) async fn start_app_on(
    listener: tokio::net::TcpListener,
    issuer: &str,
    client_id: &str,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Result<TestApp, ConfigError> {
    let addr = listener.local_addr().expect("local address");
    let config = configure(
        Config::builder(issuer, client_id)
            .redirect_url(format!("http://{addr}/auth/callback"))
            .session_key(SessionKey::generate()),
    )
    .build()?;
    let oidc = OidcLayer::discover(config).await?;
    Ok(serve_app(listener, oidc))
}

/// Serves the test app behind an already built layer.
pub(crate) fn serve_app(listener: tokio::net::TcpListener, oidc: OidcLayer) -> TestApp {
    let app = Router::new()
        .route("/admin", get(|| async { "admin area" }))
        .route_layer(RequireLayer::scopes(["admin"]))
        .route(
            "/token",
            get(|token: tower_oidc::AccessToken| async move { token.secret().to_owned() }),
        )
        .route(
            "/dpop-proof",
            get(
                |token: tower_oidc::AccessToken,
                 axum::extract::RawQuery(url): axum::extract::RawQuery| async move {
                    // `?<url>`: the headers for a GET of that URL with the session's token.
                    let url = url.unwrap_or_default();
                    let url = form_urlencoded::parse(url.as_bytes())
                        .next()
                        .map(|(k, _)| k.into_owned())
                        .unwrap_or_default();
                    Json(serde_json::json!({
                        "bound": token.is_dpop_bound(),
                        "authorization": token.authorization(),
                        "proof": token.dpop_proof("GET", &url).ok(),
                    }))
                },
            ),
        )
        .route(
            "/action",
            axum::routing::post(|id: Identity| async move { format!("done for {}", id.subject()) }),
        )
        .route(
            "/whoami",
            get(|id: Identity| async move {
                format!(
                    "{:?} {} [{}]",
                    id.source(),
                    id.subject(),
                    id.scopes().collect::<Vec<_>>().join(" ")
                )
            }),
        )
        .route(
            "/",
            get(|id: Option<Identity>| async move {
                match id {
                    Some(id) => format!("hello {}", id.subject()),
                    None => "hello stranger".to_owned(),
                }
            }),
        )
        .route(
            "/token-expires",
            get(|token: tower_oidc::AccessToken| async move {
                token
                    .expires_at()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs())
                    .to_string()
            }),
        )
        .route(
            "/roles",
            get(|id: Identity| async move { Json(id.roles().to_vec()) }),
        )
        .route(
            "/me",
            get(|id: Identity| async move { Json(serde_json::Value::Object(id.claims().clone())) }),
        )
        .route(
            "/echo-cookies",
            get(|headers: axum::http::HeaderMap| async move {
                headers
                    .get_all(COOKIE)
                    .iter()
                    .map(|v| v.to_str().unwrap_or("<binary>").to_owned())
                    .collect::<Vec<_>>()
                    .join(" | ")
            }),
        )
        .layer(oidc);
    serve_router(listener, app)
}

/// Serves any router (with its layers already applied) on `listener`.
pub(crate) fn serve_router(listener: tokio::net::TcpListener, app: Router) -> TestApp {
    let addr = listener.local_addr().expect("local address");
    let base = Url::parse(&format!("http://{addr}/")).expect("base URL");
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve the app");
    });
    TestApp { base, task }
}

/// Tokens from the dev provider's token endpoint for `client` (which must have a secret),
/// through a code flow by hand with PKCE; the provider must be in auto-login mode.
pub(crate) async fn dev_tokens(
    dev: &tower_oidc::dev::DevProvider,
    client: &tower_oidc::dev::DevClient,
    scope: &str,
) -> serde_json::Value {
    use base64::Engine;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let redirect_uri = "http://127.0.0.1:9/cb";
    let verifier = "a-long-enough-pkce-verifier-for-the-development-provider-0123";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    let mut authorize = Url::parse(&format!("{}/authorize", dev.issuer())).expect("URL");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "s")
        .append_pair("nonce", "n")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let res = http.get(authorize).send().await.expect("authorize");
    let location = Url::parse(res.headers()[LOCATION].to_str().expect("Location")).expect("URL");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {location}"));
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", redirect_uri.to_owned()),
        ("code_verifier", verifier.to_owned()),
        ("client_id", client.id.clone()),
    ];
    if let Some(secret) = &client.secret {
        form.push(("client_secret", secret.clone()));
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let res = http
        .post(format!("{}/token", dev.issuer()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token request");
    let text = res.text().await.expect("token body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("token response ({e}): {text}"))
}

/// A browser stand-in: a cookie jar and manual redirects, sending `Accept: text/html` like
/// a navigation.
pub(crate) struct Browser {
    pub(crate) client: reqwest::Client,
    pub(crate) jar: Arc<Jar>,
}

/// The end of a redirect chain.
pub(crate) struct Landing {
    pub(crate) url: Url,
    pub(crate) status: reqwest::StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    pub(crate) visited: Vec<Url>,
}

impl Landing {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}) at {}: {}", self.url, self.body))
    }
}

impl Browser {
    pub(crate) fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        Self { client, jar }
    }

    pub(crate) async fn get(&self, url: &Url) -> reqwest::Response {
        self.client
            .get(url.clone())
            .header(ACCEPT, "text/html")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// Follows redirects from `url` until a non-redirect or until `stop` says so for the
    /// next URL (which is then returned unvisited, with status 302).
    pub(crate) async fn follow_until(&self, url: &Url, stop: impl Fn(&Url) -> bool) -> Landing {
        let mut url = url.clone();
        let mut visited = Vec::new();
        for _ in 0..20 {
            let res = self.get(&url).await;
            visited.push(url.clone());
            let status = res.status();
            let headers = res.headers().clone();
            if status.is_redirection() {
                let location = headers
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or_else(|| panic!("redirect without Location from {url}"));
                let next = url.join(location).expect("a valid Location");
                if stop(&next) {
                    return Landing {
                        url: next,
                        status,
                        headers,
                        body: String::new(),
                        visited,
                    };
                }
                url = next;
                continue;
            }
            let body = res.text().await.expect("response body");
            return Landing {
                url,
                status,
                headers,
                body,
                visited,
            };
        }
        panic!("too many redirects: {visited:?}");
    }

    pub(crate) async fn follow(&self, url: &Url) -> Landing {
        self.follow_until(url, |_| false).await
    }

    /// Logs in through `app` by opening `/me` (the provider logs in by itself) and returns
    /// the session cookie(s) as a `Cookie` header.
    pub(crate) async fn log_in(&self, app: &TestApp) -> String {
        let landing = self.follow(&app.url("/me")).await;
        assert_eq!(landing.status, reqwest::StatusCode::OK, "{}", landing.body);
        self.session_cookie(app)
    }

    /// The session cookie(s) the jar holds for `app`, as a `Cookie` header.
    pub(crate) fn session_cookie(&self, app: &TestApp) -> String {
        self.cookies(&app.url("/"))
            .split("; ")
            .filter(|c| c.starts_with("oidc_session"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The cookies the jar would send to `url`.
    pub(crate) fn cookies(&self, url: &Url) -> String {
        self.jar
            .cookies(url)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }
}

/// `Set-Cookie` values of a response.
pub(crate) fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .collect()
}

/// The session cookie(s) a response sets (not removals), as a `Cookie` header; `None` when
/// it sets none.
pub(crate) fn new_session_cookie(res: &reqwest::Response) -> Option<String> {
    let cookies: Vec<String> = set_cookies(res.headers())
        .into_iter()
        .filter(|c| c.starts_with("oidc_session") && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect();
    (!cookies.is_empty()).then(|| cookies.join("; "))
}

/// Whether a response removes the session cookie.
pub(crate) fn clears_session(res: &reqwest::Response) -> bool {
    set_cookies(res.headers())
        .iter()
        .any(|c| c.starts_with("oidc_session=;") && c.contains("Max-Age=0"))
}
