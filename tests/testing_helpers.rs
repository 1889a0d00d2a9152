//! The `testing` feature's helpers, used as an app's own tests would: a minted session cookie
//! opens protected routes of a real layer (built offline, no provider), and the identity layer
//! drives a handler's logged-in and anonymous paths.

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_oidc::testing::{access_token, session_cookie, IdentityBuilder, IdentityLayer};
use tower_oidc::{
    AccessToken, Config, Identity, LoginRequired, OidcLayer, RequireLayer, SessionKey, Source,
};

const ISSUER: &str = "https://id.example.com";

/// A layer built from a discovery document, without any network.
fn layer(key: SessionKey) -> OidcLayer {
    let discovery = json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/authorize"),
        "token_endpoint": format!("{ISSUER}/token"),
        "jwks_uri": format!("{ISSUER}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let config = Config::builder(ISSUER, "my-client")
        .client_secret("s3cret")
        .redirect_url("https://app.example.com/auth/callback")
        .session_key(key)
        .build()
        .expect("config");
    OidcLayer::from_provider_metadata(config, discovery.to_string().as_bytes(), None)
        .expect("layer")
}

/// `/me` (claims, app claims, token), `/admin` (role admin).
fn routes() -> Router {
    Router::new()
        .route(
            "/me",
            get(
                |id: Identity, token: Result<AccessToken, LoginRequired>| async move {
                    Json(json!({
                        "sub": id.subject(),
                        "source": format!("{:?}", id.source()),
                        "roles": id.roles(),
                        "scopes": id.scopes().collect::<Vec<_>>(),
                        "app_sub": id.app_subject(),
                        "token": token.ok().map(|t| t.secret().to_owned()),
                    }))
                },
            ),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).layer(RequireLayer::any_role(["admin"])),
        )
}

async fn call(app: Router, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut req = Request::get(path).header("accept", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = res.status();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_minted_session_cookie_opens_protected_routes_of_its_layer_only() {
    let key = SessionKey::generate();
    let oidc = layer(key.clone());
    let alice = IdentityBuilder::new("alice")
        .issuer(ISSUER)
        .roles(["admin"])
        .scopes(["openid", "orders:read"])
        .app_subject("u-1")
        .access_token(access_token("at-alice", None))
        .build();
    let cookie = session_cookie(&oidc, &alice).expect("cookie");
    let app = routes().layer(oidc.clone());
    let (status, body) = call(app.clone(), "/me", &[("cookie", &cookie)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["source"], "Session");
    assert_eq!(body["roles"], json!(["admin"]));
    assert_eq!(body["scopes"], json!(["openid", "orders:read"]));
    assert_eq!(body["app_sub"], "u-1");
    assert_eq!(body["token"], "at-alice");
    assert_eq!(
        call(app.clone(), "/admin", &[("cookie", &cookie)]).await.0,
        StatusCode::OK
    );
    let bob = IdentityBuilder::new("bob").issuer(ISSUER).build();
    let bob_cookie = session_cookie(&oidc, &bob).expect("cookie");
    assert_eq!(
        call(app.clone(), "/admin", &[("cookie", &bob_cookie)])
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Without the cookie, or at a layer with another key: nobody is logged in.
    assert_eq!(call(app, "/me", &[]).await.0, StatusCode::UNAUTHORIZED);
    let other = routes().layer(layer(SessionKey::generate()));
    assert_eq!(
        call(other, "/me", &[("cookie", &cookie)]).await.0,
        StatusCode::UNAUTHORIZED
    );
    // An identity of a provider the layer does not know gets no cookie.
    let stranger = IdentityBuilder::new("eve").build();
    assert!(session_cookie(&oidc, &stranger).is_err());
}

#[tokio::test]
async fn the_identity_layer_drives_logged_in_and_anonymous_paths() {
    let svc = IdentityBuilder::new("svc")
        .source(Source::Bearer)
        .claim("scope", json!("api"))
        .access_token(access_token("at-svc", None))
        .build();
    let app = routes().layer(IdentityLayer::new(Some(svc)));
    let (status, body) = call(app.clone(), "/me", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["source"], "Bearer");
    assert_eq!(body["token"], "at-svc");
    assert_eq!(call(app, "/admin", &[]).await.0, StatusCode::FORBIDDEN);

    let anonymous = routes().layer(IdentityLayer::new(None));
    for path in ["/me", "/admin"] {
        let (status, _) = call(anonymous.clone(), path, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = call(
            anonymous.clone(),
            path,
            &[("content-type", "application/grpc")],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path}: gRPC answers carry grpc-status"
        );
    }
}
