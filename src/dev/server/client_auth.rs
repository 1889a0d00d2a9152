//! Client authentication at the token endpoint (RFC 6749 §2.3.1).

use http::header::{self, HeaderMap, HeaderValue};
use subtle::ConstantTimeEq as _;

use super::params::Params;
use super::response::TokenError;
use super::{DevClient, Shared};

/// Decodes one half of HTTP Basic credentials (RFC 6749 §2.3.1: form-urlencoded).
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    use base64::Engine as _;
    let text = value.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

impl Shared {
    pub(super) fn authenticate_client(
        &self,
        headers: &HeaderMap,
        p: &Params,
    ) -> Result<&DevClient, TokenError> {
        let mut auth = headers.get_all(header::AUTHORIZATION).iter();
        let header_value = auth.next();
        if auth.next().is_some() {
            return Err(TokenError::new(
                "invalid_request",
                "repeated Authorization header",
            ));
        }
        let (id, secret, basic) = match header_value {
            Some(value) => {
                let Some((id, secret)) = basic_credentials(value) else {
                    return Err(TokenError::invalid_client(
                        "malformed HTTP Basic credentials",
                        true,
                    ));
                };
                if p.get("client_secret").is_some() {
                    return Err(TokenError::new(
                        "invalid_request",
                        "use only one client authentication method",
                    ));
                }
                if p.get("client_id").is_some_and(|body_id| body_id != id) {
                    return Err(TokenError::new(
                        "invalid_request",
                        "client_id differs from the authenticated client",
                    ));
                }
                (id, Some(secret).filter(|s| !s.is_empty()), true)
            }
            None => {
                let Some(id) = p.get("client_id") else {
                    return Err(TokenError::invalid_client(
                        "client authentication is missing",
                        false,
                    ));
                };
                (
                    id.to_owned(),
                    p.get("client_secret").map(str::to_owned),
                    false,
                )
            }
        };
        let Some(client) = self.client(&id) else {
            return Err(TokenError::invalid_client("unknown client", basic));
        };
        match (&client.secret, secret) {
            (Some(expected), Some(given)) => {
                if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
                    Ok(client)
                } else {
                    Err(TokenError::invalid_client("wrong client secret", basic))
                }
            }
            (Some(_), None) => Err(TokenError::invalid_client(
                "this client must authenticate with its secret",
                basic,
            )),
            (None, None) => Ok(client),
            (None, Some(_)) => Err(TokenError::invalid_client(
                "this public client has no secret",
                basic,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use http::StatusCode;

    use super::*;
    use crate::dev::server::tests::{shared, CONF_ID, CONF_SECRET, PUBLIC_ID};

    fn basic(id: &str, secret: &str) -> HeaderValue {
        let raw = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        HeaderValue::from_str(&format!("Basic {raw}")).unwrap()
    }

    fn with_basic(id: &str, secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, basic(id, secret));
        headers
    }

    /// The error code, HTTP status and Basic flag of a failed authentication.
    fn refusal(result: Result<&DevClient, TokenError>) -> (String, StatusCode, bool) {
        match result {
            Ok(client) => panic!("client {} was accepted", client.id),
            Err(e) => (e.error, e.status, e.basic),
        }
    }

    #[test]
    fn form_decode_handles_plus_and_percent_escapes() {
        assert_eq!(form_decode("a+b%20c%3Ad").as_deref(), Some("a b c:d"));
        assert_eq!(form_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(form_decode("plain").as_deref(), Some("plain"));
        assert_eq!(form_decode("").as_deref(), Some(""));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None, "truncated escape");
        assert_eq!(form_decode("%FF"), None, "not UTF-8");
    }

    #[test]
    fn basic_credentials_split_at_the_first_colon_and_decode_both_halves() {
        assert_eq!(
            basic_credentials(&basic("my%3Aclient", "pa:ss+word")),
            Some(("my:client".to_owned(), "pa:ss word".to_owned()))
        );
        let lower = HeaderValue::from_static("basic Y29uZjpzM2NyZXQ=");
        assert_eq!(
            basic_credentials(&lower),
            Some((CONF_ID.to_owned(), CONF_SECRET.to_owned()))
        );
        assert_eq!(
            basic_credentials(&basic("", "")),
            Some((String::new(), String::new()))
        );
        for bad in [
            "Bearer Y29uZjpzM2NyZXQ=",
            "Basic not-base64!",
            "Basic bm9jb2xvbg==", // "nocolon"
            "Basic",
        ] {
            assert_eq!(
                basic_credentials(&HeaderValue::from_static(bad)),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_confidential_client_authenticates_with_basic_or_the_body() {
        let s = shared();
        let none = Params::parse(b"");
        let client = s.authenticate_client(&with_basic(CONF_ID, CONF_SECRET), &none);
        assert_eq!(client.ok().map(|c| c.id.as_str()), Some(CONF_ID));
        let same_id = Params::parse(b"client_id=conf");
        let client = s.authenticate_client(&with_basic(CONF_ID, CONF_SECRET), &same_id);
        assert!(client.is_ok(), "a matching client_id may accompany Basic");
        let post = Params::parse(b"client_id=conf&client_secret=s3cret");
        let client = s.authenticate_client(&HeaderMap::new(), &post);
        assert_eq!(client.ok().map(|c| c.id.as_str()), Some(CONF_ID));
    }

    #[test]
    fn a_public_client_authenticates_with_its_id_alone() {
        let s = shared();
        let p = Params::parse(b"client_id=pub");
        let client = s.authenticate_client(&HeaderMap::new(), &p);
        assert_eq!(client.ok().map(|c| c.id.as_str()), Some(PUBLIC_ID));
        // An empty Basic secret counts as no secret.
        let client = s.authenticate_client(&with_basic(PUBLIC_ID, ""), &Params::parse(b""));
        assert!(client.is_ok());
    }

    #[test]
    fn wrong_or_missing_credentials_are_invalid_client() {
        let s = shared();
        let empty = Params::parse(b"");
        let unauthorized = |basic| ("invalid_client".to_owned(), StatusCode::UNAUTHORIZED, basic);
        let cases = [
            (with_basic(CONF_ID, "wrong"), &empty, true),
            (with_basic("stranger", "x"), &empty, true),
            (with_basic(CONF_ID, ""), &empty, true),
            (with_basic(PUBLIC_ID, "a-secret"), &empty, true),
            (HeaderMap::new(), &empty, false),
        ];
        for (headers, p, basic) in cases {
            assert_eq!(
                refusal(s.authenticate_client(&headers, p)),
                unauthorized(basic)
            );
        }
        let body_wrong = Params::parse(b"client_id=conf&client_secret=nope");
        assert_eq!(
            refusal(s.authenticate_client(&HeaderMap::new(), &body_wrong)),
            unauthorized(false)
        );
        let body_no_secret = Params::parse(b"client_id=conf");
        assert_eq!(
            refusal(s.authenticate_client(&HeaderMap::new(), &body_no_secret)),
            unauthorized(false)
        );
        let mut malformed = HeaderMap::new();
        malformed.insert(header::AUTHORIZATION, HeaderValue::from_static("Digest x"));
        assert_eq!(
            refusal(s.authenticate_client(&malformed, &empty)),
            unauthorized(true)
        );
    }

    #[test]
    fn mixed_or_repeated_authentication_is_invalid_request() {
        let s = shared();
        let bad_request = ("invalid_request".to_owned(), StatusCode::BAD_REQUEST, false);
        let both = Params::parse(b"client_secret=s3cret");
        assert_eq!(
            refusal(s.authenticate_client(&with_basic(CONF_ID, CONF_SECRET), &both)),
            bad_request
        );
        let other_id = Params::parse(b"client_id=pub");
        assert_eq!(
            refusal(s.authenticate_client(&with_basic(CONF_ID, CONF_SECRET), &other_id)),
            bad_request
        );
        let mut twice = with_basic(CONF_ID, CONF_SECRET);
        twice.append(header::AUTHORIZATION, basic(CONF_ID, CONF_SECRET));
        assert_eq!(
            refusal(s.authenticate_client(&twice, &Params::parse(b""))),
            bad_request
        );
    }
}
