//! [`OidcService`]: routes the layer's own paths, opens the session, applies the login
//! policy and calls the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower_service::Service;

use crate::bearer::{bearer_candidate, bearer_token};
use crate::body::ResponseBody;
use crate::error::{AuthError, AuthErrorKind};
use crate::flow::login::Handle;
use crate::flow::{backchannel, callback, login, logout, refresh};
use crate::future::{add_session_cookies, answer_into, ResponseFuture};
use crate::identity::Identity;
use crate::metrics;
use crate::response::{self, caller_kind, Answer, CallerKind};
use crate::session::cookie::{add_set_cookie, request_cookies, strip_cookies};
use crate::session::sessions::HeldTransactions;
use crate::session::Session;
use crate::shared::{Shared, Tenants};
use crate::startup::Startup;

mod server_side;

/// The service produced by [`OidcLayer`](crate::OidcLayer); see there.
///
/// Its error type is the inner service's: every rejection is a response.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use tower::ServiceBuilder;
/// use tower_oidc::{Config, OidcLayer, SessionKey};
///
/// # fn layer() -> OidcLayer { unimplemented!() }
/// # fn f() {
/// // Any `Service<http::Request<B>>` works, not only axum routers.
/// let svc = ServiceBuilder::new().layer(layer()).service_fn(|_req: http::Request<String>| async {
///     Ok::<_, Infallible>(http::Response::new(String::from("hello")))
/// });
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct OidcService<S> {
    inner: S,
    startup: Arc<Startup>,
}

impl<S> OidcService<S> {
    pub(crate) fn new(inner: S, startup: Arc<Startup>) -> Self {
        Self { inner, startup }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

enum Route {
    Login,
    /// The redirect URI of this provider (one of several, or the only one).
    Callback(Arc<Shared>),
    Logout,
    BackchannelLogout,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OidcService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(shared) = self.startup.get() else {
            return self.call_before_discovery(req);
        };
        let path = req.uri().path();
        let route = if path == shared.paths.login {
            Some(Route::Login)
        } else if let Some(provider) = shared.by_callback(path) {
            Some(Route::Callback(provider))
        } else if path == shared.paths.logout {
            Some(Route::Logout)
        } else if path == shared.paths.backchannel_logout {
            Some(Route::BackchannelLogout)
        } else {
            None
        };
        if let Some(route) = route {
            return self.own_route(shared.clone(), route, req);
        }
        if shared.config.bearer {
            // `Authorization: DPoP`: the proof and the binding are checked; never the
            // Bearer paths below.
            if let Some(token) = crate::dpop::dpop_token(req.headers()) {
                return self.call_with_dpop(shared.clone(), token.map(str::to_owned), req);
            }
            // A token seen before: found by its exact bytes, nothing else to read. With
            // several providers, a hit in a provider's cache means that provider validated
            // this very token. A token bound to a DPoP key is never a hit here (see
            // `bearer_hit`): the full path refuses it.
            if let Some(identity) = bearer_candidate(req.headers()).and_then(|raw| {
                std::iter::once(shared)
                    .chain(&shared.tenants)
                    .find_map(|provider| provider.bearer_hit(raw))
            }) {
                strip_our_cookies(shared, &mut req, false);
                req.extensions_mut().insert(identity);
                return ResponseFuture::inner(self.inner.call(req), Vec::new());
            }
            if let Some(token) = bearer_token(req.headers()) {
                return self.call_with_bearer(shared.clone(), token.map(str::to_owned), req);
            }
        }

        if let Some(server) = &shared.sessions.server {
            return self.call_server_side(shared.clone(), server.clone(), req);
        }
        let sessions = &shared.sessions;
        // One clock read for the whole request.
        let now = shared.now();
        let read = sessions.read_session_at(req.headers(), now);
        // The provider that issued the session (one of several tenants, or the only one);
        // a session of a provider no longer configured is no session.
        let had_session = read.session.is_some();
        let owned = read
            .session
            .and_then(|s| shared.by_issuer(s.issuer()).map(|owner| (s, owner)));
        let owned = match owned {
            Some((session, owner)) if owner.needs_refresh(&session, now) => {
                let names = sessions.session_cookie_names(req.headers());
                // The refresh may be refused, and a login start for this request then.
                let held = HeldTransactions::of(&sessions.cookies, req.headers());
                strip_our_cookies(shared, &mut req, true);
                let id = session.session_id().to_owned();
                return self.call_refreshing(
                    shared.clone(),
                    owner,
                    session.to_session(),
                    id,
                    (names, held),
                    req,
                );
            }
            other => other,
        };
        let set_cookies = match &owned {
            // A cookie that gave no session (tampered, expired, revoked, of a provider no
            // longer configured...) is cleared.
            None if had_session => sessions
                .session_cookie_names(req.headers())
                .iter()
                .map(|name| sessions.cookies.session_removal(name))
                .collect(),
            None => read
                .stale
                .iter()
                .map(|name| sessions.cookies.session_removal(name))
                .collect(),
            Some((s, _)) if sessions.needs_touch(s, now) => {
                let touched = Session {
                    last_seen: now,
                    ..s.to_session()
                };
                let names = sessions.session_cookie_names(req.headers());
                sessions
                    .session_cookies_with_id(&names, &touched, s.session_id())
                    .unwrap_or_default()
            }
            Some(_) => Vec::new(),
        };
        // Without a session, a login may start for this request: it must know the logins the
        // browser already holds, whose cookies are stripped next.
        let held = if owned.is_none() {
            HeldTransactions::of(&sessions.cookies, req.headers())
        } else {
            HeldTransactions::default()
        };
        if read.only_session_cookies {
            // Nothing of the app's own to keep: no need to rebuild the header.
            req.headers_mut().remove(http::header::COOKIE);
        } else {
            strip_our_cookies(shared, &mut req, read.present);
        }
        let identity = owned.map(|(session, owner)| {
            session.identity(|s| {
                s.clone()
                    .into_identity(&owner.issuer, &owner.config.compat.roles)
            })
        });
        match admit(shared, &mut req, identity, &set_cookies, held) {
            None => ResponseFuture::inner(self.inner.call(req), set_cookies),
            Some(answer) => ResponseFuture::ready(answer),
        }
    }
}

/// Puts the session's identity (carrying its access token) into the request, then applies
/// the anti-CSRF rule and the login policy. `Some` is the answer to send instead (with
/// `set_cookies` on it).
fn admit<B>(
    shared: &Arc<Shared>,
    req: &mut Request<B>,
    identity: Option<Identity>,
    set_cookies: &[String],
    held: HeldTransactions,
) -> Option<Answer> {
    let refuse = |mut answer: Answer| {
        for cookie in set_cookies {
            add_set_cookie(answer.headers_mut(), cookie.clone());
        }
        Some(answer)
    };
    if let Some(identity) = identity {
        if !csrf_ok(shared, req) {
            tracing::debug!("request refused: missing anti-CSRF header");
            let err = AuthError::new(
                AuthErrorKind::CsrfCheckFailed,
                "a state-changing request lacks the anti-CSRF header",
            );
            return refuse(response::reject(
                caller_kind(req.headers()),
                err,
                req.headers(),
            ));
        }
        req.extensions_mut().insert(identity);
        // Logged in: the extractors need no handle to start a login.
        return None;
    } else if shared.config.require_login
        && !is_public(&shared.config.public_paths, req.uri().path())
        && !is_cors_preflight(req)
    {
        return refuse(login::login_required(
            shared,
            login::original_uri(req.uri(), req.extensions()),
            req.headers(),
            &held,
        ));
    }
    req.extensions_mut().insert(Handle {
        shared: shared.clone(),
        held,
    });
    None
}

/// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`): browsers
/// send it without credentials, so it is never answered "login required"; the CORS layer
/// answers it.
fn is_cors_preflight<B>(req: &Request<B>) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(http::header::ORIGIN)
        && req
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

impl<S> OidcService<S> {
    /// A session whose access token is (about to be) expired: refresh first (shared with
    /// every concurrent request of the same session), then go on with the new session and
    /// send its cookie on the response.
    fn call_refreshing<ReqBody, ResBody>(
        &mut self,
        shared: Arc<Shared>,
        owner: Arc<Shared>,
        session: Session,
        session_id: String,
        (names, held): (Vec<String>, HeldTransactions),
        mut req: Request<ReqBody>,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqBody: Send + 'static,
        ResBody: Send + 'static,
    {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::deferred(Box::pin(async move {
            let provider = owner.clone();
            let identity_of = |s: &Session| server_side::identity_of(&provider, s, &session_id);
            let (identity, set_cookies) = match refresh::refresh(owner, session.clone()).await {
                Ok(new) => {
                    // The same session goes on: its id stays (a logout still reaches it).
                    let cookies = shared
                        .sessions
                        .session_cookies_with_id(&names, &new, &session_id)
                        .unwrap_or_else(|e| {
                            tracing::error!(reason = %e, "refreshed session not stored");
                            Vec::new()
                        });
                    (identity_of(&new), cookies)
                }
                Err(e) if e.kind() == AuthErrorKind::ProviderUnavailable => {
                    // Keep the user logged in on the session they have; try again later.
                    tracing::warn!(reason = %e, "token refresh failed; keeping the session");
                    (identity_of(&session), Vec::new())
                }
                Err(e) => {
                    tracing::info!(subject = %session.subject, reason = %e, "session ended: refresh refused");
                    let clear: Vec<String> = names
                        .iter()
                        .map(|name| shared.sessions.cookies.session_removal(name))
                        .collect();
                    let now = shared.now();
                    if now.saturating_sub(session.created_at) < refresh::FRESH_LOGIN_SECS
                        && caller_kind(req.headers()) == CallerKind::Navigation
                    {
                        // The login just happened: another trip to the provider would bring
                        // the browser straight back here (a loop). Say so, and let the user
                        // choose to log in again.
                        let mut answer = refused_after_login(&shared, req.uri(), req.headers());
                        for cookie in clear {
                            add_set_cookie(answer.headers_mut(), cookie);
                        }
                        return Ok(answer_into(answer));
                    }
                    (None, clear)
                }
            };
            match admit(&shared, &mut req, identity, &set_cookies, held) {
                None => {
                    let mut res = inner.call(req).await?;
                    add_session_cookies(res.headers_mut(), set_cookies);
                    Ok(res.map(ResponseBody::inner))
                }
                Some(answer) => Ok(answer_into(answer)),
            }
        }))
    }
}

/// The page for a navigation whose session, created moments ago, could not be refreshed:
/// 401 with a "log in again" link back to the page (a deliberate click starts the next login,
/// never an automatic redirect).
fn refused_after_login(shared: &Shared, uri: &http::Uri, headers: &http::HeaderMap) -> Answer {
    let return_to = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .and_then(login::sanitize_return_to)
        .unwrap_or("/");
    let link = format!(
        "{}?{}",
        shared.paths.public(&shared.paths.login),
        form_urlencoded::Serializer::new(String::new())
            .append_pair("return_to", &shared.paths.public(return_to))
            .finish()
    );
    let err = AuthError::new(
        AuthErrorKind::InvalidToken,
        "You have just logged in, but the identity provider refused to renew your session. \
         Logging in again may help; if it keeps happening, the application's configuration \
         needs attention.",
    );
    response::error_answer(
        CallerKind::Navigation,
        err,
        headers,
        Some((&link, "Log in again")),
    )
}

/// The answer while the provider is not discovered yet: `503` (gRPC `UNAVAILABLE`) by caller
/// kind, with `Retry-After` until the next attempt.
fn not_discovered(startup: &Startup, headers: &http::HeaderMap) -> Answer {
    let err = AuthError::new(
        AuthErrorKind::ProviderUnavailable,
        "the identity provider is not discovered yet",
    );
    let mut answer = response::reject(caller_kind(headers), err, headers);
    answer.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(startup.retry_after()),
    );
    answer
}

impl<S> OidcService<S> {
    /// Before the provider is discovered: when an attempt is due (by the layer's clock) this
    /// request makes it (or waits for the one in flight) and is then served; otherwise, or
    /// when it fails, `503` with `Retry-After`.
    fn call_before_discovery<ReqBody, ResBody>(
        &mut self,
        req: Request<ReqBody>,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqBody: http_body::Body + Send + 'static,
        ReqBody::Data: Send,
        ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        ResBody: Send + 'static,
    {
        if !self.startup.due() {
            return ResponseFuture::ready(not_discovered(&self.startup, req.headers()));
        }
        // Keep the service that was polled ready (its inner service may have reserved a slot
        // for this call); leave a clone in its place.
        let clone = self.clone();
        let mut service = std::mem::replace(self, clone);
        ResponseFuture::deferred(Box::pin(async move {
            if service.startup.try_ready().await.is_none() {
                return Ok(answer_into(not_discovered(&service.startup, req.headers())));
            }
            service.call(req).await
        }))
    }

    /// A request with `Authorization: Bearer`: never a login redirect, never the session.
    fn call_with_bearer<ReqBody, ResBody>(
        &mut self,
        default: Arc<Shared>,
        token: Result<String, ()>,
        mut req: Request<ReqBody>,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqBody: Send + 'static,
        ResBody: Send + 'static,
    {
        let token = match token {
            Ok(token) => token,
            Err(()) => {
                let err = AuthError::new(AuthErrorKind::InvalidToken, "the token is malformed");
                return ResponseFuture::ready(bearer_rejection(err, req.headers()));
            }
        };
        // With several providers, the one the token names (its keys then decide).
        let shared = default.for_jwt(&token);
        strip_our_cookies(&shared, &mut req, false);
        match shared.bearer_cached(&token) {
            Some(Ok(identity)) if identity.dpop_jkt().is_none() => {
                req.extensions_mut().insert(identity);
                ResponseFuture::inner(self.inner.call(req), Vec::new())
            }
            Some(Ok(_)) => ResponseFuture::ready(crate::dpop::bound_as_bearer(req.headers())),
            Some(Err(err)) => ResponseFuture::ready(bearer_rejection(err, req.headers())),
            None => {
                // Keep the service that was polled ready; leave a clone in its place.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::deferred(Box::pin(async move {
                    match shared.validate_bearer(&token).await {
                        Ok(identity) if identity.dpop_jkt().is_none() => {
                            req.extensions_mut().insert(identity);
                            let res = inner.call(req).await?;
                            Ok(res.map(ResponseBody::inner))
                        }
                        Ok(_) => Ok(answer_into(crate::dpop::bound_as_bearer(req.headers()))),
                        Err(err) => Ok(answer_into(bearer_rejection(err, req.headers()))),
                    }
                }))
            }
        }
    }
}

impl<S> OidcService<S> {
    /// A request with `Authorization: DPoP`: the proof and the token's binding are checked
    /// (see `dpop`); never a login redirect, never the session.
    fn call_with_dpop<ReqBody, ResBody>(
        &mut self,
        default: Arc<Shared>,
        token: Result<String, ()>,
        mut req: Request<ReqBody>,
    ) -> ResponseFuture<S::Future, ResBody, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqBody: Send + 'static,
        ResBody: Send + 'static,
    {
        let Ok(token) = token else {
            let err = AuthError::new(AuthErrorKind::InvalidToken, "the token is malformed");
            let refusal = crate::dpop::Refusal::Token(err);
            return ResponseFuture::ready(crate::dpop::rejection(refusal, req.headers()));
        };
        let shared = default.for_jwt(&token);
        strip_our_cookies(&shared, &mut req, false);
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::deferred(Box::pin(async move {
            let checked =
                crate::dpop::authenticate(&shared, req.method(), req.uri(), req.headers(), &token)
                    .await;
            match checked {
                Ok(identity) => {
                    req.extensions_mut().insert(identity);
                    let res = inner.call(req).await?;
                    Ok(res.map(ResponseBody::inner))
                }
                Err(refusal) => Ok(answer_into(crate::dpop::rejection(refusal, req.headers()))),
            }
        }))
    }
}

/// Bearer callers are programs: 401/403/503 or a gRPC status, never a redirect.
fn bearer_rejection(err: AuthError, headers: &http::HeaderMap) -> Answer {
    let caller = match caller_kind(headers) {
        CallerKind::Grpc => CallerKind::Grpc,
        CallerKind::Api | CallerKind::Navigation => CallerKind::Api,
    };
    match err.kind() {
        AuthErrorKind::InvalidToken => tracing::debug!(reason = %err, "bearer token refused"),
        _ => tracing::error!(reason = %err, "bearer token could not be validated"),
    }
    crate::bearer::retry_later(response::reject(caller, err, headers))
}

/// Whether a session-authenticated request passes the anti-CSRF header rule.
fn csrf_ok<B>(shared: &Shared, req: &Request<B>) -> bool {
    let Some(header) = &shared.config.csrf_header else {
        return true;
    };
    let safe = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    safe || req.headers().contains_key(header)
}

/// Removes the layer's cookies from the request (the inner service never sees them).
fn strip_our_cookies<B>(shared: &Shared, req: &mut Request<B>, known_present: bool) {
    let present = known_present
        || request_cookies(req.headers()).any(|(name, _)| shared.sessions.cookies.is_ours(name));
    if present {
        strip_cookies(req.headers_mut(), |name| {
            shared.sessions.cookies.is_ours(name)
        });
    }
}

impl<S> OidcService<S> {
    fn own_route<ReqBody, ResBody, F, E>(
        &mut self,
        shared: Arc<Shared>,
        route: Route,
        req: Request<ReqBody>,
    ) -> ResponseFuture<F, ResBody, E>
    where
        ReqBody: http_body::Body + Send + 'static,
        ReqBody::Data: Send,
        ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = req.method();
        let allowed: &[Method] = match route {
            Route::Login => &[Method::GET, Method::HEAD],
            Route::Callback(_) => &[Method::GET, Method::HEAD, Method::POST],
            Route::Logout => &[Method::GET, Method::HEAD, Method::POST],
            Route::BackchannelLogout => &[Method::POST],
        };
        if !allowed.contains(method) {
            return ResponseFuture::ready(method_not_allowed(allowed));
        }
        match route {
            Route::Login => {
                let span = metrics::route_span("login");
                let start =
                    span.in_scope(|| login::handle(&shared, req.headers(), req.uri().query()));
                match start {
                    login::Start::Ready(answer) => {
                        metrics::record(&span, &answer);
                        ResponseFuture::ready(answer)
                    }
                    login::Start::Pushed(future) => {
                        ResponseFuture::auth(Box::pin(metrics::traced(span, future)))
                    }
                }
            }
            Route::Logout => match &shared.sessions.server {
                Some(server) => {
                    let span = metrics::route_span("logout");
                    ResponseFuture::auth(Box::pin(metrics::traced(
                        span,
                        server_side::logout(shared.clone(), server.clone(), req.headers().clone()),
                    )))
                }
                None => {
                    let span = metrics::route_span("logout");
                    let answer = span.in_scope(|| logout::handle(&shared, req.headers()));
                    metrics::record(&span, &answer);
                    ResponseFuture::ready(answer)
                }
            },
            Route::BackchannelLogout => {
                let (parts, body) = req.into_parts();
                let span = metrics::route_span("backchannel_logout");
                ResponseFuture::auth(Box::pin(metrics::traced(span, async move {
                    match read_form(&parts.headers, body).await {
                        Ok(form) => backchannel::handle(&shared, &form).await,
                        Err(why) => response::reject(
                            CallerKind::Api,
                            AuthError::new(AuthErrorKind::InvalidCallback, why),
                            &parts.headers,
                        ),
                    }
                })))
            }
            Route::Callback(shared) => {
                let query = req.uri().query().map(str::to_owned);
                let (parts, body) = req.into_parts();
                let span = metrics::route_span("callback");
                let counted = shared.clone();
                let answer = async move {
                    if parts.method != Method::POST {
                        return callback::handle(shared, parts.headers, query, false).await;
                    }
                    match read_form(&parts.headers, body).await {
                        Ok(form) => callback::handle(shared, parts.headers, Some(form), true).await,
                        Err(why) => response::error_answer(
                            caller_kind(&parts.headers),
                            AuthError::new(AuthErrorKind::InvalidCallback, why),
                            &parts.headers,
                            Some((
                                &shared.paths.public(&shared.paths.login),
                                "Start the login again",
                            )),
                        ),
                    }
                };
                ResponseFuture::auth(Box::pin(async move {
                    let answer = metrics::traced(span, answer).await;
                    if let Some(err) = answer.extensions().get::<AuthError>() {
                        counted.counters.login_failure(err.kind());
                    }
                    answer
                }))
            }
        }
    }
}

/// Largest form_post body accepted on the callback.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM_BYTES`].
async fn read_form<B>(headers: &http::HeaderMap, body: B) -> Result<String, &'static str>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let is_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Err("the callback POST is not a form");
    }
    let collected = http_body_util::Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| "the callback form is too large or could not be read")?;
    String::from_utf8(collected.to_bytes().to_vec()).map_err(|_| "the callback form is not UTF-8")
}

fn method_not_allowed(allowed: &[Method]) -> Answer {
    let mut res = response::html_page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "This address does not accept that method.",
        None,
    );
    let list = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = http::HeaderValue::from_str(&list) {
        res.headers_mut().insert(http::header::ALLOW, v);
    }
    res
}

/// Exact match, or prefix match for entries ending in `/`; both the path as sent and its
/// normalized form ([`normalize_path`]) must match. A path that a server normalizing it (or a
/// proxy in front) would read as another, non-public path is therefore not public:
/// `/public/../admin`, `/public/%2e%2e/admin`; nor is a path that only normalizes into a
/// public one (`/admin/../public/x`, whose raw form a router may still send to `/admin`).
fn is_public(paths: &[String], path: &str) -> bool {
    // An encoded slash or backslash, or a backslash, means something different to servers
    // and frameworks that decode or normalize them (`/public/..%2fadmin` may reach /admin):
    // such a path is never public.
    if path.contains('\\') || has_encoded_separator(path) {
        return false;
    }
    let matches = |path: &str| {
        paths.iter().any(|p| {
            if p.ends_with('/') {
                path.starts_with(p.as_str()) || path == p.trim_end_matches('/')
            } else {
                path == p
            }
        })
    };
    matches(path) && matches(&normalize_path(path))
}

/// Whether `path` has `%2F` or `%5C` (any case).
fn has_encoded_separator(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && ((w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f'))
                || (w[1] == b'5' && w[2].eq_ignore_ascii_case(&b'c')))
    })
}

/// The path with percent-encoded unreserved characters decoded (RFC 3986 §2.3, so `%2e` is
/// `.`), repeated slashes collapsed and dot segments removed (§5.2.4). Other
/// percent-encodings (`%2F`, ...) are kept as they are. Allocates only when something changes.
fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    let plain = !path.contains('%')
        && !path.contains("//")
        && !path
            .split('/')
            .any(|segment| segment == "." || segment == "..");
    if plain {
        return std::borrow::Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').skip(1) {
        match segment {
            "." | "" => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    // A trailing slash, `.` or `..` leaves a directory: keep the final `/`.
    let last = decoded.rsplit('/').next().unwrap_or_default();
    let trailing = matches!(last, "" | "." | "..") && !segments.is_empty();
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    std::borrow::Cow::Owned(out)
}

/// Decodes `%XX` where it stands for an unreserved character (letters, digits, `-._~`).
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(c) = hex.filter(|c| c.is_ascii_alphanumeric() || b"-._~".contains(c)) {
                out.push(char::from(c));
                i += 3;
                continue;
            }
        }
        // Copy up to the next `%` as it is (keeps multi-byte characters whole).
        let next = path[i + 1..].find('%').map_or(path.len(), |n| i + 1 + n);
        out.push_str(&path[i..next]);
        i = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths() {
        let paths = vec!["/health".to_owned(), "/static/".to_owned()];
        assert!(is_public(&paths, "/health"));
        assert!(!is_public(&paths, "/healthz"));
        assert!(is_public(&paths, "/static/app.js"));
        assert!(is_public(&paths, "/static"));
        assert!(!is_public(&paths, "/staticx"));
        assert!(!is_public(&paths, "/"));
        assert!(!is_public(&paths, "/static/../admin"));
        assert!(!is_public(&paths, "/static/%2e%2e/admin"));
        for encoded in [
            "/static/..%2fadmin",
            "/static/a%2Fb",
            "/static/..%5cadmin",
            "/static/%5C",
        ] {
            assert!(!is_public(&paths, encoded), "{encoded}");
        }
        assert!(!is_public(&paths, "/static\\app.js"));
        assert!(!is_public(&paths, "/static/..\\admin"));
        assert!(!is_public(&paths, "/health/.."));
        assert!(is_public(&paths, "/static//app.js"));
        assert!(is_public(&paths, "/static/%61pp.js"));
    }

    #[test]
    fn path_normalization() {
        for (path, normal) in [
            ("/a/b", "/a/b"),
            ("/", "/"),
            ("", ""),
            ("/a//b", "/a/b"),
            ("//a", "/a"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/", "/a/b/"),
            ("/..", "/"),
            ("/../../a", "/a"),
            ("/a/%2e%2e/b", "/b"),
            ("/a/%2E./b", "/b"),
            ("/%7Euser/%41", "/~user/A"),
            ("/a%2Fb/..", "/"),
            ("/a/%2F/../b", "/a/b"),
            ("/a/%zz/%", "/a/%zz/%"),
            ("/a/%e2%82%ac/%C3", "/a/%e2%82%ac/%C3"),
            ("/é/%2e%2e/x", "/x"),
        ] {
            assert_eq!(normalize_path(path), normal, "{path}");
        }
    }
}
