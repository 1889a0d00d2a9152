//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

use std::sync::atomic::Ordering;

use axum::extract::{RawQuery, State as AxState};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use super::keys::{self, PublicKey};
use super::params::{is_form, Params};
use super::response::{error_page, html_page};
use super::{uri_allowed, St};

pub(super) async fn end_session(
    AxState(s): St,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    s.stats.end_session.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = s.gate().await {
        return r;
    }
    let p = if method == Method::POST {
        if !is_form(&headers) {
            return error_page("The logout request must be application/x-www-form-urlencoded.");
        }
        Params::parse(&body)
    } else {
        Params::parse(query.unwrap_or_default().as_bytes())
    };
    if let Some(name) = p.repeated.first() {
        return error_page(&format!("The parameter {name} is repeated."));
    }
    let mut hint_client: Vec<String> = Vec::new();
    let mut hint_sub = None;
    if let Some(hint) = p.get("id_token_hint") {
        let claims = {
            let state = s.state();
            let mut keys: Vec<&PublicKey> = vec![&state.key.public];
            keys.extend(state.retired.iter());
            keys::verify_jws(hint, keys)
        };
        let Some(claims) =
            claims.filter(|c| c["iss"].as_str().is_some_and(|iss| s.is_own_issuer(iss)))
        else {
            return error_page("The id_token_hint was not issued by this provider.");
        };
        match &claims["aud"] {
            Value::String(a) => hint_client.push(a.clone()),
            Value::Array(list) => {
                hint_client.extend(list.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            _ => {}
        }
        hint_sub = claims["sub"].as_str().map(str::to_owned);
    }
    let client_id = match p.get("client_id") {
        Some(id) if !hint_client.is_empty() && !hint_client.iter().any(|a| a == id) => {
            return error_page("client_id does not match the id_token_hint's audience.");
        }
        Some(id) => Some(id.to_owned()),
        None => hint_client.first().cloned(),
    };
    let client = client_id.as_deref().and_then(|id| s.client(id));
    if client_id.is_some() && client.is_none() {
        return error_page("The client is not registered.");
    }
    tracing::debug!(sub = ?hint_sub, client = ?client_id, "development provider signed a user out");

    if let Some(uri) = p.get("post_logout_redirect_uri") {
        let allowed = client.is_some_and(|c| uri_allowed(&c.post_logout_redirect_uris, uri));
        if allowed {
            if let Ok(mut url) = Url::parse(uri) {
                if let Some(state) = p.get("state") {
                    url.query_pairs_mut().append_pair("state", state);
                }
                if let Ok(location) = HeaderValue::from_str(url.as_str()) {
                    return (
                        StatusCode::FOUND,
                        [
                            (header::LOCATION, location),
                            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                        ],
                    )
                        .into_response();
                }
            }
        }
        return html_page(
            StatusCode::OK,
            "You are signed out",
            "<p>You are signed out of the development provider.</p>\n\
             <p>The post_logout_redirect_uri is not registered for this client, so you were \
             not sent back.</p>\n",
        );
    }
    html_page(
        StatusCode::OK,
        "You are signed out",
        "<p>You are signed out of the development provider.</p>\n",
    )
}
