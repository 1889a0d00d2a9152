//! A DPoP key pair (ES256 with `ring`) and the proofs it signs (RFC 9449 §4.2).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// An ES256 key pair for DPoP proofs. Its private half never prints.
pub(crate) struct DpopKey {
    pair: EcdsaKeyPair,
    /// The PKCS#8 document, to seal the key into a session.
    pkcs8: Vec<u8>,
    jwk: Value,
    jkt: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("jkt", &self.jkt)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A fresh key pair; `None` only if the system's random source fails.
    pub(crate) fn generate() -> Option<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).ok()?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// The key pair of a PKCS#8 document (as [`pkcs8`](Self::pkcs8) gives it).
    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> Option<Self> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).ok()?;
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 0x04 {
            return None;
        }
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        let jkt = super::proof::thumbprint(&jwk)?;
        Some(Self {
            pair,
            pkcs8: pkcs8.to_vec(),
            jwk,
            jkt,
        })
    }

    /// The PKCS#8 document of the private key (a secret: never logged).
    pub(crate) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The JWK thumbprint (RFC 7638) of the public key.
    #[cfg(any(test, feature = "bench-internals"))]
    pub(crate) fn thumbprint(&self) -> &str {
        &self.jkt
    }

    /// A proof for `method` and `url` (query and fragment dropped) at `now`, with `ath` for
    /// `access_token` and the server's `nonce` when given.
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: u64,
    ) -> Option<String> {
        let mut htu = url::Url::parse(url).ok()?;
        htu.set_query(None);
        htu.set_fragment(None);
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk });
        let mut claims = json!({
            "jti": crate::session::cookie::random_token(16),
            "htm": method,
            "htu": htu.as_str(),
            "iat": now,
        });
        if let Some(token) = access_token {
            claims["ath"] = super::proof::token_hash(token).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        self.sign(&header, &claims)
    }

    /// The compact JWS of `header` and `claims`, signed with this key.
    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> Option<String> {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .ok()?;
        Some(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// The public key as a JWK.
    #[cfg(test)]
    pub(crate) fn jwk(&self) -> &Value {
        &self.jwk
    }
}
