//! A tiny HTML form reader for the predictable pages of the test providers.
//!
//! It understands just enough HTML to find `<form>` elements, their `action`, `method` and `id`,
//! and the `<input>` elements inside them. It is not a general HTML parser.

/// One `<form>` of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Form {
    /// The `id` attribute, if any.
    pub(crate) id: Option<String>,
    /// The `action` attribute, entity-decoded (may be relative; empty when absent).
    pub(crate) action: String,
    /// The `method` attribute in lower case (`get` when absent).
    pub(crate) method: String,
    /// The `<input>` elements inside the form, in document order.
    pub(crate) inputs: Vec<Input>,
}

/// One `<input>` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Input {
    /// The `type` attribute in lower case (`text` when absent).
    pub(crate) kind: String,
    /// The `name` attribute (empty when absent).
    pub(crate) name: String,
    /// The `value` attribute, entity-decoded (empty when absent).
    pub(crate) value: String,
}

impl Form {
    /// The `(name, value)` pairs of the form's hidden inputs, in document order.
    pub(crate) fn hidden_fields(&self) -> Vec<(String, String)> {
        self.inputs
            .iter()
            .filter(|input| input.kind == "hidden" && !input.name.is_empty())
            .map(|input| (input.name.clone(), input.value.clone()))
            .collect()
    }

    /// Whether the form has an input with this name.
    pub(crate) fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|input| input.name == name)
    }
}

/// All forms of a page, in document order.
pub(crate) fn forms(html: &str) -> Vec<Form> {
    let mut forms = Vec::new();
    let mut current: Option<Form> = None;
    for tag in tags(html) {
        match tag.name.as_str() {
            "form" if !tag.closing => {
                if let Some(form) = current.take() {
                    forms.push(form);
                }
                current = Some(Form {
                    id: tag.attr("id").map(str::to_owned),
                    action: tag.attr("action").unwrap_or_default().to_owned(),
                    method: tag.attr("method").unwrap_or("get").to_ascii_lowercase(),
                    inputs: Vec::new(),
                });
            }
            "form" => {
                if let Some(form) = current.take() {
                    forms.push(form);
                }
            }
            "input" if !tag.closing => {
                if let Some(form) = current.as_mut() {
                    form.inputs.push(Input {
                        kind: tag.attr("type").unwrap_or("text").to_ascii_lowercase(),
                        name: tag.attr("name").unwrap_or_default().to_owned(),
                        value: tag.attr("value").unwrap_or_default().to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    if let Some(form) = current {
        forms.push(form);
    }
    forms
}

/// The first form whose action satisfies `predicate`.
pub(crate) fn find_form(html: &str, predicate: impl Fn(&str) -> bool) -> Option<Form> {
    forms(html).into_iter().find(|form| predicate(&form.action))
}

/// The text of the page's `<title>`, entity-decoded and trimmed.
pub(crate) fn title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    Some(decode_entities(html[open_end..close].trim()))
}

#[derive(Debug)]
struct Tag {
    name: String,
    closing: bool,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The start and end tags of a document (comments, doctype and text are skipped).
fn tags(html: &str) -> Vec<Tag> {
    let bytes = html.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        if html[i..].starts_with("<!--") {
            i = html[i..].find("-->").map_or(bytes.len(), |end| i + end + 3);
            continue;
        }
        let mut j = i + 1;
        let closing = bytes.get(j) == Some(&b'/');
        if closing {
            j += 1;
        }
        let name_start = j;
        while j < bytes.len() && bytes[j].is_ascii_alphanumeric() {
            j += 1;
        }
        if j == name_start {
            // `<!DOCTYPE ...>`, `<?...>` or a stray `<`.
            i = html[i..].find('>').map_or(bytes.len(), |end| i + end + 1);
            continue;
        }
        let name = html[name_start..j].to_ascii_lowercase();
        let (attrs, end) = attributes(html, j);
        tags.push(Tag {
            name: name.clone(),
            closing,
            attrs,
        });
        i = end;
        if !closing && (name == "script" || name == "style") {
            let close = format!("</{name}");
            i = html[i..]
                .to_ascii_lowercase()
                .find(&close)
                .map_or(bytes.len(), |at| i + at);
        }
    }
    tags
}

/// Parses attributes from `start` up to the end of the tag; returns them and the index after `>`.
fn attributes(html: &str, start: usize) -> (Vec<(String, String)>, usize) {
    let bytes = html.as_bytes();
    let mut attrs = Vec::new();
    let mut i = start;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() {
            return (attrs, bytes.len());
        }
        if bytes[i] == b'>' {
            return (attrs, i + 1);
        }
        let name_start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
        {
            i += 1;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            match bytes.get(i) {
                Some(&quote @ (b'"' | b'\'')) => {
                    let value_start = i + 1;
                    let value_end = html[value_start..]
                        .find(quote as char)
                        .map_or(bytes.len(), |end| value_start + end);
                    value = decode_entities(&html[value_start..value_end]);
                    i = (value_end + 1).min(bytes.len());
                }
                Some(_) => {
                    let value_start = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = decode_entities(&html[value_start..i]);
                }
                None => {}
            }
        }
        if !name.is_empty() {
            attrs.push((name, value));
        }
    }
}

/// Decodes the character references these pages use (named basics and numeric ones).
pub(crate) fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn reads_forms_and_hidden_inputs() {
    let page = r#"<!DOCTYPE html><html><head><title>Sign &amp; go</title>
        <style>form { color: red } <form action="nope"></style></head><body>
        <!-- <form action="commented"> -->
        <form id="op.logoutForm" method="post" action="/session/end/confirm"><input type="hidden" name="xsrf" value="a&quot;b"/></form>
        <button type="submit" form="op.logoutForm" value="yes" name="logout">Yes</button>
        <FORM METHOD=POST action='/interaction/x/login'>
          <input type="hidden" name="uid" value="x">
          <input name=login autofocus>
          <input type="password" name="password">
        </FORM></body></html>"#;
    let all = forms(page);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id.as_deref(), Some("op.logoutForm"));
    assert_eq!(all[0].action, "/session/end/confirm");
    assert_eq!(all[0].method, "post");
    assert_eq!(
        all[0].hidden_fields(),
        vec![("xsrf".to_owned(), "a\"b".to_owned())]
    );
    assert_eq!(all[1].action, "/interaction/x/login");
    assert!(all[1].has_input("login") && all[1].has_input("password"));
    assert_eq!(
        all[1].hidden_fields(),
        vec![("uid".to_owned(), "x".to_owned())]
    );
    assert_eq!(title(page).as_deref(), Some("Sign & go"));
    assert_eq!(decode_entities("&#x2F;&#47;&bogus; &"), "//&bogus; &");
}
