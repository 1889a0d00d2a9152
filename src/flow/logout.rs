//! `GET|POST {prefix}/logout`: revokes the session (every copy of its cookie is refused
//! afterwards, wherever the revocation store is shared) and clears its cookies, then ends the
//! session at the provider (RP-Initiated Logout 1.0) when it advertises an
//! `end_session_endpoint`.

use http::HeaderMap;

use std::sync::Arc;

use crate::config::end_session_location;
use crate::response::{self, Answer};
use crate::session::cookie::add_set_cookie;
use crate::session::SessionRef;
use crate::shared::{Shared, Tenants};

/// Handles the logout request.
pub(crate) fn handle(shared: &Arc<Shared>, headers: &HeaderMap) -> Answer {
    // Authentic is enough: an idle or expired cookie still ends its session, so that a copy
    // kept alive elsewhere is refused too.
    let session = shared.sessions.read_session_for_logout(headers);
    answer(shared, headers, session)
}

/// The logout of `session` (the request's, if any): revoked, its cookies cleared, and the
/// redirect to the provider's end-session endpoint (or the post-logout URL).
pub(crate) fn answer(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    session: Option<SessionRef>,
) -> Answer {
    let sessions = &shared.sessions;
    // The provider that issued the session (one of several tenants, or the only one).
    let tenant = &session
        .as_ref()
        .and_then(|s| shared.by_issuer(s.issuer()))
        .unwrap_or_else(|| shared.clone());
    let config = &tenant.config;
    let template = config.compat.end_session_url.as_deref();
    let location = match (template, &tenant.provider.metadata.end_session_endpoint) {
        (Some(template), _) => {
            let hint = session.as_ref().and_then(|s| s.id_token());
            end_session_location(
                template,
                &config.client_id,
                config.post_logout_redirect_url.as_str(),
                hint.unwrap_or_default(),
            )
            // Checked when the configuration was built.
            .unwrap_or_else(|_| config.post_logout_redirect_url.to_string())
        }
        (None, Some(endpoint)) => {
            let mut url = endpoint.clone();
            {
                let mut q = url.query_pairs_mut();
                if let Some(hint) = session.as_ref().and_then(|s| s.id_token()) {
                    q.append_pair("id_token_hint", hint);
                }
                q.append_pair("client_id", &config.client_id);
                q.append_pair(
                    "post_logout_redirect_uri",
                    config.post_logout_redirect_url.as_str(),
                );
            }
            url.to_string()
        }
        (None, None) => config.post_logout_redirect_url.to_string(),
    };
    let mut res = response::redirect(&location);
    let mut names = sessions.session_cookie_names(headers);
    if !names.contains(&sessions.cookies.session) {
        names.push(sessions.cookies.session.clone());
    }
    for name in names {
        add_set_cookie(res.headers_mut(), sessions.cookies.session_removal(&name));
    }
    match &session {
        Some(s) => {
            // The browser forgets the cookie; a copy of it is refused from now on too, until
            // the session's absolute deadline.
            sessions.revoke(s);
            sessions.forget_opened(headers);
            shared.counters.revocations(1);
            tracing::info!(subject = %s.subject(), "logout");
        }
        None => tracing::debug!("logout without a session"),
    }
    res
}
