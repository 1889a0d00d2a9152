//! Client authentication with a signed JWT (`private_key_jwt`, RFC 7523 §2.2 and OpenID
//! Connect Core §9): the client's private key and the assertions it signs.
//!
//! Keys are RSA (signing RS256) or EC P-256 (signing ES256). They load from PKCS#8 PEM,
//! PKCS#1 PEM (RSA only) or a private JWK. Every key signs and verifies a probe message when
//! it is loaded, so a key whose parts do not belong together is refused at configuration
//! time, not at the first login.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::error::KeyRejected;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Map, Value};

use crate::error::ConfigError;

/// The `client_assertion_type` form parameter that goes with a client assertion
/// (RFC 7523 §2.2).
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// DER contents of the object identifiers this module tells apart.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_SECP256K1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];
const OID_X25519: &[u8] = &[0x2b, 0x65, 0x6e];
const OID_X448: &[u8] = &[0x2b, 0x65, 0x6f];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];

/// What to do instead when a key is in a format this module does not read.
const CONVERT_HINT: &str =
    "convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem`";

/// What to use instead of an unsupported key type.
const SUPPORTED_HINT: &str = "use an RSA key (RS256) or an EC P-256 key (ES256)";

enum Pair {
    Rsa(RsaKeyPair),
    Es256(EcdsaKeyPair),
}

/// The client's private key for `private_key_jwt` client authentication (RFC 7523 §2.2,
/// OpenID Connect Core §9).
///
/// An RSA key signs its client assertions with RS256, an EC P-256 key with ES256. Register
/// the public half, [`ClientKey::public_jwk`], at the provider (in the client's `jwks`
/// metadata, or at its `jwks_uri`). Cloning is cheap: the key material is shared.
///
/// `Debug` never prints key material.
///
/// # Example
///
/// ```
/// use tower_oidc::ClientKey;
///
/// # const PEM: &str = "-----BEGIN PRIVATE KEY-----
/// # MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2vShZAmWRItJdvkz
/// # cW+iTJ+ZnNlaRT9bQNEBxd4BFi2hRANCAASspQeZXR9UBUYv22RIvhk9HW4fgoA0
/// # VB4/Z9EtvHk7b4C6/8CL0NHwbPux2k7G2hKnixn9jLyCW4+UPpwpbN3B
/// # -----END PRIVATE KEY-----";
/// let key = ClientKey::from_pem(PEM)?.with_kid("client-key-1");
/// assert_eq!(key.alg(), "ES256");
/// assert!(!format!("{key:?}").contains("MIGHAgEA"));
/// # Ok::<(), tower_oidc::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ClientKey {
    pair: Arc<Pair>,
    kid: Option<String>,
    /// The certificate's thumbprints for the `x5t` and `x5t#S256` headers.
    thumbprints: Option<Arc<Thumbprints>>,
}

/// SHA-1 and SHA-256 thumbprints of a certificate's DER encoding, base64url.
#[derive(Debug)]
struct Thumbprints {
    sha1: String,
    sha256: String,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .field("x5t", &self.thumbprints.as_ref().map(|t| t.sha1.as_str()))
            .field("key", &"[redacted]")
            .finish()
    }
}

fn invalid(reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: "client_key",
        reason: reason.into(),
    }
}

/// Explains why `ring` refused a key, in words an operator can act on.
fn rejected(kind: &str, e: KeyRejected) -> ConfigError {
    invalid(match e.to_string().as_str() {
        "TooSmall" => format!("the {kind} key is too small (RSA keys need at least 2048 bits)"),
        "TooLarge" => format!("the {kind} key is too large (RSA keys may have at most 4096 bits)"),
        "InconsistentComponents" => format!("the {kind} key's parts do not belong together"),
        "PublicKeyIsMissing" => format!(
            "the {kind} key does not include its public key; re-export it with \
             `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem`"
        ),
        "VersionNotSupported" => format!("the {kind} key's encoding version is not supported"),
        other => format!("the {kind} key is malformed ({other})"),
    })
}

impl ClientKey {
    /// Loads a private key from PEM: PKCS#8 (`-----BEGIN PRIVATE KEY-----`) holding an RSA or
    /// EC P-256 key, or PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`). Other blocks in the text,
    /// such as certificates, are skipped.
    ///
    /// Encrypted keys, SEC 1 EC keys (`BEGIN EC PRIVATE KEY`) and other key types (Ed25519,
    /// P-384, ...) are refused with a reason that says what to do.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::{ClientKey, ConfigError};
    ///
    /// let pem = "-----BEGIN PRIVATE KEY-----
    /// MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2vShZAmWRItJdvkz
    /// cW+iTJ+ZnNlaRT9bQNEBxd4BFi2hRANCAASspQeZXR9UBUYv22RIvhk9HW4fgoA0
    /// VB4/Z9EtvHk7b4C6/8CL0NHwbPux2k7G2hKnixn9jLyCW4+UPpwpbN3B
    /// -----END PRIVATE KEY-----";
    /// assert_eq!(ClientKey::from_pem(pem)?.alg(), "ES256");
    ///
    /// let err = ClientKey::from_pem("not a key").unwrap_err();
    /// assert!(matches!(err, ConfigError::Invalid { field: "client_key", .. }));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn from_pem(pem: &str) -> Result<Self, ConfigError> {
        let (label, der) = private_pem_block(pem)?;
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8(&der),
            "RSA PRIVATE KEY" => {
                let pair = RsaKeyPair::from_der(&der).map_err(|e| rejected("RSA", e))?;
                Self::checked(Pair::Rsa(pair), None)
            }
            "EC PRIVATE KEY" => Err(invalid(format!(
                "`EC PRIVATE KEY` (SEC 1) PEM is not supported; {CONVERT_HINT}"
            ))),
            "ENCRYPTED PRIVATE KEY" => Err(invalid(
                "the key is encrypted; decrypt it first, e.g. with \
                 `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-plain.pem`",
            )),
            other => Err(invalid(format!(
                "`{other}` PEM is not supported; {CONVERT_HINT}"
            ))),
        }
    }

    /// Loads a private JSON Web Key (RFC 7517): `kty` `RSA` with `n`, `e`, `d`, `p`, `q`,
    /// `dp`, `dq`, `qi`, or `kty` `EC` with `crv` `P-256`, `x`, `y`, `d`. The key's `kid` is
    /// kept; its `alg`, when present, must be `RS256` (RSA) or `ES256` (EC). A JWK set holding
    /// exactly one key is accepted too.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::ClientKey;
    ///
    /// let key = ClientKey::from_jwk(r#"{
    ///     "kty": "EC", "crv": "P-256", "kid": "client-key-1",
    ///     "x": "rKUHmV0fVAVGL9tkSL4ZPR1uH4KANFQeP2fRLbx5O28",
    ///     "y": "gLr_wIvQ0fBs-7HaTsbaEqeLGf2MvIJbj5Q-nCls3cE",
    ///     "d": "2vShZAmWRItJdvkzcW-iTJ-ZnNlaRT9bQNEBxd4BFi0"
    /// }"#)?;
    /// assert_eq!(key.alg(), "ES256");
    /// assert_eq!(key.public_jwk()["kid"], "client-key-1");
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn from_jwk(json: &str) -> Result<Self, ConfigError> {
        // Syntax errors only report the position: never echo the text, it holds the key.
        let value: Value = serde_json::from_str(json).map_err(|e| {
            invalid(format!(
                "the JWK is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let mut jwk = value
            .as_object()
            .ok_or_else(|| invalid("the JWK is not a JSON object"))?;
        if let Some(keys) = jwk.get("keys") {
            jwk = match keys.as_array().map(Vec::as_slice) {
                Some([only]) => only
                    .as_object()
                    .ok_or_else(|| invalid("the key in the JWK set is not a JSON object"))?,
                Some(keys) => {
                    return Err(invalid(format!(
                        "the JWK set holds {} keys; give exactly one private key",
                        keys.len()
                    )))
                }
                None => return Err(invalid("the JWK's `keys` member is not an array")),
            };
        }
        let kty = text(jwk, "kty")?.ok_or_else(|| invalid("the JWK has no `kty`"))?;
        let expected_alg = match kty {
            "RSA" => "RS256",
            "EC" => "ES256",
            other => {
                return Err(invalid(format!(
                    "JWK key type `{other}` is not supported; {SUPPORTED_HINT}"
                )))
            }
        };
        if let Some(alg) = text(jwk, "alg")? {
            if alg != expected_alg {
                return Err(invalid(format!(
                    "the JWK's `alg` is `{alg}`, but a `{kty}` key signs `{expected_alg}` here"
                )));
            }
        }
        if let Some(use_) = text(jwk, "use")? {
            if use_ != "sig" {
                return Err(invalid(format!(
                    "the JWK's `use` is `{use_}`; a signing key (`sig`) is needed"
                )));
            }
        }
        if !jwk.contains_key("d") {
            return Err(invalid(
                "the JWK is a public key (it has no `d`); give the private JWK",
            ));
        }
        let kid = text(jwk, "kid")?.map(str::to_owned);
        let pair = if kty == "RSA" {
            rsa_from_jwk(jwk)?
        } else {
            ec_from_jwk(jwk)?
        };
        Self::checked(pair, kid)
    }

    /// Loads a private key from a file holding PEM (see [`ClientKey::from_pem`]) or a JWK
    /// (see [`ClientKey::from_jwk`]), told apart by the content.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::ClientKey;
    ///
    /// let key = ClientKey::from_file(std::env::var("OIDC_PRIVATE_KEY_FILE").unwrap())?;
    /// println!("register this key at the provider: {}", key.public_jwk());
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| invalid(format!("cannot read `{}`: {e}", path.display())))?;
        let content = String::from_utf8(bytes).map_err(|_| {
            invalid(format!(
                "`{}` is not text (a DER file?); convert it to PEM with \
                 `openssl pkey -inform DER -in key.der -out key.pem`",
                path.display()
            ))
        })?;
        if content.trim_start().starts_with('{') {
            Self::from_jwk(&content)
        } else {
            Self::from_pem(&content)
        }
    }

    /// Sets the key id (`kid`) that client assertions carry in their header and that
    /// [`ClientKey::public_jwk`] names, replacing one taken from a JWK.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::ClientKey;
    ///
    /// # const PEM: &str = "-----BEGIN PRIVATE KEY-----
    /// # MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2vShZAmWRItJdvkz
    /// # cW+iTJ+ZnNlaRT9bQNEBxd4BFi2hRANCAASspQeZXR9UBUYv22RIvhk9HW4fgoA0
    /// # VB4/Z9EtvHk7b4C6/8CL0NHwbPux2k7G2hKnixn9jLyCW4+UPpwpbN3B
    /// # -----END PRIVATE KEY-----";
    /// let key = ClientKey::from_pem(PEM)?.with_kid("2024-06");
    /// assert_eq!(key.public_jwk()["kid"], "2024-06");
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The X.509 certificate of this key (PEM, `-----BEGIN CERTIFICATE-----`; other blocks
    /// are skipped): client assertions then carry its thumbprints in the `x5t` (SHA-1) and
    /// `x5t#S256` (SHA-256) headers, as Microsoft Entra ID requires of apps that registered a
    /// certificate rather than a key.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tower_oidc::ClientKey;
    ///
    /// let key = ClientKey::from_file("client-key.pem")?
    ///     .with_certificate(&std::fs::read_to_string("client-cert.pem").expect("certificate"))?;
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when the text holds no certificate, or the certificate is not
    /// of this key (its public key is not in it).
    pub fn with_certificate(mut self, pem: &str) -> Result<Self, ConfigError> {
        let der = certificate_pem_block(pem)?;
        let public: &[u8] = match &*self.pair {
            // The DER `RSAPublicKey` and the EC point appear as they are in the certificate's
            // `SubjectPublicKeyInfo`.
            Pair::Rsa(pair) => pair.public().as_ref(),
            Pair::Es256(pair) => pair.public_key().as_ref(),
        };
        if !der.windows(public.len()).any(|w| w == public) {
            return Err(invalid("the certificate is not of this key"));
        }
        let thumbprint = |alg| URL_SAFE_NO_PAD.encode(ring::digest::digest(alg, &der));
        self.thumbprints = Some(Arc::new(Thumbprints {
            sha1: thumbprint(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
            sha256: thumbprint(&ring::digest::SHA256),
        }));
        Ok(self)
    }

    /// The JWS algorithm this key signs with: `"RS256"` for RSA, `"ES256"` for EC P-256.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::ClientKey;
    ///
    /// # const PEM: &str = "-----BEGIN PRIVATE KEY-----
    /// # MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2vShZAmWRItJdvkz
    /// # cW+iTJ+ZnNlaRT9bQNEBxd4BFi2hRANCAASspQeZXR9UBUYv22RIvhk9HW4fgoA0
    /// # VB4/Z9EtvHk7b4C6/8CL0NHwbPux2k7G2hKnixn9jLyCW4+UPpwpbN3B
    /// # -----END PRIVATE KEY-----";
    /// assert_eq!(ClientKey::from_pem(PEM)?.alg(), "ES256");
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn alg(&self) -> &'static str {
        match *self.pair {
            Pair::Rsa(_) => "RS256",
            Pair::Es256(_) => "ES256",
        }
    }

    /// The public half as a JWK (`kty`, `n`/`e` or `crv`/`x`/`y`, `alg`, `use: "sig"`, and
    /// `kid` when set), to register at the provider in the client's `jwks` metadata.
    ///
    /// # Example
    ///
    /// ```
    /// use tower_oidc::ClientKey;
    ///
    /// # const PEM: &str = "-----BEGIN PRIVATE KEY-----
    /// # MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2vShZAmWRItJdvkz
    /// # cW+iTJ+ZnNlaRT9bQNEBxd4BFi2hRANCAASspQeZXR9UBUYv22RIvhk9HW4fgoA0
    /// # VB4/Z9EtvHk7b4C6/8CL0NHwbPux2k7G2hKnixn9jLyCW4+UPpwpbN3B
    /// # -----END PRIVATE KEY-----";
    /// let jwk = ClientKey::from_pem(PEM)?.public_jwk();
    /// assert_eq!(jwk["kty"], "EC");
    /// assert_eq!(jwk["crv"], "P-256");
    /// assert_eq!(jwk["use"], "sig");
    /// assert!(jwk.get("d").is_none());
    /// let client_metadata = serde_json::json!({ "jwks": { "keys": [jwk] } });
    /// # Ok::<(), tower_oidc::ConfigError>(())
    /// ```
    pub fn public_jwk(&self) -> Value {
        let mut jwk = Map::new();
        let mut put = |name: &str, value: String| {
            jwk.insert(name.to_owned(), Value::String(value));
        };
        match &*self.pair {
            Pair::Rsa(pair) => {
                let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                put("kty", "RSA".into());
                put("n", URL_SAFE_NO_PAD.encode(&public.n));
                put("e", URL_SAFE_NO_PAD.encode(&public.e));
            }
            Pair::Es256(pair) => {
                // An uncompressed point: 0x04, then x and y of 32 bytes each.
                let point = pair.public_key().as_ref();
                put("kty", "EC".into());
                put("crv", "P-256".into());
                put("x", URL_SAFE_NO_PAD.encode(&point[1..33]));
                put("y", URL_SAFE_NO_PAD.encode(&point[33..65]));
            }
        }
        put("alg", self.alg().into());
        put("use", "sig".into());
        if let Some(kid) = &self.kid {
            put("kid", kid.clone());
        }
        Value::Object(jwk)
    }

    /// A PKCS#8 `PrivateKeyInfo`, RSA or EC P-256.
    fn from_pkcs8(der: &[u8]) -> Result<Self, ConfigError> {
        let (alg, param) = pkcs8_algorithm(der)
            .ok_or_else(|| invalid("the PKCS#8 key is malformed (not a DER PrivateKeyInfo)"))?;
        let pair = match alg {
            OID_RSA => Pair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| rejected("RSA", e))?),
            OID_EC => match param {
                Some(OID_P256) => Pair::Es256(
                    EcdsaKeyPair::from_pkcs8(
                        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                        der,
                        &SystemRandom::new(),
                    )
                    .map_err(|e| rejected("EC P-256", e))?,
                ),
                Some(curve) => {
                    return Err(invalid(format!(
                        "EC keys on curve {} are not supported; {SUPPORTED_HINT}",
                        oid_name(curve)
                    )))
                }
                None => {
                    return Err(invalid(format!(
                        "the EC key names no curve; {SUPPORTED_HINT}"
                    )))
                }
            },
            other => {
                return Err(invalid(format!(
                    "{} keys are not supported; {SUPPORTED_HINT}",
                    oid_name(other)
                )))
            }
        };
        Self::checked(pair, None)
    }

    /// Wraps a key pair after signing a probe message and verifying it with the public key,
    /// which catches private parts that do not match the public ones.
    fn checked(pair: Pair, kid: Option<String>) -> Result<Self, ConfigError> {
        let key = Self {
            pair: Arc::new(pair),
            kid,
            thumbprints: None,
        };
        let probe = b"tower-oidc client key check";
        let sig = key
            .sign(probe)
            .map_err(|_| invalid("the key cannot sign (its parts may not belong together)"))?;
        let verified = match &*key.pair {
            Pair::Rsa(pair) => UnparsedPublicKey::new(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                pair.public().as_ref(),
            )
            .verify(probe, &sig),
            Pair::Es256(pair) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, pair.public_key())
                    .verify(probe, &sig)
            }
        };
        verified.map_err(|_| invalid("the private key does not match its public key"))?;
        Ok(key)
    }

    /// Signs `message` with the key's algorithm.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        let rng = SystemRandom::new();
        match &*self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)?;
                Ok(sig)
            }
            Pair::Es256(pair) => Ok(pair.sign(&rng, message)?.as_ref().to_vec()),
        }
    }
}

/// A signed client assertion (RFC 7523 §2.2, OpenID Connect Core §9): a compact JWS whose
/// `iss` and `sub` are the client id, whose `aud` is `audience` (the issuer or the token endpoint URL), with
/// a random `jti`, `iat` = `now` and `exp` = `now + lifetime_secs` (seconds since the epoch).
/// Send it as `client_assertion` with `client_assertion_type` = [`ASSERTION_TYPE`].
///
/// # Panics
///
/// Only if the operating system's random number generator fails.
pub(crate) fn client_assertion(
    key: &ClientKey,
    client_id: &str,
    audience: &str,
    now: u64,
    lifetime_secs: u64,
) -> String {
    let mut jti = [0u8; 32];
    SystemRandom::new()
        .fill(&mut jti)
        .expect("the operating system's random number generator failed");
    let mut header = Map::new();
    header.insert("alg".to_owned(), key.alg().into());
    header.insert("typ".to_owned(), "JWT".into());
    if let Some(kid) = &key.kid {
        header.insert("kid".to_owned(), kid.as_str().into());
    }
    if let Some(thumbprints) = &key.thumbprints {
        header.insert("x5t".to_owned(), thumbprints.sha1.as_str().into());
        header.insert("x5t#S256".to_owned(), thumbprints.sha256.as_str().into());
    }
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": URL_SAFE_NO_PAD.encode(jti),
        "iat": now,
        "exp": now.saturating_add(lifetime_secs),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
    );
    let sig = key
        .sign(signing_input.as_bytes())
        .expect("signing fails only when the random number generator does");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A compact JWS of `claims` signed with `key`, header `typ` as given (and the key's `kid`).
///
/// # Panics
///
/// Only if the operating system's random number generator fails.
pub(crate) fn signed_jwt(key: &ClientKey, typ: &str, claims: &Value) -> String {
    let mut header = Map::new();
    header.insert("alg".to_owned(), key.alg().into());
    header.insert("typ".to_owned(), typ.into());
    if let Some(kid) = &key.kid {
        header.insert("kid".to_owned(), kid.as_str().into());
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
    );
    let sig = key
        .sign(signing_input.as_bytes())
        .expect("signing fails only when the random number generator does");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The DER of the first `CERTIFICATE` PEM block.
fn certificate_pem_block(pem: &str) -> Result<Vec<u8>, ConfigError> {
    let mut lines = pem.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line != "-----BEGIN CERTIFICATE-----" {
            continue;
        }
        let mut body = String::new();
        for line in lines.by_ref() {
            if line == "-----END CERTIFICATE-----" {
                return STANDARD
                    .decode(body)
                    .map_err(|_| invalid("the certificate's PEM block is not valid base64"));
            }
            body.push_str(line);
        }
        return Err(invalid("the certificate's PEM block has no END line"));
    }
    Err(invalid(
        "no certificate found (expected `-----BEGIN CERTIFICATE-----`)",
    ))
}

/// The first PEM block whose label ends in `PRIVATE KEY`: its label and decoded contents.
fn private_pem_block(pem: &str) -> Result<(String, Vec<u8>), ConfigError> {
    let mut others = Vec::new();
    let mut lines = pem.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        else {
            continue;
        };
        if !label.ends_with("PRIVATE KEY") {
            others.push(format!("`{label}`"));
            continue;
        }
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                // RFC 1421 headers (`Proc-Type`, `DEK-Info`) mark a legacy encrypted key.
                return Err(invalid(
                    "the key is encrypted; decrypt it first, e.g. with \
                     `openssl pkey -in key.pem -out key-plain.pem`",
                ));
            }
            body.push_str(line);
        }
        if !closed {
            return Err(invalid(format!("the PEM block `{label}` has no END line")));
        }
        let der = STANDARD
            .decode(body)
            .map_err(|_| invalid(format!("the PEM block `{label}` is not valid base64")))?;
        return Ok((label.to_owned(), der));
    }
    Err(invalid(if others.is_empty() {
        "no PEM private key found (expected `-----BEGIN PRIVATE KEY-----`)".to_owned()
    } else {
        format!(
            "no private key among the PEM blocks (found {})",
            others.join(", ")
        )
    }))
}

/// One DER element: its tag, contents, and the bytes after it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len, rest) = rest.split_at(count);
        (
            len.iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            rest,
        )
    };
    (rest.len() >= len).then(|| {
        let (contents, rest) = rest.split_at(len);
        (tag, contents, rest)
    })
}

/// The algorithm OID of a PKCS#8 `PrivateKeyInfo`, and its parameter when that is an OID
/// (the named curve of an EC key).
fn pkcs8_algorithm(der: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OID: u8 = 0x06;
    let (SEQUENCE, info, _) = der_element(der)? else {
        return None;
    };
    let (INTEGER, _version, rest) = der_element(info)? else {
        return None;
    };
    let (SEQUENCE, algorithm, _) = der_element(rest)? else {
        return None;
    };
    let (OID, oid, params) = der_element(algorithm)? else {
        return None;
    };
    let param = match der_element(params) {
        Some((OID, curve, _)) => Some(curve),
        _ => None,
    };
    Some((oid, param))
}

/// A readable name for a key algorithm or curve OID: its common name, or dotted form.
fn oid_name(oid: &[u8]) -> String {
    let name = match oid {
        OID_RSA => "RSA",
        OID_RSA_PSS => "RSASSA-PSS",
        OID_EC => "EC",
        OID_P256 => "P-256",
        OID_P384 => "P-384",
        OID_P521 => "P-521",
        OID_SECP256K1 => "secp256k1",
        OID_X25519 => "X25519",
        OID_X448 => "X448",
        OID_ED25519 => "Ed25519",
        OID_ED448 => "Ed448",
        _ => {
            let mut arcs = Vec::new();
            let mut arc: u64 = 0;
            for &b in oid {
                arc = (arc << 7) | u64::from(b & 0x7f);
                if b & 0x80 == 0 {
                    arcs.push(arc);
                    arc = 0;
                }
            }
            let mut dotted = match arcs.first() {
                Some(&first) if first < 80 => format!("{}.{}", first / 40, first % 40),
                Some(&first) => format!("2.{}", first - 80),
                None => return "an unknown algorithm".to_owned(),
            };
            for arc in &arcs[1..] {
                dotted.push_str(&format!(".{arc}"));
            }
            return format!("OID {dotted}");
        }
    };
    name.to_owned()
}

/// A string member of a JWK, if present.
fn text<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ConfigError> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("the JWK's `{name}` is not a string"))),
    }
}

/// A required base64url member of a JWK, decoded.
fn bytes(jwk: &Map<String, Value>, kty: &str, name: &str) -> Result<Vec<u8>, ConfigError> {
    let value =
        text(jwk, name)?.ok_or_else(|| invalid(format!("the {kty} JWK has no `{name}`")))?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| invalid(format!("the JWK's `{name}` is not base64url")))
}

/// A big-endian integer member of an RSA JWK, without leading zero bytes.
fn integer(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, ConfigError> {
    let mut value = bytes(jwk, "RSA", name)?;
    let zeros = value.iter().take_while(|b| **b == 0).count();
    value.drain(..zeros);
    Ok(value)
}

fn rsa_from_jwk(jwk: &Map<String, Value>) -> Result<Pair, ConfigError> {
    if jwk.contains_key("oth") {
        return Err(invalid(
            "multi-prime RSA JWKs (with `oth`) are not supported",
        ));
    }
    let components = ring::rsa::KeyPairComponents {
        public_key: signature::RsaPublicKeyComponents {
            n: integer(jwk, "n")?,
            e: integer(jwk, "e")?,
        },
        d: integer(jwk, "d")?,
        p: integer(jwk, "p")?,
        q: integer(jwk, "q")?,
        dP: integer(jwk, "dp")?,
        dQ: integer(jwk, "dq")?,
        qInv: integer(jwk, "qi")?,
    };
    let pair = RsaKeyPair::from_components(&components).map_err(|e| rejected("RSA", e))?;
    Ok(Pair::Rsa(pair))
}

fn ec_from_jwk(jwk: &Map<String, Value>) -> Result<Pair, ConfigError> {
    match text(jwk, "crv")? {
        Some("P-256") => {}
        Some(crv) => {
            return Err(invalid(format!(
                "EC keys on curve {crv} are not supported; {SUPPORTED_HINT}"
            )))
        }
        None => return Err(invalid("the EC JWK has no `crv`")),
    }
    let x = bytes(jwk, "EC", "x")?;
    let y = bytes(jwk, "EC", "y")?;
    let mut d = bytes(jwk, "EC", "d")?;
    if x.len() != 32 || y.len() != 32 {
        return Err(invalid(
            "the EC JWK's `x` and `y` must be 32 bytes each for P-256",
        ));
    }
    if d.len() > 32 {
        return Err(invalid("the EC JWK's `d` is longer than 32 bytes"));
    }
    // RFC 7518 §6.2.2.1 wants `d` at full length; accept a shortened one by padding it.
    let mut private = vec![0; 32 - d.len()];
    private.append(&mut d);
    let mut public = Vec::with_capacity(65);
    public.push(0x04);
    public.extend_from_slice(&x);
    public.extend_from_slice(&y);
    let pair = EcdsaKeyPair::from_private_key_and_public_key(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &private,
        &public,
        &SystemRandom::new(),
    )
    .map_err(|e| rejected("EC P-256", e))?;
    Ok(Pair::Es256(pair))
}

#[cfg(test)]
mod tests {
    use ring::signature::Ed25519KeyPair;
    use serde_json::json;

    use super::*;
    use crate::jwt::{Alg, JwkSet, Unverified};

    /// Runs the `openssl` CLI in `dir`; its standard output.
    fn openssl(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl CLI is needed for this test: apt-get install openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The thumbprint `openssl x509 -fingerprint` prints (hex with colons), base64url.
    fn fingerprint(dir: &Path, cert: &str, digest: &str) -> String {
        let printed = openssl(
            dir,
            &["x509", "-in", cert, "-noout", "-fingerprint", digest],
        );
        let hex = printed
            .trim()
            .rsplit('=')
            .next()
            .unwrap_or_default()
            .replace(':', "");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn certificate_thumbprints_go_into_the_x5t_headers() {
        let dir = std::env::temp_dir().join(format!("tower-oidc-x5t-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, newkey) in [
            ("rsa", &["-newkey", "rsa:2048"][..]),
            (
                "ec",
                &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            ),
        ] {
            let (key_file, cert_file) = (format!("{name}-key.pem"), format!("{name}-cert.pem"));
            let mut args = vec![
                "req",
                "-x509",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=client",
            ];
            args.extend_from_slice(newkey);
            args.extend_from_slice(&["-keyout", &key_file, "-out", &cert_file]);
            openssl(&dir, &args);
            let key = ClientKey::from_file(dir.join(&key_file)).unwrap();
            let cert = std::fs::read_to_string(dir.join(&cert_file)).unwrap();
            // No certificate, no thumbprints.
            let plain = client_assertion(&key, "c", "https://id.example.com", 1000, 60);
            let header_json = URL_SAFE_NO_PAD
                .decode(plain.split('.').next().unwrap())
                .unwrap();
            let header: Value = serde_json::from_slice(&header_json).unwrap();
            assert!(header.get("x5t").is_none() && header.get("x5t#S256").is_none());
            let key = key.with_certificate(&cert).unwrap();
            let assertion = client_assertion(&key, "c", "https://id.example.com", 1000, 60);
            let header_json = URL_SAFE_NO_PAD
                .decode(assertion.split('.').next().unwrap())
                .unwrap();
            let header: Value = serde_json::from_slice(&header_json).unwrap();
            assert_eq!(
                header["x5t"],
                fingerprint(&dir, &cert_file, "-sha1"),
                "{name}"
            );
            assert_eq!(
                header["x5t#S256"],
                fingerprint(&dir, &cert_file, "-sha256"),
                "{name}"
            );
        }
        // Another key's certificate, and text without one, are refused.
        let rsa = ClientKey::from_file(dir.join("rsa-key.pem")).unwrap();
        let ec_cert = std::fs::read_to_string(dir.join("ec-cert.pem")).unwrap();
        assert!(matches!(
            rsa.clone().with_certificate(&ec_cert),
            Err(ConfigError::Invalid {
                field: "client_key",
                ..
            })
        ));
        assert!(matches!(
            rsa.with_certificate(EXAMPLE_PEM),
            Err(ConfigError::Invalid {
                field: "client_key",
                ..
            })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The P-256 key of the doc examples (made with `openssl genpkey`), as PEM and as JWK.
    const EXAMPLE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2vShZAmWRItJdvkz
cW+iTJ+ZnNlaRT9bQNEBxd4BFi2hRANCAASspQeZXR9UBUYv22RIvhk9HW4fgoA0
VB4/Z9EtvHk7b4C6/8CL0NHwbPux2k7G2hKnixn9jLyCW4+UPpwpbN3B
-----END PRIVATE KEY-----
";
    const EXAMPLE_D: &str = "2vShZAmWRItJdvkzcW-iTJ-ZnNlaRT9bQNEBxd4BFi0";
    const EXAMPLE_X: &str = "rKUHmV0fVAVGL9tkSL4ZPR1uH4KANFQeP2fRLbx5O28";
    const EXAMPLE_Y: &str = "gLr_wIvQ0fBs-7HaTsbaEqeLGf2MvIJbj5Q-nCls3cE";

    /// A P-384 key (made with `openssl genpkey`): a curve this module refuses.
    const P384_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDDYLw/uYlwWI5OsCJkO
CSInJgGlTOLenrbkUnSj/EOlH1sdQttZpp8sm4xMKIk1JsChZANiAATLyh/3/K0j
KkOoi2kw/lCzdZTLJQx6cLY2HXPsHbnrXTNupMhYcM3yQ+ZNP3N00+mJra//W8r5
ABCKZDM8am0dxsSx+sPHpXoVhRdc3kBTCOqJSiRNkMJcga852yqIHhY=
-----END PRIVATE KEY-----
";

    const NOW: u64 = 1_700_000_000;
    const TOKEN_ENDPOINT: &str = "https://id.example.com/oauth/token";

    fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in body.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn unb64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    /// The reason of a `client_key` configuration error.
    fn reason(result: Result<ClientKey, ConfigError>) -> String {
        match result {
            Err(ConfigError::Invalid {
                field: "client_key",
                reason,
            }) => reason,
            other => panic!("expected a client_key error, got {other:?}"),
        }
    }

    /// A fresh P-256 key from ring: its PKCS#8 document, and its JWK members d, x, y.
    fn p256() -> (Vec<u8>, String, String, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let der = pkcs8.as_ref().to_vec();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                .unwrap();
        // ring does not expose `d`; in its PKCS#8 the ECPrivateKey starts with version 1
        // (02 01 01) followed by the 32-byte private key as an OCTET STRING (04 20).
        let at = der
            .windows(5)
            .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
            .unwrap()
            + 5;
        let d = b64(&der[at..at + 32]);
        let point = pair.public_key().as_ref();
        (der.clone(), d, b64(&point[1..33]), b64(&point[33..65]))
    }

    /// Checks the signature against `public_jwk` with ring directly and with the crate's own
    /// verifier, and returns the header and claims.
    fn verify(token: &str, public_jwk: &Value) -> (Value, Value) {
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let message = format!("{}.{}", parts[0], parts[1]);
        let sig = unb64(parts[2]);
        match public_jwk["kty"].as_str().unwrap() {
            "EC" => {
                let mut point = vec![0x04];
                point.extend(unb64(public_jwk["x"].as_str().unwrap()));
                point.extend(unb64(public_jwk["y"].as_str().unwrap()));
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message.as_bytes(), &sig)
                    .unwrap();
            }
            "RSA" => signature::RsaPublicKeyComponents {
                n: unb64(public_jwk["n"].as_str().unwrap()),
                e: unb64(public_jwk["e"].as_str().unwrap()),
            }
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                message.as_bytes(),
                &sig,
            )
            .unwrap(),
            other => panic!("unexpected kty {other}"),
        }
        let set = JwkSet::parse(json!({ "keys": [public_jwk] }).to_string().as_bytes()).unwrap();
        Unverified::parse(token)
            .unwrap()
            .verify(&set, &[Alg::Rs256, Alg::Es256])
            .unwrap();
        (
            serde_json::from_slice(&unb64(parts[0])).unwrap(),
            serde_json::from_slice(&unb64(parts[1])).unwrap(),
        )
    }

    /// Signs two assertions and checks their header, claims and signatures.
    fn check_assertions(key: &ClientKey) {
        let jwk = key.public_jwk();
        let mut jtis = Vec::new();
        for _ in 0..2 {
            let token = client_assertion(key, "my-client", TOKEN_ENDPOINT, NOW, 60);
            let (header, claims) = verify(&token, &jwk);
            assert_eq!(header["alg"], key.alg());
            assert_eq!(header["typ"], "JWT");
            assert_eq!(header.get("kid"), jwk.get("kid"));
            assert_eq!(claims["iss"], "my-client");
            assert_eq!(claims["sub"], "my-client");
            assert_eq!(claims["aud"], TOKEN_ENDPOINT);
            assert_eq!(claims["iat"], NOW);
            assert_eq!(claims["exp"], NOW + 60);
            let jti = claims["jti"].as_str().unwrap().to_owned();
            assert_eq!(unb64(&jti).len(), 32);
            jtis.push(jti);
        }
        assert_ne!(jtis[0], jtis[1], "every assertion has a fresh jti");
    }

    #[test]
    fn es256_from_pem_signs_verifiable_assertions() {
        let (der, ..) = p256();
        let key = ClientKey::from_pem(&pem("PRIVATE KEY", &der))
            .unwrap()
            .with_kid("k1");
        assert_eq!(key.alg(), "ES256");
        let jwk = key.public_jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], "k1");
        assert!(jwk.get("d").is_none());
        check_assertions(&key);
        check_assertions(&ClientKey::from_pem(&pem("PRIVATE KEY", &der)).unwrap());
    }

    #[test]
    fn es256_from_jwk_is_the_same_key_as_from_pem() {
        let (der, d, x, y) = p256();
        let from_pem = ClientKey::from_pem(&pem("PRIVATE KEY", &der))
            .unwrap()
            .with_kid("k2");
        let from_jwk = ClientKey::from_jwk(
            &json!({ "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
                     "kid": "k2", "d": d, "x": x, "y": y })
            .to_string(),
        )
        .unwrap();
        assert_eq!(from_jwk.public_jwk(), from_pem.public_jwk());
        check_assertions(&from_jwk);
        // An assertion of one verifies with the other's public key.
        let token = client_assertion(&from_jwk, "c", TOKEN_ENDPOINT, NOW, 30);
        verify(&token, &from_pem.public_jwk());
        // A JWK set with one key works too.
        let set = json!({ "keys": [{ "kty": "EC", "crv": "P-256", "d": d, "x": x, "y": y }] });
        let key = ClientKey::from_jwk(&set.to_string()).unwrap();
        assert!(key.public_jwk().get("kid").is_none());
    }

    #[test]
    fn example_constants_are_one_key() {
        let from_pem = ClientKey::from_pem(EXAMPLE_PEM).unwrap();
        let jwk =
            json!({ "kty": "EC", "crv": "P-256", "d": EXAMPLE_D, "x": EXAMPLE_X, "y": EXAMPLE_Y });
        let from_jwk = ClientKey::from_jwk(&jwk.to_string()).unwrap();
        assert_eq!(from_pem.public_jwk(), from_jwk.public_jwk());
        assert_eq!(from_pem.public_jwk()["x"], EXAMPLE_X);
        // Surrounding text, other blocks and CRLF line ends are fine.
        let messy = format!(
            "subject=CN=client\r\n-----BEGIN CERTIFICATE-----\r\nMIIB\r\n-----END CERTIFICATE-----\r\n{}",
            EXAMPLE_PEM.replace('\n', "\r\n")
        );
        assert_eq!(
            ClientKey::from_pem(&messy).unwrap().public_jwk(),
            from_pem.public_jwk()
        );
    }

    #[test]
    fn with_kid_replaces_the_jwk_kid() {
        let jwk = json!({ "kty": "EC", "crv": "P-256", "kid": "old",
                          "d": EXAMPLE_D, "x": EXAMPLE_X, "y": EXAMPLE_Y });
        let key = ClientKey::from_jwk(&jwk.to_string()).unwrap();
        assert_eq!(key.public_jwk()["kid"], "old");
        let key = key.with_kid("new");
        assert_eq!(key.public_jwk()["kid"], "new");
        let token = client_assertion(&key, "c", TOKEN_ENDPOINT, NOW, 30);
        assert_eq!(verify(&token, &key.public_jwk()).0["kid"], "new");
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = ClientKey::from_pem(EXAMPLE_PEM).unwrap().with_kid("k1");
        let text = format!("{key:?}");
        assert!(text.contains("[redacted]"), "{text}");
        assert!(text.contains("ES256") && text.contains("k1"), "{text}");
        assert!(
            !text.contains(EXAMPLE_D) && !text.contains("MIGHAgEA"),
            "{text}"
        );
        let cloned = key.clone();
        assert_eq!(format!("{cloned:?}"), text);
    }

    #[test]
    fn refuses_pem_it_cannot_use() {
        assert!(reason(ClientKey::from_pem("hello")).contains("no PEM private key found"));
        assert!(reason(ClientKey::from_pem("")).contains("no PEM private key found"));
        let garbage = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
        assert!(reason(ClientKey::from_pem(garbage)).contains("not valid base64"));
        let not_der = pem("PRIVATE KEY", b"definitely not DER");
        assert!(reason(ClientKey::from_pem(&not_der)).contains("malformed"));
        let unclosed = "-----BEGIN PRIVATE KEY-----\nMIGH\n";
        assert!(reason(ClientKey::from_pem(unclosed)).contains("no END line"));

        let public = pem("PUBLIC KEY", b"\x30\x00");
        let r = reason(ClientKey::from_pem(&public));
        assert!(
            r.contains("no private key") && r.contains("`PUBLIC KEY`"),
            "{r}"
        );

        let ed25519 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let r = reason(ClientKey::from_pem(&pem("PRIVATE KEY", ed25519.as_ref())));
        assert!(r.contains("Ed25519 keys are not supported"), "{r}");
        assert!(r.contains("RS256") && r.contains("ES256"), "{r}");

        let r = reason(ClientKey::from_pem(P384_PEM));
        assert!(r.contains("curve P-384 are not supported"), "{r}");

        let sec1 = EXAMPLE_PEM.replace("PRIVATE KEY", "EC PRIVATE KEY");
        let r = reason(ClientKey::from_pem(&sec1));
        assert!(r.contains("openssl pkcs8 -topk8 -nocrypt"), "{r}");

        let encrypted = EXAMPLE_PEM.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
        assert!(reason(ClientKey::from_pem(&encrypted)).contains("encrypted"));
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                      DEK-Info: AES-128-CBC,00\n\nMIIB\n-----END RSA PRIVATE KEY-----\n";
        assert!(reason(ClientKey::from_pem(legacy)).contains("encrypted"));

        let openssh = EXAMPLE_PEM.replace("PRIVATE KEY", "OPENSSH PRIVATE KEY");
        let r = reason(ClientKey::from_pem(&openssh));
        assert!(
            r.contains("`OPENSSH PRIVATE KEY` PEM is not supported"),
            "{r}"
        );

        // A P-256 key with its private scalar changed no longer matches its public key.
        let mut der = STANDARD
            .decode(
                EXAMPLE_PEM
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        let at = der
            .windows(5)
            .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
            .unwrap()
            + 5;
        der[at] ^= 1;
        let r = reason(ClientKey::from_pem(&pem("PRIVATE KEY", &der)));
        assert!(r.contains("EC P-256 key"), "{r}");
    }

    #[test]
    fn refuses_jwks_it_cannot_use() {
        let ec = |extra: Value| {
            let mut jwk = json!({ "kty": "EC", "crv": "P-256",
                                  "d": EXAMPLE_D, "x": EXAMPLE_X, "y": EXAMPLE_Y });
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    jwk.as_object_mut().unwrap().remove(k);
                } else {
                    jwk[k] = v.clone();
                }
            }
            reason(ClientKey::from_jwk(&jwk.to_string()))
        };
        let r = ec(json!({ "d": null }));
        assert!(r.contains("public key") && r.contains("no `d`"), "{r}");
        assert!(ec(json!({ "x": null })).contains("the EC JWK has no `x`"));
        assert!(ec(json!({ "crv": null })).contains("no `crv`"));
        assert!(ec(json!({ "crv": "P-384" })).contains("curve P-384 are not supported"));
        assert!(ec(json!({ "kty": "OKP" })).contains("key type `OKP` is not supported"));
        assert!(ec(json!({ "kty": null })).contains("no `kty`"));
        assert!(ec(json!({ "alg": "RS256" })).contains("`EC` key signs `ES256`"));
        assert!(ec(json!({ "use": "enc" })).contains("`use` is `enc`"));
        assert!(ec(json!({ "x": 5 })).contains("`x` is not a string"));
        assert!(ec(json!({ "y": "***" })).contains("`y` is not base64url"));
        assert!(ec(json!({ "y": "AAAA" })).contains("32 bytes"));
        // `d` of another key: ring refuses the pair, and the reason does not echo `d`.
        let (_, other_d, ..) = p256();
        let r = ec(json!({ "d": other_d }));
        assert!(r.contains("EC P-256 key"), "{r}");
        assert!(!r.contains(&other_d), "{r}");

        let r = reason(ClientKey::from_jwk(&format!("{{\"d\": \"{EXAMPLE_D}\"")));
        assert!(r.contains("not valid JSON (line 1"), "{r}");
        assert!(!r.contains(EXAMPLE_D), "{r}");
        assert!(reason(ClientKey::from_jwk("[]")).contains("not a JSON object"));
        let two = json!({ "keys": [{}, {}] }).to_string();
        assert!(reason(ClientKey::from_jwk(&two)).contains("holds 2 keys"));
    }

    #[test]
    fn from_file_sniffs_pem_and_jwk() {
        let dir =
            std::env::temp_dir().join(format!("tower-oidc-client-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem_path = dir.join("key.pem");
        std::fs::write(&pem_path, EXAMPLE_PEM).unwrap();
        let jwk_path = dir.join("key.json");
        let jwk = json!({ "kty": "EC", "crv": "P-256", "kid": "file",
                          "d": EXAMPLE_D, "x": EXAMPLE_X, "y": EXAMPLE_Y });
        std::fs::write(&jwk_path, format!("\n  {jwk}\n")).unwrap();
        let der_path = dir.join("key.der");
        std::fs::write(&der_path, [0x30, 0x81, 0xff, 0xfe]).unwrap();

        let a = ClientKey::from_file(&pem_path).unwrap();
        let b = ClientKey::from_file(&jwk_path).unwrap();
        assert_eq!(b.public_jwk()["kid"], "file");
        assert_eq!(a.with_kid("file").public_jwk(), b.public_jwk());
        assert!(reason(ClientKey::from_file(&der_path)).contains("is not text"));
        assert!(reason(ClientKey::from_file(dir.join("missing.pem"))).contains("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_oids_print_dotted() {
        assert_eq!(oid_name(&[0x2a, 0x03]), "OID 1.2.3");
        assert_eq!(
            oid_name(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]),
            "OID 1.2.840.113549.1.1.11"
        );
        assert_eq!(oid_name(OID_ED25519), "Ed25519");
        assert_eq!(
            ASSERTION_TYPE,
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
    }

    #[cfg(feature = "dev-provider")]
    mod rsa_keys {
        use std::sync::OnceLock;

        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::pkcs8::EncodePrivateKey as _;
        use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
        use rsa::{BigUint, RsaPrivateKey};

        use super::*;

        /// One 2048-bit key for all RSA tests: generating it takes a moment.
        fn key() -> &'static RsaPrivateKey {
            static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
            KEY.get_or_init(|| RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap())
        }

        fn int(n: &BigUint) -> String {
            b64(&n.to_bytes_be())
        }

        /// The key as a private JWK, with the CRT values computed from the primes.
        fn private_jwk(key: &RsaPrivateKey) -> Value {
            let (p, q) = (&key.primes()[0], &key.primes()[1]);
            let one = BigUint::from(1u32);
            let dp = key.d() % (p - &one);
            let dq = key.d() % (q - &one);
            // q⁻¹ mod p by Fermat's little theorem (p is prime).
            let qi = q.modpow(&(p - BigUint::from(2u32)), p);
            json!({ "kty": "RSA", "n": int(key.n()), "e": int(key.e()), "d": int(key.d()),
                    "p": int(p), "q": int(q), "dp": int(&dp), "dq": int(&dq), "qi": int(&qi) })
        }

        #[test]
        fn rs256_from_pkcs8_pem_signs_verifiable_assertions() {
            let der = key().to_pkcs8_der().unwrap();
            let client = ClientKey::from_pem(&pem("PRIVATE KEY", der.as_bytes()))
                .unwrap()
                .with_kid("rsa-1");
            assert_eq!(client.alg(), "RS256");
            let jwk = client.public_jwk();
            assert_eq!(jwk["kty"], "RSA");
            assert_eq!(jwk["alg"], "RS256");
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["n"], int(key().n()));
            assert_eq!(jwk["e"], int(key().e()));
            assert!(jwk.get("d").is_none());
            check_assertions(&client);
        }

        #[test]
        fn rs256_from_pkcs1_pem_and_from_jwk_are_the_same_key() {
            let der = key().to_pkcs8_der().unwrap();
            let pkcs8 = ClientKey::from_pem(&pem("PRIVATE KEY", der.as_bytes())).unwrap();
            let pkcs1_der = key().to_pkcs1_der().unwrap();
            let pkcs1 = ClientKey::from_pem(&pem("RSA PRIVATE KEY", pkcs1_der.as_bytes())).unwrap();
            assert_eq!(pkcs1.public_jwk(), pkcs8.public_jwk());
            check_assertions(&pkcs1);

            let mut jwk = private_jwk(key());
            jwk["kid"] = "rsa-jwk".into();
            jwk["alg"] = "RS256".into();
            let from_jwk = ClientKey::from_jwk(&jwk.to_string()).unwrap();
            assert_eq!(from_jwk.public_jwk()["kid"], "rsa-jwk");
            assert_eq!(from_jwk.public_jwk()["n"], pkcs8.public_jwk()["n"]);
            check_assertions(&from_jwk);
            let token = client_assertion(&from_jwk, "c", TOKEN_ENDPOINT, NOW, 30);
            verify(&token, &pkcs8.with_kid("rsa-jwk").public_jwk());
        }

        #[test]
        fn refuses_broken_rsa_jwks() {
            let jwk = private_jwk(key());
            let with = |name: &str, value: Value| {
                let mut jwk = jwk.clone();
                if value.is_null() {
                    jwk.as_object_mut().unwrap().remove(name);
                } else {
                    jwk[name] = value;
                }
                reason(ClientKey::from_jwk(&jwk.to_string()))
            };
            assert!(with("qi", Value::Null).contains("the RSA JWK has no `qi`"));
            assert!(with("d", Value::Null).contains("public key"));
            assert!(with("alg", "PS256".into()).contains("`RSA` key signs `RS256`"));
            assert!(with("oth", json!([])).contains("multi-prime"));
            // Parts that do not belong together are found at load time, not at signing.
            let r = with("dp", jwk["dq"].clone());
            assert!(r.contains("RSA key") || r.contains("cannot sign"), "{r}");
            assert!(!r.contains(jwk["dq"].as_str().unwrap()), "{r}");
        }

        #[test]
        fn refuses_small_rsa_keys() {
            let small = RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
            let der = small.to_pkcs8_der().unwrap();
            let r = reason(ClientKey::from_pem(&pem("PRIVATE KEY", der.as_bytes())));
            assert!(r.contains("too small"), "{r}");
        }
    }
}
