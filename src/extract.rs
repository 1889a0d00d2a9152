//! The axum extractors of [`Identity`] and [`AccessToken`], and [`LoginRequired`], their
//! rejection; the handler-level authorization checks of [`Identity`] and [`Forbidden`], their
//! rejection.

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::bearer::bearer_token;
use crate::error::{AuthError, AuthErrorKind};
use crate::flow::login::Handle;
use crate::identity::{AccessToken, Identity, Source, WithoutLoginRoute};
use crate::require::RequireLayer;
use crate::response::{self, caller_kind};

/// The rejection of the [`Identity`] extractor when nobody is logged in: a redirect to
/// login for a browser navigation, `401` for scripts and programs, `grpc-status: 16` for
/// gRPC.
///
/// # Example
///
/// ```
/// use axum::response::IntoResponse;
/// use tower_oidc::{Identity, LoginRequired};
///
/// // Customise: answer 404 instead of revealing that the page exists.
/// async fn secret(id: Result<Identity, LoginRequired>) -> axum::response::Response {
///     match id {
///         Ok(id) => format!("hi {}", id.subject()).into_response(),
///         Err(_) => http::StatusCode::NOT_FOUND.into_response(),
///     }
/// }
/// ```
#[derive(Debug)]
pub struct LoginRequired {
    answer: http::Response<bytes::Bytes>,
}

impl IntoResponse for LoginRequired {
    fn into_response(self) -> Response {
        self.answer.map(axum_core::body::Body::from)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = LoginRequired;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Identity>() {
            Some(id) => Ok(id.clone()),
            None => Err(login_required(parts)),
        }
    }
}

/// Nobody logged in: the answer for a missing login. A session that keeps no access
/// token (`store_access_token(false)`): `500`, a server configuration mistake.
impl<S: Send + Sync> FromRequestParts<S> for AccessToken {
    type Rejection = LoginRequired;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(identity) = parts.extensions.get::<Identity>() else {
            return Err(login_required(parts));
        };
        if let Some(token) = identity.access_token() {
            return Ok(token.clone());
        }
        // A bearer caller: the token it sent (validated by the layer).
        if identity.source() == Source::Bearer {
            if let Some(Ok(token)) = bearer_token(&parts.headers) {
                return Ok(AccessToken::new(
                    bytes::Bytes::copy_from_slice(token.as_bytes()),
                    0,
                ));
            }
        }
        Err(login_required(parts))
    }
}

fn login_required(parts: &Parts) -> LoginRequired {
    {
        let answer = match parts.extensions.get::<Handle>() {
            Some(handle) => handle.login_required(&parts.uri, &parts.extensions, &parts.headers),
            None if parts.extensions.get::<WithoutLoginRoute>().is_some() => response::reject(
                caller_kind(&parts.headers),
                AuthError::new(AuthErrorKind::LoginRequired, "login required"),
                &parts.headers,
            ),
            None => {
                tracing::error!(
                    "the Identity extractor is used on a route without OidcLayer in front"
                );
                response::reject(
                    caller_kind(&parts.headers),
                    AuthError::new(AuthErrorKind::Internal, "OidcLayer missing"),
                    &parts.headers,
                )
            }
        };
        LoginRequired { answer }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}

/// The rejection of the handler-level checks ([`Identity::require_any_role`] and its
/// siblings): `403` with `WWW-Authenticate: Bearer error="insufficient_scope"` (naming the
/// scopes for the scope checks) and a JSON body, an [`AuthError`] of kind
/// [`AuthErrorKind::InsufficientScope`] in its extensions. For gRPC callers (status 7), use
/// [`RequireLayer`], which sees the request's content type.
///
/// # Example
///
/// ```
/// use tower_oidc::{Forbidden, Identity};
///
/// async fn delete_user(id: Identity) -> Result<&'static str, Forbidden> {
///     id.require_any_role(["admin"])?;
///     Ok("deleted")
/// }
/// ```
#[derive(Debug)]
pub struct Forbidden {
    answer: Box<http::Response<bytes::Bytes>>,
}

impl IntoResponse for Forbidden {
    fn into_response(self) -> Response {
        (*self.answer).map(axum_core::body::Body::from)
    }
}

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("insufficient scope")
    }
}

impl std::error::Error for Forbidden {}

/// Authorization inside a handler, when the rule depends on more than the route (the
/// resource's owner, a query parameter). Each check answers `Ok(())` or [`Forbidden`]; "not
/// logged in" is the [`Identity`] extractor's own rejection ([`LoginRequired`]), so the two
/// stay apart.
impl Identity {
    /// At least one of `roles` (see [`Identity::roles`]).
    ///
    /// # Example
    ///
    /// ```
    /// use axum::{extract::Path, routing::delete, Router};
    /// use tower_oidc::{Forbidden, Identity};
    ///
    /// async fn remove(id: Identity, Path(owner): Path<String>) -> Result<String, Forbidden> {
    ///     if owner != id.subject() {
    ///         id.require_any_role(["admin", "moderator"])?;
    ///     }
    ///     Ok(format!("removed the post of {owner}"))
    /// }
    ///
    /// let app: Router = Router::new().route("/posts/{owner}", delete(remove));
    /// ```
    ///
    /// # Errors
    ///
    /// [`Forbidden`] when the user has none of them.
    pub fn require_any_role<I, S>(&self, roles: I) -> Result<(), Forbidden>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.require(&RequireLayer::any_role(roles))
    }

    /// Every one of `roles` (see [`Identity::roles`]).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Forbidden, Identity};
    ///
    /// async fn approve(id: Identity) -> Result<&'static str, Forbidden> {
    ///     id.require_all_roles(["finance", "approver"])?;
    ///     Ok("approved")
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Forbidden`] when one is missing.
    pub fn require_all_roles<I, S>(&self, roles: I) -> Result<(), Forbidden>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.require(&RequireLayer::all_roles(roles))
    }

    /// Membership of `group` (see [`Identity::in_group`]).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Forbidden, Identity};
    ///
    /// async fn dashboards(id: Identity) -> Result<&'static str, Forbidden> {
    ///     id.require_group("ops")?;
    ///     Ok("dashboards")
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Forbidden`] when the user is not in the group.
    pub fn require_group(&self, group: &str) -> Result<(), Forbidden> {
        self.require(&RequireLayer::group(group))
    }

    /// At least one of `scopes` (see [`Identity::has_scope`]).
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{Forbidden, Identity};
    ///
    /// async fn orders(id: Identity) -> Result<&'static str, Forbidden> {
    ///     id.require_any_scope(["orders:read", "orders:admin"])?;
    ///     Ok("orders")
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Forbidden`], whose challenge names the scopes, when none was granted.
    pub fn require_any_scope<I, S>(&self, scopes: I) -> Result<(), Forbidden>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.require(&RequireLayer::any_scope(scopes))
    }

    fn require(&self, rule: &RequireLayer) -> Result<(), Forbidden> {
        if rule.allows(self) {
            return Ok(());
        }
        tracing::debug!(subject = %self.subject(), policy = %rule.what(), "access refused");
        Err(Forbidden {
            answer: Box::new(response::forbidden(
                &http::HeaderMap::new(),
                rule.challenge_scopes(),
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice(claims: serde_json::Value) -> Identity {
        Identity::new(
            "alice",
            "https://id.example.com",
            claims.as_object().cloned().unwrap_or_default(),
        )
    }

    #[track_caller]
    fn refused(result: Result<(), Forbidden>) -> Response {
        let res = result.expect_err("refused").into_response();
        assert_eq!(res.status(), http::StatusCode::FORBIDDEN);
        assert_eq!(
            res.extensions().get::<AuthError>().map(AuthError::kind),
            Some(AuthErrorKind::InsufficientScope)
        );
        res
    }

    #[test]
    fn handler_checks_admit_and_refuse() {
        let id = alice(serde_json::json!({
            "roles": ["finance"], "groups": ["ops"], "scope": "openid orders:read",
        }));
        assert!(id.require_any_role(["admin", "finance"]).is_ok());
        refused(id.require_any_role(["admin"]));
        assert!(id.require_all_roles(["finance", "ops"]).is_ok());
        refused(id.require_all_roles(["finance", "approver"]));
        assert!(id.require_group("ops").is_ok());
        refused(id.require_group("finance"));
        assert!(id.require_any_scope(["orders:read", "x"]).is_ok());
        let res = refused(id.require_any_scope(["orders:write"]));
        assert_eq!(
            res.headers()[http::header::WWW_AUTHENTICATE],
            "Bearer error=\"insufficient_scope\", scope=\"orders:write\""
        );
    }
}
