//! The request path of server-side sessions (a session store is configured): the cookie
//! carries a sealed session id, the session is read from the store (one round trip, so the
//! work runs in the response future), refreshed or touched there, and logout deletes it.
//! Apart from where the session comes from, it goes as the cookie path does: same identity,
//! same policy, same refresh rules.

use std::sync::Arc;

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, Request, Response};
use tower_service::Service;

use super::{admit, refused_after_login, strip_our_cookies, OidcService};
use crate::body::ResponseBody;
use crate::error::{AuthError, AuthErrorKind};
use crate::flow::{logout, refresh};
use crate::future::{add_session_cookies, answer_into, ResponseFuture};
use crate::identity::Identity;
use crate::response::{self, caller_kind, Answer, CallerKind};
use crate::session::cookie::add_set_cookie;
use crate::session::sessions::HeldTransactions;
use crate::session::store::{ServerSessions, RETRY_AFTER_SECS};
use crate::session::{Session, SessionRef};
use crate::shared::{Shared, Tenants};

/// The answer when the session store cannot be reached: 503 (gRPC 14) with `Retry-After`;
/// the session is neither ended nor its cookie cleared.
pub(crate) fn store_unavailable(err: AuthError, headers: &HeaderMap) -> Answer {
    let mut answer = response::reject(caller_kind(headers), err, headers);
    answer
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    answer
}

/// The identity of `session` under `id`, read back from its encoding (the one path every
/// request uses).
pub(super) fn identity_of(owner: &Shared, session: &Session, id: &str) -> Option<Identity> {
    SessionRef::parse(Bytes::from(session.encode(id)))
        .map(|r| r.into_identity(&owner.issuer, &owner.config.compat.roles))
}

/// What a request's server-side session gives: the identity, the cookies to set, or an
/// answer to send at once.
enum Outcome {
    Go(Option<Identity>, Vec<String>),
    Answer(Answer),
}

/// Reads, refreshes or touches the request's server-side session.
async fn resolve(
    shared: &Arc<Shared>,
    server: &ServerSessions,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Outcome {
    let sessions = &shared.sessions;
    let (id, present) = server.session_id(&sessions.cookies, headers);
    let names = if present {
        sessions.session_cookie_names(headers)
    } else {
        Vec::new()
    };
    let clear = || -> Vec<String> {
        names
            .iter()
            .map(|name| sessions.cookies.session_removal(name))
            .collect()
    };
    let Some(id) = id else {
        return Outcome::Go(None, clear());
    };
    let loaded = match server.load(sessions, &id).await {
        Ok(loaded) => loaded,
        Err(e) => return Outcome::Answer(store_unavailable(e, headers)),
    };
    let now = shared.now();
    let owned = loaded
        .filter(|s| sessions.is_live(s, now))
        .and_then(|s| shared.by_issuer(s.issuer()).map(|owner| (s, owner)));
    let Some((session, owner)) = owned else {
        return Outcome::Go(None, clear());
    };
    if owner.needs_refresh(&session, now) {
        let old = session.to_session();
        return match refresh::refresh(owner.clone(), old.clone()).await {
            Ok(new) => match server.save(sessions, &id, &new).await {
                Ok(()) => Outcome::Go(
                    identity_of(&owner, &new, &id),
                    vec![server.cookie(sessions, &id, &new)],
                ),
                Err(e) => Outcome::Answer(store_unavailable(e, headers)),
            },
            Err(e) if e.kind() == AuthErrorKind::ProviderUnavailable => {
                tracing::warn!(reason = %e, "token refresh failed; keeping the session");
                Outcome::Go(identity_of(&owner, &old, &id), Vec::new())
            }
            Err(e) => {
                tracing::info!(subject = %old.subject, reason = %e, "session ended: refresh refused");
                if let Err(err) = server.delete(&id).await {
                    tracing::warn!(reason = %err, "the ended session stays in the store until it expires");
                }
                sessions.revoke(&session);
                if now.saturating_sub(old.created_at) < refresh::FRESH_LOGIN_SECS
                    && caller_kind(headers) == CallerKind::Navigation
                {
                    return Outcome::Answer(refused_after_login(shared, uri, headers));
                }
                Outcome::Go(None, clear())
            }
        };
    }
    if sessions.needs_touch(&session, now) {
        let touched = Session {
            last_seen: now,
            ..session.to_session()
        };
        return match server.save(sessions, &id, &touched).await {
            Ok(()) => Outcome::Go(
                identity_of(&owner, &touched, &id),
                vec![server.cookie(sessions, &id, &touched)],
            ),
            Err(e) => Outcome::Answer(store_unavailable(e, headers)),
        };
    }
    let identity = session.into_identity(&owner.issuer, &owner.config.compat.roles);
    Outcome::Go(Some(identity), Vec::new())
}

impl<S> OidcService<S> {
    /// A request when sessions are server-side.
    pub(super) fn call_server_side<ReqBody, ResBody>(
        &mut self,
        shared: Arc<Shared>,
        server: Arc<ServerSessions>,
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
            let (identity, set_cookies) =
                match resolve(&shared, &server, req.uri(), req.headers()).await {
                    Outcome::Go(identity, cookies) => (identity, cookies),
                    Outcome::Answer(mut answer) => {
                        // A refused refresh's page clears the cookie; a 503 keeps it.
                        if answer.status() != http::StatusCode::SERVICE_UNAVAILABLE {
                            for name in shared.sessions.session_cookie_names(req.headers()) {
                                add_set_cookie(
                                    answer.headers_mut(),
                                    shared.sessions.cookies.session_removal(&name),
                                );
                            }
                        }
                        return Ok(answer_into(answer));
                    }
                };
            let held = if identity.is_none() {
                HeldTransactions::of(&shared.sessions.cookies, req.headers())
            } else {
                HeldTransactions::default()
            };
            strip_our_cookies(&shared, &mut req, false);
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

/// `{prefix}/logout` with server-side sessions: the session is deleted from the store (every
/// copy of the cookie, on every replica, is logged out at once) and its id revoked, then the
/// logout goes on as with cookie sessions. The store unreachable: 503, nothing ended (the
/// user tries again), never a logout that only looks done.
pub(super) async fn logout(
    shared: Arc<Shared>,
    server: Arc<ServerSessions>,
    headers: HeaderMap,
) -> Answer {
    let sessions = &shared.sessions;
    let (id, _) = server.session_id(&sessions.cookies, &headers);
    let mut session = None;
    if let Some(id) = &id {
        session = match server.load(sessions, id).await {
            Ok(found) => found,
            Err(e) => return store_unavailable(e, &headers),
        };
        if session.is_some() {
            if let Err(e) = server.delete(id).await {
                return store_unavailable(e, &headers);
            }
        }
    }
    logout::answer(&shared, &headers, session)
}
