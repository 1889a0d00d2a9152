//! End-to-end tests in a real browser: headless Chromium signs in through the login and consent
//! pages of the real `oidc-provider` and lands on the app's `/me`. The app runs on `127.0.0.1`
//! and the provider on `localhost`, so they are different sites, as in production. The
//! `form_post` flows (hybrid, and code with `response_mode=form_post`) check that Chromium
//! carries the `SameSite=None; Secure` login-transaction cookie on the provider's cross-site
//! POST to the callback, over plain http on loopback.
//!
//! Chromium and chromedriver come from Debian's packages, installed on first use when the tests
//! run as root (see `support::browser`). Screenshots go to `<target>/test-artifacts/<test>/`.

mod support;

use support::app::{bind_loopback, start_app_on, TestApp};
use support::browser::{
    document_hops_in, request_cookies, DocumentHop, NetworkEvent, RequestCookies, Session, WAIT,
};
use support::oidc_provider::{ClientConfig, NodeProvider, ProviderOptions};
use tower_oidc::{ConfigBuilder, ResponseMode, ResponseType};
use url::Url;

const CLIENT_ID: &str = "rp-browser";
const CLIENT_SECRET: &str = "rp-browser-secret";
const SESSION_COOKIE: &str = "oidc_session";
/// Login-transaction cookies (plain http: no `__Secure-` prefix).
const TX_COOKIE_PREFIX: &str = "oidc_tx_";

/// The login form of `provider.mjs`.
const LOGIN_FORM: &str = "form#login";
/// The consent form of `provider.mjs`.
const CONSENT_FORM: &str = "form#confirm";
/// oidc-provider's RP-initiated logout confirmation ("Yes, sign me out").
const LOGOUT_YES: &str = "button[name='logout'][value='yes']";

/// A provider, the app registered at it as a confidential client, and a browser.
struct Stack {
    provider: NodeProvider,
    app: TestApp,
    browser: Session,
}

impl Stack {
    /// The default stack: the code flow with a query-string callback.
    async fn start(test: &str) -> Stack {
        Stack::start_with(test, |client| client, |app| app).await
    }

    /// A stack whose client registration and app configuration `client` and `configure` adjust.
    async fn start_with(
        test: &str,
        client: impl FnOnce(ClientConfig) -> ClientConfig,
        configure: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Stack {
        let listener = bind_loopback().await;
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let services = async {
            let provider = NodeProvider::start(
                ProviderOptions::new().host("localhost").client(client(
                    ClientConfig::confidential(CLIENT_ID, CLIENT_SECRET)
                        .redirect_uri(&format!("{base}/auth/callback"))
                        .post_logout_redirect_uri(&format!("{base}/")),
                )),
            )
            .await;
            let app = start_app_on(listener, provider.issuer(), CLIENT_ID, |b| {
                configure(b.client_secret(CLIENT_SECRET))
            })
            .await
            .unwrap_or_else(|e| panic!("app starts against oidc-provider: {e}"));
            (provider, app)
        };
        let ((provider, app), browser) = tokio::join!(services, Session::start(test));
        Stack {
            provider,
            app,
            browser,
        }
    }

    fn is_app(&self, url: &Url) -> bool {
        url.origin() == self.app.base.origin()
    }

    fn is_provider(&self, url: &Url) -> bool {
        Url::parse(self.provider.issuer()).is_ok_and(|issuer| issuer.origin() == url.origin())
    }

    /// Waits for the provider's login form (after a navigation to a protected page).
    async fn wait_for_login_page(&self) {
        let b = &self.browser;
        b.wait_for(LOGIN_FORM, WAIT).await;
        let url = b.url().await;
        if !self.is_provider(&url) || !url.path().starts_with("/interaction/") {
            b.fail(format!("the login form is not the provider's: {url}"))
                .await;
        }
    }

    /// Completes sign-in as alice from wherever the current tab is (login form, consent page,
    /// or already on its way back) until the tab shows an app page; returns its URL.
    async fn sign_in(&self) -> Url {
        self.sign_in_until(false).await
    }

    /// Like [`Stack::sign_in`]; with `or_callback_page`, a page the callback itself shows (an
    /// error: a successful callback redirects) also ends the sign-in.
    async fn sign_in_until(&self, or_callback_page: bool) -> Url {
        let b = &self.browser;
        for _ in 0..6 {
            let page = b
                .wait_until(
                    "an app page, the login form or the consent form",
                    WAIT,
                    || async {
                        let url = b.url().await;
                        if self.is_app(&url) && (url.path() != "/auth/callback" || or_callback_page)
                        {
                            return Some(Page::App(url));
                        }
                        if b.try_find(LOGIN_FORM).await.is_some() {
                            return Some(Page::Login);
                        }
                        if b.try_find(CONSENT_FORM).await.is_some() {
                            return Some(Page::Consent);
                        }
                        None
                    },
                )
                .await;
            match page {
                Page::App(url) => return url,
                Page::Login => {
                    b.fill("form#login input[name='login']", "alice").await;
                    b.fill("form#login input[name='password']", "alice").await;
                    let submit = b.find("form#login button[type='submit']").await;
                    b.click_and_wait_for_navigation(&submit).await;
                }
                Page::Consent => {
                    let submit = b.find("form#confirm button[type='submit']").await;
                    b.click_and_wait_for_navigation(&submit).await;
                }
            }
        }
        b.fail("sign-in did not reach an app page after six pages")
            .await
    }

    /// Asserts the current page is `/me` (with `query`) showing alice's claims.
    async fn assert_on_me(&self, query: Option<&str>) {
        let b = &self.browser;
        let url = b.url().await;
        if !self.is_app(&url) || url.path() != "/me" || url.query() != query {
            b.fail(format!("expected the app's /me?{query:?}, got {url}"))
                .await;
        }
        let claims = b.json().await;
        if claims["sub"] != "alice" || claims["iss"] != self.provider.issuer() {
            b.fail(format!("unexpected claims on /me: {claims}")).await;
        }
    }
}

enum Page {
    App(Url),
    Login,
    Consent,
}

#[tokio::test]
async fn code_flow_logs_in_through_the_provider_pages() {
    let s = Stack::start("code_flow_logs_in_through_the_provider_pages").await;
    let b = &s.browser;

    // A navigation to a protected page is sent to the provider's login page.
    b.goto(s.app.url("/me")).await;
    s.wait_for_login_page().await;
    b.screenshot("provider-login").await;

    let landed = s.sign_in().await;
    assert_eq!(landed.as_str(), s.app.url("/me").as_str());
    s.assert_on_me(None).await;
    b.screenshot("me").await;

    // The session cookie as Chromium stored it.
    let cookies = b.cookies().await;
    let session: Vec<_> = cookies
        .iter()
        .filter(|c| {
            c.name == SESSION_COOKIE
                || c.name
                    .strip_prefix(SESSION_COOKIE)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .collect();
    if session.is_empty() {
        b.fail(format!("no session cookie stored: {cookies:?}"))
            .await;
    }
    for cookie in session {
        assert!(cookie.http_only, "not HttpOnly: {cookie:?}");
        assert_eq!(cookie.same_site.as_deref(), Some("Lax"), "{cookie:?}");
        assert_eq!(cookie.path.as_deref(), Some("/"), "{cookie:?}");
        assert!(
            !cookie.secure,
            "an http app gets no Secure cookie: {cookie:?}"
        );
    }
    // Login transaction cookies are scoped to /auth (so `GET /cookie` on /me never lists
    // them: ask the whole store) and gone after the callback.
    let all = b.all_cookies().await;
    assert!(
        all.iter().all(|c| !c.name.starts_with(TX_COOKIE_PREFIX)),
        "{all:?}"
    );
    // The provider's own cookies stay on the provider's site.
    assert!(
        cookies
            .iter()
            .all(|c| c.domain.as_deref() != Some("localhost")),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn two_tabs_log_in_at_the_same_time() {
    let s = Stack::start("two_tabs_log_in_at_the_same_time").await;
    let b = &s.browser;

    let tab_a = b.window_handle().await;
    b.goto(s.app.url("/me?tab=1")).await;
    s.wait_for_login_page().await;

    let tab_b = b.new_tab().await;
    b.switch_to(&tab_b).await;
    b.goto(s.app.url("/me?tab=2")).await;
    s.wait_for_login_page().await;
    assert_eq!(b.window_handles().await.len(), 2);

    // B signs in first, then A finishes the login it started before.
    s.sign_in().await;
    s.assert_on_me(Some("tab=2")).await;

    b.switch_to(&tab_a).await;
    s.sign_in().await;
    s.assert_on_me(Some("tab=1")).await;

    b.switch_to(&tab_b).await;
    b.goto(s.app.url("/me?tab=2")).await;
    s.assert_on_me(Some("tab=2")).await;
}

#[tokio::test]
async fn back_button_after_login_never_shows_a_server_error() {
    let s = Stack::start("back_button_after_login_never_shows_a_server_error").await;
    let b = &s.browser;

    b.goto(s.app.url("/me")).await;
    s.sign_in().await;
    s.assert_on_me(None).await;

    let hops = b.document_hops().await;
    let listing = hops.iter().map(ToString::to_string).collect::<Vec<_>>();
    let callback = hops
        .iter()
        .find(|hop| s.is_app(&hop.url) && hop.url.path() == "/auth/callback")
        .unwrap_or_else(|| panic!("no callback among the document loads: {listing:#?}"))
        .url
        .clone();
    assert!(
        hops.iter().all(|hop| hop.status.is_none_or(|st| st < 500)),
        "{listing:#?}"
    );

    // Back through the history until it leaves the provider and the app.
    let mut seen = Vec::new();
    for _ in 0..6 {
        b.back().await;
        let url = b.url().await;
        if !s.is_app(&url) && !s.is_provider(&url) {
            break;
        }
        let status = b.response_status().await;
        seen.push(format!("{url} -> {status:?}"));
        if status.is_some_and(|st| st >= 500) {
            b.fail(format!("a server error after going back: {seen:#?}"))
                .await;
        }
    }
    let hops = b.document_hops().await;
    if let Some(hop) = hops
        .iter()
        .find(|hop| hop.status.is_some_and(|st| st >= 500))
    {
        b.fail(format!(
            "a server error after going back: {hop}; history {seen:#?}"
        ))
        .await;
    }

    // The used callback itself (as a back button that reaches it would load it again): the app
    // has a session, so it goes to `/`.
    b.goto(callback.as_str()).await;
    let hops = b.document_hops().await;
    let listing = hops.iter().map(ToString::to_string).collect::<Vec<_>>();
    let used = hops
        .iter()
        .find(|hop| hop.url == callback)
        .unwrap_or_else(|| panic!("the callback was not loaded: {listing:#?}"));
    assert!(
        used.status.is_some_and(|st| (300..400).contains(&st)),
        "a used callback with a session redirects: {listing:#?}"
    );
    let url = b.url().await;
    if url.as_str() != s.app.url("/").as_str() {
        b.fail(format!("a used callback should end on /: {listing:#?}"))
            .await;
    }
    let text = b.text().await;
    assert_eq!(text.trim(), "hello alice");
}

#[tokio::test]
async fn logout_confirms_at_the_provider_and_returns_to_the_app() {
    let s = Stack::start("logout_confirms_at_the_provider_and_returns_to_the_app").await;
    let b = &s.browser;

    b.goto(s.app.url("/me")).await;
    s.sign_in().await;
    s.assert_on_me(None).await;

    b.goto(s.app.url("/auth/logout")).await;
    let yes = b.wait_for(LOGOUT_YES, WAIT).await;
    let url = b.url().await;
    if !s.is_provider(&url) {
        b.fail("the logout confirmation is not the provider's page")
            .await;
    }
    b.screenshot("provider-logout").await;
    b.click_and_wait_for_navigation(&yes).await;

    let home = s.app.url("/");
    b.wait_for_url("the app's home page", |url| url.as_str() == home.as_str())
        .await;
    let text = b.text().await;
    if text.trim() != "hello stranger" {
        b.fail("logged out, the home page greets a stranger").await;
    }
    assert!(
        b.cookies()
            .await
            .iter()
            .all(|c| !c.name.starts_with(SESSION_COOKIE)),
        "the session cookie is gone"
    );

    // The provider session is over too: /me asks for the password again.
    b.goto(s.app.url("/me")).await;
    s.wait_for_login_page().await;
}

/// What a `form_post` login looked like in the browser, for the checks and for the artifacts.
struct FormPostLogin {
    /// The form fields Chromium posted to the callback (names only).
    posted_fields: Vec<String>,
}

/// Signs in as alice through a `form_post` flow (hybrid or code) and checks that Chromium
/// carried the login-transaction cookie (`SameSite=None; Secure`, set over plain http on
/// loopback) on the provider's cross-site POST to the callback, and that the tab lands on `/me`.
/// When it does not, fails with the stored cookie, the cookies Chromium considered for the POST
/// (with its reasons for withholding them) and a screenshot, all saved as artifacts.
async fn form_post_login(s: &Stack) -> FormPostLogin {
    let b = &s.browser;
    b.goto(s.app.url("/me")).await;
    s.wait_for_login_page().await;

    // The transaction cookie as Chromium stored it, before any login (it is scoped to /auth,
    // so only the whole cookie store shows it, not `GET /cookie`).
    let stored = b.all_cookies().await;
    let before = b.network_events().await;
    save_artifact(
        b,
        "cookies-before-login.txt",
        &stored
            .iter()
            .map(|c| {
                format!(
                    "{} domain={:?} path={:?} SameSite={:?} Secure={} HttpOnly={}\n",
                    c.name, c.domain, c.path, c.same_site, c.secure, c.http_only
                )
            })
            .collect::<String>(),
    );
    save_artifact(b, "network-to-login.txt", &app_network_log(s, &before));
    let tx: Vec<_> = stored
        .iter()
        .filter(|c| c.name.starts_with(TX_COOKIE_PREFIX))
        .collect();
    let [tx] = tx.as_slice() else {
        b.screenshot("no-transaction-cookie").await;
        b.fail(format!(
            "expected one stored login-transaction cookie; the store holds {stored:#?}\n\
             app requests:\n{}",
            app_network_log(s, &before)
        ))
        .await
    };
    let expected = (Some("127.0.0.1"), Some("/"), Some("None"), true, true);
    let actual = (
        tx.domain.as_deref(),
        tx.path.as_deref(),
        tx.same_site.as_deref(),
        tx.secure,
        tx.http_only,
    );
    assert_eq!(
        actual, expected,
        "(domain, path, SameSite, Secure, HttpOnly) of the stored transaction cookie {tx:?}"
    );

    // Sign in; the provider's auto-submitting page POSTs the answer cross-site to the callback.
    let landed = s.sign_in_until(true).await;
    let events = b.network_events().await;
    let log = app_network_log(s, &events);
    save_artifact(b, "network-sign-in.txt", &log);
    let hops = document_hops_in(&events);
    let listing = hops.iter().map(ToString::to_string).collect::<Vec<_>>();
    let Some(callback) = hops
        .iter()
        .find(|hop| s.is_app(&hop.url) && hop.url.path() == "/auth/callback")
    else {
        b.screenshot("no-callback").await;
        b.fail(format!("the callback was never loaded: {listing:#?}"))
            .await
    };
    let sent = hop_cookies(&events, &hops, callback);
    let tx_sent = sent
        .as_ref()
        .and_then(|hop| {
            hop.considered
                .iter()
                .find(|c| c.cookie.name == tx.name)
                .map(|c| (c.sent(), hop.header.clone()))
        })
        .is_some_and(|(sent, header)| {
            sent && header.is_some_and(|h| h.contains(&format!("{}=", tx.name)))
        });
    if landed.path() == "/auth/callback" || !tx_sent || callback.status != Some(302) {
        let shot = b.screenshot("callback-refused").await;
        b.fail(format!(
            "the form_post callback did not log in (landed on {landed}; screenshot {}).\n\
             stored transaction cookie before login: {tx:?}\n\
             callback hop: {callback}\n\
             cookies Chromium considered for the callback POST: {sent:#?}\n\
             document loads: {listing:#?}\n\
             app requests:\n{log}",
            shot.display()
        ))
        .await;
    }
    assert_eq!(callback.method, "POST", "{listing:#?}");
    assert!(
        hops.iter().all(|hop| hop.status.is_none_or(|st| st < 400)),
        "{listing:#?}"
    );
    assert_eq!(landed.as_str(), s.app.url("/me").as_str());
    s.assert_on_me(None).await;
    b.screenshot("me").await;
    assert_cookies_after_login(b).await;
    FormPostLogin {
        posted_fields: posted_fields(&events, &callback.request_id),
    }
}

/// After a login: the session cookie is `SameSite=Lax` and HttpOnly, and no login-transaction
/// cookie is left anywhere in the store.
async fn assert_cookies_after_login(b: &Session) {
    let cookies = b.cookies().await;
    let session: Vec<_> = cookies
        .iter()
        .filter(|c| is_session_cookie(&c.name))
        .collect();
    if session.is_empty() {
        b.fail(format!("no session cookie stored: {cookies:?}"))
            .await;
    }
    for cookie in session {
        assert!(cookie.http_only, "not HttpOnly: {cookie:?}");
        assert_eq!(cookie.same_site.as_deref(), Some("Lax"), "{cookie:?}");
    }
    // `GET /cookie` on /me cannot see cookies scoped to /auth: ask the whole store.
    let all = b.all_cookies().await;
    assert!(
        all.iter().all(|c| !c.name.starts_with(TX_COOKIE_PREFIX)),
        "a login-transaction cookie is left: {all:#?}"
    );
}

fn is_session_cookie(name: &str) -> bool {
    name == SESSION_COOKIE
        || name
            .strip_prefix(SESSION_COOKIE)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// The names of the form fields of request `request_id`'s POST body, when Chromium logged it.
fn posted_fields(events: &[NetworkEvent], request_id: &str) -> Vec<String> {
    events
        .iter()
        .find(|e| e.method == "Network.requestWillBeSent" && e.params["requestId"] == request_id)
        .and_then(|e| e.params["request"]["postData"].as_str())
        .map(|body| {
            url::form_urlencoded::parse(body.as_bytes())
                .map(|(name, _)| name.into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The app's requests among `events`: method, URL, status, the `Cookie` header sent, and the
/// cookies Chromium withheld or refused to store, with its reasons.
fn app_network_log(s: &Stack, events: &[NetworkEvent]) -> String {
    let mut out = String::new();
    let hops = document_hops_in(events);
    for hop in hops.iter().filter(|hop| s.is_app(&hop.url)) {
        out.push_str(&format!("{hop}\n"));
        let Some(sent) = hop_cookies(events, &hops, hop) else {
            out.push_str("  (no cookie information logged)\n");
            continue;
        };
        let names = sent.header.as_deref().map(cookie_names);
        out.push_str(&format!("  Cookie header with: {names:?}\n"));
        for c in sent.considered.iter().filter(|c| !c.sent()) {
            out.push_str(&format!(
                "  withheld {} (path {:?}): {:?}\n",
                c.cookie.name, c.cookie.path, c.blocked_reasons
            ));
        }
    }
    for event in events {
        if event.method != "Network.responseReceivedExtraInfo" {
            continue;
        }
        for blocked in event.params["blockedCookies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let line = blocked["cookieLine"].as_str().unwrap_or_default();
            let attributes = line.split_once(';').map_or("", |(_, attrs)| attrs);
            out.push_str(&format!(
                "  Set-Cookie refused: {}=…;{attributes} {}\n",
                cookie_names(line).first().map_or("", String::as_str),
                blocked["blockedReasons"]
            ));
        }
    }
    out
}

/// The cookies Chromium considered for `hop`: redirect hops share a request id, and their
/// `requestWillBeSentExtraInfo` events come in hop order.
fn hop_cookies(
    events: &[NetworkEvent],
    hops: &[DocumentHop],
    hop: &DocumentHop,
) -> Option<RequestCookies> {
    let index = hops
        .iter()
        .filter(|other| other.request_id == hop.request_id)
        .position(|other| std::ptr::eq(other, hop))?;
    request_cookies(events, &hop.request_id)
        .into_iter()
        .nth(index)
}

/// The cookie names of a `Cookie` header (values left out of logs and artifacts).
fn cookie_names(header: &str) -> Vec<String> {
    header
        .split(';')
        .filter_map(|pair| pair.split_once('=').map(|(name, _)| name.trim().to_owned()))
        .collect()
}

fn save_artifact(b: &Session, name: &str, contents: &str) {
    let path = b.artifacts_dir().join(name);
    std::fs::write(&path, contents).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
}

#[tokio::test]
async fn hybrid_flow_with_form_post_logs_in_cross_site() {
    let s = Stack::start_with(
        "hybrid_flow_with_form_post_logs_in_cross_site",
        |client| {
            client.response_types(&["code id_token"]).grant_types(&[
                "authorization_code",
                "refresh_token",
                "implicit",
            ])
        },
        |app| app.response_type(ResponseType::CodeIdToken),
    )
    .await;
    let login = form_post_login(&s).await;
    for field in ["code", "id_token", "state"] {
        assert!(
            login.posted_fields.iter().any(|f| f == field),
            "the form_post carries {field}: {:?}",
            login.posted_fields
        );
    }
}

#[tokio::test]
async fn code_flow_with_form_post_logs_in_cross_site() {
    let s = Stack::start_with(
        "code_flow_with_form_post_logs_in_cross_site",
        |client| client,
        |app| app.response_mode(ResponseMode::FormPost),
    )
    .await;
    let login = form_post_login(&s).await;
    for field in ["code", "state"] {
        assert!(
            login.posted_fields.iter().any(|f| f == field),
            "the form_post carries {field}: {:?}",
            login.posted_fields
        );
    }
    assert!(
        !login.posted_fields.iter().any(|f| f == "id_token"),
        "{:?}",
        login.posted_fields
    );
}
