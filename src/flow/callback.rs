//! `GET {prefix}/callback`: the provider's answer. Finds the transaction by `state`, checks
//! `iss`, exchanges the code, validates the ID token and userinfo, and creates the session.

use std::sync::Arc;

use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::error::{AuthError, AuthErrorKind};
use crate::flow::{id_token, token};
use crate::layer::Inner;
use crate::response::{self, caller_kind, Page};
use crate::session::cookie::{add_set_cookie, request_cookies};
use crate::session::{Session, Transaction};

/// Claims that describe the token rather than the user; not kept in the session.
const TOKEN_ONLY_CLAIMS: &[&str] = &["nonce", "at_hash", "c_hash", "s_hash"];

#[derive(Debug, Default)]
struct Params {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Params {
    /// RFC 6749 §3.1: a parameter sent twice makes the request invalid.
    fn parse(query: &str) -> Result<Self, &'static str> {
        let mut p = Params::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "code" => &mut p.code,
                "state" => &mut p.state,
                "iss" => &mut p.iss,
                "error" => &mut p.error,
                "error_description" => &mut p.error_description,
                _ => continue,
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err("a parameter is repeated");
            }
        }
        Ok(p)
    }
}

/// Handles the callback request.
pub(crate) async fn handle(inner: Arc<Inner>, headers: HeaderMap, query: Option<String>) -> Page {
    let caller = caller_kind(&headers);
    let start_again = inner.paths.login.clone();
    let fail = |err: AuthError, mut extra: Vec<String>| {
        log_failure(&err);
        let mut res = response::error_answer(
            caller,
            err,
            &headers,
            Some((&start_again, "Start the login again")),
        );
        for cookie in extra.drain(..) {
            add_set_cookie(res.headers_mut(), cookie);
        }
        res
    };
    let params = match Params::parse(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(why) => return fail(AuthError::new(AuthErrorKind::InvalidCallback, why), vec![]),
    };
    let Some(state) = params.state.as_deref().filter(|s| is_state_like(s)) else {
        return fail(
            AuthError::new(
                AuthErrorKind::InvalidCallback,
                "the callback has no valid state",
            ),
            vec![],
        );
    };
    let tx_name = inner.cookies.tx_name(state);
    let tx = request_cookies(&headers)
        .find(|(name, _)| *name == tx_name)
        .and_then(|(name, value)| inner.tx_sealer.open(name, value))
        .and_then(|bytes| Transaction::decode(&bytes))
        .filter(|tx| bool::from(tx.state.as_bytes().ct_eq(state.as_bytes())));
    let Some(tx) = tx else {
        // Back button or an old tab after a finished login: nothing to do but go on.
        if inner.read_session(&headers).session.is_some() {
            return response::redirect("/");
        }
        return fail(
            AuthError::new(
                AuthErrorKind::InvalidCallback,
                "this login is unknown, expired or already completed",
            ),
            vec![],
        );
    };
    // From here on, the transaction is used up whatever happens.
    let clear_tx = vec![inner.cookies.tx_removal(&tx_name)];
    let login_again = format!(
        "{}?return_to={}",
        inner.paths.login,
        form_urlencoded::byte_serialize(tx.return_to.as_bytes()).collect::<String>()
    );
    let fail = |err: AuthError, extra: Vec<String>| {
        log_failure(&err);
        let mut res =
            response::error_answer(caller, err, &headers, Some((&login_again, "Log in again")));
        for cookie in extra {
            add_set_cookie(res.headers_mut(), cookie);
        }
        res
    };
    let now = inner.config.now();
    let ttl_ms = u64::try_from(inner.config.transaction_ttl.as_millis()).unwrap_or(u64::MAX);
    if tx.created_at_ms.saturating_add(ttl_ms) < inner.config.now_millis() {
        return fail(
            AuthError::new(AuthErrorKind::InvalidCallback, "the login took too long"),
            clear_tx,
        );
    }
    if let Some(error) = &params.error {
        let message = format!(
            "The identity provider answered `{}`{}",
            token::printable(error),
            params
                .error_description
                .as_deref()
                .map(|d| format!(": {}", token::printable(d)))
                .unwrap_or_default()
        );
        return fail(
            AuthError::new(AuthErrorKind::ProviderError, message),
            clear_tx,
        );
    }
    // RFC 9207: when present (and always when advertised), `iss` names our provider.
    let issuer = &inner.provider.metadata.issuer;
    match &params.iss {
        Some(iss) if iss == issuer => {}
        None if !inner.provider.metadata.iss_parameter_supported => {}
        _ => {
            return fail(
                AuthError::new(
                    AuthErrorKind::InvalidCallback,
                    "the authorization response's `iss` is missing or not the provider (mix-up)",
                ),
                clear_tx,
            )
        }
    }
    let Some(code) = params.code.as_deref() else {
        return fail(
            AuthError::new(AuthErrorKind::InvalidCallback, "the callback has no code"),
            clear_tx,
        );
    };
    match complete(&inner, &tx, code, now).await {
        Ok(session) => finish(&inner, &headers, session, &tx, clear_tx),
        Err(err) => fail(err, clear_tx),
    }
}

fn is_state_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn log_failure(err: &AuthError) {
    match err.kind() {
        AuthErrorKind::ProviderUnavailable | AuthErrorKind::Internal => {
            tracing::error!(kind = ?err.kind(), reason = %err, "login failed");
        }
        _ => tracing::info!(kind = ?err.kind(), reason = %err, "login failed"),
    }
}

/// Code exchange, ID token and userinfo checks; the new session.
async fn complete(
    inner: &Inner,
    tx: &Transaction,
    code: &str,
    now: u64,
) -> Result<Session, AuthError> {
    let tokens = token::exchange_code(inner, code, &tx.pkce_verifier).await?;
    let id_token = tokens.id_token.as_deref().unwrap_or_default();
    let mut claims = id_token::validate(
        inner,
        id_token,
        id_token::Expect {
            nonce: Some(&tx.nonce),
            access_token: Some(&tokens.access_token),
        },
    )
    .await?;
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if inner.fetch_userinfo {
        let info = token::userinfo(inner, &tokens.access_token, &subject).await?;
        merge_userinfo(&mut claims, info);
    }
    for name in TOKEN_ONLY_CLAIMS {
        claims.remove(*name);
    }
    let mut expires_at = now.saturating_add(inner.config.session_lifetime.as_secs());
    let access_expires_at = tokens.expires_in.map_or(0, |s| now.saturating_add(s));
    if tokens.refresh_token.is_none() && access_expires_at != 0 {
        // Without a refresh token the session cannot outlive its access token.
        expires_at = expires_at.min(access_expires_at);
    }
    Ok(Session {
        created_at: now,
        expires_at,
        access_expires_at,
        subject,
        issuer: inner.provider.metadata.issuer.clone(),
        claims: serde_json::to_vec(&claims).map_err(|_| {
            AuthError::new(AuthErrorKind::Internal, "claims could not be serialized")
        })?,
        id_token: tokens.id_token,
        access_token: Some(tokens.access_token),
        refresh_token: tokens.refresh_token,
        scope: tokens
            .scope
            .unwrap_or_else(|| inner.config.scopes.join(" ")),
    })
}

/// Userinfo claims complete the ID token's; claims about the token itself stay the ID
/// token's.
fn merge_userinfo(claims: &mut Map<String, Value>, info: Map<String, Value>) {
    const PROTECTED: &[&str] = &[
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "auth_time",
        "nonce",
        "azp",
        "acr",
        "amr",
        "sid",
        "at_hash",
        "c_hash",
    ];
    for (k, v) in info {
        if !PROTECTED.contains(&k.as_str()) {
            claims.insert(k, v);
        }
    }
}

fn finish(
    inner: &Inner,
    headers: &HeaderMap,
    session: Session,
    tx: &Transaction,
    clear_tx: Vec<String>,
) -> Page {
    let subject = session.subject.clone();
    let mut res = response::redirect(&tx.return_to);
    let cookies = match inner.session_cookies(headers, &session) {
        Ok(cookies) => cookies,
        Err(err) => {
            log_failure(&err);
            let mut res = response::error_answer(caller_kind(headers), err, headers, None);
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            for cookie in clear_tx {
                add_set_cookie(res.headers_mut(), cookie);
            }
            return res;
        }
    };
    for cookie in clear_tx.into_iter().chain(cookies) {
        add_set_cookie(res.headers_mut(), cookie);
    }
    tracing::info!(subject = %subject, "login succeeded");
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Params::parse("code=a&state=b&code=c").is_err());
        let p = Params::parse("code=a&state=b&iss=https%3A%2F%2Fid&other=1&other=2").unwrap();
        assert_eq!(p.code.as_deref(), Some("a"));
        assert_eq!(p.iss.as_deref(), Some("https://id"));
    }

    #[test]
    fn state_shape() {
        assert!(is_state_like("abc-_09"));
        assert!(!is_state_like(""));
        assert!(!is_state_like("a;b"));
        assert!(!is_state_like(&"a".repeat(129)));
    }

    #[test]
    fn userinfo_cannot_override_token_claims() {
        let mut claims = Map::new();
        claims.insert("sub".into(), "alice".into());
        claims.insert("name".into(), "Old".into());
        let mut info = Map::new();
        info.insert("sub".into(), "mallory".into());
        info.insert("name".into(), "New".into());
        info.insert("email".into(), "a@example.com".into());
        merge_userinfo(&mut claims, info);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["name"], "New");
        assert_eq!(claims["email"], "a@example.com");
    }
}
