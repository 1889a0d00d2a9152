//! Authorization endpoint and the login page (OpenID Connect Core §3.1.2).

use std::sync::atomic::Ordering;

use axum::extract::{RawQuery, State as AxState};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use url::Url;

use super::keys;
use super::params::{is_form, Params};
use super::response::{error_page, html_escape, html_page};
use super::{now, uri_allowed, ChallengeMethod, Code, Fault, Shared, St};

/// Scopes the provider knows; others are dropped from the granted scope.
const KNOWN_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum ResponseMode {
    Query,
    FormPost,
}

/// Where authorization responses go once client and redirect URI are known to be good.
pub(super) struct Target {
    redirect_uri: String,
    state: Option<String>,
    mode: ResponseMode,
}

pub(super) enum AuthzFailure {
    /// The client or redirect URI cannot be trusted: show a page, never redirect.
    Page(String),
    /// An error response sent to the redirect URI.
    Redirect(Target, String, String),
}

pub(super) struct AuthzRequest {
    target: Target,
    client_id: String,
    scope: Vec<String>,
    nonce: Option<String>,
    challenge: Option<(String, ChallengeMethod)>,
    prompt_none: bool,
}

pub(super) fn is_pkce_value(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl Shared {
    pub(super) fn validate_authorization(&self, p: &Params) -> Result<AuthzRequest, AuthzFailure> {
        if p.is_repeated("client_id") {
            return Err(AuthzFailure::Page("client_id is repeated.".into()));
        }
        let Some(client_id) = p.get("client_id") else {
            return Err(AuthzFailure::Page("client_id is missing.".into()));
        };
        let Some(client) = self.client(client_id) else {
            return Err(AuthzFailure::Page(format!(
                "The client \"{client_id}\" is not registered."
            )));
        };
        if p.is_repeated("redirect_uri") {
            return Err(AuthzFailure::Page("redirect_uri is repeated.".into()));
        }
        let Some(redirect_uri) = p.get("redirect_uri") else {
            return Err(AuthzFailure::Page("redirect_uri is missing.".into()));
        };
        if !uri_allowed(&client.redirect_uris, redirect_uri) {
            return Err(AuthzFailure::Page(format!(
                "The redirect_uri \"{redirect_uri}\" is not registered for the client \"{client_id}\"."
            )));
        }
        let mode = match p.get("response_mode") {
            None | Some("query") => Ok(ResponseMode::Query),
            Some("form_post") => Ok(ResponseMode::FormPost),
            Some(_) => Err(()),
        };
        let target = Target {
            redirect_uri: redirect_uri.to_owned(),
            state: if p.is_repeated("state") {
                None
            } else {
                p.get("state").map(str::to_owned)
            },
            mode: mode.unwrap_or(ResponseMode::Query),
        };
        let fail = |target, code: &str, text: &str| {
            Err(AuthzFailure::Redirect(target, code.into(), text.into()))
        };
        if mode.is_err() {
            return fail(target, "invalid_request", "unsupported response_mode");
        }
        if let Some(name) = p.repeated.first() {
            let text = format!("parameter {name} is repeated");
            return fail(target, "invalid_request", &text);
        }
        if let Some(Fault::AuthorizeError(code)) =
            self.fault(|f| matches!(f, Fault::AuthorizeError(_)))
        {
            return fail(target, &code, "injected by the development provider");
        }
        if p.get("request").is_some() {
            return fail(
                target,
                "request_not_supported",
                "request objects are not supported",
            );
        }
        if p.get("request_uri").is_some() {
            return fail(
                target,
                "request_uri_not_supported",
                "request_uri is not supported",
            );
        }
        match p.get("response_type") {
            None => return fail(target, "invalid_request", "response_type is missing"),
            Some("code") => {}
            Some(_) => {
                return fail(
                    target,
                    "unsupported_response_type",
                    "only response_type=code is supported",
                )
            }
        }
        let requested: Vec<&str> = p.get("scope").unwrap_or("").split(' ').collect();
        if !requested.contains(&"openid") {
            return fail(target, "invalid_scope", "the scope must contain openid");
        }
        let mut scope: Vec<String> = KNOWN_SCOPES
            .iter()
            .filter(|s| requested.contains(s))
            .map(|s| (*s).to_owned())
            .collect();
        if self.has_fault(&Fault::OfflineAccessByParameter) {
            // Google: the scope is refused; `access_type=offline` asks for a refresh token.
            if requested.contains(&"offline_access") {
                return fail(
                    target,
                    "invalid_scope",
                    "offline_access is not a valid scope",
                );
            }
            if p.get("access_type") == Some("offline") {
                scope.push("offline_access".to_owned());
            }
        }
        let challenge = match (p.get("code_challenge"), p.get("code_challenge_method")) {
            (None, Some(_)) => {
                return fail(
                    target,
                    "invalid_request",
                    "code_challenge_method without code_challenge",
                )
            }
            (None, None) => None,
            (Some(c), m) => {
                let method = match m {
                    None | Some("plain") => ChallengeMethod::Plain,
                    Some("S256") => ChallengeMethod::S256,
                    Some(_) => {
                        return fail(
                            target,
                            "invalid_request",
                            "code_challenge_method must be S256 or plain",
                        )
                    }
                };
                if !is_pkce_value(c) {
                    return fail(target, "invalid_request", "malformed code_challenge");
                }
                Some((c.to_owned(), method))
            }
        };
        if client.secret.is_none() && challenge.is_none() {
            return fail(
                target,
                "invalid_request",
                "PKCE (code_challenge) is required for public clients",
            );
        }
        let prompt: Vec<&str> = p.get("prompt").unwrap_or("").split(' ').collect();
        let prompt_none = prompt.contains(&"none");
        if prompt_none && prompt.iter().any(|v| !v.is_empty() && *v != "none") {
            return fail(
                target,
                "invalid_request",
                "prompt=none cannot be combined with other values",
            );
        }
        if let Some(max_age) = p.get("max_age") {
            if max_age.parse::<u64>().is_err() {
                return fail(
                    target,
                    "invalid_request",
                    "max_age must be a number of seconds",
                );
            }
        }
        Ok(AuthzRequest {
            target,
            client_id: client.id.clone(),
            scope,
            nonce: p.get("nonce").map(str::to_owned),
            challenge,
            prompt_none,
        })
    }

    /// Sends an authorization response (success or error) to the client.
    fn authorization_response(&self, target: &Target, params: Vec<(&str, String)>) -> Response {
        let mut all = params;
        if let Some(state) = &target.state {
            all.push(("state", state.clone()));
        }
        if let Some(iss) = self.authorization_iss() {
            all.push(("iss", iss));
        }
        match target.mode {
            ResponseMode::Query => {
                let Ok(mut url) = Url::parse(&target.redirect_uri) else {
                    return error_page("The redirect_uri is not a valid URI.");
                };
                {
                    let mut pairs = url.query_pairs_mut();
                    for (k, v) in &all {
                        pairs.append_pair(k, v);
                    }
                }
                let Ok(location) = HeaderValue::from_str(url.as_str()) else {
                    return error_page("The redirect_uri cannot be used in a Location header.");
                };
                (
                    StatusCode::FOUND,
                    [
                        (header::LOCATION, location),
                        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    ],
                )
                    .into_response()
            }
            ResponseMode::FormPost => {
                let mut inputs = String::new();
                for (k, v) in &all {
                    inputs.push_str(&format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                        html_escape(k),
                        html_escape(v)
                    ));
                }
                let page = format!(
                    "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
                     <title>Continue</title></head>\n\
                     <body onload=\"document.forms[0].submit()\">\n\
                     <form method=\"post\" action=\"{}\">\n{inputs}\
                     <noscript><button type=\"submit\">Continue</button></noscript>\n\
                     </form>\n</body>\n</html>\n",
                    html_escape(&target.redirect_uri)
                );
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                    page,
                )
                    .into_response()
            }
        }
    }

    fn authorization_error(&self, target: &Target, code: &str, description: &str) -> Response {
        self.authorization_response(
            target,
            vec![
                ("error", code.to_owned()),
                ("error_description", description.to_owned()),
            ],
        )
    }

    fn failure_response(&self, failure: AuthzFailure) -> Response {
        match failure {
            AuthzFailure::Page(message) => {
                tracing::debug!(%message, "development provider refused an authorization request");
                error_page(&message)
            }
            AuthzFailure::Redirect(target, code, description) => {
                self.authorization_error(&target, &code, &description)
            }
        }
    }

    /// Issues an authorization code for `sub` and redirects with it.
    fn issue_code(&self, req: AuthzRequest, sub: &str) -> Response {
        let code = keys::random_token(&self.rng, 32);
        let now = now();
        {
            let mut state = self.state();
            // Redeemed codes are kept for an hour so that a replay can be detected.
            state.codes.retain(|_, c| c.created + 3600 > now);
            state.codes.insert(
                code.clone(),
                Code {
                    client_id: req.client_id,
                    redirect_uri: req.target.redirect_uri.clone(),
                    scope: req.scope,
                    nonce: req.nonce,
                    challenge: req.challenge,
                    sub: sub.to_owned(),
                    auth_time: now,
                    sid: keys::random_token(&self.rng, 16),
                    created: now,
                    redeemed: None,
                },
            );
        }
        let extra: Vec<(String, String)> = self
            .state()
            .faults
            .iter()
            .filter_map(|f| match f {
                Fault::AuthorizationResponseParams(extra) => Some(extra.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let params = std::iter::once(("code", code))
            .chain(extra.iter().map(|(k, v)| (k.as_str(), v.clone())))
            .collect();
        self.authorization_response(&req.target, params)
    }

    fn login_page(&self, p: &Params) -> Response {
        let hidden: String = p
            .values
            .iter()
            .filter(|(k, _)| k != "sub" && k != "action")
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                    html_escape(k),
                    html_escape(v)
                )
            })
            .collect();
        let action = html_escape(&self.endpoint("authorize/login"));
        let mut body = String::from(
            "<p>This is the development provider. Choose a test user to sign in as.</p>\n\
             <ul class=\"users\">\n",
        );
        for user in &self.users {
            body.push_str(&format!(
                "<li><form method=\"post\" action=\"{action}\" data-sub=\"{sub}\">\n{hidden}\
                 <input type=\"hidden\" name=\"sub\" value=\"{sub}\">\n\
                 <button type=\"submit\" name=\"action\" value=\"login\">Sign in as {name} \
                 ({email})</button>\n</form></li>\n",
                sub = html_escape(&user.sub),
                name = html_escape(&user.name),
                email = html_escape(&user.email),
            ));
        }
        body.push_str(&format!(
            "</ul>\n<form method=\"post\" action=\"{action}\" data-action=\"cancel\">\n{hidden}\
             <button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button>\n</form>\n"
        ));
        html_page(StatusCode::OK, "Sign in", &body)
    }
}

/// `GET` or `POST` (form-encoded) authorization requests (OpenID Connect Core §3.1.2.1).
pub(super) async fn authorize(
    AxState(s): St,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    s.stats.authorization.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = s.gate().await {
        return r;
    }
    let p = if method == Method::POST {
        if !is_form(&headers) {
            return error_page(
                "An authorization request sent by POST must be application/x-www-form-urlencoded.",
            );
        }
        Params::parse(&body)
    } else {
        Params::parse(query.unwrap_or_default().as_bytes())
    };
    if let Some(relay) = s.fault(|f| matches!(f, Fault::MixUpRelay { .. })) {
        return mix_up_relay(&relay, &p);
    }
    let p = match s.resolve_pushed(p) {
        Ok(p) => p,
        Err(message) => {
            tracing::debug!(%message, "development provider refused an authorization request");
            return error_page(&message);
        }
    };
    let req = match s.validate_authorization(&p) {
        Ok(req) => req,
        Err(failure) => return s.failure_response(failure),
    };
    let auto = s.state().auto_login.clone();
    match auto {
        Some(sub) if s.user(&sub).is_some() => s.issue_code(req, &sub),
        Some(sub) => s.authorization_error(
            &req.target,
            "server_error",
            &format!("the automatic login user {sub} is not configured"),
        ),
        None if req.prompt_none => {
            s.authorization_error(&req.target, "login_required", "the user is not signed in")
        }
        None => s.login_page(&p),
    }
}

/// [`Fault::MixUpRelay`]: what a hostile provider does in a mix-up attack (RFC 9700 §4.4.1):
/// send the browser on to an honest provider's authorization endpoint with the relying
/// party's request parameters, as the relying party's client there.
fn mix_up_relay(relay: &Fault, p: &Params) -> Response {
    let Fault::MixUpRelay {
        authorization_endpoint,
        client_id,
        redirect_uri,
    } = relay
    else {
        return error_page("No relay is configured.");
    };
    let Ok(mut url) = Url::parse(authorization_endpoint) else {
        return error_page("The relay's authorization endpoint is not a valid URI.");
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri);
        for name in [
            "response_type",
            "response_mode",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
        ] {
            if let Some(value) = p.get(name) {
                q.append_pair(name, value);
            }
        }
    }
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => error_page("The relay URI cannot be used in a Location header."),
    }
}

pub(super) async fn authorize_login(AxState(s): St, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = s.gate().await {
        return r;
    }
    if !is_form(&headers) {
        return error_page("The login form must be sent as application/x-www-form-urlencoded.");
    }
    let p = Params::parse(&body);
    let req = match s.validate_authorization(&p) {
        Ok(req) => req,
        Err(failure) => return s.failure_response(failure),
    };
    if p.get("action") == Some("cancel") {
        return s.authorization_error(&req.target, "access_denied", "the user cancelled");
    }
    match p.get("sub").and_then(|sub| s.user(sub)) {
        Some(user) => {
            let sub = user.sub.clone();
            s.issue_code(req, &sub)
        }
        None => s.authorization_error(&req.target, "invalid_request", "unknown user"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::server::tests::{shared, CONF_ID, CONF_REDIRECT, ISSUER, PUBLIC_ID};

    /// A valid S256 challenge (43 characters).
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn validate(s: &Shared, query: &str) -> Result<AuthzRequest, AuthzFailure> {
        s.validate_authorization(&Params::parse(query.as_bytes()))
    }

    fn page(result: Result<AuthzRequest, AuthzFailure>) -> String {
        match result {
            Err(AuthzFailure::Page(message)) => message,
            Err(AuthzFailure::Redirect(_, code, _)) => panic!("redirected with {code}"),
            Ok(_) => panic!("accepted"),
        }
    }

    fn redirect(result: Result<AuthzRequest, AuthzFailure>) -> (Target, String) {
        match result {
            Err(AuthzFailure::Redirect(target, code, _)) => (target, code),
            Err(AuthzFailure::Page(message)) => panic!("page: {message}"),
            Ok(_) => panic!("accepted"),
        }
    }

    fn location(response: &Response) -> Url {
        assert_eq!(response.status(), StatusCode::FOUND);
        Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap()
    }

    fn query_value(url: &Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn pkce_values_are_43_to_128_unreserved_characters() {
        assert!(is_pkce_value(CHALLENGE));
        assert!(is_pkce_value(&"a".repeat(43)));
        assert!(is_pkce_value(&"-._~".repeat(32)));
        assert!(!is_pkce_value(&"a".repeat(42)));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(42))));
        assert!(!is_pkce_value(&format!("{}=", "a".repeat(42))));
        assert!(!is_pkce_value(&format!("{}é", "a".repeat(42))));
    }

    #[test]
    fn a_valid_request_keeps_known_scopes_and_the_challenge() {
        let s = shared();
        let req = validate(
            &s,
            &format!(
                "client_id=pub&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&response_type=code\
                 &scope=email+openid+weird&state=st&nonce=n&code_challenge={CHALLENGE}\
                 &code_challenge_method=S256&response_mode=form_post&prompt=none"
            ),
        )
        .ok()
        .expect("accepted");
        assert_eq!(req.client_id, PUBLIC_ID);
        assert_eq!(
            req.scope,
            ["openid", "email"],
            "known scopes in a fixed order"
        );
        assert_eq!(req.nonce.as_deref(), Some("n"));
        assert!(req.challenge == Some((CHALLENGE.to_owned(), ChallengeMethod::S256)));
        assert!(req.prompt_none);
        assert_eq!(req.target.redirect_uri, "http://127.0.0.1:9/cb");
        assert_eq!(req.target.state.as_deref(), Some("st"));
        assert!(req.target.mode == ResponseMode::FormPost);

        let plain = validate(
            &s,
            &format!(
                "client_id=pub&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&response_type=code\
                 &scope=openid&code_challenge={CHALLENGE}"
            ),
        )
        .ok()
        .expect("accepted");
        assert!(plain.challenge == Some((CHALLENGE.to_owned(), ChallengeMethod::Plain)));
        assert!(!plain.prompt_none);
    }

    #[test]
    fn an_untrusted_client_or_redirect_uri_gets_a_page() {
        let s = shared();
        let cases = [
            (
                "redirect_uri=https%3A%2F%2Frp.test%2Fcb",
                "client_id is missing",
            ),
            ("client_id=conf&client_id=pub", "client_id is repeated"),
            (
                "client_id=nobody&redirect_uri=http%3A%2F%2Flocalhost%2F",
                "not registered",
            ),
            ("client_id=conf", "redirect_uri is missing"),
            (
                "client_id=conf&redirect_uri=https%3A%2F%2Frp.test%2Fcb&redirect_uri=x",
                "redirect_uri is repeated",
            ),
            (
                "client_id=conf&redirect_uri=http%3A%2F%2Flocalhost%2Fcb",
                "is not registered for the client",
            ),
            (
                "client_id=pub&redirect_uri=https%3A%2F%2Fattacker.test%2Fcb",
                "is not registered for the client",
            ),
        ];
        for (query, expected) in cases {
            let message = page(validate(&s, query));
            assert!(message.contains(expected), "{query}: {message}");
        }
    }

    #[test]
    fn other_errors_are_redirected_to_the_client() {
        let s = shared();
        let base = "client_id=conf&redirect_uri=https%3A%2F%2Frp.test%2Fcb&state=st";
        let cases = [
            (
                "response_type=code&scope=openid&response_mode=fragment",
                "invalid_request",
            ),
            (
                "response_type=code&scope=openid&nonce=a&nonce=b",
                "invalid_request",
            ),
            (
                "response_type=code&scope=openid&request=eyJ",
                "request_not_supported",
            ),
            (
                "response_type=code&scope=openid&request_uri=urn%3Ax",
                "request_uri_not_supported",
            ),
            ("scope=openid", "invalid_request"),
            (
                "response_type=token&scope=openid",
                "unsupported_response_type",
            ),
            ("response_type=code&scope=profile", "invalid_scope"),
            (
                "response_type=code&scope=openid&code_challenge_method=S256",
                "invalid_request",
            ),
            (
                "response_type=code&scope=openid&code_challenge_method=S512&code_challenge=\
                 E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "invalid_request",
            ),
            (
                "response_type=code&scope=openid&code_challenge=short",
                "invalid_request",
            ),
            (
                "response_type=code&scope=openid&prompt=none+login",
                "invalid_request",
            ),
            (
                "response_type=code&scope=openid&max_age=soon",
                "invalid_request",
            ),
        ];
        for (extra, expected) in cases {
            let (target, code) = redirect(validate(&s, &format!("{base}&{extra}")));
            assert_eq!(code, expected, "{extra}");
            assert_eq!(target.redirect_uri, CONF_REDIRECT);
            assert_eq!(target.state.as_deref(), Some("st"));
            assert!(target.mode == ResponseMode::Query, "{extra}");
        }
        // A confidential client may skip PKCE; a public one may not.
        assert!(validate(&s, &format!("{base}&response_type=code&scope=openid")).is_ok());
        let public = "client_id=pub&redirect_uri=http%3A%2F%2Flocalhost%2Fcb\
                      &response_type=code&scope=openid";
        assert_eq!(redirect(validate(&s, public)).1, "invalid_request");
    }

    #[test]
    fn an_injected_authorization_error_is_redirected() {
        let s = shared();
        s.state()
            .faults
            .push(Fault::AuthorizeError("temporarily_unavailable".into()));
        let query = "client_id=conf&redirect_uri=https%3A%2F%2Frp.test%2Fcb\
                     &response_type=code&scope=openid";
        assert_eq!(redirect(validate(&s, query)).1, "temporarily_unavailable");
    }

    #[test]
    fn the_mix_up_relay_carries_the_request_over() {
        let relay = Fault::MixUpRelay {
            authorization_endpoint: "https://honest.test/authorize?x=1".to_owned(),
            client_id: "app-at-honest".to_owned(),
            redirect_uri: "https://rp.test/cb/honest".to_owned(),
        };
        let p = Params::parse(
            format!(
                "client_id=app-at-hostile&redirect_uri=https%3A%2F%2Frp.test%2Fcb%2Fhostile\
                 &response_type=code&scope=openid+email&state=st&nonce=n\
                 &code_challenge={CHALLENGE}&code_challenge_method=S256&prompt=login"
            )
            .as_bytes(),
        );
        let url = location(&mix_up_relay(&relay, &p));
        assert!(url
            .as_str()
            .starts_with("https://honest.test/authorize?x=1&"));
        for (name, value) in [
            ("client_id", "app-at-honest"),
            ("redirect_uri", "https://rp.test/cb/honest"),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("state", "st"),
            ("nonce", "n"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ] {
            assert_eq!(query_value(&url, name).as_deref(), Some(value), "{name}");
        }
        assert_eq!(
            url.query_pairs().filter(|(k, _)| k == "client_id").count(),
            1
        );
        assert_eq!(query_value(&url, "prompt"), None);
    }

    #[test]
    fn without_rfc_9207_responses_carry_no_iss() {
        let mut s = shared();
        s.authorization_response_iss = false;
        let target = Target {
            redirect_uri: "https://rp.test/cb".to_owned(),
            state: Some("st".to_owned()),
            mode: ResponseMode::Query,
        };
        let url = location(&s.authorization_response(&target, vec![("code", "c".to_owned())]));
        assert_eq!(query_value(&url, "code").as_deref(), Some("c"));
        assert_eq!(query_value(&url, "state").as_deref(), Some("st"));
        assert_eq!(query_value(&url, "iss"), None);
    }

    #[test]
    fn query_responses_append_state_and_iss() {
        let s = shared();
        let target = Target {
            redirect_uri: "https://rp.test/cb?keep=1".to_owned(),
            state: Some("a b&c".to_owned()),
            mode: ResponseMode::Query,
        };
        let response = s.authorization_error(&target, "access_denied", "no");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let url = location(&response);
        assert_eq!(query_value(&url, "keep").as_deref(), Some("1"));
        assert_eq!(query_value(&url, "error").as_deref(), Some("access_denied"));
        assert_eq!(
            query_value(&url, "error_description").as_deref(),
            Some("no")
        );
        assert_eq!(query_value(&url, "state").as_deref(), Some("a b&c"));
        assert_eq!(query_value(&url, "iss").as_deref(), Some(ISSUER));
    }

    #[tokio::test]
    async fn form_post_responses_escape_every_value() {
        let s = shared();
        let target = Target {
            redirect_uri: "https://rp.test/cb?a=1&b=2".to_owned(),
            state: Some("\"><script>".to_owned()),
            mode: ResponseMode::FormPost,
        };
        let response = s.authorization_response(&target, vec![("code", "c0de".to_owned())]);
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("action=\"https://rp.test/cb?a=1&amp;b=2\""));
        assert!(body.contains("name=\"code\" value=\"c0de\""));
        assert!(body.contains("name=\"state\" value=\"&quot;&gt;&lt;script&gt;\""));
        assert!(body.contains(&format!("name=\"iss\" value=\"{ISSUER}\"")));
        assert!(!body.contains("<script>"));
    }

    #[test]
    fn issued_codes_remember_the_request() {
        let s = shared();
        let query = format!(
            "client_id=conf&redirect_uri=https%3A%2F%2Frp.test%2Fcb&response_type=code\
             &scope=openid+profile&nonce=n&code_challenge={CHALLENGE}&code_challenge_method=S256"
        );
        let req = validate(&s, &query).ok().expect("accepted");
        let url = location(&s.issue_code(req, "bob"));
        let code = query_value(&url, "code").expect("a code");
        let state = s.state();
        let stored = state.codes.get(&code).expect("stored");
        assert_eq!(stored.client_id, CONF_ID);
        assert_eq!(stored.redirect_uri, CONF_REDIRECT);
        assert_eq!(stored.scope, ["openid", "profile"]);
        assert_eq!(stored.nonce.as_deref(), Some("n"));
        assert_eq!(stored.sub, "bob");
        assert!(stored.redeemed.is_none());
        assert_eq!(stored.auth_time, stored.created);
    }

    #[tokio::test]
    async fn the_login_page_lists_users_and_keeps_the_request() {
        let s = shared();
        let p = Params::parse(b"client_id=conf&state=%3Cx%3E&sub=mallory&action=login");
        let response = s.login_page(&p);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("data-sub=\"alice\""));
        assert!(body.contains("data-sub=\"bob\""));
        assert!(body.contains("Sign in as Bob Example (bob@example.test)"));
        assert!(body.contains("action=\"https://op.test/authorize/login\""));
        assert!(body.contains("name=\"state\" value=\"&lt;x&gt;\""));
        assert!(
            !body.contains("mallory"),
            "sub and action are not carried over"
        );
    }
}
