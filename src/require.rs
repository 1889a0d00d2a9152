//! [`RequireLayer`]: require scopes, roles, groups or a claim predicate, for a whole app or
//! per route.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::error::{AuthError, AuthErrorKind};
use crate::flow::login::Handle;
use crate::future::ResponseFuture;
use crate::identity::Identity;
use crate::response::{self, caller_kind};

type Predicate = Arc<dyn Fn(&Identity) -> bool + Send + Sync>;

/// Requires a logged-in caller ([`Identity`]) that is allowed by a rule: scopes, roles,
/// groups, or a predicate. Put it inside [`OidcLayer`](crate::OidcLayer) (which sets the
/// identity), for a whole app or per route (`route_layer`).
///
/// The two refusals stay apart, for session and bearer callers alike:
///
/// | caller | nobody logged in | logged in, not allowed |
/// |---|---|---|
/// | browser navigation | `302` to login | `403` (JSON) |
/// | script or program | `401`, `WWW-Authenticate: Bearer` | `403`, `WWW-Authenticate: Bearer error="insufficient_scope"` |
/// | gRPC | `grpc-status: 16` (UNAUTHENTICATED) | `grpc-status: 7` (PERMISSION_DENIED) |
///
/// Both answers carry an [`AuthError`] in their extensions
/// ([`AuthErrorKind::LoginRequired`] or [`AuthErrorKind::InsufficientScope`]).
///
/// # Example
///
/// ```
/// use axum::{routing::{get, post}, Router};
/// use tower_oidc::RequireLayer;
///
/// let app: Router = Router::new()
///     // one route: `MethodRouter::layer`
///     .route(
///         "/reports",
///         get(|| async { "reports" }).layer(RequireLayer::scopes(["reports:read"])),
///     )
///     .route(
///         "/admin",
///         post(|| async { "done" }).layer(RequireLayer::predicate("verified email", |id| {
///             id.claim("email_verified") == Some(&serde_json::Value::Bool(true))
///         })),
///     );
/// // ... .layer(oidc_layer)
/// ```
///
/// `Router::route_layer` wraps every route added before it, so stacking rules with it makes
/// each earlier route need all of them; give each route its own rule as above, or nest a
/// router per rule.
#[derive(Clone)]
pub struct RequireLayer {
    /// Scopes named in the `insufficient_scope` challenge.
    challenge_scopes: Arc<[String]>,
    predicate: Predicate,
    what: Arc<str>,
}

impl fmt::Debug for RequireLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireLayer")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

fn collect<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

impl RequireLayer {
    /// Requires every one of `scopes` (see [`Identity::has_scope`]).
    pub fn scopes<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = collect(scopes);
        let what = format!("requires scope {}", scopes.join(" "));
        let needed = scopes.clone();
        Self::predicate(what, move |id| needed.iter().all(|s| id.has_scope(s)))
            .with_challenge(scopes)
    }

    /// Requires at least one of `scopes`. An empty list admits nobody.
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_oidc::RequireLayer;
    ///
    /// let app: Router = Router::new()
    ///     .route("/orders", get(|| async { "orders" }))
    ///     .route_layer(RequireLayer::any_scope(["orders:read", "orders:admin"]));
    /// // ... .layer(oidc_layer)
    /// ```
    pub fn any_scope<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = collect(scopes);
        let what = format!("requires one of the scopes {}", scopes.join(" "));
        let wanted = scopes.clone();
        Self::predicate(what, move |id| wanted.iter().any(|s| id.has_scope(s)))
            .with_challenge(scopes)
    }

    /// Requires at least one of `roles` (see [`Identity::roles`]). An empty list admits
    /// nobody.
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_oidc::RequireLayer;
    ///
    /// let app: Router = Router::new()
    ///     .route("/admin", get(|| async { "admin area" }))
    ///     .route_layer(RequireLayer::any_role(["admin", "owner"]));
    /// // ... .layer(oidc_layer)
    /// ```
    pub fn any_role<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let roles = collect(roles);
        let what = format!("requires one of the roles {}", roles.join(" "));
        Self::predicate(what, move |id| roles.iter().any(|r| id.has_role(r)))
    }

    /// Requires every one of `roles` (see [`Identity::roles`]).
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{routing::post, Router};
    /// use tower_oidc::RequireLayer;
    ///
    /// let app: Router = Router::new()
    ///     .route("/payouts", post(|| async { "sent" }))
    ///     .route_layer(RequireLayer::all_roles(["finance", "approver"]));
    /// // ... .layer(oidc_layer)
    /// ```
    pub fn all_roles<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let roles = collect(roles);
        let what = format!("requires all of the roles {}", roles.join(" "));
        Self::predicate(what, move |id| roles.iter().all(|r| id.has_role(r)))
    }

    /// Requires membership of `group` (see [`Identity::in_group`]).
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_oidc::RequireLayer;
    ///
    /// let app: Router = Router::new()
    ///     .route("/ops", get(|| async { "dashboards" }))
    ///     .route_layer(RequireLayer::group("ops"));
    /// // ... .layer(oidc_layer)
    /// ```
    pub fn group(group: impl Into<String>) -> Self {
        let group = group.into();
        let what = format!("requires the group {group}");
        Self::predicate(what, move |id| id.in_group(&group))
    }

    /// Requires `predicate` to hold; `what` describes it for logs.
    pub fn predicate(
        what: impl Into<String>,
        predicate: impl Fn(&Identity) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            challenge_scopes: Arc::from(Vec::new()),
            predicate: Arc::new(predicate),
            what: what.into().into(),
        }
    }

    fn with_challenge(mut self, scopes: Vec<String>) -> Self {
        self.challenge_scopes = scopes.into();
        self
    }

    /// Whether `id` is allowed (for the extractor-level checks).
    pub(crate) fn allows(&self, id: &Identity) -> bool {
        (self.predicate)(id)
    }

    /// The description, for logs.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// The scopes the `insufficient_scope` challenge names.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn challenge_scopes(&self) -> &[String] {
        &self.challenge_scopes
    }
}

impl<S> Layer<S> for RequireLayer {
    type Service = Require<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequireLayer`].
///
/// # Example
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_oidc::RequireLayer;
///
/// let svc = ServiceBuilder::new()
///     .layer(RequireLayer::scopes(["api:read"]))
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// ```
#[derive(Debug, Clone)]
pub struct Require<S> {
    inner: S,
    layer: RequireLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Require<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let headers = req.headers();
        let Some(id) = req.extensions().get::<Identity>() else {
            let answer = match req.extensions().get::<Handle>() {
                Some(handle) => handle.login_required(req.uri(), req.extensions(), headers),
                None => response::reject(
                    caller_kind(headers),
                    AuthError::new(AuthErrorKind::LoginRequired, "login required"),
                    headers,
                ),
            };
            return ResponseFuture::ready(answer);
        };
        if self.layer.allows(id) {
            return ResponseFuture::inner(self.inner.call(req), Vec::new());
        }
        tracing::debug!(subject = %id.subject(), policy = %self.layer.what, "access refused");
        ResponseFuture::ready(response::forbidden(headers, &self.layer.challenge_scopes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// Status, `grpc-status` and `WWW-Authenticate` of a request through `layer`.
    async fn answer(
        layer: &RequireLayer,
        id: Option<Identity>,
        grpc: bool,
    ) -> (u16, String, String) {
        let svc = layer.layer(tower::service_fn(|_req: Request<String>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::new()))
        }));
        let mut req = Request::get("/admin").header("accept", "application/json");
        if grpc {
            req = req.header("content-type", "application/grpc");
        }
        let mut req = req.body(String::new()).unwrap();
        if let Some(id) = id {
            req.extensions_mut().insert(id);
        }
        let res = svc.oneshot(req).await.unwrap();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (grpc_status, challenge) = (header("grpc-status"), header("www-authenticate"));
        if res.status() == 403 {
            assert_eq!(
                res.extensions().get::<AuthError>().map(AuthError::kind),
                Some(AuthErrorKind::InsufficientScope)
            );
        }
        (res.status().as_u16(), grpc_status, challenge)
    }

    async fn status(layer: &RequireLayer, id: Option<Identity>, grpc: bool) -> (u16, String) {
        let (status, grpc_status, _) = answer(layer, id, grpc).await;
        (status, grpc_status)
    }

    fn with(claims: serde_json::Value) -> Identity {
        Identity::new(
            "alice",
            "https://id.example.com",
            claims.as_object().unwrap().clone(),
        )
    }

    fn with_roles(roles: serde_json::Value) -> Identity {
        with(serde_json::json!({ "roles": roles }))
    }

    /// Nobody logged in is "login required" (401, gRPC 16), never "not allowed".
    async fn refuses_anonymous_as_unauthenticated(layer: &RequireLayer) {
        assert_eq!(status(layer, None, false).await.0, 401);
        assert_eq!(status(layer, None, true).await, (200, "16".into()));
    }

    #[tokio::test]
    async fn any_role_admits_a_holder_and_refuses_the_others() {
        let layer = RequireLayer::any_role(["admin", "owner"]);
        let admin = with_roles(serde_json::json!(["user", "owner"]));
        assert_eq!(status(&layer, Some(admin), false).await.0, 200);
        let user = with_roles(serde_json::json!(["user"]));
        assert_eq!(status(&layer, Some(user.clone()), false).await.0, 403);
        assert_eq!(status(&layer, Some(user), true).await, (200, "7".into()));
        refuses_anonymous_as_unauthenticated(&layer).await;
        let nobody = RequireLayer::any_role(Vec::<String>::new());
        let admin = with_roles(serde_json::json!(["admin"]));
        assert_eq!(status(&nobody, Some(admin), false).await.0, 403);
    }

    #[tokio::test]
    async fn all_roles_needs_every_one_of_them() {
        let layer = RequireLayer::all_roles(["finance", "approver"]);
        let both = with_roles(serde_json::json!(["approver", "finance", "user"]));
        assert_eq!(status(&layer, Some(both), false).await.0, 200);
        // Roles from Keycloak's realm roles count as well.
        let mixed = with(serde_json::json!({
            "roles": ["finance"], "realm_access": { "roles": ["approver"] },
        }));
        assert_eq!(status(&layer, Some(mixed), false).await.0, 200);
        let one = with_roles(serde_json::json!(["finance"]));
        assert_eq!(status(&layer, Some(one.clone()), false).await.0, 403);
        assert_eq!(status(&layer, Some(one), true).await, (200, "7".into()));
        refuses_anonymous_as_unauthenticated(&layer).await;
    }

    #[tokio::test]
    async fn group_admits_members_only() {
        let layer = RequireLayer::group("ops");
        let member = with(serde_json::json!({ "groups": ["staff", "ops"] }));
        assert_eq!(status(&layer, Some(member), false).await.0, 200);
        let cognito = with(serde_json::json!({ "cognito:groups": "ops" }));
        assert_eq!(status(&layer, Some(cognito), false).await.0, 200);
        // A role of the same name is no group membership.
        let role = with_roles(serde_json::json!(["ops"]));
        assert_eq!(status(&layer, Some(role.clone()), false).await.0, 403);
        assert_eq!(status(&layer, Some(role), true).await, (200, "7".into()));
        let other = with(serde_json::json!({ "groups": ["/ops", "opsx"] }));
        assert_eq!(status(&layer, Some(other), false).await.0, 403);
        refuses_anonymous_as_unauthenticated(&layer).await;
    }

    #[tokio::test]
    async fn any_scope_admits_one_of_them_and_names_them_in_the_challenge() {
        let layer = RequireLayer::any_scope(["orders:read", "orders:admin"]);
        let reader = with(serde_json::json!({ "scope": "openid orders:read" }));
        assert_eq!(status(&layer, Some(reader), false).await.0, 200);
        let admin = with(serde_json::json!({ "scp": ["orders:admin"] }));
        assert_eq!(status(&layer, Some(admin), false).await.0, 200);
        let other = with(serde_json::json!({ "scope": "openid orders:write" }));
        let (code, _, challenge) = answer(&layer, Some(other.clone()), false).await;
        assert_eq!(code, 403);
        assert_eq!(
            challenge,
            "Bearer error=\"insufficient_scope\", scope=\"orders:read orders:admin\""
        );
        assert_eq!(status(&layer, Some(other), true).await, (200, "7".into()));
        refuses_anonymous_as_unauthenticated(&layer).await;
    }

    #[tokio::test]
    async fn scopes_needs_every_one_of_them() {
        let layer = RequireLayer::scopes(["a", "b"]);
        let both = with(serde_json::json!({ "scope": "b a" }));
        assert_eq!(status(&layer, Some(both), false).await.0, 200);
        let one = with(serde_json::json!({ "scope": "a" }));
        let (code, _, challenge) = answer(&layer, Some(one), false).await;
        assert_eq!(code, 403);
        assert!(challenge.contains("scope=\"a b\""), "{challenge}");
        refuses_anonymous_as_unauthenticated(&layer).await;
    }
}
