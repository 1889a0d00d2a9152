//! JSON answers and the HTML pages the provider shows.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::{header, HeaderValue};
use serde_json::{json, Value};

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// An answer injected by a fault: this status (an invalid code answers `500`), `Content-Type`
/// and body.
pub(super) fn fixed_answer(status: u16, content_type: String, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// An OAuth error answer of the token endpoint (RFC 6749 §5.2).
pub(super) struct TokenError {
    pub(super) status: StatusCode,
    pub(super) error: String,
    pub(super) description: String,
    /// Whether the client tried HTTP Basic, so the answer carries a `Basic` challenge.
    pub(super) basic: bool,
    /// The nonce to send as `DPoP-Nonce` (with `use_dpop_nonce`).
    pub(super) dpop_nonce: Option<String>,
}

impl TokenError {
    pub(super) fn new(error: &str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: error.to_owned(),
            description: description.into(),
            basic: false,
            dpop_nonce: None,
        }
    }

    pub(super) fn invalid_client(description: &str, basic: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client".to_owned(),
            description: description.to_owned(),
            basic,
            dpop_nonce: None,
        }
    }

    pub(super) fn into_response(self) -> Response {
        tracing::debug!(error = %self.error, description = %self.description,
            "development provider token error");
        let mut body = json!({ "error": self.error });
        if !self.description.is_empty() {
            body["error_description"] = Value::String(self.description);
        }
        let mut response = json_response(self.status, &body);
        if let Some(nonce) = self.dpop_nonce.and_then(|n| HeaderValue::try_from(n).ok()) {
            response.headers_mut().insert("dpop-nonce", nonce);
        }
        if self.basic {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tower-oidc dev provider\""),
            );
        }
        response
    }
}

pub(super) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn html_page(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
         form{{margin:.5rem 0}}button{{font-size:1rem;padding:.5rem 1rem;min-width:16rem}}</style>\n\
         </head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}</main>\n</body>\n</html>\n",
        title = html_escape(title),
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

pub(super) fn error_page(message: &str) -> Response {
    html_page(
        StatusCode::BAD_REQUEST,
        "Invalid request",
        &format!("<p role=\"alert\">{}</p>\n", html_escape(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8 body")
    }

    #[test]
    fn html_escape_replaces_the_five_special_characters() {
        assert_eq!(
            html_escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(html_escape("plain text, é ü"), "plain text, é ü");
        assert_eq!(html_escape("&amp;"), "&amp;amp;");
    }

    #[tokio::test]
    async fn json_response_is_not_cacheable() {
        let response = json_response(StatusCode::BAD_REQUEST, &serde_json::json!({ "a": 1 }));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::PRAGMA], "no-cache");
        assert_eq!(body_text(response).await, r#"{"a":1}"#);
    }

    #[tokio::test]
    async fn error_page_escapes_the_message() {
        let response = error_page("bad <script>");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let body = body_text(response).await;
        assert!(body.contains("<title>Invalid request</title>"));
        assert!(body.contains("<p role=\"alert\">bad &lt;script&gt;</p>"));
        assert!(!body.contains("<script>"));
    }
}
