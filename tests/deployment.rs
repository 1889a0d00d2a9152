//! Deployment: a provider behind a private CA (a test CA made at test time with the `openssl`
//! CLI, the dev provider behind a TLS front signed by it), trusted through extra root
//! certificates or a caller-supplied HTTP client.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::cookie::Jar;
use reqwest::StatusCode;
use support::app::{bind_loopback, serve_app, Browser};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower_oidc::dev::DevProvider;
use tower_oidc::{Config, ConfigBuilder, ConfigError, OidcLayer, SessionKey};

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI is needed for this test: apt-get install openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate for `localhost` and `127.0.0.1` signed by it
/// (`server.pem`, `server.key`), in a fresh directory.
fn private_ca(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tower-oidc-ca-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=tower-oidc test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .expect("extensions file");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ],
    );
    dir
}

/// The dev provider behind a TLS front at `https://localhost:PORT` with the CA's server
/// certificate.
async fn provider_behind_tls(ca: &Path) -> (DevProvider, tokio::task::JoinHandle<()>) {
    let front = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = front.local_addr().expect("address").port();
    let dev = DevProvider::builder()
        .public_origin(format!("https://localhost:{port}"))
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca.join("server.pem"))
        .expect("server certificate")
        .collect::<Result<_, _>>()
        .expect("server certificate");
    let key = PrivateKeyDer::from_pem_file(ca.join("server.key")).expect("server key");
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("TLS configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let backend = dev.addr();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = front.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    (dev, task)
}

async fn layer(
    dev: &DevProvider,
    redirect: &str,
    configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> Result<OidcLayer, ConfigError> {
    let client = dev.confidential_client();
    let config = configure(
        Config::builder(dev.issuer(), &client.id)
            .client_secret(client.secret.clone().expect("secret"))
            .redirect_url(redirect)
            .session_key(SessionKey::generate()),
    )
    .build()?;
    OidcLayer::discover(config).await
}

/// A browser that trusts the CA too (it visits the provider's login).
fn browser_trusting(ca_pem: &[u8]) -> Browser {
    let jar = Arc::new(Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).expect("CA"))
        .build()
        .expect("HTTP client");
    Browser { client, jar }
}

#[tokio::test]
async fn a_provider_behind_a_private_ca_with_an_extra_root_certificate() {
    let ca = private_ca("roots");
    let ca_pem = std::fs::read(ca.join("ca.pem")).expect("CA");
    let (dev, _front) = provider_behind_tls(&ca).await;
    assert!(dev.issuer().starts_with("https://localhost:"));
    let listener = bind_loopback().await;
    let redirect = format!("http://{}/auth/callback", listener.local_addr().unwrap());

    // The platform's trust store alone does not know the CA.
    let err = layer(&dev, &redirect, |b| b).await.expect_err("refused");
    assert!(matches!(err, ConfigError::Discovery { .. }), "{err:?}");

    let oidc = layer(&dev, &redirect, |b| b.root_certificate(ca_pem.clone()))
        .await
        .expect("the CA is trusted");
    let app = serve_app(listener, oidc);
    let landing = browser_trusting(&ca_pem).follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.json()["sub"], "alice");
    assert!(dev.stats().token_requests >= 1);
    let _ = std::fs::remove_dir_all(&ca);
}

#[tokio::test]
async fn a_caller_supplied_http_client_is_used_for_the_provider() {
    let ca = private_ca("client");
    let ca_pem = std::fs::read(ca.join("ca.pem")).expect("CA");
    let (dev, _front) = provider_behind_tls(&ca).await;
    let listener = bind_loopback().await;
    let redirect = format!("http://{}/auth/callback", listener.local_addr().unwrap());
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let err = layer(&dev, &redirect, |b| b.http_client(plain))
        .await
        .expect_err("refused");
    assert!(matches!(err, ConfigError::Discovery { .. }), "{err:?}");
    let trusting = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).expect("CA"))
        .build()
        .expect("HTTP client");
    let oidc = layer(&dev, &redirect, |b| b.http_client(trusting))
        .await
        .expect("the caller's client trusts the CA");
    let app = serve_app(listener, oidc);
    let landing = browser_trusting(&ca_pem).follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    let _ = std::fs::remove_dir_all(&ca);
}

/// Started while the provider is down: every request is answered `503` with `Retry-After`
/// until an attempt, due by the layer's clock, discovers the provider; logins then work.
#[tokio::test]
async fn starting_while_the_provider_is_down_then_logging_in_once_it_is_up() {
    let dev = DevProvider::start().await.expect("dev provider");
    dev.set_auto_login(Some("alice"));
    dev.set_fault(tower_oidc::dev::Fault::Down);
    let clock = support::clock::TestClock::frozen();
    // A minute (real time for the background task, so it never runs in this test); the
    // layer's clock moves at most two minutes ahead, within the ID token's lifetime.
    let minute = std::time::Duration::from_secs(60);
    let listener = bind_loopback().await;
    let redirect = format!("http://{}/auth/callback", listener.local_addr().unwrap());
    let strict = layer(&dev, &redirect, |b| b).await;
    assert!(
        matches!(strict, Err(ConfigError::Discovery { .. })),
        "{strict:?}"
    );
    let oidc = layer(&dev, &redirect, |b| {
        b.retry_discovery(minute).clock(clock.closure())
    })
    .await
    .expect("started without the provider");
    let app = serve_app(listener, oidc);
    let discoveries = dev.stats().discovery_requests;

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let unavailable = |path: &'static str, accept: &'static str| {
        let req = http.get(app.url(path)).header("accept", accept);
        async move {
            let res = req.send().await.expect("request");
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
            res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }
    };
    assert_eq!(unavailable("/auth/login", "text/html").await, 60);
    assert_eq!(unavailable("/me", "application/json").await, 60);
    // Up again, but no attempt is due yet: no call to the provider.
    dev.clear_faults();
    clock.advance(std::time::Duration::from_secs(30));
    assert_eq!(unavailable("/me", "text/html").await, 30);
    assert_eq!(dev.stats().discovery_requests, discoveries);
    // Down when the attempt is due: it fails, and the next is an interval later.
    dev.set_fault(tower_oidc::dev::Fault::Down);
    clock.advance(std::time::Duration::from_secs(30));
    assert_eq!(unavailable("/auth/login", "text/html").await, 60);
    assert_eq!(dev.stats().discovery_requests, discoveries + 1);
    // Up, and due: the request that finds it due discovers the provider and is served.
    dev.clear_faults();
    clock.advance(minute);
    let landing = Browser::new().follow(&app.url("/me")).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.json()["sub"], "alice");
    assert_eq!(dev.stats().discovery_requests, discoveries + 2);
}
