//! Pushed authorization requests (RFC 9126): the authorization request's parameters are
//! POSTed to the provider, authenticated as the client, and the browser carries only the
//! `request_uri` the provider answers.

use serde::Deserialize;
use url::Url;

use super::provider_calls::{printable, status_not_now, OAuthError};
use crate::client_auth::ClientAuth;
use crate::error::{AuthError, AuthErrorKind};
use crate::shared::Shared;

/// Longest `request_uri` accepted from the provider (it goes into a redirect URL).
const MAX_REQUEST_URI: usize = 1024;

#[derive(Deserialize)]
struct Pushed {
    request_uri: String,
}

/// Pushes `params` to `endpoint`; the provider's `request_uri` for them.
///
/// Failures: [`AuthErrorKind::ProviderUnavailable`] when there is no answer, a server error,
/// `429`/`408` or an OAuth `temporarily_unavailable`/`server_error`;
/// [`AuthErrorKind::ProviderError`] when the provider refuses the request (RFC 9126 §2.3) or
/// answers something that is no pushed request.
pub(crate) async fn push(
    shared: &Shared,
    endpoint: &Url,
    params: &[(&str, &str)],
) -> Result<String, AuthError> {
    // Client authentication other than HTTP Basic puts `client_id` into the body itself: the
    // request's own would be a repeated parameter.
    let basic = shared.provider.metadata.client_auth == ClientAuth::ClientSecretBasic;
    let params: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(name, _)| basic || *name != "client_id")
        .collect();
    let (status, body) = shared
        .provider
        .authenticated_post(&shared.config, shared.now(), endpoint, &params)
        .await?;
    let unavailable = |message: String| AuthError::new(AuthErrorKind::ProviderUnavailable, message);
    let refused = |message: String| AuthError::new(AuthErrorKind::ProviderError, message);
    if status_not_now(status) {
        return Err(unavailable(format!(
            "the pushed authorization request endpoint answered HTTP {status}"
        )));
    }
    if !status.is_success() {
        return Err(match OAuthError::of(&body) {
            OAuthError::NotNow(code) => unavailable(format!(
                "the pushed authorization request endpoint is unavailable: {}",
                printable(&code)
            )),
            OAuthError::Refused {
                code,
                description: Some(description),
            } => refused(format!(
                "the identity provider refused the login request: {} ({})",
                printable(&code),
                printable(&description)
            )),
            OAuthError::Refused {
                code,
                description: None,
            } => refused(format!(
                "the identity provider refused the login request: {}",
                printable(&code)
            )),
            OAuthError::Unreadable => refused(format!(
                "the identity provider refused the login request (HTTP {status})"
            )),
        });
    }
    let pushed: Pushed = serde_json::from_slice(&body).map_err(|_| {
        refused("the pushed authorization request answer has no request_uri".into())
    })?;
    let uri = pushed.request_uri;
    if !usable_request_uri(&uri) {
        return Err(refused(
            "the pushed authorization request answer has an unusable request_uri".into(),
        ));
    }
    Ok(uri)
}

/// Whether a pushed request's `request_uri` can go into the browser's authorization URL: not
/// empty, bounded, no control characters.
fn usable_request_uri(uri: &str) -> bool {
    !uri.is_empty() && uri.len() <= MAX_REQUEST_URI && !uri.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_request_uris_are_refused() {
        assert!(usable_request_uri("urn:ietf:params:oauth:request_uri:abc"));
        assert!(usable_request_uri(&"u".repeat(MAX_REQUEST_URI)));
        assert!(!usable_request_uri(""));
        assert!(!usable_request_uri(&"u".repeat(MAX_REQUEST_URI + 1)));
        assert!(!usable_request_uri(
            "urn:x\r\nLocation: https://evil.example"
        ));
        assert!(!usable_request_uri("urn:\u{7f}"));
    }
}
