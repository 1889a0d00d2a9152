//! A backend for frontend (BFF) for a single-page app: the SPA calls its own backend with the
//! session cookie and an anti-CSRF header; the backend calls another API with the user's
//! access token.
//!
//! ```text
//! cargo run --example bff
//! ```
//!
//! It starts the embedded development provider, the orders API on port 3003 and the BFF on
//! <http://127.0.0.1:3002>. The code is in `examples/bff/mod.rs`.

#[path = "bff/mod.rs"]
mod bff;

use std::error::Error;

use tower_oidc::dev::{DevClient, DevProvider};
use tower_oidc::{Config, OidcLayer, SessionKey};

const APP: &str = "http://127.0.0.1:3002";
const API: &str = "127.0.0.1:3003";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt().init();
    let dev = DevProvider::builder()
        .client(
            DevClient::confidential("bff-example", "bff-secret")
                .redirect_uri(format!("{APP}/auth/callback"))
                .post_logout_redirect_uri(format!("{APP}/")),
        )
        .start()
        .await?;
    let config = |redirect: String| {
        Config::builder(dev.issuer(), "bff-example")
            .client_secret("bff-secret")
            .redirect_url(redirect)
            .session_key(SessionKey::generate())
    };
    // The API accepts the BFF's access tokens (audience: the client id).
    let api_layer =
        OidcLayer::discover(config(format!("http://{API}/auth/callback")).build()?).await?;
    let api = tokio::net::TcpListener::bind(API).await?;
    tokio::spawn(async move { axum::serve(api, bff::orders_api(api_layer)).await });

    let bff_layer = OidcLayer::discover(
        config(format!("{APP}/auth/callback"))
            .csrf_header(bff::CSRF_HEADER)
            .build()?,
    )
    .await?;
    let backend = bff::Backend {
        orders_url: format!("http://{API}/orders"),
        http: reqwest::Client::new(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    println!("open {APP} (provider at {})", dev.issuer());
    axum::serve(listener, bff::bff(bff_layer, backend)).await?;
    Ok(())
}
