//! Token refresh: when a session needs it, and the refresh itself (the refresh grant, the
//! new ID token and userinfo checked, the new session). One refresh per refresh token is
//! shared by every request that needs it (see `cache::Refresher`).
//!
//! What ends a session: a deliberate refusal by the provider (an OAuth error answer such as
//! `invalid_grant`, and `invalid_client` or `unauthorized_client`: an app disabled or removed
//! at the provider must not keep its sessions alive until `session_lifetime`), a refreshed ID
//! token or userinfo that fails its checks, or one that names another user. Everything that
//! says "not now" (no answer, a timeout, a server error, `429`, `408`, the OAuth errors
//! `temporarily_unavailable` and `server_error`, an answer that is neither tokens nor an OAuth
//! error, the provider's keys unavailable or a new signing key not fetchable yet, the same
//! for userinfo) keeps the session as it is and tries again later; so does
//! `unsupported_grant_type` (the provider does not refresh for this client: the session goes
//! on with the tokens it has, and the error is logged).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::cache::{token_key, RefreshRules, TokenKey};
use crate::dpop::key::DpopKey;
use crate::error::{AuthError, AuthErrorKind};
use crate::flow::provider_calls::TokenFailure;
use crate::flow::{callback, id_token, provider_calls};
use crate::jwt::Unverified;
use crate::refresh_coordinator::hex_sha256;
use crate::session::{Session, SessionRef};
use crate::shared::Shared;
use crate::{RefreshOutcome, RefreshTurn};

/// A session created this recently (seconds) whose refresh is refused has just come back
/// from the provider: its navigation gets a page with a "log in again" link instead of
/// another trip to the provider (which could loop).
pub(crate) const FRESH_LOGIN_SECS: u64 = 60;

/// Longest a refused refresh token is remembered (at most until its session's end anyway).
const MAX_REFUSAL_MEMORY_SECS: u64 = 24 * 3600;

/// Most refreshes one request chains through (each a newer refresh token from the grace
/// window of an older one).
const MAX_HOPS: usize = 8;

/// OAuth error codes that say the provider does not refresh for this client at all: the
/// app's configuration, not the user's grant.
const GRANT_UNSUPPORTED: &[&str] = &["unsupported_grant_type"];

impl Shared {
    /// Whether the session's access token is expired or about to be, and can be refreshed.
    pub(crate) fn needs_refresh(&self, session: &SessionRef, now: u64) -> bool {
        session.has_refresh_token()
            && self.refresh_due(session.access_issued_at, session.access_expires_at, now)
    }

    /// [`Shared::needs_refresh`] for an owned session.
    fn session_due(&self, session: &Session, now: u64) -> bool {
        session.refresh_token.is_some()
            && self.refresh_due(session.access_issued_at, session.access_expires_at, now)
    }

    /// Due within the margin, which is at most half the token's lifetime: a token younger
    /// than half its lifetime is never refreshed.
    fn refresh_due(&self, issued_at: u64, expires_at: u64, now: u64) -> bool {
        if expires_at == 0 {
            return false;
        }
        let half_life = expires_at.saturating_sub(issued_at) / 2;
        let margin = self.config.refresh_margin.as_secs().min(half_life);
        now.saturating_add(margin) >= expires_at
    }
}

/// The key that counts a session's refresh attempts: its user and login time.
fn session_key(session: &Session) -> TokenKey {
    token_key(&format!(
        "{}\n{}\n{}",
        session.issuer, session.subject, session.created_at
    ))
}

/// Refreshes `session`, sharing the work with every concurrent or recent request that
/// presents the same refresh token. A result from the grace window whose access token is due
/// again (the request carried an older cookie) is refreshed in turn with its newer refresh
/// token, so no request is handed an expired access token from memory.
pub(crate) async fn refresh(
    shared: Arc<Shared>,
    session: Session,
) -> Result<Arc<Session>, AuthError> {
    let now = shared.now();
    let counted_as = session_key(&session);
    let refused_until = session
        .expires_at
        .min(now.saturating_add(MAX_REFUSAL_MEMORY_SECS))
        .saturating_mul(1000);
    let (max_attempts, window) = shared.config.refresh_attempts;
    let mut current = Arc::new(session);
    for _ in 0..MAX_HOPS {
        let Some(refresh_token) = current.refresh_token.as_deref() else {
            return Err(AuthError::new(
                AuthErrorKind::InvalidToken,
                "the session has no refresh token",
            ));
        };
        let key = token_key(refresh_token);
        let now = shared.now();
        // A remembered result is handed out while it is not due; one that is due is still
        // handed out when it carries a newer refresh token (refreshed below with that one:
        // the old one may have been rotated away); otherwise the refresh runs again.
        let reusable = |s: &Session| {
            !shared.session_due(s, now) || s.refresh_token.as_deref().map(token_key) != Some(key)
        };
        let rules = RefreshRules {
            clock: &shared.config.clock,
            grace: shared.config.refresh_grace,
            max_attempts,
            window,
            session: counted_as,
            refused_until,
            reusable: &reusable,
        };
        let (owner, old) = (shared.clone(), Session::clone(&current));
        let result = shared
            .refresher
            .share(key, &rules, move || run(owner, old))
            .await?;
        let fresh = !shared.session_due(&result, now)
            // just issued (a provider whose tokens are due at once): as good as it gets
            || result.access_issued_at >= now
            || result.refresh_token == current.refresh_token;
        if fresh {
            return Ok(result);
        }
        tracing::debug!("a refresh from the grace window is due again; refreshing it");
        current = result;
    }
    Ok(current)
}

fn unavailable(message: String) -> AuthError {
    AuthError::new(AuthErrorKind::ProviderUnavailable, message)
}

/// One refresh ([`coordinated`]), counted.
async fn run(shared: Arc<Shared>, old: Session) -> Result<Arc<Session>, AuthError> {
    let counted = shared.clone();
    let result = coordinated(shared, old).await;
    counted.counters.refresh(result.is_ok());
    result
}

/// One refresh for the fleet: led by this replica (at the token endpoint), or taken from the
/// replica that led it, when a [`RefreshCoordinator`](crate::RefreshCoordinator) is
/// configured; at the token endpoint otherwise.
async fn coordinated(shared: Arc<Shared>, old: Session) -> Result<Arc<Session>, AuthError> {
    let Some(coordination) = &shared.coordination else {
        return at_provider(&shared, &old).await;
    };
    let key = hex_sha256(old.refresh_token.as_deref().unwrap_or_default());
    let coordinator = &coordination.coordinator;
    match coordinator.begin(&key).await {
        RefreshTurn::Lead(lease) => {
            let result = at_provider(&shared, &old).await;
            let sealed;
            let outcome = match &result {
                Ok(new) => {
                    sealed = coordination.seal(&key, new);
                    RefreshOutcome::Refreshed(&sealed)
                }
                Err(e) if e.kind() == AuthErrorKind::InvalidToken => RefreshOutcome::Refused,
                Err(_) => RefreshOutcome::Failed,
            };
            coordinator
                .finish(&key, &lease, outcome, shared.config.refresh_grace)
                .await;
            result
        }
        RefreshTurn::Done(sealed) => match coordination.open(&key, &sealed, &old) {
            Some(new) => {
                tracing::debug!(subject = %new.subject, "session refreshed by another replica");
                Ok(Arc::new(new))
            }
            None => {
                tracing::error!(
                    "a refresh result shared by another replica does not open with the session \
                     key or is not this session's; keeping the session"
                );
                Err(unavailable(
                    "the shared refresh result is unusable".to_owned(),
                ))
            }
        },
        RefreshTurn::Refused => Err(AuthError::new(
            AuthErrorKind::InvalidToken,
            "the provider refused the refresh token (at another replica's refresh)",
        )),
        RefreshTurn::Busy => Err(unavailable(
            "another replica's refresh of this session has not finished".to_owned(),
        )),
        // Unavailable, or a turn this version does not know: on this replica alone.
        _ => at_provider(&shared, &old).await,
    }
}

/// One refresh at the token endpoint, with the checks of OpenID Connect Core §12.2.
async fn at_provider(shared: &Arc<Shared>, old: &Session) -> Result<Arc<Session>, AuthError> {
    let refresh_token = old.refresh_token.as_deref().unwrap_or_default();
    // Tokens bound to the session's DPoP key are refreshed with a proof by it.
    let dpop = if old.dpop_key.0.is_empty() {
        None
    } else {
        Some(Arc::new(DpopKey::from_pkcs8(&old.dpop_key.0).ok_or_else(
            || {
                AuthError::new(
                    AuthErrorKind::InvalidToken,
                    "the session's DPoP key is unreadable",
                )
            },
        )?))
    };
    let mut tokens = match provider_calls::refresh_grant(shared, refresh_token, dpop).await {
        Ok(tokens) => tokens,
        Err(TokenFailure::Unavailable(e)) => return Err(e),
        Err(TokenFailure::Garbled(e)) => {
            return Err(unavailable(format!(
                "the token endpoint's answer is unusable: {e}"
            )))
        }
        Err(TokenFailure::Refused { code, error })
            if GRANT_UNSUPPORTED.contains(&code.as_str()) =>
        {
            tracing::error!(reason = %error, "the provider does not refresh for this client; \
                sessions go on with the tokens they have: check the client's configuration");
            return Err(unavailable(format!("refresh unsupported: {error}")));
        }
        Err(TokenFailure::Refused { code, error })
            if code == "invalid_client" || code == "unauthorized_client" =>
        {
            tracing::error!(reason = %error, "the provider refuses this client: its sessions end");
            return Err(AuthError::new(
                AuthErrorKind::InvalidToken,
                format!("the provider refused the client: {error}"),
            ));
        }
        Err(TokenFailure::Refused { error, .. }) => {
            return Err(AuthError::new(
                AuthErrorKind::InvalidToken,
                format!("the provider ended the session: {error}"),
            ))
        }
    };
    let old_claims =
        || -> Map<String, Value> { serde_json::from_slice(&old.claims).unwrap_or_default() };
    let mut claims: Map<String, Value> = match tokens.id_token.as_deref() {
        Some(new_id_token) => {
            let checked = id_token::validate(
                shared,
                new_id_token,
                id_token::Expect {
                    // Refreshed ID tokens need not carry a nonce.
                    nonce: None,
                    access_token: Some(&tokens.access_token),
                    code: None,
                    max_age: None,
                    unknown_key_unavailable: true,
                },
            )
            .await;
            let claims = match checked {
                Ok(claims) => claims,
                Err(e) if e.kind() == AuthErrorKind::ProviderUnavailable => {
                    // The provider's keys cannot be fetched now, but the provider may already
                    // have rotated the refresh token: keep the new tokens, drop the ID token
                    // that cannot be checked (as if the provider had sent none), keep the
                    // claims of the last checked one.
                    tracing::warn!(reason = %e, "refreshed ID token not checked; keeping the session's claims");
                    if !unverified_same_user(new_id_token, old) {
                        return Err(AuthError::new(
                            AuthErrorKind::InvalidToken,
                            "the refreshed ID token names another user",
                        ));
                    }
                    tokens.id_token = None;
                    old_claims()
                }
                Err(e) => {
                    return Err(AuthError::new(
                        AuthErrorKind::InvalidToken,
                        e.message().to_owned(),
                    ))
                }
            };
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
        None => old_claims(),
    };
    if shared.fetch_userinfo {
        match provider_calls::fetch_userinfo(
            shared,
            &tokens.access_token,
            tokens.dpop_key.as_deref(),
            &old.subject,
        )
        .await
        {
            Ok(info) => callback::merge_userinfo(&mut claims, info),
            Err(provider_calls::UserinfoFailure::Unusable(e))
                if e.kind() == AuthErrorKind::ProviderUnavailable
                    || !shared.config.compat.require_userinfo =>
            {
                // Enrichment only, and the refresh token may be rotated already: keep the new
                // tokens with the userinfo claims of before.
                tracing::warn!(reason = %e, "userinfo unavailable at refresh; keeping the session's claims");
                let mut kept = old_claims();
                for (name, value) in claims {
                    kept.insert(name, value);
                }
                claims = kept;
            }
            Err(failure) => {
                return Err(AuthError::new(
                    AuthErrorKind::InvalidToken,
                    failure.into_error().message().to_owned(),
                ))
            }
        }
    }
    let now = shared.now();
    let session = callback::new_session(shared, old.created_at, now, claims, tokens, Some(old))?;
    // The app's hook, when asked to run at refresh too: a refusal ends the session.
    let session = callback::run_login_hook(shared, session, Vec::new(), true)
        .await
        .map_err(|refused| {
            let why = match refused {
                callback::Refused::Page(_) => "the app refused the refreshed session",
                callback::Refused::Failed(_) => "the app's post-login hook failed at refresh",
            };
            AuthError::new(AuthErrorKind::InvalidToken, why)
        })?;
    tracing::debug!(subject = %session.subject, "session refreshed");
    Ok(Arc::new(session))
}

/// Whether an ID token that could not be verified at least claims the session's user.
fn unverified_same_user(token: &str, old: &Session) -> bool {
    #[derive(serde::Deserialize)]
    struct Who {
        sub: Option<String>,
        iss: Option<String>,
    }
    Unverified::parse(token)
        .ok()
        .and_then(|jwt| serde_json::from_slice::<Who>(&jwt.into_payload()).ok())
        .is_some_and(|who| {
            who.sub.as_deref() == Some(&old.subject) && who.iss.as_deref() == Some(&old.issuer)
        })
}
