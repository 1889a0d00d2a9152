//! Client authentication at the token endpoint (RFC 6749 §2.3.1).

use http::header::{self, HeaderMap, HeaderValue};
use subtle::ConstantTimeEq as _;

use super::params::Params;
use super::token::TokenError;
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
