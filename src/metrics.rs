//! Counters of what the layer did ([`Metrics`], a snapshot for the app to export), and the
//! `tracing` span of each of the layer's own routes with its outcome.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tracing::Instrument;

use crate::error::{AuthError, AuthErrorKind};
use crate::response::Answer;

/// Every failure kind, in the order of the failure counters.
const KINDS: [AuthErrorKind; 8] = [
    AuthErrorKind::LoginRequired,
    AuthErrorKind::InvalidToken,
    AuthErrorKind::InsufficientScope,
    AuthErrorKind::CsrfCheckFailed,
    AuthErrorKind::InvalidCallback,
    AuthErrorKind::ProviderError,
    AuthErrorKind::ProviderUnavailable,
    AuthErrorKind::Internal,
];

fn index_of(kind: AuthErrorKind) -> usize {
    KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KINDS.len() - 1)
}

/// A snapshot of the layer's counters since it was built (all providers of the layer
/// together), from [`OidcLayer::metrics`](crate::OidcLayer::metrics). Counting costs one
/// relaxed atomic add; the crate depends on no metrics backend: export the numbers with
/// whatever the app uses (Prometheus, OpenTelemetry, logs).
///
/// # Example
///
/// ```
/// use tower_oidc::{AuthErrorKind, Metrics};
///
/// fn export(m: &Metrics) -> String {
///     let mut out = format!(
///         "oidc_logins_total {}\noidc_refreshes_total {}\noidc_bearer_cache_hits_total {}\n",
///         m.logins, m.refreshes, m.bearer_cache_hits,
///     );
///     for (kind, n) in m.login_failures_by_kind() {
///         out += &format!("oidc_login_failures_total{{reason=\"{kind:?}\"}} {n}\n");
///     }
///     out
/// }
/// # let _ = export;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Logins completed (a session was created).
    pub logins: u64,
    /// Logins that failed at the callback, whatever the reason (see
    /// [`login_failures_by_kind`](Self::login_failures_by_kind)).
    pub login_failures: u64,
    /// Logins the app's post-login hook refused with its own page.
    pub logins_refused_by_app: u64,
    /// Sessions refreshed at the provider.
    pub refreshes: u64,
    /// Refreshes that failed (refused, or the provider unavailable).
    pub refresh_failures: u64,
    /// Bearer requests answered from the verified-token cache.
    pub bearer_cache_hits: u64,
    /// Bearer requests whose token was not in the cache (verified or introspected then).
    pub bearer_cache_misses: u64,
    /// Sessions revoked: local logouts and sessions named by back-channel logouts.
    pub revocations: u64,
    failures_by_kind: [u64; KINDS.len()],
}

impl Metrics {
    /// The login failures by reason, for the reasons that occurred.
    pub fn login_failures_by_kind(&self) -> impl Iterator<Item = (AuthErrorKind, u64)> + '_ {
        KINDS
            .iter()
            .zip(self.failures_by_kind.iter())
            .filter(|(_, n)| **n != 0)
            .map(|(k, n)| (*k, *n))
    }
}

/// The live counters of one provider of a layer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    logins: AtomicU64,
    logins_refused_by_app: AtomicU64,
    failures_by_kind: [AtomicU64; KINDS.len()],
    refreshes: AtomicU64,
    refresh_failures: AtomicU64,
    bearer_cache_hits: AtomicU64,
    bearer_cache_misses: AtomicU64,
    revocations: AtomicU64,
}

impl Counters {
    pub(crate) fn login(&self) {
        self.logins.fetch_add(1, Relaxed);
    }

    pub(crate) fn login_refused_by_app(&self) {
        self.logins_refused_by_app.fetch_add(1, Relaxed);
    }

    pub(crate) fn login_failure(&self, kind: AuthErrorKind) {
        self.failures_by_kind[index_of(kind)].fetch_add(1, Relaxed);
    }

    pub(crate) fn refresh(&self, ok: bool) {
        let counter = if ok {
            &self.refreshes
        } else {
            &self.refresh_failures
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn bearer_cache(&self, hit: bool) {
        let counter = if hit {
            &self.bearer_cache_hits
        } else {
            &self.bearer_cache_misses
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn revocations(&self, n: u64) {
        self.revocations.fetch_add(n, Relaxed);
    }

    /// Adds these counters to `m`.
    pub(crate) fn add_to(&self, m: &mut Metrics) {
        m.logins += self.logins.load(Relaxed);
        m.logins_refused_by_app += self.logins_refused_by_app.load(Relaxed);
        for (total, n) in m.failures_by_kind.iter_mut().zip(&self.failures_by_kind) {
            let n = n.load(Relaxed);
            *total += n;
            m.login_failures += n;
        }
        m.refreshes += self.refreshes.load(Relaxed);
        m.refresh_failures += self.refresh_failures.load(Relaxed);
        m.bearer_cache_hits += self.bearer_cache_hits.load(Relaxed);
        m.bearer_cache_misses += self.bearer_cache_misses.load(Relaxed);
        m.revocations += self.revocations.load(Relaxed);
    }
}

/// The outcome of one of the layer's answers, for its span: the failure kind, or `ok`.
pub(crate) fn outcome(answer: &Answer) -> &'static str {
    match answer.extensions().get::<AuthError>().map(AuthError::kind) {
        Some(AuthErrorKind::LoginRequired) => "login_required",
        Some(AuthErrorKind::InvalidToken) => "invalid_token",
        Some(AuthErrorKind::InsufficientScope) => "insufficient_scope",
        Some(AuthErrorKind::CsrfCheckFailed) => "csrf_check_failed",
        Some(AuthErrorKind::InvalidCallback) => "invalid_callback",
        Some(AuthErrorKind::ProviderError) => "provider_error",
        Some(AuthErrorKind::ProviderUnavailable) => "provider_unavailable",
        Some(AuthErrorKind::Internal) => "internal",
        None => "ok",
    }
}

/// The span of one of the layer's routes (`oidc.login`, `oidc.callback`, ...), with the
/// fields `outcome` and `status` filled in when the answer is known.
pub(crate) fn route_span(route: &'static str) -> tracing::Span {
    tracing::info_span!(
        "oidc",
        route,
        outcome = tracing::field::Empty,
        status = tracing::field::Empty
    )
}

/// Records the answer's outcome and status on `span`.
pub(crate) fn record(span: &tracing::Span, answer: &Answer) {
    span.record("outcome", outcome(answer));
    span.record("status", answer.status().as_u16());
}

/// Runs `answer` inside `span` and records its outcome.
pub(crate) async fn traced(span: tracing::Span, answer: impl Future<Output = Answer>) -> Answer {
    let answer = answer.instrument(span.clone()).await;
    record(&span, &answer);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_failures_keep_their_kind() {
        let (a, b) = (Counters::default(), Counters::default());
        a.login();
        b.login();
        a.login_failure(AuthErrorKind::ProviderError);
        b.login_failure(AuthErrorKind::ProviderError);
        b.login_failure(AuthErrorKind::Internal);
        a.refresh(true);
        a.refresh(false);
        a.bearer_cache(true);
        a.bearer_cache(false);
        a.bearer_cache(false);
        b.revocations(3);
        b.login_refused_by_app();
        let mut m = Metrics::default();
        a.add_to(&mut m);
        b.add_to(&mut m);
        assert_eq!(
            (m.logins, m.login_failures, m.logins_refused_by_app),
            (2, 3, 1)
        );
        assert_eq!((m.refreshes, m.refresh_failures), (1, 1));
        assert_eq!((m.bearer_cache_hits, m.bearer_cache_misses), (1, 2));
        assert_eq!(m.revocations, 3);
        assert_eq!(
            m.login_failures_by_kind().collect::<Vec<_>>(),
            [
                (AuthErrorKind::ProviderError, 2),
                (AuthErrorKind::Internal, 1)
            ]
        );
    }

    #[test]
    fn every_kind_has_its_own_counter() {
        for (i, kind) in KINDS.iter().enumerate() {
            assert_eq!(index_of(*kind), i);
        }
    }
}
