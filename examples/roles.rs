//! An app with roles: an admin page for the role `admin`, an operations page for the group
//! `ops`, and a handler that checks a role only for other people's data.
//!
//! ```text
//! cargo run --example roles
//! ```
//!
//! It starts the embedded development provider with two users: `alice` (role `admin`, group
//! `ops`) and `bob` (neither). Open <http://127.0.0.1:3001>, log in as either and try the
//! links: bob gets `403` on `/admin` and `/ops`, and may read only his own `/notes/bob`.

use std::error::Error;

use axum::extract::Path;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tower_oidc::dev::{DevProvider, DevUser};
use tower_oidc::{Config, Forbidden, Identity, OidcLayer, RequireLayer, SessionKey};

const APP: &str = "http://127.0.0.1:3001";

async fn home(id: Option<Identity>) -> Html<String> {
    let who = match &id {
        Some(id) => format!(
            "Logged in as {} (roles: {}). <a href=\"/auth/logout\">Log out</a>",
            id.subject(),
            id.roles().join(", ")
        ),
        None => "Not logged in. <a href=\"/auth/login\">Log in</a>".to_owned(),
    };
    Html(format!(
        "<h1>Roles example</h1><p>{who}</p><ul>\
         <li><a href=\"/admin\">/admin</a> (role admin)</li>\
         <li><a href=\"/ops\">/ops</a> (group ops)</li>\
         <li><a href=\"/notes/alice\">/notes/alice</a>, <a href=\"/notes/bob\">/notes/bob</a> \
         (your own, or any with the role admin)</li></ul>"
    ))
}

/// Anyone may read their own notes; admins may read everybody's.
async fn notes(id: Identity, Path(owner): Path<String>) -> Result<String, Forbidden> {
    if owner != id.subject() {
        id.require_any_role(["admin"])?;
    }
    Ok(format!("the notes of {owner}"))
}

/// The app's routes; `oidc` goes around them.
fn app(oidc: OidcLayer) -> Router {
    Router::new()
        .route("/", get(home))
        .route(
            "/admin",
            get(|id: Identity| async move { format!("admin area, welcome {}", id.subject()) })
                .layer(RequireLayer::any_role(["admin"])),
        )
        .route(
            "/ops",
            get(|| async { "operations dashboards" }).layer(RequireLayer::group("ops")),
        )
        .route("/notes/{owner}", get(notes))
        .layer(oidc)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt().init();
    let dev = DevProvider::builder()
        .user(
            DevUser::new("alice", "Alice Example", "alice@example.com")
                .claim("roles", json!(["admin"]))
                .claim("groups", json!(["ops"])),
        )
        .user(DevUser::new("bob", "Bob Example", "bob@example.com"))
        .client(
            tower_oidc::dev::DevClient::confidential("roles-example", "roles-secret")
                .redirect_uri(format!("{APP}/auth/callback"))
                .post_logout_redirect_uri(format!("{APP}/")),
        )
        .start()
        .await?;
    println!(
        "development provider at {}: users alice (admin, ops) and bob",
        dev.issuer()
    );
    let config = Config::builder(dev.issuer(), "roles-example")
        .client_secret("roles-secret")
        .redirect_url(format!("{APP}/auth/callback"))
        .session_key(SessionKey::generate())
        .build()?;
    let oidc = OidcLayer::discover(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("open {APP}");
    axum::serve(listener, app(oidc)).await?;
    Ok(())
}
