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
