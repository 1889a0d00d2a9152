//! Compact JWS parsing and signature verification with `ring`, and JSON Web Key sets.
//!
//! Only asymmetric algorithms exist here: `none` and the HMAC family can never verify, so a
//! token cannot downgrade to them, and a public key is never used as an HMAC secret.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Deserialize;

/// Signature algorithms this crate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The hash used for `at_hash`/`c_hash` (OpenID Connect Core §3.1.3.6).
    pub(crate) fn half_hash(self, input: &[u8]) -> String {
        let algorithm = match self {
            Self::Rs256 | Self::Ps256 | Self::Es256 => &ring::digest::SHA256,
            Self::Rs384 | Self::Ps384 | Self::Es384 => &ring::digest::SHA384,
            Self::Rs512 | Self::Ps512 | Self::EdDsa => &ring::digest::SHA512,
        };
        let digest = ring::digest::digest(algorithm, input);
        let bytes = digest.as_ref();
        URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
    }

    fn key_type(self) -> &'static str {
        match self {
            Self::Rs256 | Self::Rs384 | Self::Rs512 | Self::Ps256 | Self::Ps384 | Self::Ps512 => {
                "RSA"
            }
            Self::Es256 | Self::Es384 => "EC",
            Self::EdDsa => "OKP",
        }
    }

    fn ring_algorithm(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            Self::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::EdDsa => &signature::ED25519,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JwtError {
    /// Not three base64url parts with JSON header and payload.
    Malformed,
    /// The header's `alg` is unknown, `none`, symmetric, or not allowed here.
    DisallowedAlg(String),
    /// No key in the set has the token's `kid` (or, without a `kid`, fits its algorithm).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// The header lists critical extensions (`crit`), none of which this crate understands
    /// (RFC 7515 §4.1.11: the token must then be refused).
    Critical,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed token"),
            Self::DisallowedAlg(alg) => write!(f, "signature algorithm `{alg}` is not allowed"),
            Self::UnknownKey => f.write_str("no key in the provider's key set matches the token"),
            Self::BadSignature => f.write_str("signature verification failed"),
            Self::Critical => f.write_str("the header names critical extensions (`crit`)"),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: String,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    #[serde(default)]
    pub(crate) typ: Option<String>,
    /// Critical extensions (RFC 7515 §4.1.11); none is understood here. `Some` whenever the
    /// header has the member, even `null`.
    #[serde(default, deserialize_with = "present")]
    crit: Option<serde::de::IgnoredAny>,
    /// The public key the signer embedded (DPoP proofs, RFC 9449 §4.2); never used to verify
    /// anything else.
    #[serde(default)]
    pub(crate) jwk: Option<serde_json::Value>,
}

/// `Some` for a member that is present, whatever its value.
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde::de::IgnoredAny>, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(Some)
}

/// A token split into its parts, signature not yet verified.
#[derive(Debug)]
pub(crate) struct Unverified<'a> {
    pub(crate) header: Header,
    signing_input: &'a str,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

impl<'a> Unverified<'a> {
    pub(crate) fn parse(token: &'a str) -> Result<Self, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header_bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| JwtError::Malformed)?;
        let header: Header =
            serde_json::from_slice(&header_bytes).map_err(|_| JwtError::Malformed)?;
        if header.crit.is_some() {
            return Err(JwtError::Critical);
        }
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        Ok(Self {
            header,
            signing_input: &token[..h.len() + 1 + p.len()],
            signature,
            payload,
        })
    }

    /// The algorithm, if it is one of `allowed`.
    pub(crate) fn alg(&self, allowed: &[Alg]) -> Result<Alg, JwtError> {
        Alg::from_name(&self.header.alg)
            .filter(|alg| allowed.contains(alg))
            .ok_or_else(|| JwtError::DisallowedAlg(self.header.alg.clone()))
    }

    /// The payload bytes (claims), whether or not the signature was verified.
    pub(crate) fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// Verifies the signature with a key from `keys`; returns the algorithm.
    pub(crate) fn verify(&self, keys: &JwkSet, allowed: &[Alg]) -> Result<Alg, JwtError> {
        let alg = self.alg(allowed)?;
        let mut candidates =
            keys.keys
                .iter()
                .filter(|k| k.fits(alg))
                .filter(|k| match (&self.header.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    (Some(_), None) => false,
                    (None, _) => true,
                });
        let mut any = false;
        let ok = candidates.any(|k| {
            any = true;
            k.verify(alg, self.signing_input.as_bytes(), &self.signature)
        });
        match (ok, any) {
            (true, _) => Ok(alg),
            (false, true) => Err(JwtError::BadSignature),
            (false, false) => Err(JwtError::UnknownKey),
        }
    }
}

/// A public key from a JWKS.
#[derive(Debug, Clone)]
pub(crate) struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    kty: &'static str,
    /// Key bytes in the form `ring` takes: RSA as (n, e), EC as an uncompressed point,
    /// OKP as the raw public key.
    material: KeyMaterial,
}

#[derive(Debug, Clone)]
enum KeyMaterial {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { crv: String, point: Vec<u8> },
    Okp { crv: String, x: Vec<u8> },
}

impl Jwk {
    fn fits(&self, alg: Alg) -> bool {
        if self.kty != alg.key_type() {
            return false;
        }
        if let Some(key_alg) = &self.alg {
            if key_alg != alg.name() {
                return false;
            }
        }
        match (&self.material, alg) {
            (KeyMaterial::Ec { crv, .. }, Alg::Es256) => crv == "P-256",
            (KeyMaterial::Ec { crv, .. }, Alg::Es384) => crv == "P-384",
            (KeyMaterial::Okp { crv, .. }, Alg::EdDsa) => crv == "Ed25519",
            (KeyMaterial::Rsa { .. }, _) => true,
            _ => false,
        }
    }

    fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(
                    match alg {
                        Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                        Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                        Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                        Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                        Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                        Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                        _ => return false,
                    },
                    message,
                    sig,
                )
                .is_ok(),
            KeyMaterial::Ec { point, .. } => UnparsedPublicKey::new(alg.ring_algorithm(), point)
                .verify(message, sig)
                .is_ok(),
            KeyMaterial::Okp { x, .. } => UnparsedPublicKey::new(alg.ring_algorithm(), x)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

/// The provider's signing keys. Keys that are not for signatures, or of a type this crate
/// does not verify, are skipped rather than failing the whole set.
#[derive(Debug, Clone, Default)]
pub(crate) struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawKey {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

impl JwkSet {
    pub(crate) fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        let raw: RawSet = serde_json::from_slice(json)?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<RawKey>(v).ok())
            .filter_map(Self::convert)
            .collect();
        Ok(Self { keys })
    }

    fn convert(raw: RawKey) -> Option<Jwk> {
        if raw.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let b64 = |s: Option<String>| s.and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
        let (kty, material) = match raw.kty.as_str() {
            "RSA" => {
                let mut n = b64(raw.n)?;
                let e = b64(raw.e)?;
                // ring wants the modulus without leading zero bytes.
                let skip = n.iter().take_while(|b| **b == 0).count();
                n.drain(..skip);
                ("RSA", KeyMaterial::Rsa { n, e })
            }
            "EC" => {
                let crv = raw.crv?;
                let x = b64(raw.x)?;
                let y = b64(raw.y)?;
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                ("EC", KeyMaterial::Ec { crv, point })
            }
            "OKP" => {
                let crv = raw.crv?;
                let x = b64(raw.x)?;
                ("OKP", KeyMaterial::Okp { crv, x })
            }
            _ => return None,
        };
        Some(Jwk {
            kid: raw.kid,
            alg: raw.alg,
            kty,
            material,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// A set of the one signing key `jwk` (a JSON object), e.g. a DPoP proof's own key;
    /// `None` when it is no usable public key.
    pub(crate) fn single(jwk: serde_json::Value) -> Option<Self> {
        let raw: RawKey = serde_json::from_value(jwk).ok()?;
        Self::convert(raw).map(|key| Self { keys: vec![key] })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    /// An ES256 key pair and its JWKS, for tests.
    pub(crate) struct TestKey {
        pair: EcdsaKeyPair,
        pub(crate) kid: String,
    }

    impl TestKey {
        pub(crate) fn new(kid: &str) -> Self {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Self {
                pair,
                kid: kid.into(),
            }
        }

        pub(crate) fn jwks_json(&self) -> String {
            let point = self.pair.public_key().as_ref();
            serde_json::json!({"keys": [{
                "kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            }]})
            .to_string()
        }

        pub(crate) fn jwks(&self) -> JwkSet {
            JwkSet::parse(self.jwks_json().as_bytes()).unwrap()
        }

        pub(crate) fn sign(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = self
                .pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
    }

    #[test]
    fn verifies_and_rejects() {
        let key = TestKey::new("k1");
        let jwks = key.jwks();
        assert_eq!(jwks.len(), 1);
        let claims = serde_json::json!({"sub": "alice"});
        let token = key.sign(
            serde_json::json!({"alg": "ES256", "kid": "k1"}),
            claims.clone(),
        );
        let parsed = Unverified::parse(&token).unwrap();
        assert_eq!(parsed.verify(&jwks, &[Alg::Es256]), Ok(Alg::Es256));
        let payload = parsed.into_payload();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&payload).unwrap(),
            claims
        );

        // algorithm not allowed
        assert_eq!(
            Unverified::parse(&token)
                .unwrap()
                .verify(&jwks, &[Alg::Rs256])
                .unwrap_err(),
            JwtError::DisallowedAlg("ES256".into())
        );
        // unknown kid
        let other = key.sign(
            serde_json::json!({"alg": "ES256", "kid": "k2"}),
            claims.clone(),
        );
        assert_eq!(
            Unverified::parse(&other)
                .unwrap()
                .verify(&jwks, &[Alg::Es256])
                .unwrap_err(),
            JwtError::UnknownKey
        );
        // signed by another key with the same kid
        let impostor = TestKey::new("k1").sign(
            serde_json::json!({"alg": "ES256", "kid": "k1"}),
            claims.clone(),
        );
        assert_eq!(
            Unverified::parse(&impostor)
                .unwrap()
                .verify(&jwks, &[Alg::Es256])
                .unwrap_err(),
            JwtError::BadSignature
        );
        // payload swapped
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(r#"{"sub":"mallory"}"#),
            parts[2]
        );
        assert_eq!(
            Unverified::parse(&forged)
                .unwrap()
                .verify(&jwks, &[Alg::Es256])
                .unwrap_err(),
            JwtError::BadSignature
        );
    }

    #[test]
    fn none_and_hmac_never_verify() {
        let key = TestKey::new("k1");
        let jwks = key.jwks();
        let body = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice"}"#);
        for alg in ["none", "HS256", "None", ""] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"k1"}}"#));
            let token = format!("{header}.{body}.");
            let err = Unverified::parse(&token)
                .unwrap()
                .verify(&jwks, &[Alg::Es256, Alg::Rs256])
                .unwrap_err();
            assert_eq!(err, JwtError::DisallowedAlg(alg.into()));
        }
    }

    #[test]
    fn malformed_tokens() {
        for t in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "!!.e30.",
            "e30.!!.",
            "bm90IGpzb24.e30.",
        ] {
            assert!(
                matches!(Unverified::parse(t), Err(JwtError::Malformed)),
                "{t}"
            );
        }
    }

    #[test]
    fn critical_extensions_are_refused() {
        let key = TestKey::new("k1");
        for crit in [
            serde_json::json!(["exp"]),
            serde_json::json!(["b64"]),
            serde_json::json!([]),
            serde_json::json!(null),
        ] {
            let token = key.sign(
                serde_json::json!({"alg": "ES256", "kid": "k1", "crit": crit, "b64": true}),
                serde_json::json!({"sub": "alice"}),
            );
            assert_eq!(
                Unverified::parse(&token).unwrap_err(),
                JwtError::Critical,
                "{crit}"
            );
        }
    }

    #[test]
    fn half_hash_matches_spec_example() {
        // OpenID Connect Core, Appendix A.3: at_hash of the example access token
        assert_eq!(
            Alg::Rs256.half_hash(b"jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn jwks_skips_unusable_keys() {
        let json = br#"{"keys":[
            {"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"oct","k":"c2VjcmV0"},
            {"kty":"EC","crv":"P-256"},
            {"kty":"RSA","kid":"r","n":"AAEC","e":"AQAB"}
        ]}"#;
        assert_eq!(JwkSet::parse(json).unwrap().len(), 1);
        assert!(JwkSet::parse(b"not json").is_err());
    }
}
