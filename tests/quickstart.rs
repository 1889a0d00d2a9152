//! The quickstart contract (DESIGN §5): the example binary, started with no provider
//! configured, runs the development provider and serves a working browser login; `/me`
//! answers by caller kind.

mod support;

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use support::app::Browser;
use support::html;
use tokio::io::{AsyncBufReadExt, BufReader};
use url::Url;

/// The quickstart binary that `cargo test` builds next to the test binaries.
fn quickstart_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join("examples").join("quickstart");
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples; run it without --test filters",
        path.display()
    );
    path
}

/// Reads the quickstart's standard output (at most 30 s) until it prints `Listening on`:
/// whether it did (`Err` on the timeout), and the lines printed so far.
async fn read_until_listening(
    child: &mut tokio::process::Child,
) -> (Result<bool, tokio::time::error::Elapsed>, Vec<String>) {
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = stdout.next_line().await {
            printed.push(line.clone());
            if line.starts_with("Listening on") {
                return true;
            }
        }
        false
    })
    .await;
    (ready, printed)
}

#[tokio::test]
async fn quickstart_serves_a_working_login() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let app = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let mut child = tokio::process::Command::new(quickstart_binary())
        .env("APP_URL", app.as_str())
        .env_remove("OIDC_ISSUER")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("quickstart starts");
    let (ready, printed) = read_until_listening(&mut child).await;
    assert_eq!(ready, Ok(true), "quickstart output: {printed:?}");
    assert!(
        printed.iter().any(|l| l.contains("alice@example.com")),
        "{printed:?}"
    );

    // caller kinds on /me without a session
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let me = app.join("/me").unwrap();
    let get = |accept: &'static str, ct: Option<&'static str>| {
        let mut req = http.get(me.clone()).header("accept", accept);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    assert_eq!(
        get("text/html", None).await.unwrap().status(),
        StatusCode::FOUND
    );
    assert_eq!(
        get("application/json", None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let grpc = get("*/*", Some("application/grpc")).await.unwrap();
    assert_eq!(grpc.status(), StatusCode::OK);
    assert_eq!(grpc.headers()["grpc-status"], "16");

    // a browser login through the development provider's login page
    let browser = Browser::new();
    let page = browser.follow(&me).await;
    assert_eq!(page.status, StatusCode::OK);
    let form = html::forms(&page.body)
        .into_iter()
        .find(|f| {
            f.hidden_fields()
                .iter()
                .any(|(k, v)| k == "sub" && v == "alice")
        })
        .unwrap_or_else(|| panic!("no login button for alice: {}", page.body));
    let action = page.url.join(&form.action).unwrap();
    let res = browser
        .client
        .post(action)
        .form(&form.hidden_fields())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let next = page
        .url
        .join(res.headers()["location"].to_str().unwrap())
        .unwrap();
    let landing = browser.follow(&next).await;
    assert_eq!(landing.url.as_str(), me.as_str());
    let claims = landing.json();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert!(claims["name"].is_string());
    let home = browser.get(&app).await.text().await.unwrap();
    assert!(home.contains("Log out"), "{home}");

    // roles: a JSON array; /admin needs the role `admin`, which alice lacks
    let roles = browser.follow(&app.join("/roles").unwrap()).await;
    assert_eq!(roles.status, StatusCode::OK);
    assert!(roles.json().is_array(), "{}", roles.body);
    let admin = browser.get(&app.join("/admin").unwrap()).await;
    assert_eq!(admin.status(), StatusCode::FORBIDDEN);
    let anonymous = http
        .get(app.join("/admin").unwrap())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let _ = child.kill().await;
}

/// Several replicas behind one `APP_URL`: `BIND_ADDR` chooses the listen address, and
/// `REDIS_URL` shares revocations (a logout lands in Redis).
#[tokio::test]
async fn quickstart_binds_to_bind_addr_and_shares_logouts_through_redis_url() {
    let redis = support::redis::RedisServer::start().await;
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
    };
    // The public URL (the load balancer's) and the replica's own listen address differ.
    let (public_port, bind_port) = (free_port(), free_port());
    let public = Url::parse(&format!("http://127.0.0.1:{public_port}/")).unwrap();
    let replica = Url::parse(&format!("http://127.0.0.1:{bind_port}/")).unwrap();
    let mut child = tokio::process::Command::new(quickstart_binary())
        .env("APP_URL", public.as_str())
        .env("BIND_ADDR", format!("127.0.0.1:{bind_port}"))
        .env("REDIS_URL", redis.url())
        .env_remove("OIDC_ISSUER")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("quickstart starts");
    let (ready, printed) = read_until_listening(&mut child).await;
    assert_eq!(ready, Ok(true), "quickstart output: {printed:?}");
    assert!(
        printed.iter().any(|l| l.contains("shared through Redis")),
        "{printed:?}"
    );

    // Log in as alice; the provider sends the browser to the public URL, which the "load
    // balancer" (this test) maps to the replica.
    let to_replica = |url: Url| {
        if url.port() == Some(public_port) {
            replica.join(url.path()).map(|mut u| {
                u.set_query(url.query());
                u
            })
        } else {
            Ok(url)
        }
    };
    let browser = Browser::new();
    let page = browser.follow(&replica.join("/me").unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    let form = html::forms(&page.body)
        .into_iter()
        .find(|f| {
            f.hidden_fields()
                .iter()
                .any(|(k, v)| k == "sub" && v == "alice")
        })
        .unwrap_or_else(|| panic!("no login button for alice: {}", page.body));
    let res = browser
        .client
        .post(page.url.join(&form.action).unwrap())
        .form(&form.hidden_fields())
        .send()
        .await
        .unwrap();
    let mut next = page
        .url
        .join(res.headers()["location"].to_str().unwrap())
        .unwrap();
    let mut visited = Vec::new();
    loop {
        assert!(visited.len() < 5, "a login loop: {visited:?}");
        let landing = browser
            .follow_until(&to_replica(next).unwrap(), |u| {
                u.port() == Some(public_port)
            })
            .await;
        if landing.status.is_redirection() {
            visited.push(landing.url.to_string());
            next = landing.url;
            continue;
        }
        assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
        assert_eq!(landing.json()["sub"], "alice");
        break;
    }
    assert_eq!(
        redis.command("ZCARD tower-oidc:revocations").await,
        ":0\r\n",
        "nothing revoked yet"
    );
    let logout = browser.get(&replica.join("/auth/logout").unwrap()).await;
    assert_eq!(logout.status(), StatusCode::FOUND);
    support::wait::until("the logout in Redis", support::wait::PATIENCE, || async {
        match redis.command("ZCARD tower-oidc:revocations").await.as_str() {
            ":1\r\n" => Ok(()),
            other => Err(other.to_owned()),
        }
    })
    .await;
    let _ = child.kill().await;
}

/// `OIDC_PAR=1` and `OIDC_DPOP=1` against the embedded development provider: the login goes
/// through the PAR endpoint (only `client_id` and `request_uri` in the browser) and the
/// session's tokens are DPoP-bound.
#[tokio::test]
async fn quickstart_logs_in_with_par_and_dpop() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let app = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let mut child = tokio::process::Command::new(quickstart_binary())
        .env("APP_URL", app.as_str())
        .env_remove("OIDC_ISSUER")
        .env("OIDC_PAR", "1")
        .env("OIDC_DPOP", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("quickstart starts");
    let (ready, printed) = read_until_listening(&mut child).await;
    assert_eq!(ready, Ok(true), "quickstart output: {printed:?}");
    let me = app.join("/me").unwrap();
    let browser = Browser::new();
    let page = browser.follow(&me).await;
    assert_eq!(page.status, StatusCode::OK);
    let authorize = page
        .visited
        .iter()
        .find(|u| u.path() == "/authorize")
        .unwrap_or_else(|| panic!("no authorization request: {:?}", page.visited));
    let names: Vec<String> = authorize
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .collect();
    assert_eq!(names, ["client_id", "request_uri"]);
    let form = html::forms(&page.body)
        .into_iter()
        .find(|f| {
            f.hidden_fields()
                .iter()
                .any(|(k, v)| k == "sub" && v == "alice")
        })
        .unwrap_or_else(|| panic!("no login button for alice: {}", page.body));
    let action = page.url.join(&form.action).unwrap();
    let res = browser
        .client
        .post(action)
        .form(&form.hidden_fields())
        .send()
        .await
        .unwrap();
    let next = page
        .url
        .join(res.headers()["location"].to_str().unwrap())
        .unwrap();
    let landing = browser.follow(&next).await;
    assert_eq!(landing.url.as_str(), me.as_str());
    assert_eq!(landing.json()["sub"], "alice");
}

/// `OIDC_PROFILE=fapi2` needs `private_key_jwt`, which the embedded development provider does
/// not offer: the quickstart stops with the reason instead of running a weaker profile; an
/// unknown profile is refused too.
#[tokio::test]
async fn quickstart_refuses_a_profile_it_cannot_meet() {
    for (profile, reason) in [("fapi2", "private_key_jwt"), ("fapi9", "OIDC_PROFILE")] {
        let output = tokio::process::Command::new(quickstart_binary())
            .env("APP_URL", "http://127.0.0.1:9/")
            .env_remove("OIDC_ISSUER")
            .env("OIDC_PROFILE", profile)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(30), output)
            .await
            .unwrap_or_else(|_| panic!("{profile}: the quickstart should stop at once"))
            .expect("quickstart runs");
        assert!(!output.status.success(), "{profile}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains(reason), "{profile}: {text}");
    }
}

/// `SESSION_STORE`: `redis` needs `REDIS_URL`, anything but `cookie` or `redis` is refused,
/// both before anything starts; with both set, sessions are server-side.
#[tokio::test]
async fn quickstart_session_store_needs_redis_url_and_a_known_value() {
    for (value, redis_url, expected) in [
        ("redis", None, "SESSION_STORE=redis needs REDIS_URL"),
        (
            "memcached",
            Some("redis://127.0.0.1:1/"),
            "SESSION_STORE must be `cookie` or `redis`",
        ),
    ] {
        let mut command = tokio::process::Command::new(quickstart_binary());
        command
            .env("SESSION_STORE", value)
            .env("APP_URL", "http://127.0.0.1:1/")
            .env_remove("REDIS_URL")
            .env_remove("OIDC_ISSUER")
            .kill_on_drop(true);
        if let Some(url) = redis_url {
            command.env("REDIS_URL", url);
        }
        let output = tokio::time::timeout(Duration::from_secs(30), command.output())
            .await
            .expect("exits at once")
            .expect("runs");
        assert!(!output.status.success(), "{value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{value}: {stderr}");
    }

    let redis = support::redis::RedisServer::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let app = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let mut child = tokio::process::Command::new(quickstart_binary())
        .env("APP_URL", app.as_str())
        .env("REDIS_URL", redis.url())
        .env("SESSION_STORE", "redis")
        .env_remove("OIDC_ISSUER")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("quickstart starts");
    let (ready, printed) = read_until_listening(&mut child).await;
    assert_eq!(ready, Ok(true), "quickstart output: {printed:?}");
    assert!(
        printed
            .iter()
            .any(|l| l.contains("Sessions are kept in Redis")),
        "{printed:?}"
    );
    let browser = Browser::new();
    let page = browser.follow(&app.join("/me").unwrap()).await;
    assert_eq!(page.status, StatusCode::OK, "the provider's login page");
    let form = html::forms(&page.body)
        .into_iter()
        .find(|f| {
            f.hidden_fields()
                .iter()
                .any(|(k, v)| k == "sub" && v == "alice")
        })
        .unwrap_or_else(|| panic!("no login button for alice: {}", page.body));
    let res = browser
        .client
        .post(page.url.join(&form.action).unwrap())
        .form(&form.hidden_fields())
        .send()
        .await
        .unwrap();
    let next = page
        .url
        .join(res.headers()["location"].to_str().unwrap())
        .unwrap();
    let landing = browser.follow(&next).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.json()["sub"], "alice");
    let keys = redis.command("KEYS tower-oidc:session:*").await;
    assert!(keys.starts_with("*1\r\n"), "one session in Redis: {keys}");
    let _ = child.kill().await;
}

/// `OIDC_TENANTS` against a multi-tenant provider (Entra-like `…/common`): users of the
/// listed tenant log in, those of another tenant are refused.
#[tokio::test]
async fn quickstart_accepts_the_tenants_of_oidc_tenants() {
    const ALLOWED: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    let dev = tower_oidc::dev::DevProvider::builder()
        .issuer_path("/common")
        .multi_tenant(true)
        .authorization_response_iss(false)
        .start()
        .await
        .expect("dev provider");
    dev.set_auto_login(Some("alice"));
    let client = dev.confidential_client().clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let app = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
    let mut child = tokio::process::Command::new(quickstart_binary())
        .env("APP_URL", app.as_str())
        .env("OIDC_ISSUER", dev.issuer())
        .env("OIDC_CLIENT_ID", &client.id)
        .env(
            "OIDC_CLIENT_SECRET",
            client.secret.as_deref().unwrap_or_default(),
        )
        .env("OIDC_TENANTS", format!(" {ALLOWED} , other-tenant"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("quickstart starts");
    let (ready, printed) = read_until_listening(&mut child).await;
    assert_eq!(ready, Ok(true), "quickstart output: {printed:?}");
    let me = app.join("/me").unwrap();
    dev.set_tenant(ALLOWED);
    let landing = Browser::new().follow(&me).await;
    assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
    assert_eq!(landing.json()["tid"], ALLOWED);
    dev.set_tenant("ffffffff-0000-4000-8000-000000000009");
    let landing = Browser::new().follow(&me).await;
    assert_eq!(landing.status, StatusCode::BAD_REQUEST, "{}", landing.body);
    let _ = child.kill().await;
}
