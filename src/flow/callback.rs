//! `GET {prefix}/callback` (the path of each provider's redirect URL): the provider's
//! answer. Finds the transaction by `state`, checks that the login went to the provider whose
//! redirect URI was hit and `iss`, exchanges the code, validates the ID token and userinfo, and creates the session
//! ([`new_session`], also used by refresh).

use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use crate::dpop::key::DpopKey;
use crate::error::{AuthError, AuthErrorKind};
use crate::flow::id_token;
use crate::flow::login::login_link;
use crate::flow::provider_calls::{self, Tokens, UserinfoFailure};
use crate::hook::{AppData, Login};
use crate::response::{self, caller_kind, Answer};
use crate::session::cookie::add_set_cookie;
use crate::session::{SecretBytes, Session, Transaction};
use crate::shared::Shared;

/// Claims that describe the token rather than the user; not kept in the session.
pub(crate) const TOKEN_ONLY_CLAIMS: &[&str] = &["nonce", "at_hash", "c_hash", "s_hash"];

#[derive(Debug, Default)]
struct Params {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// Other fields (e.g. Apple's `user`), for the post-login hook.
    extra: Vec<(String, String)>,
}

/// At most this many extra callback fields are kept for the hook (the rest are ignored).
const MAX_EXTRA_PARAMS: usize = 16;

impl Params {
    /// RFC 6749 §3.1: a parameter sent twice makes the request invalid.
    fn parse(query: &str) -> Result<Self, &'static str> {
        let mut p = Params::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "code" => &mut p.code,
                "state" => &mut p.state,
                "iss" => &mut p.iss,
                "id_token" => &mut p.id_token,
                "error" => &mut p.error,
                "error_description" => &mut p.error_description,
                _ => {
                    if p.extra.len() < MAX_EXTRA_PARAMS && !p.extra.iter().any(|(n, _)| *n == k) {
                        p.extra.push((k.into_owned(), v.into_owned()));
                    }
                    continue;
                }
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err("a parameter is repeated");
            }
        }
        Ok(p)
    }
}

/// Answers to `prompt=none` that mean "nobody is logged in (silently)".
const SILENT_LOGIN_FAILURES: &[&str] = &[
    "login_required",
    "interaction_required",
    "consent_required",
    "account_selection_required",
];

/// Handles the callback request: `params` is the query (GET) or the form body (POST,
/// `response_mode=form_post`).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    headers: HeaderMap,
    params: Option<String>,
    via_post: bool,
) -> Answer {
    let query = params;
    let caller = caller_kind(&headers);
    let start_again = login_link(&shared, None);
    let fail = |err: AuthError, mut extra: Vec<String>| {
        log_failure(&err);
        let mut res = response::error_answer(
            caller,
            err,
            &headers,
            Some((&start_again, "Start the login again")),
        );
        for cookie in extra.drain(..) {
            add_set_cookie(res.headers_mut(), cookie);
        }
        res
    };
    let params = match Params::parse(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(why) => return fail(AuthError::new(AuthErrorKind::InvalidCallback, why), vec![]),
    };
    let Some(state) = params.state.as_deref().filter(|s| is_state_like(s)) else {
        return fail(
            AuthError::new(
                AuthErrorKind::InvalidCallback,
                "the callback has no valid state",
            ),
            vec![],
        );
    };
    let Some(found) = shared.sessions.find_transaction(&headers, state) else {
        // Back button or an old tab after a finished login: nothing to do but go on.
        let sessions = &shared.sessions;
        let logged_in = match &sessions.server {
            // A session id that opens (the session itself is read by the next request).
            Some(server) => server.session_id(&sessions.cookies, &headers).0.is_some(),
            None => sessions.read_session(&headers).session.is_some(),
        };
        if logged_in {
            return response::redirect(&shared.paths.public("/"));
        }
        return fail(
            AuthError::new(
                AuthErrorKind::InvalidCallback,
                "this login is unknown, expired or already completed",
            ),
            vec![],
        );
    };
    let tx = found.tx;
    // From here on, the transaction is used up whatever happens.
    let clear_tx = vec![shared
        .sessions
        .cookies
        .tx_removal(&found.name, shared.tx_cross_site())];
    // RFC 9700 §4.4.2.2: each provider has its own redirect URI, and `shared` is the one
    // whose redirect URI was hit. A login that went to another provider is refused before
    // any code goes anywhere: a hostile provider may have relayed the browser to an honest
    // one (mix-up), whose code must not reach the hostile provider's token endpoint.
    if tx.provider != shared.name {
        tracing::warn!(
            callback_of = %shared.name,
            login_went_to = %provider_calls::printable(&tx.provider),
            "authorization response at another provider's redirect URI (mix-up attempt?)"
        );
        return fail(
            AuthError::new(
                AuthErrorKind::InvalidCallback,
                "the authorization response came to another provider's redirect URI (mix-up)",
            ),
            clear_tx,
        );
    }
    let login_again = login_link(&shared, Some(&tx.return_to));
    let fail = |err: AuthError, extra: Vec<String>| {
        log_failure(&err);
        let mut res =
            response::error_answer(caller, err, &headers, Some((&login_again, "Log in again")));
        for cookie in extra {
            add_set_cookie(res.headers_mut(), cookie);
        }
        res
    };
    let now = shared.now();
    if tx.form_post != via_post {
        return fail(
            AuthError::new(
                AuthErrorKind::InvalidCallback,
                "the authorization response came in another response mode than requested",
            ),
            clear_tx,
        );
    }
    let ttl_ms = u64::try_from(shared.sessions.transaction_ttl.as_millis()).unwrap_or(u64::MAX);
    if tx.created_at_ms.saturating_add(ttl_ms) < shared.sessions.now_millis() {
        return fail(
            AuthError::new(AuthErrorKind::InvalidCallback, "the login took too long"),
            clear_tx,
        );
    }
    if let Some(error) = &params.error {
        if tx.prompt_none && SILENT_LOGIN_FAILURES.contains(&error.as_str()) {
            tracing::debug!(error = %provider_calls::printable(error), "silent login: not logged in");
            let mut res = response::redirect(&tx.return_to);
            for cookie in clear_tx {
                add_set_cookie(res.headers_mut(), cookie);
            }
            return res;
        }
        let message = format!(
            "The identity provider answered `{}`{}",
            provider_calls::printable(error),
            params
                .error_description
                .as_deref()
                .map(|d| format!(": {}", provider_calls::printable(d)))
                .unwrap_or_default()
        );
        return fail(
            AuthError::new(AuthErrorKind::ProviderError, message),
            clear_tx,
        );
    }
    if tx.hybrid && params.id_token.is_none() {
        return fail(
            AuthError::new(
                AuthErrorKind::InvalidCallback,
                "the hybrid response has no ID token",
            ),
            clear_tx,
        );
    }
    // RFC 9207: when present (and always when advertised), `iss` names our provider; a
    // response with an ID token names it there instead (checked with the token).
    // A multi-tenant provider's `iss` is its template filled with an allowed tenant; the ID
    // token must then name the same issuer (checked in `complete`).
    let rule = &shared.provider.metadata.issuer_rule;
    match &params.iss {
        Some(iss) if rule.accepts(iss) => {}
        None if !shared.provider.metadata.iss_parameter_supported
            || (tx.hybrid && params.id_token.is_some()) => {}
        _ => {
            return fail(
                AuthError::new(
                    AuthErrorKind::InvalidCallback,
                    "the authorization response's `iss` is missing or not the provider (mix-up)",
                ),
                clear_tx,
            )
        }
    }
    let Some(code) = params.code.as_deref() else {
        return fail(
            AuthError::new(AuthErrorKind::InvalidCallback, "the callback has no code"),
            clear_tx,
        );
    };
    let front = Front {
        id_token: params.id_token.as_deref(),
        iss: params.iss.as_deref(),
    };
    let session = match complete(&shared, &tx, code, front, now).await {
        Ok(session) => session,
        Err(err) => return fail(err, clear_tx),
    };
    let session = match run_login_hook(&shared, session, params.extra, false).await {
        Ok(session) => session,
        Err(Refused::Page(mut page)) => {
            tracing::info!("login refused by the app's post-login hook");
            shared.counters.login_refused_by_app();
            page.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-store"),
            );
            for cookie in clear_tx {
                add_set_cookie(page.headers_mut(), cookie);
            }
            return page;
        }
        Err(Refused::Failed(err)) => return fail(err, clear_tx),
    };
    let cookies = session_cookies(&shared, &headers, &session).await;
    finish(&shared, &headers, session, &tx, clear_tx, cookies)
}

/// How the post-login hook refused.
pub(crate) enum Refused {
    /// The app's own answer.
    Page(Answer),
    /// An error or a panic in the hook: a generic failure.
    Failed(AuthError),
}

/// Runs the app's post-login hook, when there is one (at a refresh only when asked for), and
/// keeps the app's data it set in the session.
pub(crate) async fn run_login_hook(
    shared: &Shared,
    mut session: Session,
    callback_params: Vec<(String, String)>,
    refresh: bool,
) -> Result<Session, Refused> {
    let Some(hook) = &shared.config.login_hook else {
        return Ok(session);
    };
    if refresh && !hook.at_refresh {
        return Ok(session);
    }
    let claims: Map<String, Value> = serde_json::from_slice(&session.claims).unwrap_or_default();
    let login = Login::new(
        claims,
        session.issuer.clone(),
        callback_params,
        refresh,
        AppData::decode(&session.app),
    );
    match hook.run(login).await {
        Ok(login) => {
            session.app = login.into_app().encode();
            Ok(session)
        }
        Err(rejected) => match rejected.into_parts() {
            Ok(page) => Err(Refused::Page(page)),
            Err(err) => {
                tracing::error!(error = %err, refresh, "the post-login hook failed");
                Err(Refused::Failed(AuthError::new(
                    AuthErrorKind::Internal,
                    "the app could not complete the login",
                )))
            }
        },
    }
}

fn is_state_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn log_failure(err: &AuthError) {
    match err.kind() {
        AuthErrorKind::ProviderUnavailable | AuthErrorKind::Internal => {
            tracing::error!(kind = ?err.kind(), reason = %err, "login failed");
        }
        _ => tracing::info!(kind = ?err.kind(), reason = %err, "login failed"),
    }
}

/// What the authorization response carried besides the code.
struct Front<'a> {
    /// The front-channel ID token (hybrid flow).
    id_token: Option<&'a str>,
    /// The RFC 9207 `iss` parameter (already checked to be the provider's).
    iss: Option<&'a str>,
}

/// Code exchange, ID token and userinfo checks; the new session.
async fn complete(
    shared: &Shared,
    tx: &Transaction,
    code: &str,
    front_channel: Front<'_>,
    now: u64,
) -> Result<Session, AuthError> {
    let front_channel_id_token = front_channel.id_token;
    // Hybrid flow: the front-channel ID token is validated (with `c_hash` binding it to the
    // code) before the code is used.
    let front = match (tx.hybrid, front_channel_id_token) {
        (true, Some(token)) => Some(
            id_token::validate(
                shared,
                token,
                id_token::Expect {
                    nonce: Some(&tx.nonce),
                    access_token: None,
                    code: Some(code),
                    max_age: tx.max_age,
                    unknown_key_unavailable: false,
                },
            )
            .await?,
        ),
        _ => None,
    };
    // With DPoP, the session's own key pair (RFC 9449): its tokens are bound to it.
    let dpop = if shared.config.high_security.dpop_sessions {
        Some(Arc::new(DpopKey::generate().ok_or_else(|| {
            AuthError::new(AuthErrorKind::Internal, "no DPoP key could be generated")
        })?))
    } else {
        None
    };
    let tokens = provider_calls::exchange_code(shared, code, &tx.pkce_verifier, dpop).await?;
    let id_token = tokens.id_token.as_deref().unwrap_or_default();
    let mut claims = id_token::validate(
        shared,
        id_token,
        id_token::Expect {
            nonce: Some(&tx.nonce),
            access_token: Some(&tokens.access_token),
            code: None,
            max_age: tx.max_age,
            unknown_key_unavailable: false,
        },
    )
    .await?;
    if let Some(front) = front {
        // OpenID Connect Core §3.3.3.6: both ID tokens are about the same user.
        if front.get("sub") != claims.get("sub") || front.get("iss") != claims.get("iss") {
            return Err(AuthError::new(
                AuthErrorKind::InvalidCallback,
                "the two ID tokens of the hybrid flow name different users",
            ));
        }
    }
    if front_channel
        .iss
        .is_some_and(|iss| claims.get("iss").and_then(Value::as_str) != Some(iss))
    {
        // A multi-tenant provider: the response named one tenant's issuer, the token another.
        return Err(AuthError::new(
            AuthErrorKind::InvalidCallback,
            "the ID token's issuer is not the authorization response's `iss`",
        ));
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if shared.fetch_userinfo {
        match provider_calls::fetch_userinfo(
            shared,
            &tokens.access_token,
            tokens.dpop_key.as_deref(),
            &subject,
        )
        .await
        {
            Ok(info) => merge_userinfo(&mut claims, info),
            Err(UserinfoFailure::Unusable(e)) if !shared.config.compat.require_userinfo => {
                // Enrichment only: the ID token's claims stand.
                tracing::warn!(reason = %e, "userinfo failed at login; using the ID token's claims");
            }
            Err(failure) => return Err(failure.into_error()),
        }
    }
    new_session(shared, now, now, claims, tokens, None)
}

/// A session from validated tokens and claims, with the size choices of the provider's
/// configuration applied. `previous` is the session being refreshed, if any.
pub(crate) fn new_session(
    shared: &Shared,
    created_at: u64,
    now: u64,
    mut claims: Map<String, Value>,
    tokens: Tokens,
    previous: Option<&Session>,
) -> Result<Session, AuthError> {
    let config = &shared.config;
    let dpop_key = tokens.dpop_key.clone();
    // The concrete issuer: the session's own on refresh, else the ID token's (for a
    // multi-tenant provider, its template filled with the user's tenant).
    let issuer = match (previous, claims.get("iss").and_then(Value::as_str)) {
        (Some(p), _) => p.issuer.clone(),
        (None, Some(iss)) => iss.to_owned(),
        (None, None) => shared.provider.metadata.issuer.clone(),
    };
    claims.retain(|name, _| !TOKEN_ONLY_CLAIMS.contains(&name.as_str()));
    claims.retain(|name, _| config.claims_filter.keeps(name));
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let sid = claims
        .get("sid")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| previous.and_then(|p| p.sid.clone()));
    let refresh_token = tokens
        .refresh_token
        .or_else(|| previous.and_then(|p| p.refresh_token.clone()));
    let id_token = tokens
        .id_token
        .or_else(|| previous.and_then(|p| p.id_token.clone()))
        .filter(|_| shared.store_id_token);
    let access_expires_at = tokens.expires_in.map_or(0, |s| now.saturating_add(s));
    let mut expires_at = created_at.saturating_add(shared.sessions.session_lifetime.as_secs());
    if refresh_token.is_none()
        && access_expires_at != 0
        && config.compat.session_ends_with_access_token
    {
        // Asked for: without a refresh token the session ends with its access token.
        expires_at = expires_at.min(access_expires_at);
    }
    // Roles of the access token count only when it is about this user.
    let token_roles = match tokens.access_roles {
        Some(found) if !found.roles.is_empty() => {
            if found.sub.as_deref().is_some_and(|sub| sub == subject) {
                serde_json::to_vec(&found.roles).unwrap_or_default()
            } else {
                tracing::warn!(
                    "the access token names another subject or none; its roles are not used"
                );
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    let scope = tokens
        .scope
        .or_else(|| previous.map(|p| p.scope.clone()))
        .unwrap_or_else(|| config.scopes.join(" "));
    Ok(Session {
        created_at,
        expires_at,
        access_expires_at,
        access_issued_at: now,
        subject,
        issuer,
        claims: serde_json::to_vec(&claims).map_err(|_| {
            AuthError::new(AuthErrorKind::Internal, "claims could not be serialized")
        })?,
        id_token,
        access_token: Some(tokens.access_token).filter(|_| config.store_access_token),
        refresh_token,
        scope,
        last_seen: now,
        sid,
        token_roles,
        app: previous.map(|p| p.app.clone()).unwrap_or_default(),
        dpop_key: SecretBytes(dpop_key.map(|key| key.pkcs8().to_vec()).unwrap_or_default()),
    })
}

/// Userinfo claims complete the ID token's; claims about the token itself stay the ID
/// token's.
pub(crate) fn merge_userinfo(claims: &mut Map<String, Value>, info: Map<String, Value>) {
    const PROTECTED: &[&str] = &[
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "auth_time",
        "nonce",
        "azp",
        "acr",
        "amr",
        "sid",
        "at_hash",
        "c_hash",
    ];
    for (k, v) in info {
        if !PROTECTED.contains(&k.as_str()) {
            claims.insert(k, v);
        }
    }
}

/// The new session's cookies: the sealed session (cookie sessions), or the sealed id of the
/// session just kept in the store (server-side sessions), clearing older session cookies.
async fn session_cookies(
    shared: &Shared,
    headers: &HeaderMap,
    session: &Session,
) -> Result<Vec<String>, AuthError> {
    let sessions = &shared.sessions;
    let old_names = sessions.session_cookie_names(headers);
    let Some(server) = &sessions.server else {
        return sessions.session_cookies(&old_names, session);
    };
    let cookie = server.create(sessions, session).await?;
    let mut out: Vec<String> = old_names
        .iter()
        .filter(|name| **name != sessions.cookies.session)
        .map(|name| sessions.cookies.session_removal(name))
        .collect();
    out.push(cookie);
    Ok(out)
}

fn finish(
    shared: &Shared,
    headers: &HeaderMap,
    session: Session,
    tx: &Transaction,
    clear_tx: Vec<String>,
    cookies: Result<Vec<String>, AuthError>,
) -> Answer {
    let subject = session.subject.clone();
    let mut res = response::redirect(&tx.return_to);
    let cookies = match cookies {
        Ok(cookies) => cookies,
        Err(err) => {
            log_failure(&err);
            let unavailable = err.kind() == AuthErrorKind::ProviderUnavailable;
            let mut res = response::error_answer(caller_kind(headers), err, headers, None);
            if unavailable {
                // The session store: the login can be tried again in a moment.
                res.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
            } else {
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            for cookie in clear_tx {
                add_set_cookie(res.headers_mut(), cookie);
            }
            return res;
        }
    };
    for cookie in clear_tx.into_iter().chain(cookies) {
        add_set_cookie(res.headers_mut(), cookie);
    }
    shared.counters.login();
    tracing::info!(subject = %subject, "login succeeded");
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::tests::TestKey;
    use crate::jwt::Alg;
    use crate::{Config, OidcLayer, ResponseType, SessionKey};
    use http::{Request, Response};
    use http_body_util::BodyExt;
    use tower::{service_fn, ServiceExt};
    use tower_layer::Layer;

    const ISSUER: &str = "https://id.example.com";

    /// A hybrid-flow layer whose provider keys are `key` and whose token endpoint cannot be
    /// reached (so a request that gets that far answers 503).
    fn hybrid_layer(key: &TestKey) -> OidcLayer {
        layer(key, ResponseType::CodeIdToken)
    }

    fn layer(key: &TestKey, response_type: ResponseType) -> OidcLayer {
        let discovery = serde_json::json!({
            "authorization_response_iss_parameter_supported": true,
            "issuer": ISSUER,
            "authorization_endpoint": format!("{ISSUER}/authorize"),
            "token_endpoint": "http://127.0.0.1:9/token",
            "jwks_uri": format!("{ISSUER}/jwks"),
            "response_types_supported": ["code", "code id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        });
        let config = Config::builder(ISSUER, "app")
            .client_secret("secret")
            .response_type(response_type)
            .redirect_url("https://app.example.com/auth/callback")
            .session_key(SessionKey::new([3; 32]).unwrap())
            .http_timeout(std::time::Duration::from_millis(500))
            .build()
            .unwrap();
        OidcLayer::from_provider_metadata(
            config,
            discovery.to_string().as_bytes(),
            Some(key.jwks_json().as_bytes()),
        )
        .unwrap()
    }

    async fn send(
        layer: &OidcLayer,
        req: Request<String>,
    ) -> (http::StatusCode, HeaderMap, String) {
        let svc = layer.layer(service_fn(|_req: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::from("shared")))
        }));
        let res = svc.oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    /// Starts a login; returns (state, nonce, the transaction cookie as a request header).
    async fn start(layer: &OidcLayer) -> (String, String, String) {
        start_with(layer, "").await
    }

    /// Starts a login with this query on `/auth/login`; returns (state, nonce, cookie).
    async fn start_with(layer: &OidcLayer, query: &str) -> (String, String, String) {
        let req = Request::get(format!("/auth/login{query}"))
            .body(String::new())
            .unwrap();
        let (status, headers, _) = send(layer, req).await;
        assert_eq!(status, http::StatusCode::FOUND);
        let location = url::Url::parse(headers["location"].to_str().unwrap()).unwrap();
        let param = |n: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        let cookie = headers["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        (param("state"), param("nonce"), cookie)
    }

    async fn post_callback(
        layer: &OidcLayer,
        cookie: &str,
        form: &[(&str, &str)],
    ) -> (http::StatusCode, String) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = Request::post("/auth/callback")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html")
            .header("cookie", cookie)
            .body(body)
            .unwrap();
        let (status, _, body) = send(layer, req).await;
        (status, body)
    }

    const CODE: &str = "the-code";

    /// Logs in (with `login_query`) and posts a hybrid answer whose front-channel ID token
    /// has valid claims changed by `edit`; returns the answer.
    async fn front_channel(
        layer: &OidcLayer,
        key: &TestKey,
        login_query: &str,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> (http::StatusCode, String) {
        let (state, nonce, cookie) = start_with(layer, login_query).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = serde_json::json!({
            "iss": ISSUER, "sub": "alice", "aud": "app", "nonce": nonce,
            "iat": now, "exp": now + 300, "auth_time": now,
            "c_hash": Alg::Es256.half_hash(CODE.as_bytes()),
        });
        edit(&mut claims);
        let token = key.sign(serde_json::json!({"alg": "ES256", "kid": key.kid}), claims);
        post_callback(
            layer,
            &cookie,
            &[("code", CODE), ("state", &state), ("id_token", &token)],
        )
        .await
    }

    #[tokio::test]
    async fn every_front_channel_id_token_rejection() {
        let key = TestKey::new("k1");
        let layer = hybrid_layer(&key);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
        let remove = |name: &'static str| -> Edit {
            Box::new(move |c: &mut serde_json::Value| {
                c.as_object_mut().unwrap().remove(name);
            })
        };
        let set = |name: &'static str, value: serde_json::Value| -> Edit {
            Box::new(move |c: &mut serde_json::Value| c[name] = value)
        };
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "",
                set("c_hash", Alg::Es256.half_hash(b"other-code").into()),
                "c_hash",
            ),
            ("", remove("c_hash"), "c_hash"),
            ("", set("nonce", "another".into()), "nonce"),
            ("", remove("nonce"), "nonce"),
            ("", set("iss", "https://evil.example.com".into()), "issuer"),
            ("", set("aud", "other".into()), "audience"),
            ("", set("aud", serde_json::json!(["app", "other"])), "azp"),
            ("", set("azp", "other".into()), "authorized party"),
            ("", remove("sub"), "subject"),
            ("", remove("exp"), "expiry"),
            ("", set("exp", (now - 3600).into()), "expired"),
            ("", remove("iat"), "issue time"),
            ("", set("iat", (now + 3600).into()), "future"),
            ("", set("nbf", (now + 3600).into()), "not yet valid"),
            ("?max_age=60", remove("auth_time"), "auth_time"),
            (
                "?max_age=60",
                set("auth_time", (now - 1000).into()),
                "max_age",
            ),
        ];
        for (query, edit, reason) in cases {
            let (status, body) = front_channel(&layer, &key, query, edit).await;
            assert_eq!(status, http::StatusCode::BAD_REQUEST, "{reason}: {body}");
            assert!(body.contains(reason), "{reason}: {body}");
        }

        // no ID token at all in a hybrid answer
        let (state, _, cookie) = start(&layer).await;
        let (status, body) =
            post_callback(&layer, &cookie, &[("code", CODE), ("state", &state)]).await;
        assert_eq!(status, http::StatusCode::BAD_REQUEST);
        assert!(body.contains("no ID token"), "{body}");

        // valid: the code exchange is attempted (the token endpoint is unreachable: 503)
        let (status, body) = front_channel(&layer, &key, "?max_age=60", |_| {}).await;
        assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }

    #[tokio::test]
    async fn a_dummy_id_token_does_not_lift_the_iss_requirement() {
        let key = TestKey::new("k1");
        let layer = layer(&key, ResponseType::Code);
        for extra in ["", "&id_token=x.y.z"] {
            let (state, _, cookie) = start(&layer).await;
            let req = Request::get(format!("/auth/callback?code=c&state={state}{extra}"))
                .header("accept", "text/html")
                .header("cookie", cookie)
                .body(String::new())
                .unwrap();
            let (status, _, body) = send(&layer, req).await;
            assert_eq!(status, http::StatusCode::BAD_REQUEST, "{extra}");
            assert!(body.contains("mix-up"), "{body}");
        }
    }

    /// A transaction cookie named after the state, as versions before slots set them (sealed
    /// here with today's sealer: even then it is not read).
    fn state_named_cookie(layer: &OidcLayer, state: &str) -> String {
        let sessions = &layer.shared().sessions;
        let tx = Transaction {
            created_at_ms: sessions.now_millis(),
            state: state.to_owned(),
            nonce: "n".repeat(43),
            pkce_verifier: "v".repeat(43),
            return_to: "/deep?x=1".to_owned(),
            hybrid: false,
            form_post: false,
            prompt_none: false,
            max_age: None,
            provider: String::new(),
        };
        let name = format!("{}{state}", sessions.cookies.tx_prefix);
        let sealed = sessions.tx_sealer.seal(&name, &tx.encode());
        format!("{name}={sealed}")
    }

    #[tokio::test]
    async fn a_state_that_names_no_slot_is_an_unknown_login() {
        let key = TestKey::new("k1");
        let layer = layer(&key, ResponseType::Code);
        let state = crate::session::cookie::random_token(32);
        for cookie in [Some(state_named_cookie(&layer, &state)), None] {
            let mut req = Request::get(format!("/auth/callback?code=c&state={state}&iss={ISSUER}"))
                .header("accept", "text/html");
            if let Some(cookie) = &cookie {
                req = req.header("cookie", cookie);
            }
            let (status, headers, body) = send(&layer, req.body(String::new()).unwrap()).await;
            assert_eq!(status, http::StatusCode::BAD_REQUEST, "{body}");
            assert!(headers.get("location").is_none());
            assert!(
                body.contains("/auth/login"),
                "a link to start again: {body}"
            );
        }
    }

    #[tokio::test]
    async fn callback_post_must_be_a_small_form() {
        let key = TestKey::new("k1");
        let layer = hybrid_layer(&key);
        let (_, _, cookie) = start(&layer).await;
        let req = Request::post("/auth/callback")
            .header("content-type", "application/json")
            .header("cookie", cookie.clone())
            .body("{}".to_owned())
            .unwrap();
        assert_eq!(send(&layer, req).await.0, http::StatusCode::BAD_REQUEST);
        let req = Request::post("/auth/callback")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie)
            .body("a=".repeat(100_000))
            .unwrap();
        assert_eq!(send(&layer, req).await.0, http::StatusCode::BAD_REQUEST);
        let req = Request::put("/auth/callback").body(String::new()).unwrap();
        assert_eq!(
            send(&layer, req).await.0,
            http::StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Params::parse("code=a&state=b&code=c").is_err());
        let p = Params::parse("code=a&state=b&iss=https%3A%2F%2Fid&other=1&other=2").unwrap();
        assert_eq!(p.code.as_deref(), Some("a"));
        assert_eq!(p.iss.as_deref(), Some("https://id"));
    }

    #[test]
    fn extra_fields_for_the_hook_are_kept_once_and_bounded() {
        let p = Params::parse("code=a&user=%7B%22n%22%3A1%7D&state=b&user=second&x=1").unwrap();
        assert_eq!(
            p.extra,
            [
                ("user".to_owned(), "{\"n\":1}".to_owned()),
                ("x".to_owned(), "1".to_owned())
            ]
        );
        let many: Vec<String> = (0..100).map(|i| format!("f{i}=v")).collect();
        let p = Params::parse(&many.join("&")).unwrap();
        assert_eq!(p.extra.len(), MAX_EXTRA_PARAMS);
    }

    #[test]
    fn state_shape() {
        assert!(is_state_like("abc-_09"));
        assert!(!is_state_like(""));
        assert!(!is_state_like("a;b"));
        assert!(!is_state_like(&"a".repeat(129)));
    }

    #[test]
    fn userinfo_cannot_override_token_claims() {
        let mut claims = Map::new();
        claims.insert("sub".into(), "alice".into());
        claims.insert("name".into(), "Old".into());
        let mut info = Map::new();
        info.insert("sub".into(), "mallory".into());
        info.insert("name".into(), "New".into());
        info.insert("email".into(), "a@example.com".into());
        merge_userinfo(&mut claims, info);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["name"], "New");
        assert_eq!(claims["email"], "a@example.com");
    }
}
