//! OpenID Connect login for any Tower-based server, in one layer.
//!
//! [`OidcLayer`] wraps any `Service<http::Request<B>>` (an axum `Router`, a tonic server, a
//! bare hyper service). It serves the login, callback and logout routes itself, runs the
//! authorization code flow with PKCE for confidential and public clients, validates ID tokens
//! fully, keeps the session in encrypted cookies (no database), and puts a validated
//! [`Identity`] into the request extensions.
//!
//! # Example
//!
//! ```no_run
//! use axum::{routing::get, Json, Router};
//! use tower_oidc::{Config, Identity, OidcLayer, SessionKey};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let oidc = OidcLayer::discover(
//!     Config::builder("https://id.example.com", "my-client")
//!         .client_secret(std::env::var("OIDC_CLIENT_SECRET")?)
//!         .redirect_url("https://app.example.com/auth/callback")
//!         .scopes(["openid", "profile", "email"])
//!         .session_key(SessionKey::from_base64(&std::env::var("SESSION_KEY")?)?)
//!         .build()?,
//! )
//! .await?;
//!
//! let app: Router = Router::new()
//!     // login required: a browser is sent to the provider, a script gets 401
//!     .route("/me", get(|id: Identity| async move { Json(id.claims().clone()) }))
//!     // public page that knows who is logged in
//!     .route("/", get(|id: Option<Identity>| async move {
//!         id.map_or("hello stranger".to_owned(), |id| format!("hello {}", id.subject()))
//!     }))
//!     .layer(oidc);
//! # Ok(()) }
//! ```
//!
//! # Routes
//!
//! With the default prefix `/auth`: `GET /auth/login?return_to=/path` starts a login (only
//! same-origin relative paths are accepted as `return_to`), `GET /auth/callback` completes it,
//! `GET|POST /auth/logout` clears the session and ends it at the provider when it supports
//! RP-Initiated Logout. The redirect URL registered at the provider must be
//! `<app>/auth/callback`.
//!
//! # Answers by caller kind
//!
//! When login is required (the [`Identity`] extractor, or
//! [`ConfigBuilder::require_login`]) and nobody is logged in:
//!
//! | caller | detected by | answer |
//! |---|---|---|
//! | gRPC / gRPC-Web | `content-type: application/grpc*` | HTTP 200, `grpc-status: 16` |
//! | script or program | `Sec-Fetch-Mode` not `navigate`, `X-Requested-With`, or `Accept` without `text/html` | `401`, `WWW-Authenticate: Bearer`, JSON body |
//! | browser navigation | otherwise | `302` to the provider, back to the same path and query after login |
//!
//! Every rejection is a response (the service's error type is the inner service's), with an
//! [`AuthError`] in its extensions.
//!
//! # Sessions
//!
//! The session is sealed with AES-256-GCM under keys derived (HKDF-SHA256) from the
//! [`SessionKey`]; a key id byte allows rotation. Large sessions are split into cookies of under
//! 4000 bytes. A tampered, truncated, foreign or expired cookie is no session. The layer's
//! cookies are removed from the request before the inner service sees it. Tokens are
//! refreshed automatically when the provider gave a refresh token, and back-channel logouts
//! (`POST /auth/backchannel-logout`) end sessions through a [`RevocationStore`].
//!
//! # Bearer tokens
//!
//! Requests with `Authorization: Bearer` are authenticated by their access token instead:
//! JWTs are verified against the provider's keys (and cached by hash), opaque tokens are
//! introspected. [`RequireLayer`] requires scopes or claims. Bearer callers never get a
//! redirect.
//!
//! # Several providers
//!
//! [`OidcLayer::discover_many`] serves several providers (tenants) in one layer; a login picks
//! one with `/auth/login?provider=<name>`. Each provider has its own redirect URL
//! (`/auth/callback/<name>`), and an answer at another provider's redirect URL than the one the
//! login went to is refused (the mix-up defence of RFC 9700 §4.4). Users are told apart by
//! `(iss, sub)`.
//!
//! # Several replicas
//!
//! Replicas that share the [`SessionKey`] serve the same users. What a fleet must also share
//! goes through traits: a [`RevocationStore`] (logouts reach every replica), a
//! [`RefreshCoordinator`] (one token-endpoint call per refresh for the fleet) and, opt-in, a
//! [`SessionStore`] (server-side sessions: the cookie carries only a sealed id). The `redis`
//! feature implements all three over one Redis connection per replica: `RedisRevocationStore`,
//! `RedisRefreshCoordinator`, `RedisSessionStore`.
//!
//! # Development provider
//!
//! The `dev-provider` feature adds [`dev::DevProvider`], an in-process OpenID provider for local
//! development and tests (with fault injection).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bearer;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals;
mod body;
mod cache;
mod client_auth;
mod config;
mod dpop;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod flow;
mod future;
mod hook;
mod identity;
mod introspection_limits;
mod issuer;
mod jwt;
mod layer;
mod metrics;
mod provider;
#[cfg(feature = "redis")]
mod redis_link;
mod refresh_coordinator;
mod require;
mod response;
mod revocation;
mod service;
mod session;
mod shared;
mod startup;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

#[cfg(feature = "dev-provider")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-provider")))]
pub mod dev;

pub use body::ResponseBody;
pub use client_auth::{AssertionAudience, ClientAuth, ClientKey};
pub use config::{Config, ConfigBuilder, Profile, ResponseMode, ResponseType};
pub use error::{AuthError, AuthErrorKind, ConfigError};
#[cfg(feature = "axum")]
pub use extract::{Forbidden, LoginRequired};
pub use future::ResponseFuture;
pub use hook::{Login, LoginRejected};
pub use identity::{AccessToken, Identity, Source};
pub use layer::OidcLayer;
pub use metrics::Metrics;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use refresh_coordinator::RedisRefreshCoordinator;
pub use refresh_coordinator::{RefreshCoordinator, RefreshOutcome, RefreshTurn};
pub use require::{Require, RequireLayer};
pub use revocation::{MemoryRevocationStore, Revocation, RevocationStore};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use revocation::{RedisRevocationStore, RedisRevocationStoreBuilder};
pub use service::OidcService;
pub use session::cookie::SessionKey;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use session::store::RedisSessionStore;
pub use session::store::{BackendFuture, SessionStore, StoreError};
