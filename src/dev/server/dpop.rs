//! DPoP (RFC 9449) at the development provider: proofs at the token and userinfo endpoints,
//! checked with the crate's own proof rules, and the provider's nonce.

use http::header::HeaderMap;

use super::response::TokenError;
use super::{now, Shared};
use crate::dpop::proof::{self, Expected};

/// How old a proof may be here.
const MAX_AGE: u64 = 300;

impl Shared {
    /// The thumbprint of the key of the request's DPoP proof for `method` at `endpoint`
    /// (with `access_token` for a resource request); `None` without a proof.
    pub(super) fn dpop_jkt(
        &self,
        headers: &HeaderMap,
        method: &str,
        endpoint: &str,
        access_token: Option<&str>,
    ) -> Result<Option<String>, TokenError> {
        let mut proofs = headers.get_all("dpop").iter();
        let Some(first) = proofs.next() else {
            return Ok(None);
        };
        let invalid = |why: &str| TokenError::new("invalid_dpop_proof", why);
        if proofs.next().is_some() {
            return Err(invalid("more than one DPoP header"));
        }
        let text = first.to_str().map_err(|_| invalid("not text"))?;
        let url = url::Url::parse(endpoint).map_err(|_| invalid("endpoint URL"))?;
        let expected = Expected {
            method,
            url: &url,
            access_token,
            now: now(),
            max_age: MAX_AGE,
            leeway: 60,
        };
        let (proof, nonce) = proof::check(text, &expected).map_err(|e| invalid(e.describe()))?;
        if let Some(wanted) = &self.dpop_nonce {
            if nonce.as_deref() != Some(wanted.as_str()) {
                let mut e = TokenError::new("use_dpop_nonce", "a DPoP nonce is required");
                e.dpop_nonce = Some(wanted.clone());
                return Err(e);
            }
        }
        Ok(Some(proof.jkt))
    }
}
