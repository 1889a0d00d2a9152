//! Handlers tested without a provider, with the `testing` feature's helpers: the handler's
//! logged-in, forbidden and anonymous paths through `IdentityLayer`, and the whole app behind
//! the real `OidcLayer` with a minted session cookie.
//!
//! ```text
//! cargo test --example tested_handler
//! ```
//!
//! In your app, enable the feature for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! tower-oidc = { version = "0.1", features = ["testing"] }
//! ```

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_oidc::{Forbidden, Identity};

/// An invoice: its owner may read it, and so may anyone with the role `accounting`.
async fn invoice(id: Identity, Path(owner): Path<String>) -> Result<Json<Value>, Forbidden> {
    if owner != id.subject() {
        id.require_any_role(["accounting"])?;
    }
    Ok(Json(json!({ "owner": owner, "read_by": id.subject() })))
}

/// The app's routes (the OIDC layer goes around them in `main`).
fn routes() -> Router {
    Router::new().route("/invoices/{owner}", get(invoice))
}

fn main() {
    let _ = routes();
    println!("run `cargo test --example tested_handler`");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::{Request, StatusCode};
    use tower::ServiceExt;
    use tower_oidc::testing::{session_cookie, IdentityBuilder, IdentityLayer};
    use tower_oidc::{Config, OidcLayer, SessionKey};

    fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
        let mut req = Request::get(path).header("accept", "application/json");
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        req.body(Body::empty()).expect("request")
    }

    async fn status_as(id: Option<Identity>, path: &str) -> StatusCode {
        let app = routes().layer(IdentityLayer::new(id));
        app.oneshot(get(path, None))
            .await
            .expect("response")
            .status()
    }

    #[tokio::test]
    async fn owners_and_accounting_read_invoices_others_do_not() {
        let alice = IdentityBuilder::new("alice").build();
        assert_eq!(
            status_as(Some(alice.clone()), "/invoices/alice").await,
            StatusCode::OK
        );
        assert_eq!(
            status_as(Some(alice), "/invoices/bob").await,
            StatusCode::FORBIDDEN
        );
        let clerk = IdentityBuilder::new("carol").roles(["accounting"]).build();
        assert_eq!(
            status_as(Some(clerk), "/invoices/bob").await,
            StatusCode::OK
        );
        assert_eq!(
            status_as(None, "/invoices/bob").await,
            StatusCode::UNAUTHORIZED
        );
    }

    /// The real layer, built offline from a discovery document, with a minted session cookie.
    #[tokio::test]
    async fn a_session_cookie_reaches_the_handler_through_the_real_layer() {
        let issuer = "https://id.example.com";
        let discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let config = Config::builder(issuer, "invoices")
            .client_secret("s3cret")
            .redirect_url("https://invoices.example.com/auth/callback")
            .session_key(SessionKey::generate())
            .build()
            .expect("config");
        let oidc =
            OidcLayer::from_provider_metadata(config, discovery.to_string().as_bytes(), None)
                .expect("layer");
        let bob = IdentityBuilder::new("bob").issuer(issuer).build();
        let cookie = session_cookie(&oidc, &bob).expect("cookie");
        let app = routes().layer(oidc);
        let res = app
            .clone()
            .oneshot(get("/invoices/bob", Some(&cookie)))
            .await
            .expect("response");
        assert_eq!(res.status(), StatusCode::OK);
        let res = app
            .oneshot(get("/invoices/bob", None))
            .await
            .expect("response");
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}
