//! DPoP (RFC 9449) at the resource server: `Authorization: DPoP <token>` with a `DPoP` proof
//! header. The proof is checked in full (see `proof`), the token like a bearer token (JWT or
//! introspection, cached), and the token's `cnf.jkt` must be the proof key's thumbprint. A
//! DPoP-bound token sent as plain `Bearer` is refused. Refusals carry
//! `WWW-Authenticate: DPoP error=..., algs="..."`; gRPC callers get status 16.

pub(crate) mod key;
pub(crate) mod proof;
pub(crate) mod state;

use std::sync::Arc;

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Uri};

use crate::error::{AuthError, AuthErrorKind};
use crate::identity::Identity;
use crate::response::{self, caller_kind, Answer, CallerKind};
use crate::shared::Shared;
use proof::{Expected, ProofError, Seen};

/// Tokens longer than this are refused without further work.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The access token of a request with `Authorization: DPoP <token>`; `Some(Err(()))` for such
/// a header that is malformed.
pub(crate) fn dpop_token(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let text = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("dpop") {
        return None;
    }
    let token = rest.trim();
    // RFC 9449 §7.1: token68.
    let valid = !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    Some(if valid { Ok(token) } else { Err(()) })
}

/// Why a DPoP request was refused.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The proof (`invalid_dpop_proof`).
    Proof(ProofError),
    /// No fresh server nonce (`use_dpop_nonce`), with the nonce to use.
    Nonce(String),
    /// The token itself, or its binding (`invalid_token`), or the provider unavailable.
    Token(AuthError),
    /// The replay cache is full of live proofs.
    Busy,
}

/// Validates a DPoP request: its proof, its token and the binding between them.
pub(crate) async fn authenticate(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    token: &str,
) -> Result<Identity, Refusal> {
    let mut proofs = headers.get_all("dpop").iter();
    let (Some(proof), None) = (proofs.next(), proofs.next()) else {
        return Err(Refusal::Proof(ProofError::Malformed));
    };
    let proof = proof
        .to_str()
        .map_err(|_| Refusal::Proof(ProofError::Malformed))?;
    let config = &shared.config;
    // The URL the caller used: the app's public origin (behind a proxy too) and the path.
    let mut url = config.redirect_url.clone();
    url.set_path(uri.path());
    url.set_query(None);
    url.set_fragment(None);
    let now = shared.now();
    let max_age = config.high_security.dpop_proof_max_age.as_secs();
    let expected = Expected {
        method: method.as_str(),
        url: &url,
        access_token: Some(token),
        now,
        max_age,
        leeway: config.clock_skew.as_secs(),
    };
    let (proof, nonce) = proof::check(proof, &expected).map_err(Refusal::Proof)?;
    if let Some(nonces) = &shared.dpop.nonces {
        if !nonce.is_some_and(|n| nonces.is_fresh(&n, now)) {
            return Err(Refusal::Nonce(nonces.current(now)));
        }
    }
    let identity = match shared.bearer_cached(token) {
        Some(result) => result,
        None => shared.validate_bearer(token).await,
    }
    .map_err(Refusal::Token)?;
    let bound = identity.dpop_jkt().is_some_and(|jkt| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            jkt.as_bytes(),
            proof.jkt.as_bytes(),
        ))
    });
    if !bound {
        return Err(Refusal::Token(AuthError::new(
            AuthErrorKind::InvalidToken,
            if identity.dpop_jkt().is_none() {
                "the token is not bound to a DPoP key"
            } else {
                "the DPoP proof's key is not the one the token is bound to"
            },
        )));
    }
    match shared.dpop.replay.record(&proof, max_age, now) {
        Seen::Fresh => Ok(identity),
        Seen::Replay => Err(Refusal::Proof(ProofError::Replay)),
        Seen::Full => Err(Refusal::Busy),
    }
}

/// The refusal of a DPoP-bound token sent as `Bearer` (RFC 9449 §7.2).
pub(crate) fn bound_as_bearer(headers: &HeaderMap) -> Answer {
    rejection(
        Refusal::Token(AuthError::new(
            AuthErrorKind::InvalidToken,
            "the token is DPoP-bound: send it as Authorization: DPoP with a proof",
        )),
        headers,
    )
}

/// The answer to a refused DPoP request: `401` (gRPC 16) with a `DPoP` challenge, or `503`
/// (gRPC 14) with `Retry-After` when the provider or the replay cache is unavailable.
pub(crate) fn rejection(refusal: Refusal, headers: &HeaderMap) -> Answer {
    let caller = match caller_kind(headers) {
        CallerKind::Grpc => CallerKind::Grpc,
        CallerKind::Api | CallerKind::Navigation => CallerKind::Api,
    };
    let (code, err, nonce) = match refusal {
        Refusal::Proof(why) => (
            "invalid_dpop_proof",
            AuthError::new(AuthErrorKind::InvalidToken, why.describe()),
            None,
        ),
        Refusal::Nonce(nonce) => (
            "use_dpop_nonce",
            AuthError::new(
                AuthErrorKind::InvalidToken,
                "the DPoP proof must carry the server's nonce",
            ),
            Some(nonce),
        ),
        Refusal::Token(err) => ("invalid_token", err, None),
        Refusal::Busy => (
            "",
            AuthError::new(
                AuthErrorKind::ProviderUnavailable,
                "too many DPoP proofs to remember; try again",
            ),
            None,
        ),
    };
    if err.kind() != AuthErrorKind::InvalidToken {
        tracing::error!(reason = %err, "DPoP request could not be validated");
        return crate::bearer::retry_later(response::reject(caller, err, headers));
    }
    tracing::debug!(reason = %err, "DPoP request refused");
    let description = err.message().replace(['"', '\\'], "'");
    let mut answer = response::reject(caller, err, headers);
    let challenge = format!(
        "DPoP error=\"{code}\", error_description=\"{description}\", algs=\"{}\"",
        proof::ALGS_PARAM
    );
    if let Ok(value) = HeaderValue::try_from(challenge) {
        answer.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    if let Some(nonce) = nonce.and_then(|n| HeaderValue::try_from(n).ok()) {
        answer.headers_mut().insert("dpop-nonce", nonce);
    }
    answer
}
