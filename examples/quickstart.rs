//! Browser login for an axum app with one `.layer()`.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Without `OIDC_ISSUER` it starts the embedded development provider and prints its test
//! users; open <http://127.0.0.1:3000> and log in. Point it at any provider with:
//!
//! | variable             | meaning                                                          |
//! |----------------------|------------------------------------------------------------------|
//! | `OIDC_ISSUER`        | issuer URL (discovery at `<issuer>/.well-known/openid-configuration`) |
//! | `OIDC_CLIENT_ID`     | client id                                                        |
//! | `OIDC_CLIENT_SECRET` | client secret; unset means a public client (PKCE only)           |
//! | `OIDC_SCOPES`        | space-separated scopes, default `openid profile email`           |
//! | `APP_URL`            | public base URL, default `http://127.0.0.1:3000`; the redirect URI is `APP_URL/auth/callback` |
//! | `SESSION_KEY`        | master secret, base64url, at least 32 bytes (random per start when unset) |
//! | `OIDC_RESPONSE_TYPE` | `code`, or `code id_token` (hybrid, answered with form_post)     |
//! | `OIDC_RESPONSE_MODE` | `query` or `form_post` (default: `form_post` for hybrid, else `query`) |
//! | `OIDC_CLIENT_AUTH`   | `client_secret_basic`, `client_secret_post`, `private_key_jwt` or `none` |
//! | `OIDC_PRIVATE_KEY_FILE` | the client's private key (PKCS#8 PEM or JWK) for `private_key_jwt` |
//! | `OIDC_USERINFO`      | `1` fetches userinfo at login, `0` does not                      |
//! | `OIDC_PROFILE`       | `fapi2`: the FAPI 2.0 Security Profile (PAR, DPoP, `private_key_jwt` with `OIDC_PRIVATE_KEY_FILE`, `iss` required) |
//! | `OIDC_DPOP`          | `1` gets DPoP-bound tokens for sessions (RFC 9449), each session with its own key |
//! | `OIDC_PAR`           | `1` pushes authorization requests (RFC 9126), `0` never (default: when discovery requires it) |
//! | `OIDC_AUTH_PARAMS`   | extra authorization parameters, e.g. `prompt=login&ui_locales=nb-NO` |
//! | `OIDC_API_AUDIENCE`  | audience that bearer JWT access tokens must carry (default: the client id) |
//! | `REDIS_URL`          | share revocations (logouts) and coordinate token refreshes with other replicas through this Redis (unset: in this process only) |
//! | `SESSION_STORE`      | `cookie` (default: sessions in sealed cookies) or `redis` (server-side sessions in `REDIS_URL`; the cookie carries only a sealed id) |
//! | `BIND_ADDR`          | listen address, e.g. `0.0.0.0:8001`, so several replicas can share one `APP_URL` (default: host and port of `APP_URL`) |
//! | `OIDC_ROLES_CLAIM`   | one more claim (name or dot-separated path) holding roles        |
//! | `OIDC_END_SESSION_URL` | logout URL template for providers without `end_session_endpoint`: `{client_id}`, `{post_logout_redirect_uri}`, `{id_token_hint}` |
//! | `OIDC_TENANTS`       | for a multi-tenant issuer (discovery `issuer` with `{tenantid}`, Entra `common`/`organizations`): allowed tenant ids, comma-separated, or `*` for any |
//!
//! Routes: `/` (public), `/me` (login required; JSON with every claim), `/roles` (login
//! required; JSON array of the user's roles), `/admin` (requires the role `admin`), and the layer's
//! `/auth/login`, `/auth/callback`, `/auth/logout` and `POST /auth/backchannel-logout`
//! (register `APP_URL/auth/backchannel-logout` as the back-channel logout URI). With
//! `offline_access` in `OIDC_SCOPES` the session refreshes its tokens automatically. `/me` also accepts
//! `Authorization: Bearer <access token>`: JWTs checked against `OIDC_API_AUDIENCE`, opaque
//! tokens through the provider's introspection endpoint.

use std::error::Error;

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use tower_oidc::dev::DevProvider;
use tower_oidc::{
    ClientAuth, ClientKey, Config, Identity, OidcLayer, RedisRevocationStore, RequireLayer,
    ResponseMode, ResponseType, SessionKey,
};
use tracing_subscriber::EnvFilter;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let app_url = var("APP_URL").unwrap_or_else(|| "http://127.0.0.1:3000".into());
    let app_url = url::Url::parse(app_url.trim_end_matches('/'))
        .map_err(|e| format!("APP_URL is not a URL: {e}"))?;
    let bind = match var("BIND_ADDR") {
        Some(bind) => bind,
        None => format!(
            "{}:{}",
            app_url.host_str().ok_or("APP_URL has no host")?,
            app_url
                .port_or_known_default()
                .ok_or("APP_URL has no port")?
        ),
    };
    // Checked before anything starts: a mistake here is a clear error, not a surprise later.
    let server_side = match var("SESSION_STORE").as_deref() {
        None | Some("cookie") => false,
        Some("redis") if var("REDIS_URL").is_some() => true,
        Some("redis") => {
            return Err(
                "SESSION_STORE=redis needs REDIS_URL (the Redis that keeps the sessions)".into(),
            )
        }
        Some(other) => {
            return Err(format!("SESSION_STORE must be `cookie` or `redis`, not `{other}`").into())
        }
    };
    // Keep the development provider alive as long as the app.
    let mut _dev_provider = None;
    let (issuer, client_id, client_secret) = match var("OIDC_ISSUER") {
        Some(issuer) => (
            issuer,
            var("OIDC_CLIENT_ID").ok_or("OIDC_CLIENT_ID is required with OIDC_ISSUER")?,
            var("OIDC_CLIENT_SECRET"),
        ),
        None => {
            let dev = DevProvider::start().await?;
            println!(
                "No OIDC_ISSUER set: started the development provider at {}",
                dev.issuer()
            );
            println!("Test users (pick one on its login page):");
            for user in dev.users() {
                println!("  {} <{}>", user.name, user.email);
            }
            let client = dev.confidential_client().clone();
            let issuer = dev.issuer().to_owned();
            _dev_provider = Some(dev);
            (issuer, client.id, client.secret)
        }
    };
    let session_key = match var("SESSION_KEY") {
        Some(key) => SessionKey::from_base64(&key)?,
        None => {
            tracing::warn!(
                "SESSION_KEY is not set: using a random key, so sessions end when the app stops"
            );
            SessionKey::generate()
        }
    };
    let scopes = var("OIDC_SCOPES").unwrap_or_else(|| "openid profile email".into());

    let redirect_url = format!("{}auth/callback", ensure_slash(app_url.as_str()));
    let mut config = Config::builder(issuer, client_id)
        .redirect_url(redirect_url)
        .scopes(scopes.split_whitespace())
        .session_key(session_key);
    if let Some(secret) = client_secret {
        config = config.client_secret(secret);
    }
    if let Some(auth) = var("OIDC_CLIENT_AUTH") {
        config = config.client_auth(match auth.as_str() {
            "client_secret_basic" => ClientAuth::ClientSecretBasic,
            "client_secret_post" => ClientAuth::ClientSecretPost,
            "private_key_jwt" => ClientAuth::PrivateKeyJwt,
            "none" => ClientAuth::None,
            other => return Err(format!("OIDC_CLIENT_AUTH `{other}` is not supported").into()),
        });
    }
    if let Some(path) = var("OIDC_PRIVATE_KEY_FILE") {
        config = config.client_key(ClientKey::from_file(&path)?);
    }
    if let Some(response_type) = var("OIDC_RESPONSE_TYPE") {
        config = config.response_type(match response_type.as_str() {
            "code" => ResponseType::Code,
            "code id_token" => ResponseType::CodeIdToken,
            other => return Err(format!("OIDC_RESPONSE_TYPE `{other}` is not supported").into()),
        });
    }
    if let Some(mode) = var("OIDC_RESPONSE_MODE") {
        config = config.response_mode(match mode.as_str() {
            "query" => ResponseMode::Query,
            "form_post" => ResponseMode::FormPost,
            other => return Err(format!("OIDC_RESPONSE_MODE `{other}` is not supported").into()),
        });
    }
    if let Some(profile) = var("OIDC_PROFILE") {
        config = match profile.as_str() {
            "fapi2" => config.profile(tower_oidc::Profile::Fapi2Security),
            other => return Err(format!("OIDC_PROFILE `{other}` is not supported").into()),
        };
    }
    if let Some(flag) = var("OIDC_DPOP") {
        config = config.dpop(flag == "1");
    }
    if let Some(flag) = var("OIDC_PAR") {
        config = config.pushed_authorization_requests(flag == "1");
    }
    if let Some(flag) = var("OIDC_USERINFO") {
        config = config.userinfo(flag != "0");
    }
    if let Some(audience) = var("OIDC_API_AUDIENCE") {
        config = config.api_audience(audience);
    }
    if let Some(path) = var("OIDC_ROLES_CLAIM") {
        config = config.roles_claim(path);
    }
    if let Some(template) = var("OIDC_END_SESSION_URL") {
        config = config.end_session_url(template);
    }
    if let Some(tenants) = var("OIDC_TENANTS") {
        config = if tenants.trim() == "*" {
            config.any_tenant()
        } else {
            config.tenants(
                tenants
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            )
        };
    }
    if let Some(params) = var("OIDC_AUTH_PARAMS") {
        for (name, value) in form_urlencoded::parse(params.as_bytes()) {
            config = config.auth_param(name, value);
        }
    }
    if let Some(redis_url) = var("REDIS_URL") {
        let redis = RedisRevocationStore::connect(&redis_url).await?;
        if server_side {
            config = config.session_store(redis.session_store());
            println!("Sessions are kept in Redis (server-side)");
        }
        config = config
            .refresh_coordinator(redis.refresh_coordinator())
            .revocation_store(redis);
        println!("Revocations are shared through Redis");
    }
    let oidc = OidcLayer::discover(config.build()?).await?;

    let app = Router::new()
        .route("/admin", get(|| async { "admin area" }))
        .route_layer(RequireLayer::any_role(["admin"]))
        .route("/", get(home))
        .route("/me", get(me))
        .route("/roles", get(roles))
        .layer(oidc);
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("Listening on {app_url} (bound to {bind})");
    axum::serve(listener, app).await?;
    Ok(())
}

fn ensure_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

/// Public page: a login link, or the user's name and a logout button.
async fn home(id: Option<Identity>) -> Html<String> {
    let body = match id {
        Some(id) => format!(
            "<p>Logged in as <strong>{}</strong>.</p>\
             <p><a href=\"/me\">Your claims</a></p>\
             <form method=\"post\" action=\"/auth/logout\"><button>Log out</button></form>",
            escape(id.name().unwrap_or(id.subject()))
        ),
        None => "<p>You are not logged in.</p>\
                 <p><a href=\"/auth/login?return_to=/me\">Log in</a></p>"
            .to_owned(),
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>tower-oidc quickstart</title></head><body><h1>tower-oidc quickstart</h1>\
         {body}</body></html>"
    ))
}

/// Login required: every claim of the identity as JSON.
async fn roles(id: Identity) -> Json<Vec<String>> {
    Json(id.roles().to_vec())
}

async fn me(id: Identity) -> Json<serde_json::Value> {
    Json(serde_json::Value::Object(id.claims().clone()))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
