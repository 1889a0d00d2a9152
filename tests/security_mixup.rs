//! The mix-up attack on a relying party of several providers (RFC 9700 §4.4): a hostile
//! tenant relays the victim's login to an honest tenant, hoping the honest tenant's code
//! comes back to the app as an answer to the login that went to the hostile one, and is then
//! sent to the hostile tenant's token endpoint (with the PKCE verifier). Each provider has
//! its own redirect URI, so the app knows which provider answered and refuses.

mod support;

use reqwest::StatusCode;
use support::app::{bind_loopback, serve_app, set_cookies, Browser, TestApp};
use tower_oidc::dev::{DevClient, DevProvider, Fault};
use tower_oidc::{Config, OidcLayer, SessionKey};

/// The app's client at the honest provider, registered with exactly one redirect URI.
const HONEST_CLIENT: &str = "app-at-honest";
const HONEST_SECRET: &str = "honest-secret";
/// The app's redirect URIs: one per provider.
const HONEST_CALLBACK: &str = "/auth/callback/h";
const HOSTILE_CALLBACK: &str = "/auth/callback/a";

struct Setup {
    honest: DevProvider,
    hostile: DevProvider,
    app: TestApp,
    base: String,
}

/// An app with an honest tenant `h` and a hostile tenant `a`, each with its own redirect
/// URI. `honest_iss`: whether the honest provider sends `iss` (RFC 9207); Entra and Google do
/// not. The hostile one never advertises it.
async fn setup(honest_iss: bool) -> Setup {
    let listener = bind_loopback().await;
    let base = format!("http://{}", listener.local_addr().unwrap());
    let honest = DevProvider::builder()
        .issuer_path("/honest")
        .authorization_response_iss(honest_iss)
        .client(
            DevClient::confidential(HONEST_CLIENT, HONEST_SECRET)
                .redirect_uri(format!("{base}{HONEST_CALLBACK}")),
        )
        .auto_login(Some("alice".to_owned()))
        .start()
        .await
        .expect("honest provider");
    let hostile = DevProvider::builder()
        .issuer_path("/hostile")
        .authorization_response_iss(false)
        .start()
        .await
        .expect("hostile provider");
    let key = SessionKey::generate();
    let honest_config = Config::builder(honest.issuer(), HONEST_CLIENT)
        .client_secret(HONEST_SECRET)
        .redirect_url(format!("{base}{HONEST_CALLBACK}"))
        .session_key(key.clone())
        .build()
        .expect("config");
    let client = hostile.confidential_client();
    let hostile_config = Config::builder(hostile.issuer(), &client.id)
        .client_secret(client.secret.clone().expect("secret"))
        .redirect_url(format!("{base}{HOSTILE_CALLBACK}"))
        .session_key(key)
        .build()
        .expect("config");
    let layer = OidcLayer::discover_many([("h", honest_config), ("a", hostile_config)])
        .await
        .expect("layer");
    Setup {
        app: serve_app(listener, layer),
        honest,
        hostile,
        base,
    }
}

/// The attack: the victim starts a login at the hostile tenant, which relays to the honest
/// one (as the app's client there, with the app's redirect URI there); the honest provider
/// authenticates the victim and sends code and state to the app.
async fn relayed_login(s: &Setup) {
    s.hostile.set_fault(Fault::MixUpRelay {
        authorization_endpoint: format!("{}/authorize", s.honest.issuer()),
        client_id: HONEST_CLIENT.to_owned(),
        redirect_uri: format!("{}{HONEST_CALLBACK}", s.base),
    });
    let browser = Browser::new();
    let landing = browser
        .follow(&s.app.url("/auth/login?provider=a&return_to=/me"))
        .await;
    // the browser went app → hostile → honest → the app's callback for the honest tenant
    let visited: Vec<String> = landing.visited.iter().map(|u| u.to_string()).collect();
    assert!(
        visited[1].starts_with(s.hostile.issuer()),
        "login went to the hostile tenant: {visited:?}"
    );
    assert!(
        visited[2].starts_with(s.honest.issuer()),
        "relayed to the honest tenant: {visited:?}"
    );
    assert_eq!(landing.url.path(), HONEST_CALLBACK);
    assert!(landing.url.query().unwrap_or("").contains("code="));

    assert_eq!(landing.status, StatusCode::BAD_REQUEST, "{}", landing.body);
    assert_eq!(
        s.honest.stats().token_requests,
        0,
        "no code exchange at the honest provider"
    );
    assert_eq!(
        s.hostile.stats().token_requests,
        0,
        "the honest provider's code never reaches the hostile one"
    );
    assert!(
        !set_cookies(&landing.headers)
            .iter()
            .any(|c| c.starts_with("oidc_session=") && !c.starts_with("oidc_session=;")),
        "no session: {:?}",
        set_cookies(&landing.headers)
    );
    // the transaction is used up
    assert!(set_cookies(&landing.headers)
        .iter()
        .any(|c| c.starts_with("oidc_tx_") && c.contains("Max-Age=0")));
    assert!(!browser.cookies(&s.app.url("/")).contains("oidc_session"));
    let me = browser
        .client
        .get(s.app.url("/me"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_hostile_tenant_relaying_to_an_honest_one_without_rfc9207_is_refused() {
    let s = setup(false).await;
    relayed_login(&s).await;
}

#[tokio::test]
async fn a_hostile_tenant_relaying_to_an_honest_one_with_rfc9207_is_refused() {
    let s = setup(true).await;
    relayed_login(&s).await;

    // With RFC 9207 the honest provider's answer names its issuer. Delivered at the hostile
    // tenant's own redirect URI, where the login's transaction passes the redirect URI check,
    // the `iss` check refuses it.
    let browser = Browser::new();
    let at_callback = browser
        .follow_until(&s.app.url("/auth/login?provider=a&return_to=/me"), |u| {
            u.path() == HONEST_CALLBACK
        })
        .await;
    let query = at_callback.url.query().unwrap_or_default().to_owned();
    let iss = at_callback
        .url
        .query_pairs()
        .find(|(k, _)| k == "iss")
        .map(|(_, v)| v.into_owned());
    assert_eq!(iss.as_deref(), Some(s.honest.issuer()), "{query}");
    let res = browser
        .get(&s.app.url(&format!("{HOSTILE_CALLBACK}?{query}")))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        set_cookies(res.headers())
            .iter()
            .any(|c| c.starts_with("oidc_tx_") && c.contains("Max-Age=0")),
        "the transaction was found (and used up): the refusal is the iss check's"
    );
    assert_eq!(s.honest.stats().token_requests, 0);
    assert_eq!(s.hostile.stats().token_requests, 0);
    assert!(!browser.cookies(&s.app.url("/")).contains("oidc_session"));
}

#[tokio::test]
async fn honest_logins_at_either_tenant_still_work() {
    let s = setup(false).await;
    s.hostile.set_auto_login(Some("bob"));
    for (provider, issuer, sub) in [
        ("h", s.honest.issuer(), "alice"),
        ("a", s.hostile.issuer(), "bob"),
    ] {
        let browser = Browser::new();
        let landing = browser
            .follow(
                &s.app
                    .url(&format!("/auth/login?provider={provider}&return_to=/me")),
            )
            .await;
        assert_eq!(landing.status, StatusCode::OK, "{}", landing.body);
        assert!(landing
            .visited
            .iter()
            .any(|u| u.path() == format!("/auth/callback/{provider}")));
        assert_eq!(landing.json()["iss"], issuer);
        assert_eq!(landing.json()["sub"], sub);
    }
}

#[tokio::test]
async fn an_iss_naming_another_issuer_is_refused_at_the_right_redirect_uri() {
    let s = setup(true).await;
    s.honest.set_fault(Fault::WrongAuthorizationIss);
    let landing = Browser::new()
        .follow(&s.app.url("/auth/login?provider=h&return_to=/me"))
        .await;
    assert_eq!(landing.url.path(), HONEST_CALLBACK);
    assert_eq!(landing.status, StatusCode::BAD_REQUEST, "{}", landing.body);
    assert_eq!(s.honest.stats().token_requests, 0);
}

#[tokio::test]
async fn the_callback_path_of_one_provider_does_not_serve_the_others() {
    let s = setup(false).await;
    s.hostile.set_auto_login(Some("bob"));
    // A login's answer delivered at the other provider's redirect URI, both ways round.
    for (provider, own, other) in [
        ("h", HONEST_CALLBACK, HOSTILE_CALLBACK),
        ("a", HOSTILE_CALLBACK, HONEST_CALLBACK),
    ] {
        let browser = Browser::new();
        let at_callback = browser
            .follow_until(
                &s.app
                    .url(&format!("/auth/login?provider={provider}&return_to=/me")),
                |u| u.path() == own,
            )
            .await;
        let query = at_callback.url.query().unwrap_or_default().to_owned();
        assert!(
            query.contains("code=") && query.contains("state="),
            "{query}"
        );
        let res = browser.get(&s.app.url(&format!("{other}?{query}"))).await;
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "{provider} at {other}"
        );
        assert!(!browser.cookies(&s.app.url("/")).contains("oidc_session"));
        assert_eq!(s.honest.stats().token_requests, 0, "{provider} at {other}");
        assert_eq!(s.hostile.stats().token_requests, 0, "{provider} at {other}");
    }
    // no provider uses the plain callback path: it is not the layer's
    let res = reqwest::Client::new()
        .get(s.app.url("/auth/callback?code=c&state=0_x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
