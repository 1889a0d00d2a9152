//! `POST {prefix}/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0. The provider
//! posts a signed logout token; the sessions it names are recorded as revoked and refused
//! from their next request on.
//!
//! The token's signature is checked with the provider's keys first (as for an ID token), then
//! [`check_logout_claims`] and [`check_logout_header_typ`] decide whether it is a logout token
//! for this client at all (§2.4, §2.6).

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use serde_json::{Map, Value};

use crate::jwt::Unverified;
use crate::revocation::Revocation;
use std::sync::Arc;

use crate::provider::VerifyError;
use crate::response::Answer;
use crate::shared::{Shared, Tenants};

/// Logout tokens older than this are refused (and their `jti` remembered this long).
const MAX_TOKEN_AGE: u64 = 600;

/// Handles the form body of a back-channel logout request.
pub(crate) async fn handle(shared: &Arc<Shared>, form: &str) -> Answer {
    match logout(shared, form).await {
        Ok(()) => answer(StatusCode::OK, None),
        Err((status, reason)) => {
            tracing::info!(reason, "back-channel logout refused");
            answer(status, Some(reason))
        }
    }
}

async fn logout(shared: &Arc<Shared>, form: &str) -> Result<(), (StatusCode, &'static str)> {
    let bad = |reason| (StatusCode::BAD_REQUEST, reason);
    let mut tokens = form_urlencoded::parse(form.as_bytes())
        .filter(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned());
    let token = tokens.next().ok_or(bad("no logout_token"))?;
    if tokens.next().is_some() {
        return Err(bad("logout_token is repeated"));
    }
    let typ = Unverified::parse(&token)
        .map_err(|_| bad("logout token is malformed"))?
        .header
        .typ;
    if !check_logout_header_typ(typ.as_deref()) {
        return Err(bad("logout token has the wrong type (typ)"));
    }
    // With several providers, the one the token names (its keys then decide).
    let shared = &shared.for_jwt(&token);
    let meta = &shared.provider.metadata;
    let (_, payload) = shared
        .provider
        .verify_jwt(&token, &meta.id_token_algs)
        .await
        .map_err(|e| match e {
            VerifyError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the provider's keys could not be fetched",
            ),
            VerifyError::Jwt(_) => bad("logout token signature is invalid"),
        })?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| bad("logout token claims are not an object"))?;
    let config = &shared.config;
    let sessions = &shared.sessions;
    let now = shared.now();
    let skew = config.clock_skew.as_secs();
    let checked = check_logout_claims(
        &claims,
        &meta.issuer,
        &config.client_id,
        now,
        skew,
        MAX_TOKEN_AGE,
    )
    .map_err(bad)?;
    let store = &sessions.revocations;
    let jti_until = now
        .saturating_add(MAX_TOKEN_AGE)
        .saturating_add(skew.saturating_mul(2));
    if !store.first_use_of_jti(&meta.issuer, &checked.jti, jti_until, now) {
        return Err(bad("logout token was already used (jti)"));
    }
    tracing::info!(
        sid = checked.sid.as_deref().unwrap_or("-"),
        subject = checked.sub.as_deref().unwrap_or("-"),
        "back-channel logout"
    );
    store.revoke(
        Revocation {
            issuer: meta.issuer.clone(),
            sid: checked.sid,
            sub: checked.sub,
            // A provider clock behind ours must not spare a session created just before.
            at: checked.iat.max(now),
        },
        now.saturating_add(sessions.session_lifetime.as_secs())
            .saturating_add(skew),
    );
    shared.counters.revocations(1);
    Ok(())
}

fn answer(status: StatusCode, error: Option<&str>) -> Answer {
    let body = error
        .map(|reason| {
            serde_json::json!({"error": "invalid_request", "error_description": reason}).to_string()
        })
        .unwrap_or_default();
    let mut res = Response::new(bytes::Bytes::from(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if error.is_some() {
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    res
}

/// The member of `events` that makes a JWT a back-channel logout token (§2.4).
pub(crate) const BACKCHANNEL_LOGOUT_EVENT: &str =
    "http://schemas.openid.net/event/backchannel-logout";

/// The claims of a logout token that passed [`check_logout_claims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogoutClaims {
    /// The provider's session that ended; `None` means every session of `sub`.
    pub(crate) sid: Option<String>,
    /// The user whose session(s) ended.
    pub(crate) sub: Option<String>,
    /// The token's id, for replay detection.
    pub(crate) jti: String,
    /// When the provider issued the token (unix seconds).
    pub(crate) iat: u64,
    /// When the token expires, if it says so (unix seconds).
    pub(crate) exp: Option<u64>,
}

/// Whether a logout token's `typ` header is acceptable: absent, `JWT` or `logout+jwt`
/// (case-insensitive, with or without the `application/` prefix, RFC 7515 §4.1.9). Any other
/// type (e.g. `at+jwt`, an access token) is another kind of token.
pub(crate) fn check_logout_header_typ(typ: Option<&str>) -> bool {
    let Some(typ) = typ else {
        return true;
    };
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case("jwt") || bare.eq_ignore_ascii_case("logout+jwt")
}

/// Checks the claims of a logout token whose signature was already verified (§2.4, §2.6).
///
/// `skew` is the tolerated clock difference; `max_age` how old (by `iat`) a token may be, so
/// a captured token cannot be replayed later even when it has no `exp`. The error is a short
/// reason, fit for a log line and an `error_description` (ASCII, no quotes or backslashes).
pub(crate) fn check_logout_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
    now: u64,
    skew: u64,
    max_age: u64,
) -> Result<LogoutClaims, &'static str> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err("logout token issuer (`iss`) is not the provider");
    }
    let for_us = match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(list)) => list.iter().any(|aud| aud.as_str() == Some(client_id)),
        _ => false,
    };
    if !for_us {
        return Err("logout token audience (`aud`) does not include this client");
    }

    let iat = match claims.get("iat") {
        None => return Err("logout token has no issue time (`iat`)"),
        Some(iat) => numeric_date(iat).ok_or("logout token `iat` is not a number")?,
    };
    if iat > now.saturating_add(skew) {
        return Err("logout token is issued in the future (`iat`)");
    }
    if now > iat.saturating_add(max_age).saturating_add(skew) {
        return Err("logout token is too old (`iat`)");
    }
    let exp = match claims.get("exp") {
        None => None,
        Some(exp) => Some(numeric_date(exp).ok_or("logout token `exp` is not a number")?),
    };
    if exp.is_some_and(|exp| now > exp.saturating_add(skew)) {
        return Err("logout token has expired (`exp`)");
    }

    match claims.get("events") {
        Some(Value::Object(events)) => match events.get(BACKCHANNEL_LOGOUT_EVENT) {
            Some(Value::Object(_)) => {}
            Some(_) => return Err("logout token's back-channel logout event is not an object"),
            None => return Err("logout token `events` lacks the back-channel logout event"),
        },
        Some(_) => return Err("logout token `events` is not an object"),
        None => return Err("logout token has no `events`"),
    }
    if claims.contains_key("nonce") {
        // An ID token carries the login's nonce; a logout token must not (§2.4).
        return Err("logout token must not contain `nonce`");
    }
    let jti = match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() => jti.clone(),
        _ => return Err("logout token has no token id (`jti`)"),
    };
    let sid = optional_id(claims, "sid").ok_or("logout token `sid` is not a non-empty string")?;
    let sub = optional_id(claims, "sub").ok_or("logout token `sub` is not a non-empty string")?;
    if sid.is_none() && sub.is_none() {
        return Err("logout token has neither `sid` nor `sub`");
    }
    Ok(LogoutClaims {
        sid,
        sub,
        jti,
        iat,
        exp,
    })
}

/// A JWT NumericDate: non-negative seconds, possibly with a fraction (dropped).
fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        let secs = value.as_f64()?;
        // `as` saturates; the range check keeps negative and non-finite values out.
        (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
    })
}

/// `Some(None)` when absent, `Some(Some(id))` for a non-empty string, `None` otherwise.
fn optional_id(claims: &Map<String, Value>, name: &str) -> Option<Option<String>> {
    match claims.get(name) {
        None => Some(None),
        Some(Value::String(id)) if !id.is_empty() => Some(Some(id.clone())),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://id.example.com";
    const CLIENT: &str = "my-client";
    const NOW: u64 = 1_700_000_000;
    const SKEW: u64 = 60;
    const MAX_AGE: u64 = 300;

    fn valid() -> Map<String, Value> {
        let claims = json!({
            "iss": ISS,
            "aud": CLIENT,
            "iat": NOW - 10,
            "exp": NOW + 110,
            "jti": "token-1",
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
            "sid": "session-1",
            "sub": "user-1",
        });
        match claims {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn with(name: &str, value: Value) -> Map<String, Value> {
        let mut claims = valid();
        claims.insert(name.to_owned(), value);
        claims
    }

    fn without(name: &str) -> Map<String, Value> {
        let mut claims = valid();
        claims.remove(name);
        claims
    }

    fn check(claims: &Map<String, Value>) -> Result<LogoutClaims, &'static str> {
        check_logout_claims(claims, ISS, CLIENT, NOW, SKEW, MAX_AGE)
    }

    #[track_caller]
    fn rejected(claims: Map<String, Value>, reason: &str) {
        assert_eq!(check(&claims), Err(reason));
    }

    #[test]
    fn accepts_sid_and_sub() {
        assert_eq!(
            check(&valid()),
            Ok(LogoutClaims {
                sid: Some("session-1".into()),
                sub: Some("user-1".into()),
                jti: "token-1".into(),
                iat: NOW - 10,
                exp: Some(NOW + 110),
            })
        );
    }

    #[test]
    fn accepts_sid_only_and_sub_only() {
        let sid_only = check(&without("sub")).unwrap();
        assert_eq!(
            (sid_only.sid.as_deref(), sid_only.sub),
            (Some("session-1"), None)
        );
        let sub_only = check(&without("sid")).unwrap();
        assert_eq!(
            (sub_only.sid, sub_only.sub.as_deref()),
            (None, Some("user-1"))
        );
    }

    #[test]
    fn accepts_audience_list_absent_exp_and_fractional_dates() {
        assert!(check(&with("aud", json!(["other", CLIENT]))).is_ok());
        assert_eq!(check(&without("exp")).unwrap().exp, None);
        let mut fractional = with("iat", json!((NOW - 10) as f64 + 0.5));
        fractional.insert("exp".into(), json!((NOW + 110) as f64 + 0.25));
        let claims = check(&fractional).unwrap();
        assert_eq!((claims.iat, claims.exp), (NOW - 10, Some(NOW + 110)));
        // Extra events and claims are fine.
        let mut events = valid();
        events["events"]["https://example.com/other"] = json!({});
        events.insert("extra".into(), json!(1));
        assert!(check(&events).is_ok());
    }

    #[test]
    fn rejects_another_issuer() {
        let reason = "logout token issuer (`iss`) is not the provider";
        rejected(with("iss", json!("https://evil.example.com")), reason);
        rejected(with("iss", json!(ISS.to_owned() + "/")), reason);
        rejected(with("iss", json!([ISS])), reason);
        rejected(without("iss"), reason);
    }

    #[test]
    fn rejects_another_audience() {
        let reason = "logout token audience (`aud`) does not include this client";
        rejected(with("aud", json!("other-client")), reason);
        rejected(with("aud", json!(["a", "b"])), reason);
        rejected(with("aud", json!([])), reason);
        rejected(with("aud", json!({ CLIENT: true })), reason);
        rejected(without("aud"), reason);
    }

    #[test]
    fn iat_is_required_not_future_not_stale() {
        rejected(without("iat"), "logout token has no issue time (`iat`)");
        rejected(
            with("iat", json!("1700000000")),
            "logout token `iat` is not a number",
        );
        rejected(with("iat", json!(-5)), "logout token `iat` is not a number");
        let future = "logout token is issued in the future (`iat`)";
        rejected(with("iat", json!(NOW + SKEW + 1)), future);
        assert!(
            check(&with("iat", json!(NOW + SKEW))).is_ok(),
            "within skew"
        );
        let stale = "logout token is too old (`iat`)";
        rejected(with("iat", json!(NOW - MAX_AGE - SKEW - 1)), stale);
        rejected(with("iat", json!(0)), stale);
        let mut edge = with("iat", json!(NOW - MAX_AGE - SKEW));
        edge.remove("exp");
        assert!(check(&edge).is_ok(), "as old as allowed");
    }

    #[test]
    fn rejects_expired() {
        let reason = "logout token has expired (`exp`)";
        rejected(with("exp", json!(NOW - SKEW - 1)), reason);
        rejected(with("exp", json!(0)), reason);
        assert!(
            check(&with("exp", json!(NOW - SKEW))).is_ok(),
            "within skew"
        );
        rejected(
            with("exp", json!(null)),
            "logout token `exp` is not a number",
        );
    }

    #[test]
    fn rejects_missing_jti() {
        let reason = "logout token has no token id (`jti`)";
        rejected(without("jti"), reason);
        rejected(with("jti", json!("")), reason);
        rejected(with("jti", json!(17)), reason);
    }

    #[test]
    fn rejects_without_the_logout_event() {
        rejected(without("events"), "logout token has no `events`");
        rejected(
            with("events", json!([BACKCHANNEL_LOGOUT_EVENT])),
            "logout token `events` is not an object",
        );
        rejected(
            with("events", json!(BACKCHANNEL_LOGOUT_EVENT)),
            "logout token `events` is not an object",
        );
        let lacks = "logout token `events` lacks the back-channel logout event";
        rejected(with("events", json!({})), lacks);
        rejected(
            with(
                "events",
                json!({ "http://schemas.openid.net/event/other": {} }),
            ),
            lacks,
        );
        let not_object = "logout token's back-channel logout event is not an object";
        for value in [json!(true), json!("yes"), json!([]), json!(null)] {
            rejected(
                with("events", json!({ BACKCHANNEL_LOGOUT_EVENT: value })),
                not_object,
            );
        }
    }

    #[test]
    fn rejects_neither_sid_nor_sub() {
        let mut claims = without("sid");
        claims.remove("sub");
        rejected(claims, "logout token has neither `sid` nor `sub`");
        rejected(
            with("sid", json!(42)),
            "logout token `sid` is not a non-empty string",
        );
        rejected(
            with("sub", json!("")),
            "logout token `sub` is not a non-empty string",
        );
        let mut null_sid = without("sub");
        null_sid.insert("sid".into(), json!(null));
        rejected(null_sid, "logout token `sid` is not a non-empty string");
    }

    #[test]
    fn rejects_nonce() {
        let reason = "logout token must not contain `nonce`";
        rejected(with("nonce", json!("n-0S6_WzA2Mj")), reason);
        rejected(with("nonce", json!(null)), reason);
    }

    #[test]
    fn reasons_fit_an_error_description() {
        // RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E.
        let cases = [
            with("iss", json!("x")),
            with("aud", json!("x")),
            without("iat"),
            with("iat", json!("x")),
            with("iat", json!(NOW + 1000)),
            with("iat", json!(0)),
            with("exp", json!("x")),
            with("exp", json!(0)),
            without("events"),
            with("events", json!({})),
            with("events", json!(1)),
            with("events", json!({ BACKCHANNEL_LOGOUT_EVENT: 1 })),
            with("nonce", json!("x")),
            without("jti"),
            with("sid", json!(1)),
            with("sub", json!(1)),
        ];
        for claims in cases {
            let reason = check(&claims).unwrap_err();
            assert!(
                reason
                    .bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
                "{reason}"
            );
        }
    }

    #[test]
    fn typ_header() {
        for ok in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("logout+jwt"),
            Some("Logout+JWT"),
            Some("application/logout+jwt"),
            Some("APPLICATION/JWT"),
        ] {
            assert!(check_logout_header_typ(ok), "{ok:?}");
        }
        for bad in [
            "at+jwt",
            "application/at+jwt",
            "secevent+jwt",
            "JOSE",
            "",
            "application/",
            "logout+jwt ",
            "jwt+logout",
        ] {
            assert!(!check_logout_header_typ(Some(bad)), "{bad}");
        }
    }
}
