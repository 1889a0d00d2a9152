//! Helpers for testing an app's handlers without a provider (feature `testing`): identities
//! with any claims, roles, scopes and source ([`IdentityBuilder`]), access tokens
//! ([`access_token`]), valid sealed session cookies for a layer ([`session_cookie`]), and a
//! layer that puts a given identity, or none, into requests ([`IdentityLayer`]). For users
//! with roles and groups at a real (in-process) provider, see
//! `dev::DevUser::claim` (feature `dev-provider`).
//!
//! # Example: testing an axum handler
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_oidc::testing::{IdentityBuilder, IdentityLayer};
//! use tower_oidc::{Forbidden, Identity};
//!
//! async fn admin(id: Identity) -> Result<String, Forbidden> {
//!     id.require_any_role(["admin"])?;
//!     Ok(format!("hello admin {}", id.subject()))
//! }
//!
//! fn app() -> Router {
//!     Router::new().route("/admin", get(admin))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let get = || Request::get("/admin").header("accept", "application/json").body(Body::empty()).unwrap();
//!
//! // logged in, with the role
//! let alice = IdentityBuilder::new("alice").roles(["admin"]).build();
//! let res = app().layer(IdentityLayer::new(Some(alice))).oneshot(get()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // logged in, without it
//! let bob = IdentityBuilder::new("bob").build();
//! let res = app().layer(IdentityLayer::new(Some(bob))).oneshot(get()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//!
//! // nobody logged in
//! let res = app().layer(IdentityLayer::new(None)).oneshot(get()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

use std::fmt;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use http::Request;
use serde_json::{Map, Value};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{AuthError, AuthErrorKind};
use crate::hook::AppData;
use crate::identity::{AccessToken, Identity, Source, WithoutLoginRoute};
use crate::layer::OidcLayer;
use crate::session::{new_session_id, Session};

/// The issuer of identities built without one.
pub const TEST_ISSUER: &str = "https://id.example.test";

/// Builds an [`Identity`] with any claims, roles, groups, scopes, source and access token.
///
/// # Example
///
/// ```
/// use tower_oidc::testing::{access_token, IdentityBuilder};
/// use tower_oidc::Source;
///
/// let id = IdentityBuilder::new("svc-1")
///     .issuer("https://id.example.com")
///     .scopes(["orders:read"])
///     .groups(["ops"])
///     .claim("email", "svc@example.com".into())
///     .source(Source::Bearer)
///     .access_token(access_token("at-1", None))
///     .build();
/// assert!(id.has_scope("orders:read") && id.in_group("ops"));
/// assert_eq!(id.email(), Some("svc@example.com"));
/// assert_eq!(id.source(), Source::Bearer);
/// ```
#[derive(Debug, Clone)]
pub struct IdentityBuilder {
    subject: String,
    issuer: String,
    claims: Map<String, Value>,
    source: Source,
    access_token: Option<AccessToken>,
    app: AppData,
}

impl IdentityBuilder {
    /// An identity for `subject`, issued by [`TEST_ISSUER`], from a session, without claims.
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            issuer: TEST_ISSUER.to_owned(),
            claims: Map::new(),
            source: Source::Session,
            access_token: None,
            app: AppData::default(),
        }
    }

    /// The issuer (for [`session_cookie`], the layer's provider's).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// A claim (`sub` and `iss` are set by [`new`](Self::new) and [`issuer`](Self::issuer)).
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    /// The `roles` claim (see [`Identity::roles`]).
    pub fn roles<I, S>(self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.list_claim("roles", roles)
    }

    /// The `groups` claim (see [`Identity::in_group`]).
    pub fn groups<I, S>(self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.list_claim("groups", groups)
    }

    /// The granted scopes (the `scope` claim).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.claims
            .insert("scope".into(), Value::String(scopes.join(" ")));
        self
    }

    /// How the caller authenticated (default [`Source::Session`]).
    pub fn source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// The caller's access token (see [`access_token`]).
    pub fn access_token(mut self, token: AccessToken) -> Self {
        self.access_token = Some(token);
        self
    }

    /// The app's subject, as a post-login hook sets it ([`Identity::app_subject`]).
    pub fn app_subject(mut self, subject: impl Into<String>) -> Self {
        self.app.sub = Some(subject.into());
        self
    }

    /// An app claim, as a post-login hook sets it ([`Identity::app_claims`]).
    pub fn app_claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.app.claims.insert(name.into(), value);
        self
    }

    fn list_claim<I, S>(mut self, name: &str, items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let items = items.into_iter().map(|s| Value::String(s.into())).collect();
        self.claims.insert(name.into(), Value::Array(items));
        self
    }

    /// The identity.
    pub fn build(self) -> Identity {
        let mut id = Identity::new(self.subject, self.issuer, self.claims)
            .with_source(self.source)
            .with_app(self.app.encode().into());
        if let Some(token) = self.access_token {
            id = id.with_access_token(token);
        }
        id
    }
}

/// An [`AccessToken`] with this secret, expiring at `expires_at` (`None`: unknown).
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use tower_oidc::testing::access_token;
///
/// let at = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
/// let token = access_token("at-1", Some(at));
/// assert_eq!(token.secret(), "at-1");
/// assert_eq!(token.expires_at(), Some(at));
/// ```
pub fn access_token(secret: impl Into<String>, expires_at: Option<SystemTime>) -> AccessToken {
    let expires_at = expires_at
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs().max(1));
    AccessToken::new(secret.into().into_bytes(), expires_at)
}

/// A `Cookie` header value holding a valid, sealed session of `identity` for `layer`, as a
/// login would have made it: requests carrying it reach protected routes without a provider
/// (the session lives the layer's session lifetime from now, by the layer's clock). The
/// identity's issuer must be one of the layer's providers; its access token, when it has
/// one, is kept in the session (without a refresh token).
///
/// # Example
///
/// ```
/// use tower_oidc::testing::{session_cookie, IdentityBuilder};
/// use tower_oidc::{Config, OidcLayer, SessionKey};
///
/// let discovery = serde_json::json!({
///     "issuer": "https://id.example.com",
///     "authorization_endpoint": "https://id.example.com/authorize",
///     "token_endpoint": "https://id.example.com/token",
///     "jwks_uri": "https://id.example.com/jwks",
///     "response_types_supported": ["code"],
///     "subject_types_supported": ["public"],
///     "id_token_signing_alg_values_supported": ["RS256"],
/// });
/// let config = Config::builder("https://id.example.com", "my-client")
///     .client_secret("s3cret")
///     .redirect_url("https://app.example.com/auth/callback")
///     .session_key(SessionKey::generate())
///     .build()?;
/// let layer = OidcLayer::from_provider_metadata(config, discovery.to_string().as_bytes(), None)?;
/// let alice = IdentityBuilder::new("alice").issuer("https://id.example.com").build();
/// let cookie = session_cookie(&layer, &alice)?;
/// assert!(cookie.starts_with("__Host-oidc_session="));
/// // http::Request::get("/me").header("cookie", cookie) ...
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`AuthError`] when the issuer is not one of the layer's providers (a tenant of a
/// multi-tenant provider counts), the layer is not discovered yet, it keeps its sessions
/// server-side (`session_store`), or the session does not fit into cookies.
pub fn session_cookie(layer: &OidcLayer, identity: &Identity) -> Result<String, AuthError> {
    let shared = layer.discovered().ok_or_else(|| {
        AuthError::new(
            AuthErrorKind::ProviderUnavailable,
            "the layer's provider is not discovered yet",
        )
    })?;
    let sessions = &shared.sessions;
    if sessions.server.is_some() {
        // The cookie would carry a session id, and the session would have to be in the store.
        return Err(AuthError::new(
            AuthErrorKind::Internal,
            "session_cookie mints cookie sessions; this layer keeps its sessions server-side",
        ));
    }
    let now = sessions.now();
    let (claims, scope, app) = identity.stored_parts();
    let access_token = identity.access_token();
    let session = Session {
        created_at: now,
        expires_at: now.saturating_add(sessions.session_lifetime.as_secs()),
        access_expires_at: access_token
            .and_then(AccessToken::expires_at)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs()),
        access_issued_at: now,
        subject: identity.subject().to_owned(),
        issuer: identity.issuer().to_owned(),
        claims: claims.to_vec(),
        id_token: None,
        access_token: access_token.map(|t| t.secret().to_owned()),
        refresh_token: None,
        scope: scope.to_owned(),
        last_seen: now,
        sid: None,
        token_roles: Vec::new(),
        app: app.to_vec(),
        dpop_key: Default::default(),
    };
    let cookies = sessions.session_cookies_with_id(&[], &session, &new_session_id())?;
    Ok(cookies
        .iter()
        .map(|c| c.split(';').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("; "))
}

/// Puts a given [`Identity`], or none, into every request, in place of
/// [`OidcLayer`]: a handler's logged-in and anonymous paths can be tested
/// without a provider. Without an identity, the [`Identity`] extractor and
/// [`RequireLayer`](crate::RequireLayer) answer "login required" by caller kind (`401`
/// here, as there is no login route to redirect to).
///
/// # Example
///
/// ```
/// use axum::{routing::get, Router};
/// use tower_oidc::testing::{IdentityBuilder, IdentityLayer};
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(IdentityLayer::new(Some(IdentityBuilder::new("alice").build())));
/// ```
#[derive(Debug, Clone)]
pub struct IdentityLayer {
    identity: Option<Identity>,
}

impl IdentityLayer {
    /// Puts `identity` (or, with `None`, nobody) into every request.
    pub fn new(identity: Option<Identity>) -> Self {
        Self { identity }
    }
}

impl<S> Layer<S> for IdentityLayer {
    type Service = IdentityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdentityService {
            inner,
            identity: self.identity.clone(),
        }
    }
}

/// The service of [`IdentityLayer`].
///
/// # Example
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_oidc::testing::IdentityLayer;
///
/// let svc = ServiceBuilder::new()
///     .layer(IdentityLayer::new(None))
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// ```
#[derive(Clone)]
pub struct IdentityService<S> {
    inner: S,
    identity: Option<Identity>,
}

impl<S: fmt::Debug> fmt::Debug for IdentityService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityService")
            .field("inner", &self.inner)
            .field("identity", &self.identity)
            .finish()
    }
}

impl<S, B> Service<Request<B>> for IdentityService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let ext = req.extensions_mut();
        ext.insert(WithoutLoginRoute);
        match &self.identity {
            Some(id) => {
                ext.insert(id.clone());
            }
            None => {
                ext.remove::<Identity>();
            }
        }
        self.inner.call(req)
    }
}
