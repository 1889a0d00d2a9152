//! Signed authorization requests (JAR, RFC 9101): the authorization request's parameters as
//! a JWT signed with the client's key.

use serde_json::{Map, Value};

use crate::client_auth::signed_jwt;
use crate::error::{AuthError, AuthErrorKind};
use crate::shared::Shared;

/// How long a request object is valid.
const LIFETIME_SECS: u64 = 60;

/// The parameters to send instead of `params`: `client_id` and the signed `request` (and,
/// without PAR, `response_type` and `scope` again, as OpenID Connect Core §6.1 wants them in
/// the URL too).
pub(crate) fn sign_request(
    shared: &Shared,
    params: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, AuthError> {
    let Some(key) = &shared.config.client_key else {
        return Err(AuthError::new(
            AuthErrorKind::Internal,
            "signed request objects need a client key",
        ));
    };
    let config = &shared.config;
    let now = shared.now();
    let mut claims = Map::new();
    for (name, value) in &params {
        // OpenID Connect Core §6.1: `max_age` is a number in a request object.
        let value = match (name.as_str(), value.parse::<u64>()) {
            ("max_age", Ok(seconds)) => Value::from(seconds),
            _ => Value::from(value.as_str()),
        };
        claims.insert(name.clone(), value);
    }
    claims.insert("iss".into(), config.client_id.as_str().into());
    claims.insert(
        "aud".into(),
        shared.provider.metadata.issuer.as_str().into(),
    );
    claims.insert("iat".into(), now.into());
    claims.insert("nbf".into(), now.into());
    claims.insert("exp".into(), (now + LIFETIME_SECS).into());
    claims.insert(
        "jti".into(),
        crate::session::cookie::random_token(16).into(),
    );
    let request = signed_jwt(key, "oauth-authz-req+jwt", &Value::Object(claims));
    let mut sent = vec![
        ("client_id".to_owned(), config.client_id.clone()),
        ("request".to_owned(), request),
    ];
    if shared.provider.metadata.par_endpoint.is_none() {
        for (name, value) in params {
            if name == "response_type" || name == "scope" {
                sent.push((name, value));
            }
        }
    }
    Ok(sent)
}
