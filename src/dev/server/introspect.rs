//! Token introspection (RFC 7662): whether an access token this provider issued is active,
//! for an authenticated client. Counted in the stats; [`Fault::HoldIntrospection`] keeps
//! answers back until the fault is cleared, so tests can have calls in flight for sure.

use std::sync::atomic::Ordering;

use axum::extract::State as AxState;
use axum::response::Response;
use bytes::Bytes;
use http::header::HeaderMap;
use http::StatusCode;
use serde_json::{json, Value};

use super::params::{is_form, Params};
use super::response::{fixed_answer, json_response, TokenError};
use super::{now, token_key, Fault, Shared, St};

pub(super) async fn introspect(AxState(s): St, headers: HeaderMap, body: Bytes) -> Response {
    s.stats.introspection.fetch_add(1, Ordering::Relaxed);
    s.hold_introspection().await;
    if let Some(r) = s.gate().await {
        return r;
    }
    if let Some(Fault::IntrospectionAnswer {
        status,
        content_type,
        body,
    }) = s.fault(|f| matches!(f, Fault::IntrospectionAnswer { .. }))
    {
        return fixed_answer(status, content_type, body);
    }
    match introspect_inner(&s, &headers, &body) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

fn introspect_inner(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Value, TokenError> {
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
    if let Some(Fault::IntrospectionOnlyFor(only)) =
        s.fault(|f| matches!(f, Fault::IntrospectionOnlyFor(_)))
    {
        if client.id != only {
            return Err(TokenError::invalid_client(
                "this client may not introspect",
                false,
            ));
        }
    }
    if client.secret.is_none() {
        // RFC 7662 §2.1: the caller must be authorized; public clients are not.
        return Err(TokenError::invalid_client(
            "public clients may not introspect",
            false,
        ));
    }
    let Some(token) = p.get("token") else {
        return Err(TokenError::new("invalid_request", "token is missing"));
    };
    let now = now();
    let state = s.state();
    let Some(record) = state.access.get(&token_key(token)) else {
        return Ok(json!({ "active": false }));
    };
    if record.exp < now || state.revoked_grants.contains(&record.grant) {
        return Ok(json!({ "active": false }));
    }
    let mut aud = vec![json!(record.client_id)];
    if let Some(extra) = &s.access_token_audience {
        aud.push(json!(extra));
    }
    let (issuer, tid) = s.token_issuer(&state);
    let mut answer = json!({
        "active": true,
        "iss": issuer,
        "sub": record.sub,
        "client_id": record.client_id,
        "scope": record.scope.join(" "),
        "aud": if aud.len() == 1 { aud[0].clone() } else { Value::Array(aud) },
        "exp": record.exp,
        "token_type": if record.jkt.is_some() { "DPoP" } else { "Bearer" },
    });
    if let Some(jkt) = &record.jkt {
        answer["cnf"] = json!({ "jkt": jkt });
    }
    if let Some(tid) = tid {
        answer["tid"] = json!(tid);
    }
    for fault in &state.faults {
        if let (Fault::IntrospectionClaims(Value::Object(extra)), Some(members)) =
            (fault, answer.as_object_mut())
        {
            for (name, value) in extra {
                if value.is_null() {
                    members.remove(name);
                } else {
                    members.insert(name.clone(), value.clone());
                }
            }
        }
    }
    Ok(answer)
}

impl Shared {
    /// Waits while [`Fault::HoldIntrospection`] is active.
    async fn hold_introspection(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release between the check and the wait is
            // not missed.
            released.as_mut().enable();
            if !self.has_fault(&Fault::HoldIntrospection) {
                return;
            }
            released.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use http::header::{self, HeaderValue};

    use super::*;
    use crate::dev::server::issue::Issue;
    use crate::dev::server::tests::{shared, CONF_ID, CONF_SECRET, PUBLIC_ID};

    fn form_headers(basic: Option<(&str, &str)>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        if let Some((id, secret)) = basic {
            let raw = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Basic {raw}")).unwrap(),
            );
        }
        h
    }

    fn issue(s: &Shared) -> String {
        let scope = vec!["openid".to_owned(), "profile".to_owned()];
        let mut state = s.state();
        let response = s
            .issue(
                &mut state,
                Issue {
                    client_id: CONF_ID,
                    sub: "alice",
                    scope: &scope,
                    nonce: None,
                    auth_time: 1,
                    sid: "sid",
                    grant: 7,
                    jkt: None,
                },
            )
            .ok()
            .expect("tokens are issued");
        response["access_token"].as_str().unwrap().to_owned()
    }

    #[test]
    fn issued_tokens_are_active_and_others_are_not() {
        let s = shared();
        let token = issue(&s);
        let auth = form_headers(Some((CONF_ID, CONF_SECRET)));
        let body = format!("token={token}");
        let answer = introspect_inner(&s, &auth, body.as_bytes())
            .ok()
            .expect("an answer");
        assert_eq!(answer["active"], true);
        assert_eq!(answer["sub"], "alice");
        assert_eq!(answer["client_id"], CONF_ID);
        assert_eq!(answer["scope"], "openid profile");
        let unknown = introspect_inner(&s, &auth, b"token=made-up")
            .ok()
            .expect("an answer");
        assert_eq!(unknown, json!({ "active": false }));
        s.state().revoked_grants.insert(7);
        let revoked = introspect_inner(&s, &auth, body.as_bytes())
            .ok()
            .expect("an answer");
        assert_eq!(revoked, json!({ "active": false }));
    }

    #[test]
    fn callers_must_be_authenticated_confidential_clients() {
        let s = shared();
        let token = issue(&s);
        let body = format!("token={token}");
        let err = |h: HeaderMap, b: &str| introspect_inner(&s, &h, b.as_bytes()).unwrap_err();
        assert_eq!(err(form_headers(None), &body).error, "invalid_client");
        assert_eq!(
            err(form_headers(Some((CONF_ID, "wrong"))), &body).error,
            "invalid_client"
        );
        let public = format!("{body}&client_id={PUBLIC_ID}");
        assert_eq!(err(form_headers(None), &public).error, "invalid_client");
        let auth = || form_headers(Some((CONF_ID, CONF_SECRET)));
        assert_eq!(err(auth(), "").error, "invalid_request");
        assert_eq!(err(auth(), "token=a&token=b").error, "invalid_request");
        assert_eq!(err(HeaderMap::new(), &body).error, "invalid_request");
    }
}
