//! The backend for frontend (BFF) of a single-page app, as a router to serve: the SPA's page,
//! its JSON API under `/api` (the session cookie, and the anti-CSRF header `X-CSRF` on
//! unsafe methods), and a call from the backend to another API with the user's access token.
//! `examples/bff.rs` runs it; the Chromium test drives it end to end.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_oidc::{AccessToken, Identity, OidcLayer, RequireLayer};

/// The header the SPA sends on every API call; the layer refuses unsafe methods without it
/// (`ConfigBuilder::csrf_header`), so another site cannot make the browser post with the cookie.
pub(crate) const CSRF_HEADER: &str = "x-csrf";

/// The SPA: one page whose script calls `/api/me`, and `/api/orders` on a click.
pub(crate) const SPA: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>BFF example</title></head>
<body>
<h1>Orders</h1>
<p id="who">loading...</p>
<p><a id="login" href="/auth/login?return_to=/" hidden>Log in</a></p>
<p><button id="orders" hidden>Load my orders</button> <a id="logout" href="/auth/logout" hidden>Log out</a></p>
<pre id="out"></pre>
<script>
const api = (path, method) => fetch(path, {
  method: method || "GET",
  credentials: "same-origin",
  headers: { "accept": "application/json", "x-csrf": "1" },
});
async function start() {
  const res = await api("/api/me");
  if (res.status === 401) {
    document.getElementById("who").textContent = "not logged in";
    document.getElementById("login").hidden = false;
    return;
  }
  const me = await res.json();
  document.getElementById("who").textContent = "logged in as " + me.sub;
  document.getElementById("orders").hidden = false;
  document.getElementById("logout").hidden = false;
}
document.getElementById("orders").addEventListener("click", async () => {
  const res = await api("/api/orders", "POST");
  document.getElementById("out").textContent = res.status + " " + await res.text();
});
start();
</script>
</body></html>
"#;

/// Where the backend finds the other API.
#[derive(Clone, Debug)]
pub(crate) struct Backend {
    /// The other API's orders URL (it accepts the user's access token as a bearer token).
    pub(crate) orders_url: String,
    /// The HTTP client for it.
    pub(crate) http: reqwest::Client,
}

/// The BFF's routes behind `oidc` (configured with `csrf_header(CSRF_HEADER)`).
pub(crate) fn bff(oidc: OidcLayer, backend: Backend) -> Router {
    Router::new()
        .route("/", get(|| async { Html(SPA) }))
        .route(
            "/api/me",
            get(|id: Identity| async move { Json(json!({ "sub": id.subject(), "name": id.name() })) }),
        )
        .route("/api/orders", post(orders))
        .with_state(backend)
        .layer(oidc)
}

/// Calls the other API on the user's behalf with the session's access token.
async fn orders(
    State(backend): State<Backend>,
    token: AccessToken,
) -> Result<Json<Value>, (StatusCode, String)> {
    let res = backend
        .http
        .get(&backend.orders_url)
        .bearer_auth(token.secret())
        .send()
        .await
        .map_err(|e| {
            (
                StatusCode::BAD_GATEWAY,
                format!("the orders API is unreachable: {e}"),
            )
        })?;
    if !res.status().is_success() {
        return Err((
            StatusCode::BAD_GATEWAY,
            format!("the orders API answered {}", res.status()),
        ));
    }
    let body = res
        .bytes()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
    let orders: Value = serde_json::from_slice(&body)
        .map_err(|e| (StatusCode::BAD_GATEWAY, format!("not JSON: {e}")))?;
    Ok(Json(orders))
}

/// The other API: bearer tokens only (its own `OidcLayer` for the same provider), scope
/// `openid` required.
pub(crate) fn orders_api(oidc: OidcLayer) -> Router {
    Router::new()
        .route(
            "/orders",
            get(|id: Identity| async move {
                Json(json!({ "for": id.subject(), "orders": ["book", "lamp"] }))
            })
            .layer(RequireLayer::scopes(["openid"])),
        )
        .layer(oidc)
}
