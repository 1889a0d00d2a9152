//! Signing keys of the development provider: generation, JWKS entries, JWS signing and
//! verification of tokens the provider issued itself.

use std::fmt;
use std::io;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{json, Value};

use super::DevSigningAlg;

/// DER prefix of a SubjectPublicKeyInfo for an uncompressed P-256 point
/// (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

enum Material {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// The public half of a signing key, kept after rotation to recognise older tokens.
#[derive(Clone)]
pub(crate) struct PublicKey {
    pub(crate) kid: String,
    pub(crate) alg: DevSigningAlg,
    kind: PublicKind,
    /// SubjectPublicKeyInfo in PEM form (used by the HS256 confusion fault).
    pem: String,
}

#[derive(Clone)]
enum PublicKind {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { point: Vec<u8> },
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A private signing key together with its public half.
pub(crate) struct SigningKey {
    material: Material,
    pub(crate) public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .field("alg", &self.public.alg)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

fn other<E: fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

/// RFC 7638 thumbprint over the required members, used as the `kid`.
fn thumbprint(canonical: &str) -> String {
    b64u(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
}

impl SigningKey {
    /// Generates a fresh key. RSA-2048 generation takes a noticeable moment.
    pub(crate) fn generate(alg: DevSigningAlg, rng: &SystemRandom) -> io::Result<Self> {
        match alg {
            DevSigningAlg::Rs256 => {
                use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
                use rsa::traits::PublicKeyParts as _;
                let mut os = rand::rngs::OsRng;
                let key = rsa::RsaPrivateKey::new(&mut os, 2048).map_err(other)?;
                let der = key.to_pkcs8_der().map_err(other)?;
                let pair = RsaKeyPair::from_pkcs8(der.as_bytes()).map_err(other)?;
                let n = key.n().to_bytes_be();
                let e = key.e().to_bytes_be();
                let spki = key
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(other)?
                    .as_bytes()
                    .to_vec();
                let kid = thumbprint(&format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    b64u(&e),
                    b64u(&n)
                ));
                Ok(Self {
                    material: Material::Rsa(pair),
                    public: PublicKey {
                        kid,
                        alg,
                        kind: PublicKind::Rsa { n, e },
                        pem: pem(&spki),
                    },
                })
            }
            DevSigningAlg::Es256 => {
                let alg_ring = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
                let doc = EcdsaKeyPair::generate_pkcs8(alg_ring, rng).map_err(other)?;
                let pair = EcdsaKeyPair::from_pkcs8(alg_ring, doc.as_ref(), rng).map_err(other)?;
                let point = pair.public_key().as_ref().to_vec();
                let mut spki = P256_SPKI_PREFIX.to_vec();
                spki.extend_from_slice(&point);
                let (x, y) = ec_coordinates(&point);
                let kid = thumbprint(&format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64u(x),
                    b64u(y)
                ));
                Ok(Self {
                    material: Material::Ec(pair),
                    public: PublicKey {
                        kid,
                        alg,
                        kind: PublicKind::Ec { point },
                        pem: pem(&spki),
                    },
                })
            }
        }
    }

    /// Signs a JWS signing input (`base64url(header) "." base64url(payload)`).
    pub(crate) fn sign(&self, input: &[u8], rng: &SystemRandom) -> Option<Vec<u8>> {
        match &self.material {
            Material::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, rng, input, &mut sig)
                    .ok()?;
                Some(sig)
            }
            Material::Ec(pair) => Some(pair.sign(rng, input).ok()?.as_ref().to_vec()),
        }
    }

    /// Builds a compact JWS with this key. `kid` overrides the key id in the header.
    pub(crate) fn jws(
        &self,
        typ: &str,
        kid: Option<&str>,
        claims: &Value,
        rng: &SystemRandom,
    ) -> Option<String> {
        let header = json!({
            "alg": self.public.alg.name(),
            "kid": kid.unwrap_or(&self.public.kid),
            "typ": typ,
        });
        let input = signing_input(&header, claims);
        let sig = self.sign(input.as_bytes(), rng)?;
        Some(format!("{input}.{}", b64u(&sig)))
    }

    /// [`SigningKey::jws`] with `typ: JWT` and the members of `extra` added to (or
    /// replacing) the header's.
    pub(crate) fn jws_with_header(
        &self,
        extra: &Value,
        claims: &Value,
        rng: &SystemRandom,
    ) -> Option<String> {
        let mut header = json!({
            "alg": self.public.alg.name(),
            "kid": self.public.kid,
            "typ": "JWT",
        });
        for (name, value) in extra.as_object()? {
            header[name] = value.clone();
        }
        let input = signing_input(&header, claims);
        let sig = self.sign(input.as_bytes(), rng)?;
        Some(format!("{input}.{}", b64u(&sig)))
    }
}

fn ec_coordinates(point: &[u8]) -> (&[u8], &[u8]) {
    // Uncompressed form: 0x04 || X (32 bytes) || Y (32 bytes).
    let coords = point.get(1..).unwrap_or_default();
    coords.split_at(coords.len() / 2)
}

/// `base64url(header) "." base64url(claims)`.
pub(crate) fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64u(header.to_string().as_bytes()),
        b64u(claims.to_string().as_bytes())
    )
}

impl PublicKey {
    /// The JWK published in the JWKS document.
    pub(crate) fn jwk(&self) -> Value {
        match &self.kind {
            PublicKind::Rsa { n, e } => json!({
                "kty": "RSA",
                "kid": self.kid,
                "alg": self.alg.name(),
                "use": "sig",
                "n": b64u(n),
                "e": b64u(e),
            }),
            PublicKind::Ec { point } => {
                let (x, y) = ec_coordinates(point);
                json!({
                    "kty": "EC",
                    "kid": self.kid,
                    "alg": self.alg.name(),
                    "use": "sig",
                    "crv": "P-256",
                    "x": b64u(x),
                    "y": b64u(y),
                })
            }
        }
    }

    /// The public key's PEM text (SubjectPublicKeyInfo).
    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    /// Checks a signature made by the private half of this key.
    pub(crate) fn verify(&self, input: &[u8], sig: &[u8]) -> bool {
        match &self.kind {
            PublicKind::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, input, sig)
                .is_ok(),
            PublicKind::Ec { point } => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input, sig)
                    .is_ok()
            }
        }
    }
}

/// Verifies a compact JWS against a set of keys, returning its claims when the signature is
/// valid. Times and claims are not checked here.
pub(crate) fn verify_jws<'a>(
    token: &str,
    keys: impl IntoIterator<Item = &'a PublicKey>,
) -> Option<Value> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
    let alg = header.get("alg")?.as_str()?;
    let kid = header.get("kid").and_then(Value::as_str);
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    let input = format!("{h}.{p}");
    let ok = keys.into_iter().any(|k| {
        k.alg.name() == alg
            && kid.is_none_or(|kid| kid == k.kid)
            && k.verify(input.as_bytes(), &sig)
    });
    if !ok {
        return None;
    }
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
    claims.is_object().then_some(claims)
}

/// The left half of the SHA-256 digest of a token, base64url (the `at_hash` rule for
/// RS256 and ES256).
pub(crate) fn left_half_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let bytes = digest.as_ref();
    b64u(&bytes[..bytes.len() / 2])
}

/// HS256 over a signing input, keyed with arbitrary bytes.
pub(crate) fn hs256(key: &[u8], input: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    b64u(ring::hmac::sign(&key, input).as_ref())
}

/// Random bytes as base64url text.
pub(crate) fn random_token(rng: &SystemRandom, len: usize) -> String {
    use ring::rand::SecureRandom as _;
    let mut buf = vec![0u8; len];
    if rng.fill(&mut buf).is_err() {
        // SystemRandom only fails when the OS has no entropy source; fall back to rand's.
        use rand::RngCore as _;
        rand::rngs::OsRng.fill_bytes(&mut buf);
    }
    b64u(&buf)
}

/// Base64url without padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    b64u(bytes)
}
