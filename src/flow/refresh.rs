//! Token refresh: one refresh per refresh token however many requests need it at once
//! (single flight), with the result kept for a short grace window so that requests still
//! carrying the previous cookie get the new session instead of replaying a rotated refresh
//! token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use serde_json::{Map, Value};

use crate::bearer::{token_key, TokenKey};
use crate::error::{AuthError, AuthErrorKind};
use crate::flow::{id_token, token};
use crate::layer::Inner;
use crate::session::{Session, SessionRef};

/// How long a refresh that failed because the provider was unreachable is remembered.
const OUTAGE_MEMORY: std::time::Duration = std::time::Duration::from_secs(2);

/// Most refreshes remembered at once; beyond it, refreshes still work but without sharing.
const MAX_FLIGHTS: usize = 10_000;

type Flight = Shared<BoxFuture<'static, Result<Arc<Session>, AuthError>>>;

/// In-flight and recently finished refreshes, keyed by a hash of the refresh token.
#[derive(Default)]
pub(crate) struct Refresher {
    flights: Mutex<HashMap<TokenKey, (Instant, Flight)>>,
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Refresher")
    }
}

impl Inner {
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
    inner: Arc<Inner>,
    session: Session,
) -> Result<Arc<Session>, AuthError> {
    let Some(refresh_token) = session.refresh_token.as_deref() else {
        return Err(AuthError::new(
            AuthErrorKind::InvalidToken,
            "the session has no refresh token",
        ));
    };
    let key = token_key(refresh_token);
    let grace = inner.config.refresh_grace;
    let flight = {
        let mut flights = inner
            .refresher
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        flights.retain(|_, (started, _)| started.elapsed() < grace);
        match flights.get(&key) {
            Some((_, flight)) => flight.clone(),
            None => {
                // A task of its own: the refresh completes (and its rotated refresh token is
                // kept) even when the request that started it goes away.
                let task = tokio::spawn(run(inner.clone(), session));
                let flight = async move {
                    task.await.unwrap_or_else(|_| {
                        Err(AuthError::new(
                            AuthErrorKind::Internal,
                            "the refresh task failed",
                        ))
                    })
                }
                .boxed()
                .shared();
                if flights.len() < MAX_FLIGHTS {
                    flights.insert(key, (Instant::now(), flight.clone()));
                }
                flight
            }
        }
    };
    let result = flight.await;
    if matches!(&result, Err(e) if e.kind() == AuthErrorKind::ProviderUnavailable) {
        // Successes and refusals are remembered for the grace window; an outage only for a
        // moment, so requests meanwhile go on with the session they have instead of each
        // waiting for the provider, and a request after it tries again.
        let mut flights = inner
            .refresher
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = flights.get_mut(&key) {
            let forget_after = grace.saturating_sub(OUTAGE_MEMORY);
            entry.0 = Instant::now()
                .checked_sub(forget_after)
                .unwrap_or_else(Instant::now);
        }
    }
    result
}

/// One refresh at the token endpoint, with the checks of OpenID Connect Core §12.2.
async fn run(inner: Arc<Inner>, old: Session) -> Result<Arc<Session>, AuthError> {
    let refresh_token = old.refresh_token.as_deref().unwrap_or_default();
    let tokens = token::refresh(&inner, refresh_token).await.map_err(|e| {
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
                &inner,
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
    if inner.fetch_userinfo {
        let info = token::userinfo(&inner, &tokens.access_token, &old.subject)
            .await
            .map_err(|e| match e.kind() {
                AuthErrorKind::ProviderUnavailable => e,
                _ => AuthError::new(AuthErrorKind::InvalidToken, e.message().to_owned()),
            })?;
        crate::flow::callback::merge_userinfo(&mut claims, info);
    }
    let now = inner.config.now();
    let session = inner.make_session(old.created_at, now, claims, tokens, Some(&old))?;
    tracing::debug!(subject = %session.subject, "session refreshed");
    Ok(Arc::new(session))
}
