//! Minting of token responses: JWT access tokens (RFC 9068), ID tokens and refresh tokens,
//! including the ID token faults.

use serde_json::{json, Value};

use super::keys::{self, SigningKey};
use super::token::TokenError;
use super::{
    now, token_key, AccessRecord, Fault, IdTokenFault, RefreshRecord, Shared, State, WRONG_ISSUER,
};

/// Audience used by the audience faults.
const OTHER_AUDIENCE: &str = "some-other-client";

/// What a token response is issued for.
pub(super) struct Issue<'a> {
    pub(super) client_id: &'a str,
    pub(super) sub: &'a str,
    pub(super) scope: &'a [String],
    pub(super) auth_time: u64,
    pub(super) sid: &'a str,
    pub(super) nonce: Option<&'a str>,
    pub(super) grant: u64,
}

impl Shared {
    pub(super) fn user_claims(&self, claims: &mut Value, sub: &str, scope: &[String]) {
        let Some(user) = self.user(sub) else {
            return;
        };
        if scope.iter().any(|s| s == "profile") {
            claims["name"] = json!(user.name);
        }
        if scope.iter().any(|s| s == "email") {
            claims["email"] = json!(user.email);
            claims["email_verified"] = json!(true);
        }
    }

    pub(super) fn issue(&self, state: &mut State, i: Issue<'_>) -> Result<Value, TokenError> {
        let now = now();
        let key = state.key.clone();
        let server_error = || TokenError::new("server_error", "signing failed");

        // Access token (RFC 9068).
        let mut aud = vec![json!(i.client_id)];
        if let Some(extra) = &self.access_token_audience {
            aud.push(json!(extra));
        }
        let access_exp = now + self.access_token_ttl;
        let at_claims = json!({
            "iss": self.issuer,
            "sub": i.sub,
            "aud": if aud.len() == 1 { aud[0].clone() } else { Value::Array(aud) },
            "client_id": i.client_id,
            "scope": i.scope.join(" "),
            "exp": access_exp,
            "iat": now,
            "auth_time": i.auth_time,
            "jti": keys::random_token(&self.rng, 16),
        });
        let access_token = key
            .jws("at+jwt", None, &at_claims, &self.rng)
            .ok_or_else(server_error)?;
        state.access.retain(|_, r| r.exp >= now);
        state.access.insert(
            token_key(&access_token),
            AccessRecord {
                sub: i.sub.to_owned(),
                client_id: i.client_id.to_owned(),
                scope: i.scope.to_vec(),
                exp: access_exp,
                grant: i.grant,
            },
        );

        let mut response = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "scope": i.scope.join(" "),
        });
        let faults = state.faults.clone();
        if let Some(Fault::TokenType(t)) = faults.iter().find(|f| matches!(f, Fault::TokenType(_)))
        {
            response["token_type"] = json!(t);
        }

        if i.scope.iter().any(|s| s == "openid") && !faults.contains(&Fault::MissingIdToken) {
            let id_faults: Vec<IdTokenFault> = faults
                .iter()
                .filter_map(|f| match f {
                    Fault::IdToken(x) => Some(*x),
                    _ => None,
                })
                .collect();
            let id_token = self
                .id_token(&key, &i, &access_token, now, &id_faults)
                .ok_or_else(server_error)?;
            response["id_token"] = json!(id_token);
        }

        if self.refresh_tokens && i.scope.iter().any(|s| s == "offline_access") {
            let refresh = keys::random_token(&self.rng, 32);
            state.refresh.insert(
                token_key(&refresh),
                RefreshRecord {
                    client_id: i.client_id.to_owned(),
                    sub: i.sub.to_owned(),
                    scope: i.scope.to_vec(),
                    auth_time: i.auth_time,
                    sid: i.sid.to_owned(),
                    grant: i.grant,
                    used: false,
                },
            );
            response["refresh_token"] = json!(refresh);
        }
        Ok(response)
    }

    fn id_token(
        &self,
        key: &SigningKey,
        i: &Issue<'_>,
        access_token: &str,
        now: u64,
        faults: &[IdTokenFault],
    ) -> Option<String> {
        let has = |f: IdTokenFault| faults.contains(&f);
        let (mut iat, mut exp) = (now, now + self.id_token_ttl);
        if has(IdTokenFault::Expired) {
            exp = now.saturating_sub(600);
            iat = exp.saturating_sub(self.id_token_ttl);
        }
        if has(IdTokenFault::IssuedInFuture) {
            iat = now + 3600;
            exp = iat + self.id_token_ttl;
        }
        let mut claims = json!({
            "iss": if has(IdTokenFault::WrongIssuer) { WRONG_ISSUER } else { self.issuer.as_str() },
            "sub": i.sub,
            "aud": if has(IdTokenFault::WrongAudience) { OTHER_AUDIENCE } else { i.client_id },
            "exp": exp,
            "iat": iat,
            "auth_time": i.auth_time.min(iat),
            "sid": i.sid,
            "azp": i.client_id,
            "at_hash": if has(IdTokenFault::WrongAtHash) {
                keys::left_half_hash("not the access token")
            } else {
                keys::left_half_hash(access_token)
            },
        });
        if has(IdTokenFault::MultipleAudiencesWithoutAzp) {
            claims["aud"] = json!([claims["aud"].clone(), "another-audience"]);
            if let Some(obj) = claims.as_object_mut() {
                obj.remove("azp");
            }
        }
        if has(IdTokenFault::WrongNonce) {
            claims["nonce"] = json!(keys::random_token(&self.rng, 16));
        } else if let Some(nonce) = i.nonce {
            claims["nonce"] = json!(nonce);
        }
        self.user_claims(&mut claims, i.sub, i.scope);

        if has(IdTokenFault::AlgNone) {
            let header = json!({ "alg": "none", "typ": "JWT" });
            return Some(format!("{}.", keys::signing_input(&header, &claims)));
        }
        if has(IdTokenFault::HmacWithPublicKey) {
            let header = json!({ "alg": "HS256", "kid": key.public.kid, "typ": "JWT" });
            let input = keys::signing_input(&header, &claims);
            let mac = keys::hs256(key.public.pem().as_bytes(), input.as_bytes());
            return Some(format!("{input}.{mac}"));
        }
        let kid = has(IdTokenFault::UnknownKid).then(|| format!("unknown-{}", key.public.kid));
        let token = key.jws("JWT", kid.as_deref(), &claims, &self.rng)?;
        if has(IdTokenFault::BadSignature) {
            return Some(corrupt_signature(&token));
        }
        Some(token)
    }
}

/// Flips bits in the first signature byte of a compact JWS.
fn corrupt_signature(token: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Some((input, sig)) = token.rsplit_once('.') else {
        return token.to_owned();
    };
    let mut sig = engine.decode(sig).unwrap_or_default();
    if let Some(first) = sig.first_mut() {
        *first ^= 0x55;
    }
    format!("{input}.{}", engine.encode(sig))
}
