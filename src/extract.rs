//! The axum extractors of [`Identity`] and [`AccessToken`], and [`LoginRequired`], their
//! rejection.

use std::convert::Infallible;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::bearer::bearer_token;
use crate::error::{AuthError, AuthErrorKind};
use crate::flow::login::Handle;
use crate::identity::{AccessToken, Identity, Source};
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
            Some(handle) => handle.login_required(&parts.uri, &parts.headers),
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
