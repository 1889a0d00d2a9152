//! The JSON Web Key Set with the current signing key.

use std::sync::atomic::Ordering;

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use http::header;
use serde_json::json;

use super::{Fault, St};

pub(super) async fn jwks(AxState(s): St) -> Response {
    s.stats.jwks.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = s.gate().await {
        return r;
    }
    if s.has_fault(&Fault::JwksDown) {
        return (
            http::StatusCode::SERVICE_UNAVAILABLE,
            [(header::CACHE_CONTROL, "no-store")],
            "the key set is unavailable (fault injection)\n",
        )
            .into_response();
    }
    let jwk = s.state().key.public.jwk();
    let mut doc = json!({ "keys": [jwk] });
    if s.has_fault(&Fault::OversizedJwks) {
        doc["x_padding"] = json!(super::padding());
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}
