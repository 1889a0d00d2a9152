//! Caller-kind detection and the answers the layer gives: one status table shared by HTTP
//! and gRPC.
//!
//! | failure                    | navigation      | fetch / API                       | gRPC |
//! |----------------------------|-----------------|-----------------------------------|------|
//! | login required             | 302 to provider | 401 `Bearer`                      | 16   |
//! | invalid or expired bearer token | 401 (bearer callers are never redirected) | 401 `Bearer error="invalid_token"` | 16 |
//! | insufficient scope         | 403 JSON        | 403 `insufficient_scope`          | 7    |
//! | missing anti-CSRF header   | 403 JSON        | 403 `csrf_check_failed`           | 7    |
//!
//! An invalid or expired session cookie is no session: the "login required" row.
//! | bad callback / provider error | 400 page     | 400                               | 16   |
//! | provider unavailable       | 503 page        | 503                               | 14   |
//! | internal                   | 500 page        | 500                               | 13   |

use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use bytes::Bytes;

use crate::error::{AuthError, AuthErrorKind};

/// Who is calling, which decides how a rejection is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallerKind {
    /// A browser navigating to a page: gets redirects and HTML pages.
    Navigation,
    /// A script (`fetch`, XHR) or another program: gets status codes and JSON.
    Api,
    /// A gRPC (or gRPC-Web) client: gets HTTP 200 with `grpc-status`.
    Grpc,
}

/// Classifies a request by its headers (see the crate docs, "Answers by caller kind").
pub(crate) fn caller_kind(headers: &HeaderMap) -> CallerKind {
    if headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/grpc"))
    {
        return CallerKind::Grpc;
    }
    if headers.contains_key("x-requested-with") {
        return CallerKind::Api;
    }
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return if mode.as_bytes().eq_ignore_ascii_case(b"navigate") {
            CallerKind::Navigation
        } else {
            CallerKind::Api
        };
    }
    let wants_html = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    if wants_html {
        CallerKind::Navigation
    } else {
        CallerKind::Api
    }
}

/// An answer written by the layer (HTML page, redirect, JSON error or gRPC status); turned
/// into the service's body type at the end.
pub(crate) type Answer = Response<Bytes>;

fn status_of(kind: AuthErrorKind) -> StatusCode {
    match kind {
        AuthErrorKind::LoginRequired | AuthErrorKind::InvalidToken => StatusCode::UNAUTHORIZED,
        AuthErrorKind::InsufficientScope | AuthErrorKind::CsrfCheckFailed => StatusCode::FORBIDDEN,
        AuthErrorKind::InvalidCallback | AuthErrorKind::ProviderError => StatusCode::BAD_REQUEST,
        AuthErrorKind::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        AuthErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn grpc_code_of(kind: AuthErrorKind) -> u8 {
    match kind {
        AuthErrorKind::LoginRequired
        | AuthErrorKind::InvalidToken
        | AuthErrorKind::InvalidCallback
        | AuthErrorKind::ProviderError => 16,
        AuthErrorKind::InsufficientScope | AuthErrorKind::CsrfCheckFailed => 7,
        AuthErrorKind::ProviderUnavailable => 14,
        AuthErrorKind::Internal => 13,
    }
}

/// A generic, secret-free description for bodies; details go to `tracing`.
fn public_message(kind: AuthErrorKind) -> &'static str {
    match kind {
        AuthErrorKind::LoginRequired => "login required",
        AuthErrorKind::InvalidToken => "the credentials are invalid or expired",
        AuthErrorKind::InsufficientScope => "insufficient scope",
        AuthErrorKind::CsrfCheckFailed => "missing anti-CSRF header",
        AuthErrorKind::InvalidCallback => "the login could not be completed",
        AuthErrorKind::ProviderError => "the identity provider refused the login",
        AuthErrorKind::ProviderUnavailable => "the identity provider is unavailable",
        AuthErrorKind::Internal => "internal error",
    }
}

/// The answer for a caller that is not navigating (or for which no redirect makes sense).
pub(crate) fn reject(caller: CallerKind, err: AuthError, headers: &HeaderMap) -> Answer {
    let kind = err.kind();
    let mut res = match caller {
        CallerKind::Grpc => {
            let content_type = headers
                .get(CONTENT_TYPE)
                .filter(|ct| ct.as_bytes().starts_with(b"application/grpc-web"))
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("application/grpc"));
            let mut res = Response::new(Bytes::new());
            let h = res.headers_mut();
            h.insert(CONTENT_TYPE, content_type);
            h.insert(
                "grpc-status",
                HeaderValue::from(u16::from(grpc_code_of(kind))),
            );
            h.insert("grpc-message", HeaderValue::from_static(grpc_message(kind)));
            res
        }
        CallerKind::Api => json_error(&err),
        CallerKind::Navigation => html_page(
            status_of(kind),
            public_message(kind),
            public_message(kind),
            None,
        ),
    };
    res.extensions_mut().insert(err);
    res
}

/// A logged-in caller that is not allowed: `403` (JSON, also for a browser: the login would
/// not help) with `WWW-Authenticate: Bearer error="insufficient_scope"` naming `scopes` when
/// given, or gRPC status 7.
pub(crate) fn forbidden(headers: &HeaderMap, scopes: &[String]) -> Answer {
    let caller = match caller_kind(headers) {
        CallerKind::Grpc => CallerKind::Grpc,
        _ => CallerKind::Api,
    };
    let mut answer = reject(
        caller,
        AuthError::new(AuthErrorKind::InsufficientScope, "insufficient scope"),
        headers,
    );
    if caller == CallerKind::Api && !scopes.is_empty() {
        let challenge = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\"",
            scopes.join(" ").replace(['"', '\\'], "")
        );
        if let Ok(v) = HeaderValue::try_from(challenge) {
            answer.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
    }
    answer
}

fn grpc_message(kind: AuthErrorKind) -> &'static str {
    // Percent-encoded as the gRPC spec asks (spaces are allowed as they are).
    public_message(kind)
}

fn json_error(err: &AuthError) -> Answer {
    let kind = err.kind();
    // Descriptions of token failures are fixed texts of this crate (no token content), useful
    // to clients (e.g. "the token has expired" means: refresh it).
    let description = match kind {
        AuthErrorKind::InvalidToken | AuthErrorKind::InsufficientScope => err.message(),
        _ => public_message(kind),
    };
    let quoted = description.replace(['"', '\\'], "'");
    let (code, challenge) = match kind {
        AuthErrorKind::LoginRequired => ("unauthenticated", Some("Bearer".to_owned())),
        AuthErrorKind::InvalidToken => (
            "invalid_token",
            Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{quoted}\""
            )),
        ),
        AuthErrorKind::InsufficientScope => (
            "insufficient_scope",
            Some(format!(
                "Bearer error=\"insufficient_scope\", error_description=\"{quoted}\""
            )),
        ),
        AuthErrorKind::CsrfCheckFailed => ("csrf_check_failed", None),
        AuthErrorKind::InvalidCallback => ("invalid_request", None),
        AuthErrorKind::ProviderError => ("access_denied", None),
        AuthErrorKind::ProviderUnavailable => ("temporarily_unavailable", None),
        AuthErrorKind::Internal => ("server_error", None),
    };
    let body = serde_json::json!({
        "error": code,
        "error_description": description,
    });
    let mut res = Response::new(Bytes::from(body.to_string()));
    *res.status_mut() = status_of(kind);
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = challenge.and_then(|c| HeaderValue::try_from(c).ok()) {
        h.insert(WWW_AUTHENTICATE, challenge);
    }
    res
}

/// A `302 Found` to `location`, never cached.
pub(crate) fn redirect(location: &str) -> Answer {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            res.headers_mut().insert(LOCATION, v);
        }
        Err(_) => {
            // Every location we build is ASCII; refuse rather than send a broken redirect.
            tracing::error!("refusing to redirect to a location that is not a valid header");
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A small HTML page: a heading, a sentence, and optionally one link.
pub(crate) fn html_page(
    status: StatusCode,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> Answer {
    let link = link
        .map(|(href, text)| {
            format!(
                "<p><a href=\"{}\">{}</a></p>",
                escape_html(href),
                escape_html(text)
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body><h1>{t}</h1><p>{m}</p>{link}</body></html>",
        t = escape_html(title),
        m = escape_html(message),
    );
    let mut res = Response::new(Bytes::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The page or JSON answer for a failure, by caller kind, with `err` in the extensions.
pub(crate) fn error_answer(
    caller: CallerKind,
    err: AuthError,
    headers: &HeaderMap,
    link: Option<(&str, &str)>,
) -> Answer {
    if caller != CallerKind::Navigation {
        return reject(caller, err, headers);
    }
    let kind = err.kind();
    // Server-side failures name internal endpoints; those details stay in the logs.
    let message = match kind {
        AuthErrorKind::ProviderUnavailable | AuthErrorKind::Internal => public_message(kind),
        _ => err.message(),
    };
    let mut res = html_page(status_of(kind), public_message(kind), message, link);
    res.extensions_mut().insert(err);
    res
}

pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn detects_caller_kinds() {
        use CallerKind::*;
        let cases: &[(&[(&str, &str)], CallerKind)] = &[
            (&[("content-type", "application/grpc")], Grpc),
            (&[("content-type", "application/grpc+proto")], Grpc),
            (&[("content-type", "application/grpc-web-text")], Grpc),
            (
                &[("sec-fetch-mode", "navigate"), ("accept", "text/html")],
                Navigation,
            ),
            (&[("sec-fetch-mode", "cors"), ("accept", "text/html")], Api),
            (&[("sec-fetch-mode", "no-cors")], Api),
            (&[("accept", "text/html,application/xhtml+xml")], Navigation),
            (&[("accept", "application/json")], Api),
            (&[("accept", "*/*")], Api),
            (&[], Api),
            (
                &[
                    ("accept", "text/html"),
                    ("x-requested-with", "XMLHttpRequest"),
                ],
                Api,
            ),
            // gRPC wins over everything else
            (
                &[
                    ("content-type", "application/grpc"),
                    ("sec-fetch-mode", "navigate"),
                ],
                Grpc,
            ),
        ];
        for (pairs, expected) in cases {
            let mut h = HeaderMap::new();
            for (k, v) in *pairs {
                h.append(*k, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(caller_kind(&h), *expected, "{pairs:?}");
        }
    }

    #[test]
    fn grpc_rejection_is_trailers_only_with_status() {
        let h = headers(&[("content-type", "application/grpc")]);
        let err = AuthError::new(AuthErrorKind::LoginRequired, "x");
        let res: Answer = reject(CallerKind::Grpc, err, &h);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["grpc-status"], "16");
        assert_eq!(res.headers()["content-type"], "application/grpc");
        assert!(res.extensions().get::<AuthError>().is_some());
        let web = headers(&[("content-type", "application/grpc-web+proto")]);
        let err = AuthError::new(AuthErrorKind::InsufficientScope, "x");
        let res: Answer = reject(CallerKind::Grpc, err, &web);
        assert_eq!(res.headers()["grpc-status"], "7");
        assert_eq!(res.headers()["content-type"], "application/grpc-web+proto");
    }

    #[test]
    fn api_rejection_has_challenge() {
        let err = AuthError::new(AuthErrorKind::LoginRequired, "x");
        let res: Answer = reject(CallerKind::Api, err, &HeaderMap::new());
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[WWW_AUTHENTICATE], "Bearer");
        let err = AuthError::new(AuthErrorKind::InvalidToken, "x");
        let res: Answer = reject(CallerKind::Api, err, &HeaderMap::new());
        assert!(res.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
