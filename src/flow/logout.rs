//! `GET|POST {prefix}/logout`: clears the session cookies, then ends the session at the
//! provider (RP-Initiated Logout 1.0) when it advertises an `end_session_endpoint`.

use http::HeaderMap;

use std::sync::Arc;

use crate::layer::{Inner, Tenants};
use crate::response::{self, Answer};
use crate::session::cookie::add_set_cookie;

/// Handles the logout request.
pub(crate) fn handle(shared: &Arc<Inner>, headers: &HeaderMap) -> Answer {
    let read = shared.read_session(headers);
    // The provider that issued the session (one of several tenants, or the only one).
    let inner = &read
        .session
        .as_ref()
        .and_then(|s| shared.by_issuer(s.issuer()))
        .unwrap_or_else(|| shared.clone());
    let config = &inner.config;
    let location = match &inner.provider.metadata.end_session_endpoint {
        Some(endpoint) => {
            let mut url = endpoint.clone();
            {
                let mut q = url.query_pairs_mut();
                if let Some(hint) = read.session.as_ref().and_then(|s| s.id_token()) {
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
        None => config.post_logout_redirect_url.to_string(),
    };
    let mut res = response::redirect(&location);
    let mut names = inner.session_cookie_names(headers);
    if !names.contains(&inner.cookies.session) {
        names.push(inner.cookies.session.clone());
    }
    for name in names {
        add_set_cookie(res.headers_mut(), inner.cookies.session_removal(&name));
    }
    match &read.session {
        Some(s) => tracing::info!(subject = %s.subject(), "logout"),
        None => tracing::debug!("logout without a session"),
    }
    res
}
