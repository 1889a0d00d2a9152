//! Token endpoint: the authorization code and refresh token grants (RFC 6749 §3.2).

use std::sync::atomic::Ordering;

use axum::extract::State as AxState;
use axum::response::Response;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use serde_json::{json, Value};
use subtle::ConstantTimeEq as _;

use super::authorize::is_pkce_value;
use super::issue::Issue;
use super::keys;
use super::params::{is_form, Params};
use super::response::json_response;
use super::{now, token_key, ChallengeMethod, DevClient, Fault, Shared, St};

/// Lifetime of authorization codes.
const CODE_TTL: u64 = 60;

pub(super) struct TokenError {
    pub(super) status: StatusCode,
    pub(super) error: String,
    pub(super) description: String,
    /// Whether the client tried HTTP Basic, so the answer carries a `Basic` challenge.
    pub(super) basic: bool,
}

impl TokenError {
    pub(super) fn new(error: &str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: error.to_owned(),
            description: description.into(),
            basic: false,
        }
    }

    pub(super) fn invalid_client(description: &str, basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client".to_owned(),
            description: description.to_owned(),
            basic,
        }
    }

    fn into_response(self) -> Response {
        tracing::debug!(error = %self.error, description = %self.description,
            "development provider token error");
        let mut body = json!({ "error": self.error });
        if !self.description.is_empty() {
            body["error_description"] = Value::String(self.description);
        }
        let mut response = json_response(self.status, &body);
        if self.basic {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tower-oidc dev provider\""),
            );
        }
        response
    }
}

pub(super) async fn token(AxState(s): St, headers: HeaderMap, body: Bytes) -> Response {
    s.stats.token.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = s.gate().await {
        return r;
    }
    match token_inner(&s, &headers, &body) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

fn token_inner(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Value, TokenError> {
    if let Some(Fault::TokenError(code)) = s.fault(|f| matches!(f, Fault::TokenError(_))) {
        return Err(TokenError::new(&code, ""));
    }
    if !is_form(headers) {
        return Err(TokenError::new(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let p = Params::parse(body);
    if let Some(name) = p.repeated.first() {
        return Err(TokenError::new(
            "invalid_request",
            format!("parameter {name} is repeated"),
        ));
    }
    let client = s.authenticate_client(headers, &p)?;
    match p.get("grant_type") {
        None => Err(TokenError::new("invalid_request", "grant_type is missing")),
        Some("authorization_code") => s.code_grant(client, &p),
        Some("refresh_token") if s.refresh_tokens => s.refresh_grant(client, &p),
        Some(_) => Err(TokenError::new(
            "unsupported_grant_type",
            "supported grant types: authorization_code, refresh_token",
        )),
    }
}

impl Shared {
    fn code_grant(&self, client: &DevClient, p: &Params) -> Result<Value, TokenError> {
        let Some(code_text) = p.get("code") else {
            return Err(TokenError::new("invalid_request", "code is missing"));
        };
        let Some(redirect_uri) = p.get("redirect_uri") else {
            return Err(TokenError::new(
                "invalid_request",
                "redirect_uri is missing",
            ));
        };
        let verifier = p.get("code_verifier");
        let now = now();
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(code) = state.codes.get(code_text) else {
            return Err(TokenError::new("invalid_grant", "unknown or expired code"));
        };
        if let Some(grant) = code.redeemed {
            state.revoked_grants.insert(grant);
            tracing::debug!("authorization code replayed; tokens issued from it are revoked");
            return Err(TokenError::new(
                "invalid_grant",
                "the code was already used; tokens issued from it are revoked",
            ));
        }
        if code.created + CODE_TTL < now {
            return Err(TokenError::new("invalid_grant", "the code has expired"));
        }
        if code.client_id != client.id {
            return Err(TokenError::new(
                "invalid_grant",
                "the code was issued to another client",
            ));
        }
        if code.redirect_uri != redirect_uri {
            return Err(TokenError::new(
                "invalid_grant",
                "redirect_uri differs from the authorization request",
            ));
        }
        match (&code.challenge, verifier) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(TokenError::new(
                    "invalid_grant",
                    "code_verifier sent but the authorization request had no code_challenge",
                ))
            }
            (Some(_), None) => {
                return Err(TokenError::new("invalid_grant", "code_verifier is missing"))
            }
            (Some((challenge, method)), Some(verifier)) => {
                let computed = match method {
                    ChallengeMethod::S256 => keys::encode(
                        ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref(),
                    ),
                    ChallengeMethod::Plain => verifier.to_owned(),
                };
                let ok = is_pkce_value(verifier)
                    && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()));
                if !ok {
                    return Err(TokenError::new(
                        "invalid_grant",
                        "code_verifier does not match the code_challenge",
                    ));
                }
            }
        }
        let grant = state.next_grant;
        state.next_grant += 1;
        let Some(code) = state.codes.get_mut(code_text) else {
            return Err(TokenError::new("invalid_grant", "unknown or expired code"));
        };
        code.redeemed = Some(grant);
        let (sub, scope, auth_time, sid, nonce) = (
            code.sub.clone(),
            code.scope.clone(),
            code.auth_time,
            code.sid.clone(),
            code.nonce.clone(),
        );
        self.issue(
            state,
            Issue {
                client_id: &client.id,
                sub: &sub,
                scope: &scope,
                auth_time,
                sid: &sid,
                nonce: nonce.as_deref(),
                grant,
            },
        )
    }

    fn refresh_grant(&self, client: &DevClient, p: &Params) -> Result<Value, TokenError> {
        let Some(token) = p.get("refresh_token") else {
            return Err(TokenError::new(
                "invalid_request",
                "refresh_token is missing",
            ));
        };
        let key = token_key(token);
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(record) = state.refresh.get(&key) else {
            return Err(TokenError::new("invalid_grant", "unknown refresh token"));
        };
        if record.client_id != client.id {
            return Err(TokenError::new(
                "invalid_grant",
                "the refresh token was issued to another client",
            ));
        }
        let grant = record.grant;
        if record.used {
            state.revoked_grants.insert(grant);
            tracing::debug!("rotated refresh token reused; its family is revoked");
            return Err(TokenError::new(
                "invalid_grant",
                "the refresh token was already used; the token family is revoked",
            ));
        }
        if state.revoked_grants.contains(&grant) {
            return Err(TokenError::new(
                "invalid_grant",
                "the refresh token was revoked",
            ));
        }
        let scope = match p.get("scope") {
            None => record.scope.clone(),
            Some(requested) => {
                let requested: Vec<String> = requested.split(' ').map(str::to_owned).collect();
                if requested
                    .iter()
                    .any(|s| !s.is_empty() && !record.scope.contains(s))
                {
                    return Err(TokenError::new(
                        "invalid_scope",
                        "the scope exceeds the originally granted scope",
                    ));
                }
                record
                    .scope
                    .iter()
                    .filter(|s| requested.contains(s))
                    .cloned()
                    .collect()
            }
        };
        if self.user(&record.sub).is_none() {
            return Err(TokenError::new(
                "invalid_grant",
                "the user no longer exists",
            ));
        }
        let (sub, auth_time, sid) = (record.sub.clone(), record.auth_time, record.sid.clone());
        if let Some(record) = state.refresh.get_mut(&key) {
            record.used = true;
        }
        self.issue(
            state,
            Issue {
                client_id: &client.id,
                sub: &sub,
                scope: &scope,
                auth_time,
                sid: &sid,
                nonce: None,
                grant,
            },
        )
    }
}
