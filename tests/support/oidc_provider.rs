//! The real `oidc-provider` npm package as a test provider.
//!
//! [`ensure_installed`] installs the package pinned by `tests/oidc-provider/package-lock.json`
//! into `target/oidc-provider-node/<hash>/` once; [`NodeProvider::start`] runs
//! `tests/oidc-provider/provider.mjs` on a free loopback port; [`login`] and [`logout`] drive the
//! provider's pages over HTTP the way a browser would.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use url::Url;

use super::html;

/// Client id of the default confidential client (`client_secret_basic`).
pub(crate) const CONFIDENTIAL_CLIENT_ID: &str = "rp-confidential";
/// Secret of the default confidential client.
pub(crate) const CONFIDENTIAL_CLIENT_SECRET: &str = "rp-secret";
/// Client id of the default public client (auth method `none`).
pub(crate) const PUBLIC_CLIENT_ID: &str = "rp-public";
/// Redirect URI registered for the default clients (nothing listens there).
pub(crate) const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8080/auth/callback";
/// Post-logout redirect URI registered for the default clients.
pub(crate) const DEFAULT_POST_LOGOUT_REDIRECT_URI: &str = "http://127.0.0.1:8080/";
/// Resource indicator that gets JWT access tokens unless [`ProviderOptions::api_audience`] says
/// otherwise.
pub(crate) const DEFAULT_API_AUDIENCE: &str = "https://api.example.test";
/// Scopes of the default API resource server.
pub(crate) const DEFAULT_API_SCOPE: &str = "api:read api:write";

/// Oldest Node.js that oidc-provider 9 runs on.
const MIN_NODE: (u64, u64) = (20, 18);
const INSTALL_HINT: &str = "install Node.js >= 20.18 with npm: on Debian 13 (trixie) \
     `apt-get update && apt-get install -y nodejs npm`; Debian 12's own nodejs is 18, too old, so \
     there use NodeSource's nodejs 20 or 22 package, then `apt-get install -y nodejs`";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/oidc-provider/` in the source tree.
pub(crate) fn provider_source_dir() -> PathBuf {
    manifest_dir().join("tests").join("oidc-provider")
}

fn target_dir() -> PathBuf {
    let configured = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_TARGET_DIR").map(PathBuf::from));
    match configured {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => manifest_dir().join(dir),
        None => manifest_dir().join("target"),
    }
}

/// Runs `program --version` and returns its trimmed output, or panics with the install hint.
fn tool_version(program: &str) -> String {
    let output = std::process::Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "the oidc-provider interop tests need `{program}`, which could not be run ({err}): {INSTALL_HINT}"
            )
        });
    assert!(
        output.status.success(),
        "`{program} --version` failed ({}): {INSTALL_HINT}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn check_node() {
    let version = tool_version("node");
    let parsed = version
        .trim_start_matches('v')
        .split('.')
        .map(|part| part.parse::<u64>().ok())
        .collect::<Vec<_>>();
    let (major, minor) = match parsed.as_slice() {
        [Some(major), Some(minor), ..] => (*major, *minor),
        _ => panic!(
            "cannot read the Node.js version from `node --version` ({version:?}): {INSTALL_HINT}"
        ),
    };
    assert!(
        (major, minor) >= MIN_NODE,
        "Node.js {version} is too old for oidc-provider 9 (needs >= 20.18): {INSTALL_HINT}"
    );
    tool_version("npm");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Installs the pinned `oidc-provider` package (once per lock file) and returns the directory
/// whose `node_modules/` holds it.
///
/// The cache is `<target>/oidc-provider-node/<sha256 of package-lock.json>/`. Several test
/// binaries may call this at once: each installs into its own temporary directory and renames it
/// into place; a loser of that race uses the winner's directory. Panics with the command that
/// installs Node.js when `node`/`npm` are missing or too old; never skips.
pub(crate) fn ensure_installed() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED.get_or_init(install).clone()
}

fn install() -> PathBuf {
    check_node();
    let source = provider_source_dir();
    let lock = std::fs::read(source.join("package-lock.json"))
        .expect("read tests/oidc-provider/package-lock.json");
    let digest = ring::digest::digest(&ring::digest::SHA256, &lock);
    let hash = &hex(digest.as_ref())[..16];
    let cache = target_dir().join("oidc-provider-node");
    let dir = cache.join(hash);
    let marker = ".installed";
    if dir.join(marker).is_file() {
        return dir;
    }

    std::fs::create_dir_all(&cache)
        .unwrap_or_else(|err| panic!("create {}: {err}", cache.display()));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = cache.join(format!(".tmp-{hash}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap_or_else(|err| panic!("create {}: {err}", tmp.display()));
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), tmp.join(file))
            .unwrap_or_else(|err| panic!("copy {file} to {}: {err}", tmp.display()));
    }

    let output = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(&tmp)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("run `npm ci` in {}: {err}: {INSTALL_HINT}", tmp.display()));
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        panic!(
            "`npm ci --no-audit --no-fund --ignore-scripts` for tests/oidc-provider failed ({}); \
             the npm registry must be reachable on first use.\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::write(tmp.join(marker), hash)
        .unwrap_or_else(|err| panic!("write the install marker in {}: {err}", tmp.display()));

    match std::fs::rename(&tmp, &dir) {
        Ok(()) => dir,
        Err(_) if dir.join(marker).is_file() => {
            // Another test binary won the race; use its installation.
            let _ = std::fs::remove_dir_all(&tmp);
            dir
        }
        Err(err) => {
            let _ = std::fs::remove_dir_all(&tmp);
            panic!(
                "move the oidc-provider installation to {}: {err} (delete that directory if it is incomplete)",
                dir.display()
            )
        }
    }
}

/// A client registered at the provider: OpenID Connect client metadata as oidc-provider takes it.
#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    metadata: Map<String, Value>,
}

impl ClientConfig {
    /// A confidential client with `client_secret_basic`, the code flow and the
    /// `authorization_code`, `refresh_token` and `client_credentials` grants.
    pub(crate) fn confidential(client_id: &str, client_secret: &str) -> Self {
        let mut client = Self::base(client_id, "client_secret_basic");
        client
            .metadata
            .insert("client_secret".into(), client_secret.into());
        client.grant_types(&["authorization_code", "refresh_token", "client_credentials"])
    }

    /// A public client (auth method `none`, PKCE) with the code flow and refresh tokens.
    pub(crate) fn public(client_id: &str) -> Self {
        Self::base(client_id, "none").grant_types(&["authorization_code", "refresh_token"])
    }

    fn base(client_id: &str, auth_method: &str) -> Self {
        let mut metadata = Map::new();
        metadata.insert("client_id".into(), client_id.into());
        metadata.insert("token_endpoint_auth_method".into(), auth_method.into());
        metadata.insert("response_types".into(), json!(["code"]));
        Self { metadata }
    }

    /// Sets `token_endpoint_auth_method` (`client_secret_basic`, `client_secret_post`,
    /// `private_key_jwt`, `none`, ...).
    pub(crate) fn auth_method(self, method: &str) -> Self {
        self.set("token_endpoint_auth_method", method)
    }

    /// Adds a redirect URI (the default clients' one is used when none is added).
    pub(crate) fn redirect_uri(self, uri: &str) -> Self {
        self.push("redirect_uris", uri)
    }

    /// Adds a post-logout redirect URI.
    pub(crate) fn post_logout_redirect_uri(self, uri: &str) -> Self {
        self.push("post_logout_redirect_uris", uri)
    }

    /// Sets `response_types`, e.g. `&["code", "code id_token"]`.
    pub(crate) fn response_types(self, types: &[&str]) -> Self {
        self.set("response_types", json!(types))
    }

    /// Sets `grant_types`, e.g. `&["authorization_code", "refresh_token"]`.
    pub(crate) fn grant_types(self, types: &[&str]) -> Self {
        self.set("grant_types", json!(types))
    }

    /// Sets `backchannel_logout_uri` (and `backchannel_logout_session_required: true`).
    pub(crate) fn backchannel_logout_uri(self, uri: &str) -> Self {
        self.set("backchannel_logout_uri", uri)
            .set("backchannel_logout_session_required", true)
    }

    /// Sets any other client metadata field (`id_token_signed_response_alg`, `jwks`, ...).
    pub(crate) fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    fn push(mut self, key: &str, value: &str) -> Self {
        let entry = self
            .metadata
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(value.into());
        }
        self
    }

    fn to_json(&self) -> Value {
        let mut metadata = self.metadata.clone();
        metadata
            .entry("redirect_uris")
            .or_insert_with(|| json!([DEFAULT_REDIRECT_URI]));
        Value::Object(metadata)
    }
}

/// How [`NodeProvider::start`] configures `provider.mjs`; `Default` gives the documented defaults.
///
/// Defaults: issuer `http://localhost:<free port>`, clients [`CONFIDENTIAL_CLIENT_ID`] and
/// [`PUBLIC_CLIENT_ID`], accounts `alice` and `bob` (password = login), API audience
/// [`DEFAULT_API_AUDIENCE`], oidc-provider's TTLs except where set.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProviderOptions {
    config: Map<String, Value>,
    clients: Vec<ClientConfig>,
    accounts: Vec<Value>,
    ttl: Map<String, Value>,
}

impl ProviderOptions {
    /// The defaults.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Host name in the issuer URL (`localhost` by default; `127.0.0.1` also works). The server
    /// always listens on 127.0.0.1.
    pub(crate) fn host(self, host: &str) -> Self {
        self.set("host", host)
    }

    /// Issuer path prefix such as `/tenant-a` (the provider is mounted under it).
    pub(crate) fn path(self, path: &str) -> Self {
        self.set("path", path)
    }

    /// A fixed port instead of a free one.
    pub(crate) fn port(self, port: u16) -> Self {
        self.set("port", port)
    }

    /// Registers a client; the first call replaces the two default clients.
    pub(crate) fn client(mut self, client: ClientConfig) -> Self {
        self.clients.push(client);
        self
    }

    /// Adds an account; the first call replaces `alice` and `bob`. `claims` is a JSON object
    /// (`sub` defaults to `login`).
    pub(crate) fn account(mut self, login: &str, password: &str, claims: Value) -> Self {
        self.accounts
            .push(json!({ "login": login, "password": password, "claims": claims }));
        self
    }

    /// Access-token lifetime in seconds (also for client-credentials and resource tokens).
    pub(crate) fn access_token_ttl(self, seconds: u64) -> Self {
        self.ttl("AccessToken", seconds)
    }

    /// ID-token lifetime in seconds.
    pub(crate) fn id_token_ttl(self, seconds: u64) -> Self {
        self.ttl("IdToken", seconds)
    }

    /// Refresh-token lifetime in seconds.
    pub(crate) fn refresh_token_ttl(self, seconds: u64) -> Self {
        self.ttl("RefreshToken", seconds)
    }

    /// Provider session lifetime in seconds.
    pub(crate) fn session_ttl(self, seconds: u64) -> Self {
        self.ttl("Session", seconds)
    }

    /// Any oidc-provider `ttl` entry (`Grant`, `Interaction`, `AuthorizationCode`, ...).
    pub(crate) fn ttl(mut self, name: &str, seconds: u64) -> Self {
        self.ttl.insert(name.into(), seconds.into());
        self
    }

    /// The resource indicator (`resource=`) that gets JWT access tokens.
    pub(crate) fn api_audience(self, audience: &str) -> Self {
        self.set("api_audience", audience)
    }

    /// The scopes that resource server accepts (space-separated).
    pub(crate) fn api_scope(self, scope: &str) -> Self {
        self.set("api_scope", scope)
    }

    /// Issue a refresh token on every code exchange of a client allowed `refresh_token`, not
    /// only when `offline_access` was granted.
    pub(crate) fn always_issue_refresh_tokens(self) -> Self {
        self.set("refresh_tokens", "always")
    }

    /// Force refresh-token rotation on (`true`) or off (`false`) for every client.
    pub(crate) fn rotate_refresh_tokens(self, rotate: bool) -> Self {
        self.set("rotate_refresh_tokens", rotate)
    }

    /// Let the token endpoint bind the access token to the resource of the authorization
    /// request when the token request names none.
    pub(crate) fn use_granted_resource(self, use_it: bool) -> Self {
        self.set("use_granted_resource", use_it)
    }

    /// oidc-provider's `clockTolerance` in seconds (15 by default).
    pub(crate) fn clock_tolerance(self, seconds: u64) -> Self {
        self.set("clock_tolerance", seconds)
    }

    /// Any other key of the `provider.mjs` configuration document.
    pub(crate) fn set(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// The JSON document handed to `provider.mjs`.
    pub(crate) fn to_json(&self) -> Value {
        let mut config = self.config.clone();
        if !self.clients.is_empty() {
            config.insert(
                "clients".into(),
                self.clients.iter().map(ClientConfig::to_json).collect(),
            );
        }
        if !self.accounts.is_empty() {
            config.insert("accounts".into(), Value::Array(self.accounts.clone()));
        }
        if !self.ttl.is_empty() {
            config.insert("ttl".into(), Value::Object(self.ttl.clone()));
        }
        Value::Object(config)
    }
}

/// A running `provider.mjs`; the process ends when this is dropped.
#[derive(Debug)]
pub(crate) struct NodeProvider {
    issuer: String,
    port: u16,
    logs: Arc<Mutex<String>>,
    _stdin: ChildStdin,
    _child: Child,
}

impl NodeProvider {
    /// Installs the package if needed, starts the provider and waits (up to 30 s) for its
    /// `READY <issuer>` line; tries once more, then panics with the provider's stderr.
    pub(crate) async fn start(options: ProviderOptions) -> NodeProvider {
        let install_dir = match tokio::task::spawn_blocking(ensure_installed).await {
            Ok(dir) => dir,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => panic!("install oidc-provider: {err}"),
        };
        let config = options.to_json().to_string();
        // One retry: a provider that hangs before it is ready must not fail a test run on a busy
        // machine, but the first failure is printed in full.
        let first = match Self::spawn(&config, &install_dir).await {
            Ok(provider) => return provider,
            Err(failure) => failure,
        };
        eprintln!("[oidc-provider] first start failed, retrying once: {first}");
        match Self::spawn(&config, &install_dir).await {
            Ok(provider) => provider,
            Err(second) => panic!("{second}\n\nthe first attempt failed too: {first}"),
        }
    }

    async fn spawn(config: &str, install_dir: &Path) -> Result<NodeProvider, String> {
        let mut child = Command::new("node")
            .arg(provider_source_dir().join("provider.mjs"))
            .arg(config)
            .env("OIDC_PROVIDER_INSTALL_DIR", install_dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("spawn `node provider.mjs`: {err}: {INSTALL_HINT}"));
        let stdin = child.stdin.take().expect("provider stdin is piped");
        let stdout = child.stdout.take().expect("provider stdout is piped");
        let stderr = child.stderr.take().expect("provider stderr is piped");

        let logs = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&logs);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("[oidc-provider] {line}");
                if let Ok(mut logs) = sink.lock() {
                    logs.push_str(&line);
                    logs.push('\n');
                }
            }
        });

        let mut stdout = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Some(issuer) = line.strip_prefix("READY ") {
                    return Some(issuer.trim().to_owned());
                }
                eprintln!("[oidc-provider stdout] {line}");
            }
            None
        })
        .await;
        let issuer = match ready {
            Ok(Some(issuer)) => issuer,
            outcome => {
                let status = child.try_wait().ok().flatten();
                let process = child.id().map(process_state).unwrap_or_default();
                // Give the stderr reader a moment to collect the last lines.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let logs = logs.lock().map(|l| l.clone()).unwrap_or_default();
                let _ = child.start_kill();
                return Err(format!(
                    "oidc-provider did not print READY ({}; exit status {status:?}{process})\nconfig: {config}\nstderr:\n{logs}",
                    if outcome.is_err() { "timed out after 30 s" } else { "stdout closed" },
                ));
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });

        let port = Url::parse(&issuer)
            .expect("READY line carries the issuer URL")
            .port_or_known_default()
            .expect("issuer has a port");
        Ok(NodeProvider {
            issuer,
            port,
            logs,
            _stdin: stdin,
            _child: child,
        })
    }

    /// Starts a provider with the default options.
    pub(crate) async fn start_default() -> NodeProvider {
        Self::start(ProviderOptions::default()).await
    }

    /// The issuer identifier, e.g. `http://localhost:41234` or `http://localhost:41234/tenant-a`.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The port the provider listens on (127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `<issuer><path>`, e.g. `url("/.well-known/openid-configuration")`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The discovery document URL.
    pub(crate) fn discovery_url(&self) -> String {
        self.url("/.well-known/openid-configuration")
    }

    /// Everything the provider has written to stderr so far.
    pub(crate) fn logs(&self) -> String {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// `; state ...` of a process from /proc (Linux), to tell a hung provider from a busy one.
fn process_state(pid: u32) -> String {
    let read =
        |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    let state = read("status")
        .lines()
        .find(|line| line.starts_with("State:"))
        .map(|line| line.trim_start_matches("State:").trim().to_owned())
        .unwrap_or_default();
    format!("; pid {pid} state {state:?} wchan {:?}", read("wchan"))
}

/// The outcome of [`login`] / [`logout`]: the last response and every URL requested.
#[derive(Debug)]
pub(crate) struct Navigation {
    /// Every URL requested, in order (form posts included).
    pub(crate) visited: Vec<Url>,
    /// URL of the last response.
    pub(crate) url: Url,
    /// Status of the last response.
    pub(crate) status: StatusCode,
    /// Headers of the last response.
    pub(crate) headers: HeaderMap,
    /// Body of the last response.
    pub(crate) body: String,
    /// When the walk stopped at a redirect because of the `stop` predicate, its target
    /// (not requested); the last response is then that redirect.
    pub(crate) stopped_at: Option<Url>,
}

impl Navigation {
    /// The last response's `Location` resolved against its URL, if any.
    pub(crate) fn location(&self) -> Option<Url> {
        location(&self.url, &self.headers)
    }

    /// The last response's body as JSON; panics with the body when it is not.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| {
            panic!(
                "response from {} is not JSON ({err}): {}",
                self.url, self.body
            )
        })
    }
}

fn location(base: &Url, headers: &HeaderMap) -> Option<Url> {
    let value = headers.get(LOCATION)?.to_str().ok()?;
    Some(
        base.join(value)
            .unwrap_or_else(|err| panic!("bad Location {value:?} from {base}: {err}")),
    )
}

/// What the walker does on the provider's pages.
#[derive(Debug, Clone, Copy)]
struct Actions<'a> {
    credentials: Option<(&'a str, &'a str)>,
    confirm_logout: bool,
}

/// Signs in at the provider: starting at `start` (an app's `/me`, `/auth/login`, or an authorize
/// URL), follows redirects, posts `user`/`password` on the login page and confirms the consent
/// page, until a response that is not a redirect.
///
/// `client` must have `cookie_store(true)` and `redirect(Policy::none())`. A login page shown
/// again after the credentials were posted (wrong password) is returned as is.
pub(crate) async fn login(
    client: &reqwest::Client,
    issuer: &str,
    start: &str,
    user: &str,
    password: &str,
) -> Navigation {
    login_until(client, issuer, start, user, password, |_| false).await
}

/// Like [`login`], but does not request a redirect target for which `stop` is true: the walk ends
/// with that redirect as the last response and the target in [`Navigation::stopped_at`] (use it to
/// capture an authorization response sent to a redirect URI where nothing listens).
pub(crate) async fn login_until(
    client: &reqwest::Client,
    issuer: &str,
    start: &str,
    user: &str,
    password: &str,
    stop: impl Fn(&Url) -> bool,
) -> Navigation {
    let actions = Actions {
        credentials: Some((user, password)),
        confirm_logout: false,
    };
    walk(client, issuer, start, actions, stop).await
}

/// RP-initiated logout: starting at `start` (an app's logout URL or the provider's end-session
/// URL), follows redirects, submits the provider's logout confirmation form (`xsrf`,
/// `logout=yes`) and follows to the final response.
pub(crate) async fn logout(client: &reqwest::Client, issuer: &str, start: &str) -> Navigation {
    logout_until(client, issuer, start, |_| false).await
}

/// Like [`logout`], but stops before requesting a redirect target for which `stop` is true.
pub(crate) async fn logout_until(
    client: &reqwest::Client,
    issuer: &str,
    start: &str,
    stop: impl Fn(&Url) -> bool,
) -> Navigation {
    let actions = Actions {
        credentials: None,
        confirm_logout: true,
    };
    walk(client, issuer, start, actions, stop).await
}

enum Step {
    Get(Url),
    Post(Url, Vec<(String, String)>),
}

const MAX_STEPS: usize = 40;

async fn walk(
    client: &reqwest::Client,
    issuer: &str,
    start: &str,
    actions: Actions<'_>,
    stop: impl Fn(&Url) -> bool,
) -> Navigation {
    let issuer = Url::parse(issuer).expect("issuer is a URL");
    let provider_origin = issuer.origin();
    let mut step = Step::Get(Url::parse(start).expect("start URL is a URL"));
    let mut visited = Vec::new();
    let mut posted_login = false;
    let mut posted_consent = 0usize;
    let mut posted_logout = false;

    for _ in 0..MAX_STEPS {
        let (url, request) = match step {
            Step::Get(url) => (url.clone(), client.get(url)),
            Step::Post(url, fields) => (url.clone(), client.post(url).form(&fields)),
        };
        visited.push(url.clone());
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("request {url} failed: {err}"));
        let status = response.status();
        let headers = response.headers().clone();

        if status.is_redirection() {
            if let Some(next) = location(&url, &headers) {
                if stop(&next) {
                    let body = response.text().await.unwrap_or_default();
                    return Navigation {
                        visited,
                        url,
                        status,
                        headers,
                        body,
                        stopped_at: Some(next),
                    };
                }
                step = Step::Get(next);
                continue;
            }
        }

        let body = response
            .text()
            .await
            .unwrap_or_else(|err| panic!("read the body of {url}: {err}"));
        let done = |body: String| Navigation {
            visited: visited.clone(),
            url: url.clone(),
            status,
            headers: headers.clone(),
            body,
            stopped_at: None,
        };
        if url.origin() != provider_origin || status != StatusCode::OK {
            return done(body);
        }

        let interaction = format!("{}/interaction/", issuer.path().trim_end_matches('/'));
        let on_interaction = url.path().starts_with(&interaction);
        let forms = html::forms(&body);
        let post_form = |form: &html::Form, extra: &[(&str, &str)]| {
            let target = url
                .join(&form.action)
                .unwrap_or_else(|err| panic!("bad form action {:?} on {url}: {err}", form.action));
            let mut fields = form.hidden_fields();
            fields.extend(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            Step::Post(target, fields)
        };

        if on_interaction {
            if let Some((user, password)) = actions.credentials {
                if let Some(form) = forms
                    .iter()
                    .find(|f| f.action.ends_with("/login") && f.has_input("password"))
                {
                    if posted_login {
                        // The login page again: wrong credentials. Let the caller look at it.
                        return done(body);
                    }
                    posted_login = true;
                    step = post_form(form, &[("login", user), ("password", password)]);
                    continue;
                }
                if let Some(form) = forms.iter().find(|f| f.action.ends_with("/confirm")) {
                    posted_consent += 1;
                    assert!(
                        posted_consent <= 3,
                        "the provider keeps asking for consent at {url}:\n{body}"
                    );
                    step = post_form(form, &[]);
                    continue;
                }
            }
        }

        if actions.confirm_logout && !posted_logout {
            if let Some(form) = forms
                .iter()
                .find(|f| f.action.ends_with("/session/end/confirm"))
            {
                posted_logout = true;
                step = post_form(form, &[("logout", "yes")]);
                continue;
            }
        }

        return done(body);
    }
    panic!("more than {MAX_STEPS} requests starting at {start}: {visited:#?}");
}

/// A reqwest client as the login helpers need it: cookies on, redirects off, short timeouts.
pub(crate) fn browser_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build the reqwest client")
}

/// Logs `alice` in at `provider` starting from an app's `start` URL, and checks the walk
/// ends on a `200` (with the provider's log in the failure message).
pub(crate) async fn login_alice(
    client: &reqwest::Client,
    provider: &NodeProvider,
    start: &Url,
) -> Navigation {
    let nav = login(client, provider.issuer(), start.as_str(), "alice", "alice").await;
    assert_eq!(
        nav.status,
        StatusCode::OK,
        "{}\n{}",
        nav.body,
        provider.logs()
    );
    nav
}
