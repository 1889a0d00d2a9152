//! Headless Chromium driven over W3C WebDriver, for end-to-end tests in a real browser.
//!
//! [`ensure_chromium`] installs Debian's `chromium` and `chromium-driver` when they are missing
//! (as root; otherwise it panics with the command), [`Session::start`] runs `chromedriver` on a
//! free loopback port and opens a browser with its own fresh profile, and the `Session` methods
//! are a small WebDriver client. Every failure panics with the current URL and the start of the
//! page source. Screenshots go to `<target>/test-artifacts/<test name>/`.

use std::fmt;
use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::apt::{tail, Prerequisite};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

/// The Chromium binary of Debian's `chromium` package.
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver binary of Debian's `chromium-driver` package.
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// What installs both.
pub(crate) const INSTALL_COMMAND: &str =
    "apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver";

/// Chromium's command line. Without the background-networking switches the browser keeps
/// opening connections that a closed network refuses.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// Default timeout of the wait helpers.
pub(crate) const WAIT: Duration = Duration::from_secs(15);
/// How long one WebDriver command may take (page loads included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test binary waits for another one's installation.
const INSTALL_WAIT: Duration = Duration::from_secs(15 * 60);
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `<crate>/target`).
pub(crate) fn target_dir() -> PathBuf {
    let configured = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_TARGET_DIR").map(PathBuf::from));
    match configured {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => manifest_dir().join(dir),
        None => manifest_dir().join("target"),
    }
}

/// `<target>/test-artifacts/<test>/`, created.
pub(crate) fn artifacts_dir(test: &str) -> PathBuf {
    let dir = target_dir().join("test-artifacts").join(test);
    std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("create {}: {err}", dir.display()));
    dir
}

/// Debian's Chromium and its driver, installed when missing.
const CHROMIUM_PACKAGES: Prerequisite = Prerequisite {
    needed_by: "the browser tests",
    tag: "[browser]",
    packages: &["chromium", "chromium-driver"],
    binaries: &[CHROMIUM, CHROMEDRIVER],
    install_command: INSTALL_COMMAND,
    lock_name: "chromium-install.lock",
    wait: INSTALL_WAIT,
};

/// Makes sure `/usr/bin/chromium` and `/usr/bin/chromedriver` exist, installing Debian's
/// packages when running as root. Concurrent test binaries take turns through a lock file in
/// the target directory. Panics with [`INSTALL_COMMAND`] when they are missing and cannot be
/// installed; never skips. The outcome is cached for the process.
pub(crate) fn ensure_chromium() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(message) = CHECKED.get_or_init(|| CHROMIUM_PACKAGES.check_or_install()) {
        panic!("{message}");
    }
}

fn head(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether `bytes` hold a whole HTTP/1.1 response with a `Content-Length` body.
fn http_response_complete(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let headers = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length = headers
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok());
    length.is_some_and(|length| bytes.len() >= end + 4 + length)
}

/// A response body as JSON (reqwest's `json` feature is not enabled).
async fn read_json(response: reqwest::Response) -> Result<Value, String> {
    let bytes = response.bytes().await.map_err(|err| err.to_string())?;
    serde_json::from_slice(&bytes).map_err(|err| {
        format!(
            "not JSON ({err}): {}",
            head(&String::from_utf8_lossy(&bytes), 500)
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("find a free loopback port")
}

/// A running `chromedriver`, killed on drop.
struct Driver {
    port: u16,
    log: Arc<Mutex<String>>,
    _child: Child,
}

impl Driver {
    /// Starts chromedriver on a free port and waits for `GET /status` to say ready; tries three
    /// ports before giving up.
    async fn start(http: &reqwest::Client) -> Driver {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(http).await {
                Ok(driver) => return driver,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("chromedriver did not start:\n{}", failures.join("\n---\n"));
    }

    async fn try_start(http: &reqwest::Client) -> Result<Driver, String> {
        let port = free_port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("spawn {CHROMEDRIVER}: {err} (install: `{INSTALL_COMMAND}`)"))?;
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = Arc::clone(&log);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut log) = sink.lock() {
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            });
        }
        let status_url = format!("http://127.0.0.1:{port}/status");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(format!(
                    "chromedriver on port {port} exited ({status}):\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                ));
            }
            let ready = match http.get(&status_url).send().await {
                Ok(response) => read_json(response)
                    .await
                    .is_ok_and(|body| body["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                return Ok(Driver {
                    port,
                    log,
                    _child: child,
                });
            }
            if Instant::now() > deadline {
                let _ = child.start_kill();
                return Err(format!(
                    "chromedriver on port {port} was not ready after 20 s:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// An element reference of the current page.
#[derive(Debug, Clone)]
pub(crate) struct Element {
    id: String,
    css: String,
}

impl Element {
    fn json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

/// A cookie as Chromium stored it (`GET /session/{id}/cookie`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Cookie {
    pub(crate) name: String,
    pub(crate) value: String,
    #[serde(default)]
    pub(crate) path: Option<String>,
    #[serde(default)]
    pub(crate) domain: Option<String>,
    #[serde(default)]
    pub(crate) secure: bool,
    #[serde(default)]
    pub(crate) http_only: bool,
    /// `Strict`, `Lax` or `None`.
    #[serde(default)]
    pub(crate) same_site: Option<String>,
    #[serde(default)]
    pub(crate) expiry: Option<u64>,
}

/// One hop of a document load, from Chromium's network log: redirects are separate hops.
#[derive(Debug, Clone)]
pub(crate) struct DocumentHop {
    /// Chromium's request id, shared by the hops of one redirect chain.
    pub(crate) request_id: String,
    pub(crate) method: String,
    pub(crate) url: Url,
    /// The response status, when Chromium logged a response.
    pub(crate) status: Option<u16>,
}

impl fmt::Display for DocumentHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} {} -> {status}", self.method, self.url),
            None => write!(f, "{} {} -> (no response)", self.method, self.url),
        }
    }
}

/// One `Network.*` DevTools event of Chromium's performance log.
#[derive(Debug, Clone)]
pub(crate) struct NetworkEvent {
    /// E.g. `Network.requestWillBeSent`.
    pub(crate) method: String,
    pub(crate) params: Value,
}

/// The document loads among `events`: every redirect hop, with its status, in order.
pub(crate) fn document_hops_in(events: &[NetworkEvent]) -> Vec<DocumentHop> {
    let mut hops: Vec<DocumentHop> = Vec::new();
    let set_status = |hops: &mut Vec<DocumentHop>, id: &str, status: &Value| {
        let status = status.as_f64().map(|s| s as u16);
        if let Some(hop) = hops.iter_mut().rev().find(|hop| hop.request_id == id) {
            hop.status = hop.status.or(status);
        }
    };
    for event in events {
        let params = &event.params;
        if params["type"] != "Document" {
            continue;
        }
        let id = params["requestId"].as_str().unwrap_or_default();
        match event.method.as_str() {
            "Network.requestWillBeSent" => {
                if params["redirectResponse"].is_object() {
                    set_status(&mut hops, id, &params["redirectResponse"]["status"]);
                }
                let Ok(url) = Url::parse(params["request"]["url"].as_str().unwrap_or_default())
                else {
                    continue;
                };
                let method = params["request"]["method"]
                    .as_str()
                    .unwrap_or("GET")
                    .to_owned();
                hops.push(DocumentHop {
                    request_id: id.to_owned(),
                    method,
                    url,
                    status: None,
                });
            }
            "Network.responseReceived" => {
                set_status(&mut hops, id, &params["response"]["status"]);
            }
            _ => {}
        }
    }
    hops
}

/// The cookies of one request as Chromium sent it (`Network.requestWillBeSentExtraInfo`).
#[derive(Debug, Clone)]
pub(crate) struct RequestCookies {
    /// The `Cookie` header sent, if any.
    pub(crate) header: Option<String>,
    /// Every cookie Chromium considered, with why it was withheld (empty when sent).
    pub(crate) considered: Vec<ConsideredCookie>,
}

/// A cookie Chromium considered for a request.
#[derive(Debug, Clone)]
pub(crate) struct ConsideredCookie {
    pub(crate) cookie: Cookie,
    /// DevTools `CookieBlockedReason`s; empty when the cookie was sent.
    pub(crate) blocked_reasons: Vec<String>,
    /// Why a cookie that would have been withheld was sent anyway, if it was.
    pub(crate) exemption: Option<String>,
}

impl ConsideredCookie {
    pub(crate) fn sent(&self) -> bool {
        self.blocked_reasons.is_empty()
    }
}

/// The cookies of every hop of request `request_id` (redirect hops share an id), in order.
pub(crate) fn request_cookies(events: &[NetworkEvent], request_id: &str) -> Vec<RequestCookies> {
    events
        .iter()
        .filter(|event| {
            event.method == "Network.requestWillBeSentExtraInfo"
                && event.params["requestId"] == request_id
        })
        .map(|event| {
            let headers = event.params["headers"].as_object();
            let header = headers.and_then(|headers| {
                headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("cookie"))
                    .and_then(|(_, value)| value.as_str())
                    .map(str::to_owned)
            });
            let considered = event.params["associatedCookies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|entry| {
                    let cookie = serde_json::from_value(entry["cookie"].clone()).ok()?;
                    let blocked_reasons =
                        serde_json::from_value(entry["blockedReasons"].clone()).unwrap_or_default();
                    let exemption = entry["exemptionReason"]
                        .as_str()
                        .filter(|reason| *reason != "None")
                        .map(str::to_owned);
                    Some(ConsideredCookie {
                        cookie,
                        blocked_reasons,
                        exemption,
                    })
                })
                .collect();
            RequestCookies { header, considered }
        })
        .collect()
}

/// A WebDriver error answer.
#[derive(Debug)]
struct WdError {
    error: String,
    message: String,
}

impl fmt::Display for WdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, head(&self.message, 600))
    }
}

static PROFILES: AtomicU32 = AtomicU32::new(0);

/// A browser session: its own chromedriver, Chromium and profile directory. Dropping it
/// deletes the session (Chromium quits), stops chromedriver and removes the profile.
pub(crate) struct Session {
    http: reqwest::Client,
    base: String,
    id: String,
    test: String,
    profile: PathBuf,
    driver: Driver,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("test", &self.test)
            .field("id", &self.id)
            .field("driver_port", &self.driver.port)
            .finish()
    }
}

impl Session {
    /// Installs Chromium if needed, starts chromedriver and opens a headless Chromium with a
    /// fresh profile. `test` names the artifacts folder.
    pub(crate) async fn start(test: &str) -> Session {
        match tokio::task::spawn_blocking(ensure_chromium).await {
            Ok(()) => {}
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => panic!("check the Chromium installation: {err}"),
        }
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("build the WebDriver HTTP client");
        let driver = Driver::start(&http).await;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let profile = std::env::temp_dir().join(format!(
            "tower-oidc-chromium-{}-{}-{nanos}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&profile)
            .unwrap_or_else(|err| panic!("create {}: {err}", profile.display()));
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "implicit": 0, "pageLoad": 20_000, "script": 10_000 },
                    "goog:loggingPrefs": { "performance": "ALL" },
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": args,
                        "perfLoggingPrefs": { "enableNetwork": true, "enablePage": false },
                    },
                }
            }
        });
        let base = format!("http://127.0.0.1:{}", driver.port);
        let answer = http
            .post(format!("{base}/session"))
            .header(CONTENT_TYPE, "application/json")
            .body(capabilities.to_string())
            .send()
            .await;
        let body: Value = match answer {
            Ok(response) => read_json(response).await.unwrap_or_else(Value::String),
            Err(err) => Value::String(err.to_string()),
        };
        let Some(id) = body["value"]["sessionId"].as_str() else {
            let _ = std::fs::remove_dir_all(&profile);
            panic!(
                "chromedriver did not open a Chromium session: {body}\nchromedriver log:\n{}",
                tail(&driver.log(), 4000)
            );
        };
        Session {
            base: format!("{base}/session/{id}"),
            id: id.to_owned(),
            http,
            test: test.to_owned(),
            profile,
            driver,
        }
    }

    /// The artifacts folder of this test, `<target>/test-artifacts/<test>/`.
    pub(crate) fn artifacts_dir(&self) -> PathBuf {
        artifacts_dir(&self.test)
    }

    async fn command(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WdError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        let body = body.or_else(|| (method == Method::POST).then(|| json!({})));
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|err| WdError {
            error: "transport".into(),
            message: format!("{method} {url}: {err}"),
        })?;
        let status = response.status();
        let body = read_json(response).await.map_err(|err| WdError {
            error: "bad answer".into(),
            message: format!("{method} {url}: {err}"),
        })?;
        let value = body.get("value").cloned().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        Err(WdError {
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Like `command`, panicking with the page context on error.
    async fn must(&self, what: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        match self.command(method, path, body).await {
            Ok(value) => value,
            Err(err) => self.fail(format!("{what} failed: {err}")).await,
        }
    }

    /// The current URL and the start of the page source, for failure messages; never panics.
    pub(crate) async fn context(&self) -> String {
        let url = match self.command(Method::GET, "/url", None).await {
            Ok(value) => value.as_str().unwrap_or_default().to_owned(),
            Err(err) => format!("<unknown: {err}>"),
        };
        let source = match self.command(Method::GET, "/source", None).await {
            Ok(value) => value.as_str().unwrap_or_default().to_owned(),
            Err(err) => format!("<unknown: {err}>"),
        };
        format!(
            "current URL: {url}\npage source (first 1500 characters):\n{}",
            head(&source, 1500)
        )
    }

    /// Panics with `message`, the current URL and the start of the page source.
    pub(crate) async fn fail(&self, message: impl fmt::Display) -> ! {
        let context = self.context().await;
        panic!("[browser, test {}] {message}\n{context}", self.test)
    }

    /// Navigates to `url` and waits for the page to load (redirects followed).
    pub(crate) async fn goto(&self, url: impl AsRef<str>) {
        let url = url.as_ref();
        self.must(
            &format!("navigate to {url}"),
            Method::POST,
            "/url",
            Some(json!({ "url": url })),
        )
        .await;
    }

    /// The URL of the current page.
    pub(crate) async fn url(&self) -> Url {
        let value = self
            .must("get the current URL", Method::GET, "/url", None)
            .await;
        let text = value.as_str().unwrap_or_default();
        Url::parse(text).unwrap_or_else(|err| panic!("current URL {text:?} is not a URL: {err}"))
    }

    /// The serialized DOM of the current page.
    pub(crate) async fn source(&self) -> String {
        let value = self
            .must("get the page source", Method::GET, "/source", None)
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The text of the page body (`innerText`).
    pub(crate) async fn text(&self) -> String {
        let value = self
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The page as a JSON document (Chromium shows JSON inside a `<pre>`).
    pub(crate) async fn json(&self) -> Value {
        let text = self
            .execute(
                "const pre = document.querySelector('pre'); \
                 return pre ? pre.textContent : (document.body ? document.body.innerText : '');",
                vec![],
            )
            .await;
        let text = text.as_str().unwrap_or_default().to_owned();
        match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(err) => {
                self.fail(format!("the page is not JSON ({err}): {text}"))
                    .await
            }
        }
    }

    /// The first element matching the CSS selector, if any.
    pub(crate) async fn try_find(&self, css: &str) -> Option<Element> {
        let body = json!({ "using": "css selector", "value": css });
        match self.command(Method::POST, "/element", Some(body)).await {
            Ok(value) => {
                let id = value[ELEMENT_KEY].as_str()?.to_owned();
                Some(Element {
                    id,
                    css: css.to_owned(),
                })
            }
            Err(err) if err.error == "no such element" => None,
            Err(err) => self.fail(format!("find {css:?} failed: {err}")).await,
        }
    }

    /// The first element matching the CSS selector; panics when there is none.
    pub(crate) async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Some(element) => element,
            None => self.fail(format!("no element matches {css:?}")).await,
        }
    }

    /// Waits (up to `timeout`) for an element matching the CSS selector.
    pub(crate) async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        self.wait_until(
            &format!("an element matching {css:?}"),
            timeout,
            || async move { self.try_find(css).await },
        )
        .await
    }

    /// Clicks the element.
    pub(crate) async fn click(&self, element: &Element) {
        let path = format!("/element/{}/click", element.id);
        self.must(
            &format!("click {:?}", element.css),
            Method::POST,
            &path,
            None,
        )
        .await;
    }

    /// Clicks the element and waits until another document has loaded (the click navigates).
    pub(crate) async fn click_and_wait_for_navigation(&self, element: &Element) {
        self.execute("window.__towerOidcOldPage = true;", vec![])
            .await;
        self.click(element).await;
        self.wait_for_new_document(&format!("a new page after clicking {:?}", element.css))
            .await;
    }

    /// Types `text` into the element.
    pub(crate) async fn send_keys(&self, element: &Element, text: &str) {
        let path = format!("/element/{}/value", element.id);
        self.must(
            &format!("type into {:?}", element.css),
            Method::POST,
            &path,
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Types `text` into the first element matching `css`.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.send_keys(&element, text).await;
    }

    /// Submits the form matching `css` (as its default submit button would) and waits for the
    /// next document.
    pub(crate) async fn submit(&self, form_css: &str) {
        let form = self.find(form_css).await;
        self.execute(
            "window.__towerOidcOldPage = true; \
             const form = arguments[0]; \
             if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }",
            vec![form.json()],
        )
        .await;
        self.wait_for_new_document(&format!("a new page after submitting {form_css:?}"))
            .await;
    }

    async fn wait_for_new_document(&self, what: &str) {
        self.wait_until(what, WAIT, || async move {
            let script = "return window.__towerOidcOldPage === undefined \
                          && document.readyState === 'complete';";
            // The old document may be gone mid-call: try again.
            match self
                .command(
                    Method::POST,
                    "/execute/sync",
                    Some(json!({ "script": script, "args": [] })),
                )
                .await
            {
                Ok(Value::Bool(true)) => Some(()),
                _ => None,
            }
        })
        .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub(crate) async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({ "script": script, "args": args });
        self.must(
            "execute a script",
            Method::POST,
            "/execute/sync",
            Some(body),
        )
        .await
    }

    /// Runs an asynchronous script (it calls its last argument with the result) and returns
    /// what it passed.
    pub(crate) async fn execute_async(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.must(
            "execute an asynchronous script",
            Method::POST,
            "/execute/async",
            Some(body),
        )
        .await
    }

    /// The HTTP status of the current document's response (Navigation Timing), when known.
    pub(crate) async fn response_status(&self) -> Option<u16> {
        let value = self
            .execute(
                "const nav = performance.getEntriesByType('navigation')[0]; \
                 return nav && nav.responseStatus ? nav.responseStatus : null;",
                vec![],
            )
            .await;
        value.as_u64().and_then(|status| u16::try_from(status).ok())
    }

    /// The browser's back button; waits for the page to load.
    pub(crate) async fn back(&self) {
        self.must("go back", Method::POST, "/back", None).await;
    }

    /// Opens a new tab and returns its window handle (the current window does not change).
    pub(crate) async fn new_tab(&self) -> String {
        let value = self
            .must(
                "open a tab",
                Method::POST,
                "/window/new",
                Some(json!({ "type": "tab" })),
            )
            .await;
        value["handle"]
            .as_str()
            .unwrap_or_else(|| panic!("no handle in the new-window answer {value}"))
            .to_owned()
    }

    /// Makes the window or tab `handle` the current one.
    pub(crate) async fn switch_to(&self, handle: &str) {
        self.must(
            &format!("switch to window {handle}"),
            Method::POST,
            "/window",
            Some(json!({ "handle": handle })),
        )
        .await;
    }

    /// The current window's handle.
    pub(crate) async fn window_handle(&self) -> String {
        let value = self
            .must("get the window handle", Method::GET, "/window", None)
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Every open window's handle.
    pub(crate) async fn window_handles(&self) -> Vec<String> {
        let value = self
            .must(
                "list the window handles",
                Method::GET,
                "/window/handles",
                None,
            )
            .await;
        serde_json::from_value(value).unwrap_or_default()
    }

    /// The cookies Chromium would send to the current page, with their stored attributes.
    pub(crate) async fn cookies(&self) -> Vec<Cookie> {
        let value = self
            .must("get the cookies", Method::GET, "/cookie", None)
            .await;
        match serde_json::from_value(value.clone()) {
            Ok(cookies) => cookies,
            Err(err) => {
                self.fail(format!("unexpected cookie list ({err}): {value}"))
                    .await
            }
        }
    }

    /// Saves a PNG screenshot as `<artifacts>/<name>.png` and returns its path.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let value = self
            .must("take a screenshot", Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or_default())
            .unwrap_or_else(|err| panic!("screenshot is not base64: {err}"));
        let path = self.artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
        path
    }

    /// Document loads (every redirect hop, with its status) logged by Chromium since the last
    /// read of the performance log, in order, for every tab.
    pub(crate) async fn document_hops(&self) -> Vec<DocumentHop> {
        document_hops_in(&self.network_events().await)
    }

    /// Chromium's `Network.*` DevTools events logged since the last read of the performance log
    /// (which this read empties), in order, for every tab.
    pub(crate) async fn network_events(&self) -> Vec<NetworkEvent> {
        let entries = self
            .must(
                "read the performance log",
                Method::POST,
                "/se/log",
                Some(json!({ "type": "performance" })),
            )
            .await;
        let mut events = Vec::new();
        for entry in entries.as_array().into_iter().flatten() {
            let Some(message) = entry["message"].as_str() else {
                continue;
            };
            let Ok(mut event) = serde_json::from_str::<Value>(message) else {
                continue;
            };
            let event = event["message"].take();
            let Some(method) = event["method"].as_str() else {
                continue;
            };
            if method.starts_with("Network.") {
                events.push(NetworkEvent {
                    method: method.to_owned(),
                    params: event["params"].clone(),
                });
            }
        }
        events
    }

    /// Runs a Chrome DevTools Protocol command through chromedriver; its result.
    pub(crate) async fn cdp(&self, command: &str, params: Value) -> Value {
        self.must(
            &format!("run the DevTools command {command}"),
            Method::POST,
            "/goog/cdp/execute",
            Some(json!({ "cmd": command, "params": params })),
        )
        .await
    }

    /// Every cookie of the browser's cookie store, whatever its site and path (DevTools
    /// `Storage.getCookies`), where [`Session::cookies`] lists only those the current page gets.
    pub(crate) async fn all_cookies(&self) -> Vec<Cookie> {
        let value = self.cdp("Storage.getCookies", json!({})).await;
        match serde_json::from_value(value["cookies"].clone()) {
            Ok(cookies) => cookies,
            Err(err) => {
                self.fail(format!("unexpected DevTools cookie list ({err}): {value}"))
                    .await
            }
        }
    }

    /// Polls `check` every 100 ms until it gives a value; after `timeout`, panics naming
    /// `what` with the page context.
    pub(crate) async fn wait_until<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() > deadline {
                self.fail(format!("timed out after {timeout:?} waiting for {what}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the current URL satisfies `accept`, and returns it.
    pub(crate) async fn wait_for_url(&self, what: &str, accept: impl Fn(&Url) -> bool) -> Url {
        let accept = &accept;
        self.wait_until(what, WAIT, || async move {
            match self.command(Method::GET, "/url", None).await {
                Ok(Value::String(url)) => Url::parse(&url).ok().filter(|url| accept(url)),
                _ => None,
            }
        })
        .await
    }

    /// Deletes the session with a plain blocking request (drop cannot await).
    fn delete_blocking(&self) -> Result<(), String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.driver.port))
            .map_err(|err| format!("connect to chromedriver: {err}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
            .map_err(|err| format!("socket timeouts: {err}"))?;
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.id, self.driver.port
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|err| format!("send DELETE: {err}"))?;
        // chromedriver may keep the connection open: read one response, not to the end.
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !http_response_complete(&answer) {
            match stream.read(&mut buf) {
                Ok(0) => break,
                // Child processes ending (SIGCHLD) interrupt the read.
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(format!("read the DELETE answer: {err}")),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        if answer.starts_with("HTTP/1.1 200") {
            Ok(())
        } else {
            Err(format!("DELETE session answered {:?}", head(&answer, 300)))
        }
    }

    /// Pids of processes started with this session's profile (Chromium and its helpers).
    fn profile_processes(&self) -> Vec<u32> {
        let needle = format!("--user-data-dir={}", self.profile.display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|cmdline| {
                        cmdline
                            .split(|byte| *byte == 0)
                            .any(|arg| arg == needle.as_bytes())
                    })
                    .unwrap_or(false)
            })
            .collect()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Err(err) = self.delete_blocking() {
            eprintln!(
                "[browser] could not end the Chromium session of {}: {err}",
                self.test
            );
        }
        // Chromium quits on DELETE; end whatever of this profile is left, by pid.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut left = self.profile_processes();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left = self.profile_processes();
        }
        for pid in left {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
