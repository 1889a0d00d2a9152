//! Pushed authorization request endpoint (RFC 9126) and the use of its `request_uri` at the
//! authorization endpoint.

use axum::extract::State as AxState;
use axum::response::Response;
use bytes::Bytes;
use http::header::HeaderMap;
use http::StatusCode;
use serde_json::json;

use super::authorize::AuthzFailure;
use super::keys;
use super::params::{is_form, Params};
use super::response::{json_response, TokenError};
use super::{now, Fault, Shared, St};

/// The prefix of every `request_uri` this provider issues (RFC 9126 §2.2).
const URN_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request may be used (RFC 9126 §2.2 suggests 5 to 600 seconds).
const LIFETIME: u64 = 90;
/// Most pushed requests kept at once (older ones are dropped first).
const MAX_PUSHED: usize = 10_000;

/// A pushed authorization request, until used once or expired.
pub(super) struct Pushed {
    client_id: String,
    values: Vec<(String, String)>,
    expires: u64,
}

/// `POST /par`: authenticates the client, checks the authorization request as the
/// authorization endpoint would, and answers `201` with a one-time `request_uri`.
pub(super) async fn par(AxState(s): St, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = s.gate().await {
        return r;
    }
    match s.push(&headers, &body) {
        Ok((request_uri, expires_in)) => json_response(
            StatusCode::CREATED,
            &json!({ "request_uri": request_uri, "expires_in": expires_in }),
        ),
        Err(e) => e.into_response(),
    }
}

impl Shared {
    fn push(&self, headers: &HeaderMap, body: &[u8]) -> Result<(String, u64), TokenError> {
        if !is_form(headers) {
            return Err(TokenError::new(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let p = Params::parse(body);
        if let Some(Fault::ParError(code)) = self.fault(|f| matches!(f, Fault::ParError(_))) {
            return Err(TokenError::new(
                &code,
                "injected by the development provider",
            ));
        }
        let client = self.authenticate_client(headers, &p)?;
        if p.get("request_uri").is_some() {
            return Err(TokenError::new(
                "invalid_request",
                "request_uri must not be pushed",
            ));
        }
        if p.get("client_id").is_some_and(|id| id != client.id) {
            return Err(TokenError::new(
                "invalid_request",
                "client_id differs from the authenticated client",
            ));
        }
        // Client authentication is no part of the authorization request.
        const AUTH: [&str; 4] = [
            "client_secret",
            "client_assertion",
            "client_assertion_type",
            "client_id",
        ];
        let mut values: Vec<(String, String)> = p
            .values
            .iter()
            .filter(|(k, _)| !AUTH.contains(&k.as_str()))
            .cloned()
            .collect();
        values.push(("client_id".to_owned(), client.id.clone()));
        let request = Params {
            values,
            repeated: p.repeated,
        };
        match self.validate_authorization(&request) {
            Ok(_) => {}
            Err(AuthzFailure::Page(message)) => {
                return Err(TokenError::new("invalid_request", message))
            }
            Err(AuthzFailure::Redirect(_, code, description)) => {
                return Err(TokenError::new(&code, description))
            }
        }
        let uri = format!("{URN_PREFIX}{}", keys::random_token(&self.rng, 32));
        let now = now();
        let mut state = self.state();
        state.pushed.retain(|_, p| p.expires > now);
        if state.pushed.len() >= MAX_PUSHED {
            let oldest = state
                .pushed
                .iter()
                .min_by_key(|(_, p)| p.expires)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                state.pushed.remove(&oldest);
            }
        }
        state.pushed.insert(
            uri.clone(),
            Pushed {
                client_id: client.id.clone(),
                values: request.values,
                expires: now + LIFETIME,
            },
        );
        Ok((uri, LIFETIME))
    }

    /// The parameters of an authorization request: the pushed ones for a `request_uri`
    /// (used up on first use), or the request's own. `Err`: a message for the error page.
    pub(super) fn resolve_pushed(&self, p: Params) -> Result<Params, String> {
        let Some(uri) = p.get("request_uri") else {
            if self.require_par {
                return Err(
                    "This provider requires pushed authorization requests (RFC 9126).".into(),
                );
            }
            return Ok(p);
        };
        if p.is_repeated("request_uri") || !uri.starts_with(URN_PREFIX) {
            return Err("The request_uri is not one this provider issued.".into());
        }
        let pushed = self.state().pushed.remove(uri);
        let Some(pushed) = pushed.filter(|pushed| pushed.expires > now()) else {
            return Err("The request_uri is unknown, used or expired.".into());
        };
        if p.get("client_id") != Some(pushed.client_id.as_str()) {
            return Err("The client_id is not the one that pushed the request.".into());
        }
        Ok(Params {
            values: pushed.values,
            repeated: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use http::header::{HeaderValue, CONTENT_TYPE};

    use super::*;
    use crate::dev::server::tests::{shared, CONF_ID, CONF_SECRET};

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn form() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        h
    }

    fn request(extra: &str) -> String {
        format!(
            "client_id={CONF_ID}&client_secret={CONF_SECRET}&redirect_uri=https%3A%2F%2Frp.test%2Fcb\
             &response_type=code&scope=openid&state=st&nonce=n\
             &code_challenge={CHALLENGE}&code_challenge_method=S256{extra}"
        )
    }

    #[test]
    fn a_pushed_request_is_used_once_by_its_client() {
        let s = shared();
        let (uri, ttl) = s
            .push(&form(), request("").as_bytes())
            .ok()
            .expect("pushed");
        assert!(uri.starts_with(URN_PREFIX));
        assert_eq!(ttl, LIFETIME);
        let other = Params::parse(format!("client_id=other&request_uri={uri}").as_bytes());
        assert!(s.resolve_pushed(other).is_err(), "another client_id");
        // The failed attempt used it up: a request_uri is good for one use.
        let again = Params::parse(
            form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", CONF_ID)
                .append_pair("request_uri", &uri)
                .finish()
                .as_bytes(),
        );
        assert!(s.resolve_pushed(again).is_err());

        let (uri, _) = s
            .push(&form(), request("").as_bytes())
            .ok()
            .expect("pushed");
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", CONF_ID)
            .append_pair("request_uri", &uri)
            .finish();
        let resolved = s
            .resolve_pushed(Params::parse(query.as_bytes()))
            .expect("resolved");
        assert_eq!(resolved.get("state"), Some("st"));
        assert_eq!(resolved.get("client_id"), Some(CONF_ID));
        assert_eq!(
            resolved.get("client_secret"),
            None,
            "credentials are not kept"
        );
        assert!(s.resolve_pushed(Params::parse(query.as_bytes())).is_err());
    }

    #[test]
    fn bad_pushes_are_refused() {
        let s = shared();
        let no_secret = request("").replace(&format!("&client_secret={CONF_SECRET}"), "");
        let e = s.push(&form(), no_secret.as_bytes()).expect_err("refused");
        assert_eq!(e.error, "invalid_client");
        let e = s
            .push(&form(), request("&request_uri=urn%3Ax").as_bytes())
            .expect_err("refused");
        assert_eq!(e.error, "invalid_request");
        let e = s
            .push(
                &form(),
                request("")
                    .replace("scope=openid", "scope=email")
                    .as_bytes(),
            )
            .expect_err("refused");
        assert_eq!(e.error, "invalid_scope");
        let e = s
            .push(&HeaderMap::new(), request("").as_bytes())
            .expect_err("refused");
        assert_eq!(e.error, "invalid_request");
    }

    #[test]
    fn unknown_request_uris_and_unpushed_requests_when_required_are_refused() {
        let mut s = shared();
        let p = Params::parse(
            b"client_id=conf&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Anope",
        );
        assert!(s.resolve_pushed(p).is_err());
        let p = Params::parse(b"client_id=conf&request_uri=https%3A%2F%2Fevil.test%2Fr");
        assert!(s.resolve_pushed(p).is_err());
        assert!(s.resolve_pushed(Params::parse(b"client_id=conf")).is_ok());
        s.require_par = true;
        assert!(s.resolve_pushed(Params::parse(b"client_id=conf")).is_err());
    }
}
