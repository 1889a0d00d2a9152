//! Discovery document (OpenID Connect Discovery 1.0).

use std::sync::atomic::Ordering;

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use http::header;
use serde_json::json;

use super::{Fault, St};

pub(super) async fn discovery(AxState(s): St) -> Response {
    s.stats.discovery.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = s.gate().await {
        return r;
    }
    let mut scopes = vec!["openid", "profile", "email"];
    let mut grants = vec!["authorization_code"];
    if s.refresh_tokens && !s.has_fault(&Fault::OfflineAccessByParameter) {
        scopes.push("offline_access");
    }
    if s.refresh_tokens {
        grants.push("refresh_token");
    }
    let mut doc = json!({
        "issuer": s.discovery_issuer(),
        "authorization_endpoint": s.endpoint("authorize"),
        "token_endpoint": s.endpoint("token"),
        "userinfo_endpoint": s.endpoint("userinfo"),
        "jwks_uri": s.endpoint("jwks"),
        "end_session_endpoint": s.endpoint("end_session"),
        "introspection_endpoint": s.endpoint("introspect"),
        "pushed_authorization_request_endpoint": s.endpoint("par"),
        "dpop_signing_alg_values_supported": ["ES256", "PS256", "RS256", "EdDSA"],
        "introspection_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": grants,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [s.alg.name()],
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "scopes_supported": scopes,
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "azp",
            "name", "email", "email_verified"
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    });
    if s.require_par {
        doc["require_pushed_authorization_requests"] = true.into();
    }
    if s.authorization_response_iss {
        doc["authorization_response_iss_parameter_supported"] = true.into();
    }
    for fault in s.state().faults.iter() {
        match fault {
            Fault::DiscoveryField(name, value) => doc[name.as_str()] = json!(value),
            Fault::DiscoveryWithout(name) => {
                if let Some(doc) = doc.as_object_mut() {
                    doc.remove(name);
                }
            }
            Fault::OversizedDiscovery => doc["x_padding"] = json!(super::padding()),
            _ => {}
        }
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}
