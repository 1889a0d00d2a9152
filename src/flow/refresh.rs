//! Token refresh: when a session needs it, and the refresh itself (the refresh grant, the
//! new ID token and userinfo checked, the new session). One refresh per refresh token is
//! shared by every request that needs it (see `cache::Refresher`).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::cache::token_key;
use crate::error::{AuthError, AuthErrorKind};
use crate::flow::{callback, id_token, provider_calls};
use crate::session::{Session, SessionRef};
use crate::shared::Shared;

impl Shared {
    /// Whether the session's access token is expired or about to be, and can be refreshed.
    pub(crate) fn needs_refresh(&self, session: &SessionRef, now: u64) -> bool {
        session.has_refresh_token()
            && session.access_expires_at != 0
            && now.saturating_add(self.config.refresh_margin.as_secs()) >= session.access_expires_at
    }
}

/// Refreshes `session`, sharing the work with every concurrent or recent request that
/// presents the same refresh token.
pub(crate) async fn refresh(
    shared: Arc<Shared>,
    session: Session,
) -> Result<Arc<Session>, AuthError> {
    let Some(refresh_token) = session.refresh_token.as_deref() else {
        return Err(AuthError::new(
            AuthErrorKind::InvalidToken,
            "the session has no refresh token",
        ));
    };
    let key = token_key(refresh_token);
    let grace = shared.config.refresh_grace;
    let refresher = &shared.refresher;
    refresher
        .share(key, grace, || run(shared.clone(), session))
        .await
}

/// One refresh at the token endpoint, with the checks of OpenID Connect Core §12.2.
async fn run(shared: Arc<Shared>, old: Session) -> Result<Arc<Session>, AuthError> {
    let refresh_token = old.refresh_token.as_deref().unwrap_or_default();
    let tokens = provider_calls::refresh_grant(&shared, refresh_token)
        .await
        .map_err(|e| {
            if e.kind() == AuthErrorKind::ProviderUnavailable {
                e
            } else {
                AuthError::new(
                    AuthErrorKind::InvalidToken,
                    format!("the provider ended the session: {e}"),
                )
            }
        })?;
    let mut claims: Map<String, Value> = match tokens.id_token.as_deref() {
        Some(new_id_token) => {
            let claims = id_token::validate(
                &shared,
                new_id_token,
                id_token::Expect {
                    // Refreshed ID tokens need not carry a nonce.
                    nonce: None,
                    access_token: Some(&tokens.access_token),
                    code: None,
                    max_age: None,
                },
            )
            .await
            .map_err(|e| AuthError::new(AuthErrorKind::InvalidToken, e.message().to_owned()))?;
            let same_user = claims.get("sub").and_then(Value::as_str) == Some(&old.subject)
                && claims.get("iss").and_then(Value::as_str) == Some(&old.issuer);
            if !same_user {
                return Err(AuthError::new(
                    AuthErrorKind::InvalidToken,
                    "the refreshed ID token names another user",
                ));
            }
            claims
        }
        // No new ID token: the claims stay those of the login.
        None => serde_json::from_slice(&old.claims).unwrap_or_default(),
    };
    if shared.fetch_userinfo {
        let info = provider_calls::userinfo(&shared, &tokens.access_token, &old.subject)
            .await
            .map_err(|e| match e.kind() {
                AuthErrorKind::ProviderUnavailable => e,
                _ => AuthError::new(AuthErrorKind::InvalidToken, e.message().to_owned()),
            })?;
        callback::merge_userinfo(&mut claims, info);
    }
    let now = shared.now();
    let session = callback::new_session(&shared, old.created_at, now, claims, tokens, Some(&old))?;
    tracing::debug!(subject = %session.subject, "session refreshed");
    Ok(Arc::new(session))
}
