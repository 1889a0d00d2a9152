//! Observability against the development provider: the `Metrics` snapshot counts logins,
//! login failures by reason, refreshes, bearer cache hits and misses and revocations, and each
//! of the layer's routes runs in a `tracing` span carrying its outcome.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use support::app::{bind_loopback, dev_tokens, serve_app, Browser};
use support::clock::TestClock;
use tower_oidc::dev::DevProvider;
use tower_oidc::{AuthErrorKind, Config, OidcLayer, SessionKey};
use tracing_subscriber::fmt::format::FmtSpan;

const ACCESS_TTL: Duration = Duration::from_secs(600);

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("buffer")).into_owned()
    }
}

// A current-thread runtime: the app's tasks run on this thread, under its subscriber.
#[tokio::test(flavor = "current_thread")]
async fn metrics_count_what_the_layer_did_and_spans_carry_outcomes() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dev = DevProvider::builder()
        .access_token_ttl(ACCESS_TTL)
        .id_token_ttl(Duration::from_secs(3600))
        .refresh_tokens(true)
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    let clock = TestClock::new();
    let listener = bind_loopback().await;
    let addr = listener.local_addr().expect("address");
    let client = dev.confidential_client().clone();
    let config = Config::builder(dev.issuer(), &client.id)
        .client_secret(client.secret.clone().expect("secret"))
        .redirect_url(format!("http://{addr}/auth/callback"))
        .session_key(SessionKey::generate())
        .scopes(["openid", "profile", "offline_access"])
        .refresh_margin(Duration::ZERO)
        .clock(clock.closure())
        .build()
        .expect("config");
    let oidc = OidcLayer::discover(config).await.expect("discovery");
    let app = serve_app(listener, oidc.clone());
    assert_eq!(oidc.metrics(), Default::default());

    // One bearer token, twice: verified, then from the cache (before the clock moves).
    let token = dev_tokens(&dev, &client, "openid").await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    for _ in 0..2 {
        let res = reqwest::Client::new()
            .get(app.url("/whoami"))
            .header(ACCEPT, "application/json")
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::OK);
    }
    // A login, then a refresh.
    let browser = Browser::new();
    browser.log_in(&app).await;
    clock.advance(ACCESS_TTL + Duration::from_secs(1));
    assert_eq!(
        browser.get(&app.url("/whoami")).await.status(),
        StatusCode::OK
    );
    // Two failed callbacks: no valid state, and a state naming no login.
    for query in ["code=c", "code=c&state=nothing-here"] {
        let res = Browser::new()
            .get(&app.url(&format!("/auth/callback?{query}")))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
    // A login started by hand (its transaction is left unused).
    assert_eq!(
        Browser::new()
            .get(&app.url("/auth/login?return_to=/me"))
            .await
            .status(),
        StatusCode::FOUND
    );
    // A logout.
    assert_eq!(
        browser.get(&app.url("/auth/logout")).await.status(),
        StatusCode::FOUND
    );

    let m = oidc.metrics();
    assert_eq!(m.logins, 1);
    assert_eq!(m.refreshes, 1);
    assert_eq!(m.refresh_failures, 0);
    assert_eq!(m.login_failures, 2);
    assert_eq!(
        m.login_failures_by_kind().collect::<Vec<_>>(),
        [(AuthErrorKind::InvalidCallback, 2)]
    );
    assert_eq!((m.bearer_cache_misses, m.bearer_cache_hits), (1, 1));
    assert_eq!(m.revocations, 1);
    assert_eq!(m.logins_refused_by_app, 0);

    let log = captured.text();
    for expected in [
        r#"oidc{route="login" outcome="ok" status=302}"#,
        r#"oidc{route="callback" outcome="ok" status=302}"#,
        r#"oidc{route="callback" outcome="invalid_callback" status=400}"#,
        r#"oidc{route="logout" outcome="ok" status=302}"#,
    ] {
        assert!(log.contains(expected), "{expected} not in:\n{log}");
    }
}
