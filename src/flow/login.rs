//! The authorization request: `state`, `nonce` and PKCE, the sealed transaction cookie, and
//! the `return_to` rules; and the answer when a login is required ([`login_required`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderMap;

use crate::config::{ResponseMode, ResponseType};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::{AuthError, AuthErrorKind};
use crate::response::{self, caller_kind, Answer, CallerKind};
use crate::session::cookie::{add_set_cookie, random_token};
use crate::session::sessions::{HeldTransactions, Sessions, TxSlot};
use crate::session::Transaction;
use crate::shared::{Shared, Tenants};

/// Longest `return_to` we keep; longer ones fall back to `/`. It is sealed into the
/// transaction cookie, which travels with every request for the login's lifetime (on https
/// with `Path=/`): a short cap keeps a browser's cookies small whatever a page links to.
const MAX_RETURN_TO: usize = 256;

/// Parameters the flow sets itself; configured extras cannot override them.
const RESERVED_PARAMS: &[&str] = &[
    "provider",
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// Accepts only same-origin relative paths: `/` followed by anything but `/` or `\`, no
/// backslashes, whitespace or control characters anywhere, and the same again after one
/// round of percent-decoding (so `/%2F%2Fevil.example` cannot become `//evil.example`).
pub(crate) fn sanitize_return_to(raw: &str) -> Option<&str> {
    fn plain_relative(path: &str) -> bool {
        let bytes = path.as_bytes();
        bytes.first() == Some(&b'/')
            && !matches!(bytes.get(1), Some(b'/' | b'\\'))
            && !path
                .chars()
                .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
    }
    if raw.len() > MAX_RETURN_TO {
        tracing::debug!(
            len = raw.len(),
            max = MAX_RETURN_TO,
            "return_to too long; the login returns to /"
        );
        return None;
    }
    if !plain_relative(raw) {
        return None;
    }
    let decoded = percent_decode(raw)?;
    plain_relative(&decoded).then_some(raw)
}

/// Percent-decodes once; `None` for invalid escapes or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `GET {prefix}/login?return_to=/path&prompt=...`: start a login, with the allow-listed
/// per-login authorization parameters.
pub(crate) fn handle(shared: &Arc<Shared>, headers: &HeaderMap, query: Option<&str>) -> Start {
    let provider = query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
        .find(|(k, _)| k == "provider")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let Some(tenant) = shared.by_name(&provider) else {
        return Start::Ready(response::html_page(
            http::StatusCode::BAD_REQUEST,
            "Unknown identity provider",
            "This login names an identity provider this application does not know.",
            Some((
                &shared.paths.public(&shared.paths.login),
                "Log in with the default provider",
            )),
        ));
    };
    let config = &tenant.config;
    let mut return_to = None;
    let mut extra: Vec<(String, String)> = Vec::new();
    for (name, value) in query
        .into_iter()
        .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
    {
        if name == "provider" {
            continue;
        } else if name == "return_to" {
            return_to = sanitize_return_to(&value).map(str::to_owned);
        } else if config.login_params.iter().any(|p| *p == name)
            && !RESERVED_PARAMS.contains(&&*name)
            && !config.auth_params.iter().any(|(n, _)| *n == name)
            && !extra.iter().any(|(n, _)| *n == name)
            && value.len() <= 512
            && !value.chars().any(char::is_control)
            && (name != "max_age" || value.parse::<u64>().is_ok())
        {
            extra.push((name.into_owned(), value.into_owned()));
        }
    }
    start(
        &tenant,
        headers,
        return_to.unwrap_or_else(|| shared.paths.public("/")),
        extra,
    )
}

/// Whether the request is a top-level navigation, as far as its `Sec-Fetch-*` headers tell
/// (a client that sends none counts as one). Logins start only from those: a hidden iframe,
/// an image or a script on another site must not plant transaction cookies.
fn is_top_level_navigation(headers: &HeaderMap) -> bool {
    let is = |name: &str, expected: &[u8]| {
        headers
            .get(name)
            .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(expected))
    };
    is("sec-fetch-mode", b"navigate") && is("sec-fetch-dest", b"document")
}

/// A login start: an answer now, or one after the authorization request was pushed to the
/// provider (RFC 9126).
pub(crate) enum Start {
    Ready(Answer),
    Pushed(Pin<Box<dyn Future<Output = Answer> + Send>>),
}

/// Starts a login: a fresh transaction cookie and a redirect to the provider (after pushing
/// the request, with PAR); refused (without a cookie) when the request is no top-level
/// navigation. `headers` still carry the layer's cookies.
pub(crate) fn start(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    return_to: String,
    extra: Vec<(String, String)>,
) -> Start {
    let held = HeldTransactions::of(&shared.sessions.cookies, headers);
    let prepared = match prepare(shared, headers, &held, return_to, extra) {
        Ok(prepared) => prepared,
        Err(answer) => return Start::Ready(*answer),
    };
    let Some(endpoint) = shared.provider.metadata.par_endpoint.clone() else {
        return Start::Ready(finish(shared, prepared, None));
    };
    let shared = shared.clone();
    Start::Pushed(Box::pin(async move {
        let params: Vec<(&str, &str)> = prepared
            .params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        match super::par::push(&shared, &endpoint, &params).await {
            Ok(request_uri) => finish(&shared, prepared, Some(&request_uri)),
            Err(err) => {
                match err.kind() {
                    AuthErrorKind::ProviderUnavailable => {
                        tracing::error!(reason = %err, "login not started: pushed authorization request failed")
                    }
                    _ => {
                        tracing::warn!(reason = %err, "login not started: pushed authorization request refused")
                    }
                }
                // Nothing was stored: the same link starts the same login again.
                let again = login_link(&shared, Some(&prepared.tx.return_to));
                response::error_answer(
                    CallerKind::Navigation,
                    err,
                    &HeaderMap::new(),
                    Some((&again, "Try again")),
                )
            }
        }
    }))
}

/// A link that starts a login at this provider (named when it is one of several), back to
/// `return_to` when given; the public path (with the external prefix).
pub(crate) fn login_link(shared: &Shared, return_to: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !shared.name.is_empty() {
        query.append_pair("provider", &shared.name);
    }
    if let Some(return_to) = return_to {
        query.append_pair("return_to", return_to);
    }
    let query = query.finish();
    let login = shared.paths.public(&shared.paths.login);
    if query.is_empty() {
        login
    } else {
        format!("{login}?{query}")
    }
}

/// A login about to start: its transaction, its cookie slot, and the authorization
/// request's parameters.
struct Prepared {
    tx: Transaction,
    slot: TxSlot,
    params: Vec<(String, String)>,
}

/// The transaction and authorization request of a new login; `Err` is the answer when the
/// request is no top-level navigation (boxed: it is the rare path).
fn prepare(
    shared: &Shared,
    headers: &HeaderMap,
    held: &HeldTransactions,
    return_to: String,
    extra: Vec<(String, String)>,
) -> Result<Prepared, Box<Answer>> {
    if !is_top_level_navigation(headers) {
        tracing::debug!("login refused: the request is no top-level navigation");
        return Err(Box::new(response::reject(
            caller_kind(headers),
            AuthError::new(
                AuthErrorKind::LoginRequired,
                "a login starts only from a top-level navigation",
            ),
            headers,
        )));
    }
    let config = &shared.config;
    let user_params: Vec<(&str, &str)> = config
        .auth_params
        .iter()
        .filter(|(name, _)| !RESERVED_PARAMS.contains(&name.as_str()))
        .chain(extra.iter())
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let param = |name: &str| {
        user_params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    };
    let sessions = &shared.sessions;
    let slot = sessions.choose_tx_slot(held);
    let tx = Transaction {
        created_at_ms: sessions.now_millis(),
        state: Sessions::new_state(slot.slot),
        nonce: random_token(32),
        pkce_verifier: random_token(32),
        return_to,
        hybrid: config.response_type == ResponseType::CodeIdToken,
        form_post: config.response_mode == ResponseMode::FormPost,
        prompt_none: param("prompt").is_some_and(|p| p.split_whitespace().any(|p| p == "none")),
        max_age: param("max_age").and_then(|m| m.parse().ok()),
        provider: shared.name.clone(),
    };
    let (challenge, method) = if shared.provider.metadata.pkce_plain {
        (tx.pkce_verifier.clone(), "plain")
    } else {
        let digest = ring::digest::digest(&ring::digest::SHA256, tx.pkce_verifier.as_bytes());
        (URL_SAFE_NO_PAD.encode(digest), "S256")
    };
    let meta = &shared.provider.metadata;
    // A provider that does not list `offline_access` (Google refuses it with `invalid_scope`)
    // issues refresh tokens for `access_type=offline`, and again only with `prompt=consent`.
    let offline_by_parameter =
        meta.offline_access_by_parameter && config.scopes.iter().any(|s| s == "offline_access");
    let scope = if offline_by_parameter {
        let scopes: Vec<&str> = config
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|s| *s != "offline_access")
            .collect();
        scopes.join(" ")
    } else {
        config.scopes.join(" ")
    };
    let response_type = if tx.hybrid { "code id_token" } else { "code" };
    let mut params: Vec<(&str, &str)> = vec![("response_type", response_type)];
    if tx.form_post {
        params.push(("response_mode", "form_post"));
    }
    params.extend([
        ("client_id", config.client_id.as_str()),
        ("redirect_uri", config.redirect_url.as_str()),
        ("scope", &scope),
        ("state", &tx.state),
        ("nonce", &tx.nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", method),
    ]);
    params.extend(user_params.iter().copied());
    if offline_by_parameter {
        if param("access_type").is_none() {
            params.push(("access_type", "offline"));
        }
        if param("prompt").is_none() {
            params.push(("prompt", "consent"));
        }
    }
    let mut params: Vec<(String, String)> = params
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    if meta.signed_requests {
        params = super::jar::sign_request(shared, params).map_err(|err| {
            tracing::error!(reason = %err, "login not started: the request object could not be signed");
            Box::new(response::error_answer(caller_kind(headers), err, headers, None))
        })?;
    }
    Ok(Prepared { tx, slot, params })
}

/// The redirect to the provider with the transaction cookie: the authorization request in
/// the URL, or only `client_id` and the pushed request's `request_uri`.
fn finish(shared: &Shared, prepared: Prepared, request_uri: Option<&str>) -> Answer {
    let config = &shared.config;
    let mut url = shared.provider.metadata.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        match request_uri {
            Some(uri) => {
                q.append_pair("client_id", &config.client_id)
                    .append_pair("request_uri", uri);
            }
            None => {
                for (name, value) in &prepared.params {
                    q.append_pair(name, value);
                }
            }
        }
    }
    let Prepared { tx, slot, .. } = prepared;
    let sessions = &shared.sessions;
    let mut res = response::redirect(url.as_str());
    let cookies = &sessions.cookies;
    for name in &slot.stray {
        add_set_cookie(
            res.headers_mut(),
            cookies.tx_removal(name, shared.tx_cross_site()),
        );
    }
    let name = cookies.tx_slot_name(slot.slot);
    let sealed = sessions.tx_sealer.seal(&name, &tx.encode());
    add_set_cookie(
        res.headers_mut(),
        cookies.tx_cookie(
            &name,
            &sealed,
            sessions.transaction_ttl,
            shared.tx_cross_site(),
        ),
    );
    tracing::debug!(pushed = request_uri.is_some(), "login started");
    res
}

/// The answer when login is required and missing: a fresh login for a navigation, 401
/// or gRPC status 16 for everyone else. `held`: the request's transaction cookies, taken
/// before the layer stripped its cookies.
pub(crate) fn login_required(
    shared: &Shared,
    uri: &http::Uri,
    headers: &HeaderMap,
    held: &HeldTransactions,
) -> Answer {
    let caller = caller_kind(headers);
    if caller == CallerKind::Navigation {
        let return_to = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .and_then(sanitize_return_to)
            .unwrap_or("/");
        if shared.provider.metadata.par_endpoint.is_some() {
            // The request must be pushed first (a call to the provider): the login route
            // does that.
            if !is_top_level_navigation(headers) {
                return response::reject(
                    caller,
                    AuthError::new(
                        AuthErrorKind::LoginRequired,
                        "a login starts only from a top-level navigation",
                    ),
                    headers,
                );
            }
            return response::redirect(&login_link(shared, Some(&shared.paths.public(return_to))));
        }
        let return_to = shared.paths.public(return_to);
        return match prepare(shared, headers, held, return_to, Vec::new()) {
            Ok(prepared) => finish(shared, prepared, None),
            Err(answer) => *answer,
        };
    }
    response::reject(
        caller,
        AuthError::new(AuthErrorKind::LoginRequired, "login required"),
        headers,
    )
}

/// A handle to the layer in the request extensions of a request without a login, for
/// extractors and [`RequireLayer`](crate::RequireLayer) to answer [`login_required`].
#[derive(Clone)]
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    /// The request's transaction cookies, taken before the layer stripped its cookies.
    pub(crate) held: HeldTransactions,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle")
    }
}

impl Handle {
    /// [`login_required`] for this request; `extensions` may hold the URI as the server
    /// received it (axum's `OriginalUri`, in a nested router), which then is the place to
    /// return to.
    pub(crate) fn login_required(
        &self,
        uri: &http::Uri,
        extensions: &http::Extensions,
        headers: &HeaderMap,
    ) -> Answer {
        login_required(
            &self.shared,
            original_uri(uri, extensions),
            headers,
            &self.held,
        )
    }
}

/// The request's URI before a nested router stripped its prefix (axum's `OriginalUri`), or
/// `uri` itself.
pub(crate) fn original_uri<'a>(
    uri: &'a http::Uri,
    extensions: &'a http::Extensions,
) -> &'a http::Uri {
    #[cfg(feature = "axum")]
    if let Some(axum::extract::OriginalUri(original)) = extensions.get() {
        return original;
    }
    let _ = extensions;
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer signing its authorization requests (no PAR) for a provider at `https://id.example.com`.
    fn jar_layer(key: crate::ClientKey) -> crate::OidcLayer {
        let discovery = serde_json::json!({
            "issuer": "https://id.example.com",
            "authorization_endpoint": "https://id.example.com/authorize",
            "token_endpoint": "https://id.example.com/token",
            "jwks_uri": "https://id.example.com/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        });
        let config = crate::Config::builder("https://id.example.com", "app")
            .client_key(key)
            .signed_request_objects(true)
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(crate::SessionKey::generate())
            .build()
            .expect("config");
        crate::OidcLayer::from_provider_metadata(config, discovery.to_string().as_bytes(), None)
            .expect("layer")
    }

    #[tokio::test]
    async fn a_signed_request_object_carries_the_whole_request() {
        use base64::Engine as _;
        use tower::ServiceExt as _;
        use tower_layer::Layer as _;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .expect("key");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let key = crate::ClientKey::from_pem(&pem)
            .expect("PEM")
            .with_kid("k1");
        let public = key.public_jwk();
        let svc = jar_layer(key).layer(tower::service_fn(|_req: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        }));
        let req = http::Request::get("/auth/login?return_to=%2Fme&max_age=300")
            .body(String::new())
            .expect("request");
        let res = svc.oneshot(req).await.expect("answer");
        assert_eq!(res.status(), http::StatusCode::FOUND);
        let location = res.headers()[http::header::LOCATION]
            .to_str()
            .expect("text");
        let url = url::Url::parse(location).expect("URL");
        let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(names, ["client_id", "request", "response_type", "scope"]);
        let request = url
            .query_pairs()
            .find(|(k, _)| k == "request")
            .map(|(_, v)| v.into_owned())
            .expect("request");
        let jws = crate::jwt::Unverified::parse(&request).expect("a JWS");
        assert_eq!(jws.header.typ.as_deref(), Some("oauth-authz-req+jwt"));
        assert_eq!(jws.header.kid.as_deref(), Some("k1"));
        let keys = crate::jwt::JwkSet::single(public).expect("public key");
        jws.verify(&keys, &[crate::jwt::Alg::Es256])
            .expect("signed with the client key");
        let claims: serde_json::Value =
            serde_json::from_slice(&jws.into_payload()).expect("claims");
        assert_eq!(claims["iss"], "app");
        assert_eq!(claims["aud"], "https://id.example.com");
        assert_eq!(claims["client_id"], "app");
        assert_eq!(claims["response_type"], "code");
        assert_eq!(
            claims["redirect_uri"],
            "https://app.example.com/auth/callback"
        );
        assert_eq!(claims["code_challenge_method"], "S256");
        assert_eq!(claims["max_age"], 300, "max_age is a number");
        for name in ["state", "nonce", "code_challenge", "jti"] {
            assert!(claims[name].is_string(), "{name}");
        }
        let iat = claims["iat"].as_u64().expect("iat");
        assert_eq!(claims["exp"].as_u64(), Some(iat + 60));
    }

    #[test]
    fn random_return_to_never_panics_and_stays_relative() {
        let mut buf = [0u8; 64];
        for _ in 0..20_000 {
            crate::session::cookie::fill_random(&mut buf);
            let text: String = buf
                .iter()
                .map(|b| char::from(b"/\\%2Fa:?#\t \n.5cC"[usize::from(*b) % 16]))
                .collect();
            if let Some(ok) = sanitize_return_to(&text) {
                assert!(ok.starts_with('/') && !ok.starts_with("//") && !ok.starts_with("/\\"));
            }
        }
    }

    #[test]
    fn return_to_accepts_relative_paths() {
        for ok in [
            "/",
            "/me",
            "/a/b?c=d&e=%2F",
            "/x#frag",
            "/caf%C3%A9",
            "/a//b",
        ] {
            assert_eq!(sanitize_return_to(ok), Some(ok), "{ok}");
        }
    }

    #[test]
    fn return_to_refuses_other_origins_and_tricks() {
        let long = format!("/{}", "a".repeat(MAX_RETURN_TO));
        for bad in [
            "",
            "me",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "%2F%2Fevil.example",
            "/%2F%2Fevil.example",
            "/%5Cevil.example",
            "/\tevil",
            "/\nevil",
            "/\r\n/evil",
            "/ /evil",
            "/%09/evil",
            "/%0a",
            "/%zz",
            "/a\u{0}b",
            "/a\u{2028}b",
            long.as_str(),
        ] {
            assert_eq!(sanitize_return_to(bad), None, "{bad:?}");
        }
    }
}
