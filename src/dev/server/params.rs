//! Request parameters and request bodies.

use http::header::{self, HeaderMap};

/// Request parameters. Parameters sent without a value count as omitted (RFC 6749 §3.1);
/// repeated parameters are remembered so they can be refused.
#[derive(Default)]
pub(super) struct Params {
    pub(super) values: Vec<(String, String)>,
    pub(super) repeated: Vec<String>,
}

impl Params {
    pub(super) fn parse(input: &[u8]) -> Self {
        let mut params = Params::default();
        for (k, v) in form_urlencoded::parse(input) {
            if v.is_empty() {
                continue;
            }
            if params.values.iter().any(|(name, _)| *name == k) {
                if !params.repeated.iter().any(|r| *r == k) {
                    params.repeated.push(k.into_owned());
                }
                continue;
            }
            params.values.push((k.into_owned(), v.into_owned()));
        }
        params
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn is_repeated(&self, name: &str) -> bool {
        self.repeated.iter().any(|r| r == name)
    }
}

pub(super) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};

    use super::{is_form, Params};

    #[test]
    fn parse_decodes_and_keeps_the_first_of_repeated_values() {
        let p = Params::parse(
            b"scope=openid+email&redirect_uri=https%3A%2F%2Frp.test%2Fcb&state=a&state=b&state=c",
        );
        assert_eq!(p.get("scope"), Some("openid email"));
        assert_eq!(p.get("redirect_uri"), Some("https://rp.test/cb"));
        assert_eq!(p.get("state"), Some("a"));
        assert!(p.is_repeated("state"));
        assert!(!p.is_repeated("scope"));
        assert_eq!(p.repeated, ["state"], "a repeated name is recorded once");
        assert_eq!(p.get("missing"), None);
    }

    #[test]
    fn empty_values_count_as_omitted() {
        let p = Params::parse(b"nonce=&client_id=c&nonce=n&prompt");
        assert_eq!(p.get("nonce"), Some("n"));
        assert!(
            !p.is_repeated("nonce"),
            "an empty value does not make the next one a repeat"
        );
        assert_eq!(p.get("prompt"), None);
        assert_eq!(p.values.len(), 2);
    }

    #[test]
    fn is_form_compares_the_media_type_only() {
        let form = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            is_form(&headers)
        };
        assert!(form("application/x-www-form-urlencoded"));
        assert!(form("Application/X-WWW-Form-URLEncoded; charset=UTF-8"));
        assert!(form(" application/x-www-form-urlencoded ;charset=utf-8"));
        assert!(!form("application/json"));
        assert!(!form("multipart/form-data; boundary=x"));
        assert!(!form("application/x-www-form-urlencoded-extra"));
        assert!(!is_form(&HeaderMap::new()));
    }
}
