//! [`RequireLayer`]: require scopes or a claim predicate, for a whole app or per route.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::error::{AuthError, AuthErrorKind};
use crate::flow::login::Handle;
use crate::future::ResponseFuture;
use crate::identity::Identity;
use crate::response::{self, caller_kind, CallerKind};

type Predicate = Arc<dyn Fn(&Identity) -> bool + Send + Sync>;

/// Requires an [`Identity`] with the given scopes, or one that satisfies a predicate. Put it
/// inside [`OidcLayer`](crate::OidcLayer) (which sets the identity).
///
/// Nobody logged in: answered like a missing login (redirect for a browser, `401` or gRPC 16
/// otherwise). Logged in but not allowed: `403` with
/// `WWW-Authenticate: Bearer error="insufficient_scope"` (gRPC status 7).
///
/// # Example
///
/// ```
/// use axum::{routing::{get, post}, Router};
/// use tower_oidc::RequireLayer;
///
/// let app: Router = Router::new()
///     .route("/reports", get(|| async { "reports" }))
///     .route_layer(RequireLayer::scopes(["reports:read"]))
///     .route("/admin", post(|| async { "done" }))
///     .route_layer(RequireLayer::predicate("admin group", |id| {
///         id.claim("groups")
///             .and_then(|g| g.as_array())
///             .is_some_and(|g| g.iter().any(|g| g == "admin"))
///     }));
/// // ... .layer(oidc_layer)
/// ```
#[derive(Clone)]
pub struct RequireLayer {
    scopes: Arc<[String]>,
    predicate: Option<Predicate>,
    what: Arc<str>,
}

impl fmt::Debug for RequireLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireLayer")
            .field("scopes", &self.scopes)
            .field("predicate", &self.predicate.as_ref().map(|_| &self.what))
            .finish()
    }
}

impl RequireLayer {
    /// Requires every one of `scopes`.
    pub fn scopes<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Arc<[String]> = scopes.into_iter().map(Into::into).collect();
        let what = format!("requires scope {}", scopes.join(" "));
        Self {
            scopes,
            predicate: None,
            what: what.into(),
        }
    }

    /// Requires at least one of `roles` (see [`Identity::roles`]).
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
        let roles: Vec<String> = roles.into_iter().map(Into::into).collect();
        let what = format!("requires one of the roles {}", roles.join(" "));
        Self::predicate(what, move |id| roles.iter().any(|r| id.has_role(r)))
    }

    /// Requires `predicate` to hold; `what` describes it for logs.
    pub fn predicate(
        what: impl Into<String>,
        predicate: impl Fn(&Identity) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            scopes: Arc::from(Vec::new()),
            predicate: Some(Arc::new(predicate)),
            what: what.into().into(),
        }
    }

    fn allows(&self, id: &Identity) -> bool {
        self.scopes.iter().all(|s| id.has_scope(s)) && self.predicate.as_ref().is_none_or(|p| p(id))
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
                Some(handle) => handle.login_required(req.uri(), headers),
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
        let caller = match caller_kind(headers) {
            CallerKind::Grpc => CallerKind::Grpc,
            _ => CallerKind::Api,
        };
        let mut answer = response::reject(
            caller,
            AuthError::new(AuthErrorKind::InsufficientScope, "insufficient scope"),
            headers,
        );
        if caller == CallerKind::Api && !self.layer.scopes.is_empty() {
            let challenge = format!(
                "Bearer error=\"insufficient_scope\", scope=\"{}\"",
                self.layer.scopes.join(" ")
            );
            if let Ok(v) = HeaderValue::try_from(challenge) {
                answer.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
        }
        ResponseFuture::ready(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn status(layer: &RequireLayer, id: Option<Identity>, grpc: bool) -> (u16, String) {
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
        let grpc_status = res
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (res.status().as_u16(), grpc_status)
    }

    fn with_roles(roles: serde_json::Value) -> Identity {
        let claims = serde_json::json!({ "roles": roles });
        Identity::new(
            "alice",
            "https://id.example.com",
            claims.as_object().unwrap().clone(),
        )
    }

    #[tokio::test]
    async fn any_role_admits_a_holder_and_refuses_the_others() {
        let layer = RequireLayer::any_role(["admin", "owner"]);
        let admin = with_roles(serde_json::json!(["user", "owner"]));
        assert_eq!(status(&layer, Some(admin), false).await.0, 200);
        let user = with_roles(serde_json::json!(["user"]));
        assert_eq!(status(&layer, Some(user.clone()), false).await.0, 403);
        assert_eq!(status(&layer, Some(user), true).await, (200, "7".into()));
        assert_eq!(status(&layer, None, false).await.0, 401);
        assert_eq!(status(&layer, None, true).await, (200, "16".into()));
    }
}
