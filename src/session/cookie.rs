//! Sealed cookies: HKDF-derived AES-256-GCM keys with a key id for rotation, chunking of
//! large values, and reading/stripping our cookies from a request's `Cookie` headers.
//!
//! Wire format of a sealed value (before base64url without padding):
//! `key id (1 byte) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`, with the cookie's base
//! name as associated data, so a value cannot be moved to another cookie.
//!
//! Keys are bound to what they seal for: HKDF's info names the purpose (session, login
//! transaction) and a [`binding`] of the provider's issuer and the client id, so a cookie
//! sealed by another app that shares the secret (another client of the same provider) opens
//! with none of our keys. Each binding has its own key and key id byte, so the id picks the
//! key (and with it the provider) without trying every key.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use std::borrow::Cow;

use crate::error::ConfigError;

const MIN_SECRET_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;
const HKDF_SALT: &[u8] = b"tower-oidc/v1";

/// Largest value we put into one cookie; with name and attributes it stays under the 4096
/// bytes browsers guarantee.
pub(crate) const CHUNK_SIZE: usize = 3800;
/// Most chunks a session may use; more is refused when sealing and ignored when reading.
pub(crate) const MAX_CHUNKS: usize = 8;

/// The master secret(s) that session and login-transaction cookies are sealed with.
///
/// Keys for each purpose are derived with HKDF-SHA256; the first secret seals, every secret
/// opens, so a secret can be rotated without logging everybody out: put the new one first and
/// keep the old one with [`SessionKey::with_previous`] for one session lifetime.
///
/// # Example
///
/// ```
/// use tower_oidc::SessionKey;
///
/// // 32 random bytes, base64url, e.g. from `openssl rand -base64 32 | tr '+/' '-_'`
/// let key = SessionKey::from_base64("oDXk1yV1c6m0M7B8VfT8oQ2Pq9Hk3xX7nR0cS4Yw6gE")?
///     .with_previous(&[7u8; 32])?;
/// # Ok::<(), tower_oidc::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct SessionKey {
    secrets: Arc<Vec<Vec<u8>>>,
}

impl SessionKey {
    /// A key from a secret of at least 32 bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::SessionKeyTooShort`] when the secret is shorter than 32 bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = check_len(secret.as_ref())?;
        Ok(Self {
            secrets: Arc::new(vec![secret]),
        })
    }

    /// A key from base64 text (url-safe or standard alphabet, padding optional) that decodes
    /// to at least 32 bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSessionKey`] for text that is not base64,
    /// [`ConfigError::SessionKeyTooShort`] for fewer than 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, ConfigError> {
        Self::new(decode_any_base64(text)?)
    }

    /// A random key. Sessions sealed with it end when the process does, and other instances
    /// cannot open them: for development and tests.
    pub fn generate() -> Self {
        let mut secret = vec![0u8; MIN_SECRET_LEN];
        fill_random(&mut secret);
        Self {
            secrets: Arc::new(vec![secret]),
        }
    }

    /// Adds an older secret that still opens cookies but no longer seals them.
    ///
    /// # Errors
    ///
    /// [`ConfigError::SessionKeyTooShort`] when the secret is shorter than 32 bytes.
    pub fn with_previous(mut self, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = check_len(secret.as_ref())?;
        Arc::make_mut(&mut self.secrets).push(secret);
        Ok(self)
    }

    /// [`SessionKey::with_previous`] for a base64 secret.
    ///
    /// # Errors
    ///
    /// As [`SessionKey::from_base64`].
    pub fn with_previous_base64(self, text: &str) -> Result<Self, ConfigError> {
        let secret = decode_any_base64(text)?;
        self.with_previous(secret)
    }

    /// A sealer for `purpose` with one key per secret and binding (see [`binding`]); the
    /// binding's index in `bindings` is the provider that [`Sealer::open_for`] reports.
    pub(crate) fn sealer(&self, purpose: &'static str, bindings: &[Vec<u8>]) -> Sealer {
        let unbound = [Vec::new()];
        let bindings = if bindings.is_empty() {
            &unbound[..]
        } else {
            bindings
        };
        let mut keys = Vec::with_capacity(self.secrets.len() * bindings.len());
        // Secrets outside, bindings inside: the first secret's keys come first, in the order
        // of the bindings, so provider `p` seals with `keys[p]`.
        for secret in self.secrets.iter() {
            let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(secret);
            for (provider, binding) in bindings.iter().enumerate() {
                let mut key = [0u8; 32];
                expand(&prk, &info(purpose, binding), &mut key);
                let mut id = [0u8; 1];
                expand(&prk, &info("key-id", binding), &mut id);
                let cipher = Aes256Gcm::new_from_slice(&key).expect("32-byte key");
                keys.push(Key {
                    id: id[0],
                    provider,
                    cipher,
                });
            }
        }
        Sealer {
            keys: Arc::new(keys),
            providers: bindings.len(),
        }
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field(
                "secrets",
                &format_args!("[redacted; {}]", self.secrets.len()),
            )
            .finish()
    }
}

fn check_len(secret: &[u8]) -> Result<Vec<u8>, ConfigError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(ConfigError::SessionKeyTooShort { len: secret.len() });
    }
    Ok(secret.to_vec())
}

fn decode_any_base64(text: &str) -> Result<Vec<u8>, ConfigError> {
    let text = text.trim();
    let unpadded = text.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(unpadded)
        .or_else(|_| STANDARD.decode(text))
        .or_else(|_| URL_SAFE.decode(text))
        .map_err(|_| ConfigError::InvalidSessionKey)
}

/// What a key is bound to besides its purpose: a provider's issuer and the client id, each
/// length-prefixed (no two different pairs give the same bytes). Several bindings can be
/// joined into one (a login transaction is bound to every provider of the layer).
pub(crate) fn binding(issuer: &str, client_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + issuer.len() + client_id.len());
    for part in [issuer, client_id] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// HKDF info: `purpose ‖ 0 ‖ binding`.
fn info(purpose: &str, binding: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(purpose.len() + 1 + binding.len());
    out.extend_from_slice(purpose.as_bytes());
    out.push(0);
    out.extend_from_slice(binding);
    out
}

fn expand(prk: &hkdf::Prk, info: &[u8], out: &mut [u8]) {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let infos = [info];
    prk.expand(&infos, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF output length is small");
}

pub(crate) fn fill_random(buf: &mut [u8]) {
    SystemRandom::new()
        .fill(buf)
        .expect("the operating system's random number generator failed");
}

/// `n` random bytes as base64url text.
pub(crate) fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seals and opens values for one purpose (session, login transaction), with a key per
/// secret and provider binding.
#[derive(Clone)]
pub(crate) struct Sealer {
    keys: Arc<Vec<Key>>,
    /// How many bindings (providers) the keys are for.
    providers: usize,
}

struct Key {
    id: u8,
    /// Index of the binding (provider) the key is bound to.
    provider: usize,
    cipher: Aes256Gcm,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    /// Encrypts `plaintext` for the cookie named `name` with the first binding's key;
    /// returns base64url text.
    pub(crate) fn seal(&self, name: &str, plaintext: &[u8]) -> String {
        self.seal_for(0, name, plaintext)
    }

    /// Encrypts `plaintext` for the cookie named `name` with the current secret's key of the
    /// binding (provider) `provider`, which must be below the number of bindings.
    pub(crate) fn seal_for(&self, provider: usize, name: &str, plaintext: &[u8]) -> String {
        debug_assert!(provider < self.providers);
        let Key { id, cipher, .. } = &self.keys[provider.min(self.providers - 1)];
        let mut buf = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        buf.push(*id);
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                name.as_bytes(),
                (&mut buf[HEADER_LEN..]).into(),
            )
            .expect("plaintext within AES-GCM limits");
        buf.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// Decrypts a value sealed for the cookie named `name`. Anything malformed, tampered
    /// with, sealed for another cookie or with an unknown key gives `None`.
    pub(crate) fn open(&self, name: &str, value: &str) -> Option<Bytes> {
        self.open_for(name, value).map(|(bytes, _)| bytes)
    }

    /// [`Sealer::open`], also telling which binding (provider) the key that opened it is
    /// bound to. One AES-GCM attempt per key whose id matches: with one provider and one
    /// secret, exactly one.
    pub(crate) fn open_for(&self, name: &str, value: &str) -> Option<(Bytes, usize)> {
        self.open_bytes_for(name, value.as_bytes())
    }

    /// [`Sealer::open_for`] of a value given as bytes (base64url text, or anything else,
    /// which does not open).
    pub(crate) fn open_bytes_for(&self, name: &str, value: &[u8]) -> Option<(Bytes, usize)> {
        if value.len() > CHUNK_SIZE * MAX_CHUNKS {
            return None;
        }
        // SIMD base64: on the hot path, decoding costs as much as decrypting.
        let mut buf = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(value).ok()?;
        let provider = self.open_in_place(name, &mut buf)?;
        let end = buf.len() - TAG_LEN;
        // The plaintext is a window of the decoded buffer: no copy.
        Some((Bytes::from(buf).slice(HEADER_LEN..end), provider))
    }

    fn open_in_place(&self, name: &str, buf: &mut [u8]) -> Option<usize> {
        if buf.len() < HEADER_LEN + TAG_LEN {
            return None;
        }
        let (header, rest) = buf.split_at_mut(HEADER_LEN);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let nonce = Nonce::try_from(&header[1..]).ok()?;
        let tag = Tag::try_from(&*tag).ok()?;
        for key in self.keys.iter() {
            if key.id != header[0] {
                continue;
            }
            // A failed open leaves `body` untouched (the tag is checked before decrypting),
            // so the next key with the same id sees the original ciphertext.
            if key
                .cipher
                .decrypt_inout_detached(&nonce, name.as_bytes(), (&mut *body).into(), &tag)
                .is_ok()
            {
                return Some(key.provider);
            }
        }
        None
    }
}

/// Iterates over the `name=value` pairs of every `Cookie` header.
pub(crate) fn request_cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(header_text)
        .flat_map(pairs)
}

/// A header value as text, when it is ASCII: the same answer as [`HeaderValue::to_str`] for
/// every value `http` lets through its checks (tab, visible ASCII and bytes above 127; no
/// other control characters), but checked a word at a time instead of a byte at a time (a
/// session cookie is kilobytes long and read on every request).
fn header_text(value: &HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    if bytes.is_ascii() {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// The `name=value` pairs of one `Cookie` header value.
fn pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    byte_pairs(text.as_bytes()).filter_map(|(name, value)| {
        // Splitting ASCII text at ASCII bytes leaves ASCII text.
        Some((
            std::str::from_utf8(name).ok()?,
            std::str::from_utf8(value).ok()?,
        ))
    })
}

/// The `name=value` pairs of one `Cookie` header value given as bytes (an ASCII value, checked
/// by the caller): names and values trimmed, a value's double quotes removed.
fn byte_pairs(text: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        // SIMD search: the pair holding the session is kilobytes long.
        let (pair, tail) = match memchr::memchr(b';', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        rest = tail;
        let Some(eq) = memchr::memchr(b'=', pair) else {
            continue;
        };
        let (name, value) = (&pair[..eq], pair[eq + 1..].trim_ascii());
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        return Some((name.trim_ascii(), value));
    })
}

/// A session cookie as found in a request: a single value, or chunks joined in order.
/// Borrows from the request; allocates only for chunked sessions.
#[derive(Debug, Default)]
pub(crate) struct FoundCookie<'a> {
    single: Option<&'a [u8]>,
    chunks: Vec<(usize, &'a [u8])>,
    /// Names of chunk cookies whose index is out of range (to clear them).
    stray: Vec<&'a [u8]>,
    /// Whether the request carries other cookies too.
    pub(crate) others: bool,
}

impl<'a> FoundCookie<'a> {
    /// The whole value, when complete.
    pub(crate) fn value(&self) -> Option<Cow<'a, [u8]>> {
        if let Some(v) = self.single {
            return Some(Cow::Borrowed(v));
        }
        if self.chunks.is_empty() {
            return None;
        }
        let mut chunks = self.chunks.clone();
        chunks.sort_unstable_by_key(|(idx, _)| *idx);
        let contiguous = chunks.iter().enumerate().all(|(i, (idx, _))| i == *idx);
        contiguous.then(|| Cow::Owned(chunks.iter().flat_map(|(_, v)| v.iter().copied()).collect()))
    }

    /// Whether the request carries any of these cookies.
    pub(crate) fn any(&self) -> bool {
        self.single.is_some() || !self.chunks.is_empty() || !self.stray.is_empty()
    }

    /// Names of every cookie that belongs to it (to clear them).
    pub(crate) fn names(&self, base: &str) -> Vec<String> {
        let mut names: Vec<String> = self.single.map(|_| base.to_owned()).into_iter().collect();
        names.extend(self.chunks.iter().map(|(i, _)| format!("{base}.{i}")));
        // ASCII: read from a header that was checked to be.
        names.extend(
            self.stray
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned()),
        );
        names
    }
}

/// Collects the session cookie named `base` (or its chunks `base.0`, `base.1`, ...).
///
/// Works on the header's bytes: a header that is not ASCII is skipped (as
/// [`HeaderValue::to_str`] would refuse it, and [`strip_cookies`] leaves it alone), checked a
/// word at a time; nothing else reads the kilobytes of a session cookie byte by byte.
pub(crate) fn find_chunked<'a>(headers: &'a HeaderMap, base: &str) -> FoundCookie<'a> {
    let mut found = FoundCookie::default();
    let base = base.as_bytes();
    for header in headers.get_all(COOKIE) {
        let text = header.as_bytes();
        if !text.is_ascii() {
            found.others = true;
            continue;
        }
        for (name, value) in byte_pairs(text) {
            let Some(rest) = name.strip_prefix(base) else {
                found.others = true;
                continue;
            };
            if rest.is_empty() {
                found.single = Some(value);
            } else if let Some(idx) = rest
                .strip_prefix(b".")
                .and_then(|idx| std::str::from_utf8(idx).ok())
                .and_then(|idx| idx.parse::<usize>().ok())
            {
                if idx < MAX_CHUNKS && !found.chunks.iter().any(|(i, _)| *i == idx) {
                    found.chunks.push((idx, value));
                } else {
                    found.stray.push(name);
                }
            } else {
                found.others = true;
            }
        }
    }
    found
}

/// Splits a sealed value into cookie-sized chunks with their names. One chunk keeps the base
/// name; several are named `base.0`, `base.1`, ... Returns `None` beyond [`MAX_CHUNKS`].
pub(crate) fn chunk(base: &str, value: &str) -> Option<Vec<(String, String)>> {
    if value.len() <= CHUNK_SIZE {
        return Some(vec![(base.to_owned(), value.to_owned())]);
    }
    let count = value.len().div_ceil(CHUNK_SIZE);
    if count > MAX_CHUNKS {
        return None;
    }
    // base64url text is ASCII, so byte offsets are char boundaries.
    Some(
        (0..count)
            .map(|i| {
                let end = ((i + 1) * CHUNK_SIZE).min(value.len());
                (format!("{base}.{i}"), value[i * CHUNK_SIZE..end].to_owned())
            })
            .collect(),
    )
}

/// Removes the cookies for which `ours` returns true from the request's `Cookie` headers,
/// leaving every other cookie as it was.
pub(crate) fn strip_cookies(headers: &mut HeaderMap, ours: impl Fn(&str) -> bool) {
    let mut kept = String::new();
    let mut changed = false;
    for value in headers.get_all(COOKIE).iter() {
        let Some(text) = header_text(value) else {
            // Not text: we cannot have parsed anything from it; keep it as it is.
            continue;
        };
        for pair in text.split(';') {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
            if ours(name) {
                changed = true;
                continue;
            }
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(pair);
        }
    }
    if !changed {
        return;
    }
    let non_text: Vec<HeaderValue> = headers
        .get_all(COOKIE)
        .iter()
        .filter(|v| header_text(v).is_none())
        .cloned()
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept) {
            headers.append(COOKIE, v);
        }
    }
    for v in non_text {
        headers.append(COOKIE, v);
    }
}

/// Names and attributes of the layer's cookies.
#[derive(Debug, Clone)]
pub(crate) struct Cookies {
    /// Base name of the session cookie (chunks add `.0`, `.1`, ...).
    pub(crate) session: String,
    /// Prefix of login-transaction cookie names; the slot number follows (cookies of older
    /// versions, named after the `state`, are only cleared).
    pub(crate) tx_prefix: String,
    secure: bool,
}

impl Cookies {
    /// Cookie names and attributes. Transaction cookies have `Path=/` on http too (on https
    /// the `__Host-` prefix requires it): a login can start on any path (`require_login`, the
    /// extractors), and choosing its slot must see the transactions the browser already holds.
    pub(crate) fn new(session: &str, secure: bool) -> Self {
        Self {
            session: session.to_owned(),
            // On https, `__Host-` (so `Path=/`): a sibling subdomain cannot plant a login
            // transaction (login CSRF by cookie tossing). On plain http nothing can prevent it.
            tx_prefix: if secure {
                "__Host-oidc_tx_"
            } else {
                "oidc_tx_"
            }
            .to_owned(),
            secure,
        }
    }

    fn attributes(&self, path: &str, max_age: Option<u64>) -> String {
        self.attributes_with(path, max_age, false)
    }

    fn attributes_with(&self, path: &str, max_age: Option<u64>, cross_site: bool) -> String {
        let same_site = if cross_site { "None" } else { "Lax" };
        let mut attrs = format!("; Path={path}; HttpOnly; SameSite={same_site}");
        if self.secure || cross_site {
            attrs.push_str("; Secure");
        }
        if let Some(age) = max_age {
            attrs.push_str(&format!("; Max-Age={age}"));
        }
        attrs
    }

    /// The login-transaction cookie of slot `slot`: one of a fixed set of names, so that
    /// logins started in parallel can only overwrite each other's cookies, never add more.
    pub(crate) fn tx_slot_name(&self, slot: usize) -> String {
        format!("{}{slot}", self.tx_prefix)
    }

    /// The slot of a login-transaction cookie name (`None`: not a slot name, e.g. a cookie
    /// of the older format named after the `state`).
    pub(crate) fn tx_slot(&self, name: &str) -> Option<usize> {
        let digits = name.strip_prefix(self.tx_prefix.as_str())?;
        if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// A login-transaction cookie. `cross_site`: it must survive a cross-site form POST
    /// (`response_mode=form_post`), so `SameSite=None; Secure`.
    pub(crate) fn tx_cookie(
        &self,
        name: &str,
        value: &str,
        ttl: std::time::Duration,
        cross_site: bool,
    ) -> String {
        let attrs = self.attributes_with("/", Some(ttl.as_secs()), cross_site);
        format!("{name}={value}{attrs}")
    }

    /// Removes a login-transaction cookie (`cross_site` as it was set).
    pub(crate) fn tx_removal(&self, name: &str, cross_site: bool) -> String {
        let attrs = self.attributes_with("/", Some(0), cross_site);
        format!("{name}={attrs}")
    }

    pub(crate) fn session_cookie(&self, name: &str, value: &str, max_age: u64) -> String {
        format!("{name}={value}{}", self.attributes("/", Some(max_age)))
    }

    pub(crate) fn session_removal(&self, name: &str) -> String {
        format!("{name}={}", self.attributes("/", Some(0)))
    }

    /// Whether a request cookie is one of ours (stripped before the inner service).
    pub(crate) fn is_ours(&self, name: &str) -> bool {
        if let Some(rest) = name.strip_prefix(self.session.as_str()) {
            return rest.is_empty()
                || rest
                    .strip_prefix('.')
                    .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
        }
        name.starts_with(self.tx_prefix.as_str())
    }
}

/// The session cookie's name prefix matches the scheme: `__Host-` on https (host-only,
/// `Secure`, `Path=/`: a sibling subdomain cannot toss a session cookie in), neither `__Host-`
/// nor `__Secure-` on plain http (browsers refuse them without `Secure`).
pub(crate) fn check_cookie_prefix(name: &str, secure: bool) -> Result<(), ConfigError> {
    let prefixed = |prefix: &str| {
        name.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    let reason = if secure && !name.starts_with("__Host-") {
        format!("on https the session cookie name must start with `__Host-` (e.g. `__Host-{name}`)")
    } else if !secure && (prefixed("__Host-") || prefixed("__Secure-")) {
        "on plain http browsers refuse `__Host-` and `__Secure-` cookies; drop the prefix".into()
    } else {
        return Ok(());
    };
    Err(ConfigError::Invalid {
        field: "cookie_name",
        reason,
    })
}

/// Appends a `Set-Cookie` header; a value that is not a valid header is logged and skipped.
pub(crate) fn add_set_cookie(headers: &mut HeaderMap, cookie: String) {
    match HeaderValue::try_from(cookie) {
        Ok(v) => {
            headers.append(http::header::SET_COOKIE, v);
        }
        Err(_) => tracing::error!("skipping a Set-Cookie value that is not a valid header"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://id.example.com";

    fn bound(key: &SessionKey, purpose: &'static str, client_id: &str) -> Sealer {
        key.sealer(purpose, &[binding(ISS, client_id)])
    }

    fn sealer(secret: u8) -> Sealer {
        bound(&SessionKey::new([secret; 32]).unwrap(), "session", "c")
    }

    #[test]
    fn round_trip() {
        let s = sealer(1);
        let sealed = s.seal("sid", b"hello");
        assert_eq!(s.open("sid", &sealed).as_deref(), Some(&b"hello"[..]));
        // a fresh nonce every time
        assert_ne!(sealed, s.seal("sid", b"hello"));
    }

    #[test]
    fn tampered_value_is_refused() {
        let s = sealer(1);
        let sealed = s.seal("sid", b"hello world");
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            assert!(
                s.open("sid", &URL_SAFE_NO_PAD.encode(&bytes)).is_none(),
                "flip at {i}"
            );
            bytes[i] ^= 0x01;
        }
        assert!(s.open("sid", &sealed[..sealed.len() - 2]).is_none());
        assert!(s.open("sid", "").is_none());
        assert!(s.open("sid", "!!not base64!!").is_none());
        assert!(s
            .open("sid", &"A".repeat(CHUNK_SIZE * MAX_CHUNKS + 4))
            .is_none());
    }

    #[test]
    fn value_is_bound_to_cookie_name_and_purpose() {
        let key = SessionKey::new([1; 32]).unwrap();
        let sealed = bound(&key, "session", "c").seal("sid", b"x");
        assert!(bound(&key, "session", "c").open("other", &sealed).is_none());
        assert!(bound(&key, "transaction", "c")
            .open("sid", &sealed)
            .is_none());
    }

    #[test]
    fn value_is_bound_to_issuer_and_client_id() {
        let key = SessionKey::new([1; 32]).unwrap();
        let sealed = bound(&key, "session", "app-a").seal("sid", b"x");
        assert!(bound(&key, "session", "app-a")
            .open("sid", &sealed)
            .is_some());
        assert!(bound(&key, "session", "app-b")
            .open("sid", &sealed)
            .is_none());
        let other_issuer = key.sealer("session", &[binding("https://other.example.com", "app-a")]);
        assert!(other_issuer.open("sid", &sealed).is_none());
        // Length prefixes: moving a character between issuer and client id changes the key.
        let shifted = key.sealer("session", &[binding("https://id.example.coma", "pp-a")]);
        assert!(shifted.open("sid", &sealed).is_none());
    }

    #[test]
    fn each_provider_has_its_own_key_and_open_names_it() {
        let key = SessionKey::new([1; 32]).unwrap();
        let bindings: Vec<Vec<u8>> = (0..4)
            .map(|i| binding(&format!("https://id.example.com/t{i}"), "app"))
            .collect();
        let s = key.sealer("session", &bindings);
        for p in 0..4 {
            let sealed = s.seal_for(p, "sid", b"x");
            let (bytes, provider) = s.open_for("sid", &sealed).unwrap();
            assert_eq!((&bytes[..], provider), (&b"x"[..], p));
            // A layer with only that provider opens it; one with only another does not.
            let alone = key.sealer("session", &bindings[p..=p]);
            assert_eq!(alone.open_for("sid", &sealed).map(|(_, i)| i), Some(0));
            let other = key.sealer("session", &bindings[(p + 1) % 4..=(p + 1) % 4]);
            assert!(other.open("sid", &sealed).is_none());
        }
        // The key id byte is derived per provider too.
        let ids: std::collections::HashSet<u8> = s.keys.iter().map(|k| k.id).collect();
        assert!(ids.len() > 1);
        assert_eq!(s.seal("sid", b"x").len(), s.seal_for(0, "sid", b"x").len());
    }

    #[test]
    fn wrong_key_is_refused() {
        let sealed = sealer(1).seal("sid", b"x");
        assert!(sealer(2).open("sid", &sealed).is_none());
    }

    #[test]
    fn rotation_first_seals_all_open() {
        let old = SessionKey::new([1; 32]).unwrap();
        let old_sealed = bound(&old, "session", "c").seal("sid", b"old");
        let rotated = SessionKey::new([2; 32])
            .unwrap()
            .with_previous([1; 32])
            .unwrap();
        let s = bound(&rotated, "session", "c");
        assert_eq!(s.open("sid", &old_sealed).as_deref(), Some(&b"old"[..]));
        let new_sealed = s.seal("sid", b"new");
        // sealed with the new key: the old key alone cannot open it
        assert!(bound(&old, "session", "c")
            .open("sid", &new_sealed)
            .is_none());
        assert_eq!(
            bound(&SessionKey::new([2; 32]).unwrap(), "session", "c")
                .open("sid", &new_sealed)
                .as_deref(),
            Some(&b"new"[..])
        );
        // With several providers, each opens its own old cookies under rotation.
        let bindings = [binding(ISS, "c"), binding("https://b.example.com", "c")];
        let old_b = old.sealer("session", &bindings).seal_for(1, "sid", b"b");
        let (_, provider) = rotated
            .sealer("session", &bindings)
            .open_for("sid", &old_b)
            .unwrap();
        assert_eq!(provider, 1);
    }

    #[test]
    fn short_or_bad_keys_are_refused() {
        assert!(matches!(
            SessionKey::new([0; 31]),
            Err(ConfigError::SessionKeyTooShort { len: 31 })
        ));
        assert!(matches!(
            SessionKey::from_base64("c2hvcnQ"),
            Err(ConfigError::SessionKeyTooShort { len: 5 })
        ));
        assert!(matches!(
            SessionKey::from_base64("not base64 at all!"),
            Err(ConfigError::InvalidSessionKey)
        ));
        let std_padded = STANDARD.encode([0xfb; 32]);
        assert!(SessionKey::from_base64(&std_padded).is_ok());
        assert!(format!("{:?}", SessionKey::generate()).contains("redacted"));
    }

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn chunking_round_trip() {
        let value = "v".repeat(CHUNK_SIZE * 2 + 10);
        let chunks = chunk("s", &value).unwrap();
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|(_, v)| v.len() <= CHUNK_SIZE));
        // out of order, across two headers, mixed with other cookies
        let h = headers(&[
            &format!("a=1; s.2={}; s.0={}", chunks[2].1, chunks[0].1),
            &format!("s.1={}; b=2", chunks[1].1),
        ]);
        let found = find_chunked(&h, "s");
        assert_eq!(found.value().as_deref(), Some(value.as_bytes()));
        assert_eq!(found.names("s").len(), 3);
        assert!(chunk("s", &"v".repeat(CHUNK_SIZE * MAX_CHUNKS + 1)).is_none());
        assert_eq!(
            chunk("s", "small").unwrap(),
            vec![("s".into(), "small".into())]
        );
    }

    #[test]
    fn missing_chunk_gives_no_value() {
        let h = headers(&["s.0=aa; s.2=cc"]);
        let found = find_chunked(&h, "s");
        assert!(found.value().is_none());
        assert_eq!(found.names("s"), vec!["s.0", "s.2"]);
    }

    #[test]
    fn cookie_attributes_and_ownership() {
        let c = Cookies::new("__Host-oidc_session", true);
        let set = c.session_cookie("__Host-oidc_session", "v", 10);
        assert_eq!(
            set,
            "__Host-oidc_session=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=10"
        );
        let tx = c.tx_cookie(
            &c.tx_slot_name(3),
            "v",
            std::time::Duration::from_secs(600),
            false,
        );
        assert!(tx.starts_with("__Host-oidc_tx_3=v; Path=/;"), "{tx}");
        assert_eq!(c.tx_slot("__Host-oidc_tx_3"), Some(3));
        assert_eq!(c.tx_slot("__Host-oidc_tx_12"), Some(12));
        for not_a_slot in [
            "__Host-oidc_tx_",
            "__Host-oidc_tx_st",
            "__Host-oidc_tx_+1",
            "oidc_tx_1",
        ] {
            assert_eq!(c.tx_slot(not_a_slot), None, "{not_a_slot}");
        }
        assert!(c
            .tx_removal("__Host-oidc_tx_st", false)
            .contains("Max-Age=0"));
        assert!(c.is_ours("__Host-oidc_session"));
        assert!(c.is_ours("__Host-oidc_session.3"));
        assert!(c.is_ours("__Host-oidc_tx_abc"));
        assert!(!c.is_ours("__Host-oidc_session.x"));
        assert!(!c.is_ours("__Host-oidc_sessionx"));
        assert!(!c.is_ours("other"));
        let plain = Cookies::new("oidc_session", false);
        assert!(!plain
            .session_cookie("oidc_session", "v", 1)
            .contains("Secure"));
        let form_post = Cookies::new("oidc_session", false);
        let tx = form_post.tx_cookie("oidc_tx_s", "v", std::time::Duration::from_secs(1), true);
        assert!(
            tx.contains("SameSite=None") && tx.contains("Secure"),
            "{tx}"
        );
        assert!(form_post
            .tx_removal("oidc_tx_s", true)
            .contains("SameSite=None"));
        // the session itself stays Lax
        assert!(form_post
            .session_cookie("oidc_session", "v", 1)
            .contains("SameSite=Lax"));
    }

    #[test]
    fn strip_keeps_foreign_cookies() {
        let mut h = headers(&["a=1; s=xyz; s.0=q", "b=2"]);
        strip_cookies(&mut h, |n| n == "s" || n.starts_with("s."));
        let all: Vec<_> = h.get_all(COOKIE).iter().collect();
        assert_eq!(all, vec!["a=1; b=2"]);
        let mut h = headers(&["s=xyz"]);
        strip_cookies(&mut h, |n| n == "s");
        assert!(h.get(COOKIE).is_none());
        let mut h = headers(&["a=1"]);
        strip_cookies(&mut h, |n| n == "s");
        assert_eq!(h.get(COOKIE).unwrap(), "a=1");
    }
}
