//! Minting of token responses: JWT access tokens (RFC 9068), ID tokens and refresh tokens,
//! including the ID token faults.

use serde_json::{json, Value};

use super::keys::{self, SigningKey};
use super::response::TokenError;
use super::{
    now, token_key, AccessRecord, Fault, IdTokenFault, RefreshRecord, Shared, State, OTHER_SUBJECT,
    OTHER_TENANT, WRONG_ISSUER,
};

/// Audience used by the audience faults.
const OTHER_AUDIENCE: &str = "some-other-client";
/// The `kid` of [`Fault::UnpublishedAccessTokenKey`], never in the JWKS.
const UNPUBLISHED_KID: &str = "org-authorization-server";
/// The extra audience of [`IdTokenFault::UntrustedAudience`].
pub(crate) const UNTRUSTED_AUDIENCE: &str = "https://untrusted.example.test";

/// What a token response is issued for.
pub(super) struct Issue<'a> {
    pub(super) client_id: &'a str,
    pub(super) sub: &'a str,
    pub(super) scope: &'a [String],
    pub(super) auth_time: u64,
    pub(super) sid: &'a str,
    pub(super) nonce: Option<&'a str>,
    pub(super) grant: u64,
    /// The DPoP key thumbprint to bind the tokens to (RFC 9449 §6).
    pub(super) jkt: Option<&'a str>,
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
        self.custom_claims(claims, sub);
    }

    /// The user's custom claims ([`DevUser::claims`](crate::dev::DevUser::claims)), never
    /// over a registered claim.
    pub(super) fn custom_claims(&self, claims: &mut Value, sub: &str) {
        let (Some(user), Some(claims)) = (self.user(sub), claims.as_object_mut()) else {
            return;
        };
        for (name, value) in &user.claims {
            if !crate::dev::REGISTERED_CLAIMS.contains(&name.as_str()) {
                claims.insert(name.clone(), value.clone());
            }
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
        let (issuer, tid) = self.token_issuer(state);
        let mut at_claims = json!({
            "iss": issuer,
            "sub": i.sub,
            "aud": if aud.len() == 1 { aud[0].clone() } else { Value::Array(aud) },
            "client_id": i.client_id,
            "scope": i.scope.join(" "),
            "exp": access_exp,
            "iat": now,
            "auth_time": i.auth_time,
            "jti": keys::random_token(&self.rng, 16),
        });
        self.custom_claims(&mut at_claims, i.sub);
        if let Some(tid) = &tid {
            at_claims["tid"] = json!(tid);
        }
        if let Some(jkt) = i.jkt {
            at_claims["cnf"] = json!({ "jkt": jkt });
        }
        for fault in &state.faults {
            if let (Fault::AccessTokenClaims(Value::Object(extra)), Some(claims)) =
                (fault, at_claims.as_object_mut())
            {
                for (name, value) in extra {
                    if value.is_null() {
                        claims.remove(name);
                    } else {
                        claims.insert(name.clone(), value.clone());
                    }
                }
            }
        }
        let access_token = if self.opaque_access_tokens {
            keys::random_token(&self.rng, 32)
        } else if state.faults.contains(&Fault::UnpublishedAccessTokenKey) {
            let header = json!({ "typ": "at+jwt", "kid": UNPUBLISHED_KID });
            key.jws_with_header(&header, &at_claims, &self.rng)
                .ok_or_else(server_error)?
        } else {
            key.jws("at+jwt", None, &at_claims, &self.rng)
                .ok_or_else(server_error)?
        };
        state.access.retain(|_, r| r.exp >= now);
        state.access.insert(
            token_key(&access_token),
            AccessRecord {
                jkt: i.jkt.map(str::to_owned),
                sub: i.sub.to_owned(),
                client_id: i.client_id.to_owned(),
                scope: i.scope.to_vec(),
                exp: access_exp,
                grant: i.grant,
            },
        );

        let mut response = json!({
            "access_token": access_token,
            "token_type": if i.jkt.is_some() { "DPoP" } else { "Bearer" },
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
                .id_token(
                    &key,
                    &i,
                    &access_token,
                    now,
                    (&issuer, tid.as_deref()),
                    &id_faults,
                )
                .ok_or_else(server_error)?;
            response["id_token"] = json!(id_token);
        }

        if self.refresh_tokens && i.scope.iter().any(|s| s == "offline_access") {
            let refresh = keys::random_token(&self.rng, 32);
            state.refresh.insert(
                token_key(&refresh),
                RefreshRecord {
                    jkt: i.jkt.map(str::to_owned),
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
        (issuer, tid): (&str, Option<&str>),
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
            "iss": if has(IdTokenFault::WrongIssuer) { WRONG_ISSUER } else { issuer },
            "sub": if has(IdTokenFault::OtherSubject) { OTHER_SUBJECT } else { i.sub },
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
        if let Some(tid) = tid {
            claims["tid"] = json!(tid);
        }
        if has(IdTokenFault::OtherTenantIssuer) {
            claims["iss"] = json!(self.issuer_of(OTHER_TENANT));
        }
        if has(IdTokenFault::UntrustedAudience) {
            claims["aud"] = json!([claims["aud"].clone(), UNTRUSTED_AUDIENCE]);
        }
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
        if has(IdTokenFault::CriticalHeader) {
            // RFC 7515 §4.1.11: an extension the relying party must understand.
            let extra = json!({ "crit": ["urn:example:must-understand"],
                                "urn:example:must-understand": true });
            return key.jws_with_header(&extra, &claims, &self.rng);
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

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::dev::server::tests::{shared, verified_claims, CONF_ID, ISSUER};

    fn scope(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    /// Issues tokens to `conf` for alice with grant number 7.
    fn mint(s: &Shared, scope: &[String], nonce: Option<&str>) -> Value {
        let mut state = s.state();
        let issue = Issue {
            client_id: CONF_ID,
            sub: "alice",
            scope,
            auth_time: now() - 5,
            sid: "sid-1",
            nonce,
            grant: 7,
            jkt: None,
        };
        s.issue(&mut state, issue).ok().expect("tokens are issued")
    }

    /// The decoded JSON of one part (0: header, 1: payload) of a compact JWS.
    fn part(jwt: &str, index: usize) -> Value {
        let text = jwt.split('.').nth(index).expect("part exists");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[test]
    fn access_and_id_tokens_carry_the_grant() {
        let s = shared();
        let granted = scope("openid profile");
        let response = mint(&s, &granted, Some("n-1"));
        assert_eq!(response["token_type"], "Bearer");
        assert_eq!(response["expires_in"], 600);
        assert_eq!(response["scope"], "openid profile");
        assert!(response.get("refresh_token").is_none());

        let at = response["access_token"].as_str().unwrap();
        assert_eq!(part(at, 0)["typ"], "at+jwt");
        let claims = verified_claims(&s, at).expect("signed with the current key");
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["aud"], CONF_ID);
        assert_eq!(claims["client_id"], CONF_ID);
        assert_eq!(claims["scope"], "openid profile");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            600
        );
        {
            let state = s.state();
            let record = state
                .access
                .get(&token_key(at))
                .expect("access token recorded");
            assert_eq!((record.sub.as_str(), record.grant), ("alice", 7));
            assert_eq!(record.scope, granted);
        }

        let id = response["id_token"].as_str().unwrap();
        let claims = verified_claims(&s, id).expect("signed with the current key");
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["aud"], CONF_ID);
        assert_eq!(claims["azp"], CONF_ID);
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["sid"], "sid-1");
        assert_eq!(claims["at_hash"], keys::left_half_hash(at));
        assert_eq!(claims["name"], "Alice Example");
        assert!(claims.get("email").is_none(), "email needs the email scope");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            300
        );
    }

    #[test]
    fn access_tokens_carry_extra_claims_when_asked() {
        let s = shared();
        s.state().faults.push(Fault::AccessTokenClaims(json!({
            "aud": "account",
            "realm_access": { "roles": ["admin"] },
        })));
        let response = mint(&s, &scope("openid"), None);
        let at = response["access_token"].as_str().unwrap();
        let claims = verified_claims(&s, at).expect("signed with the current key");
        assert_eq!(claims["aud"], "account");
        assert_eq!(claims["realm_access"]["roles"][0], "admin");
        assert_eq!(claims["sub"], "alice");
        let id = response["id_token"].as_str().unwrap();
        let claims = verified_claims(&s, id).expect("signed with the current key");
        assert!(claims.get("realm_access").is_none(), "only access tokens");
    }

    #[test]
    fn id_and_refresh_tokens_depend_on_the_scope() {
        let s = shared();
        let response = mint(&s, &scope("profile offline_access"), None);
        assert!(response.get("id_token").is_none(), "no openid, no ID token");
        let refresh = response["refresh_token"].as_str().expect("refresh token");
        let state = s.state();
        let record = state.refresh.get(&token_key(refresh)).expect("recorded");
        assert_eq!(
            (record.sub.as_str(), record.client_id.as_str()),
            ("alice", CONF_ID)
        );
        assert_eq!((record.grant, record.used), (7, false));
        assert_eq!(record.sid, "sid-1");
    }

    #[test]
    fn refresh_tokens_can_be_switched_off() {
        let mut s = shared();
        s.refresh_tokens = false;
        let response = mint(&s, &scope("openid offline_access"), None);
        assert!(response.get("refresh_token").is_none());
        assert!(s.state().refresh.is_empty());
    }

    #[test]
    fn an_extra_access_token_audience_makes_aud_a_list() {
        let mut s = shared();
        s.access_token_audience = Some("https://api.test".to_owned());
        let response = mint(&s, &scope("openid"), None);
        let claims = verified_claims(&s, response["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(claims["aud"], json!([CONF_ID, "https://api.test"]));
    }

    #[test]
    fn response_faults_change_the_token_type_and_drop_the_id_token() {
        let s = shared();
        s.state().faults.push(Fault::TokenType("mac".to_owned()));
        s.state().faults.push(Fault::MissingIdToken);
        let response = mint(&s, &scope("openid"), None);
        assert_eq!(response["token_type"], "mac");
        assert!(response.get("id_token").is_none());
    }

    /// Whether an ID token (given with the provider and the access token) shows a fault.
    type Check = fn(&Shared, &str, &str) -> bool;

    #[test]
    fn each_id_token_fault_breaks_its_claim() {
        let checks: [(IdTokenFault, Check); 12] = [
            (IdTokenFault::OtherSubject, |s, id, _| {
                verified_claims(s, id).unwrap()["sub"] == OTHER_SUBJECT
            }),
            (IdTokenFault::Expired, |s, id, _| {
                verified_claims(s, id).unwrap()["exp"].as_u64().unwrap() < now()
            }),
            (IdTokenFault::IssuedInFuture, |s, id, _| {
                verified_claims(s, id).unwrap()["iat"].as_u64().unwrap() > now() + 3000
            }),
            (IdTokenFault::WrongIssuer, |s, id, _| {
                verified_claims(s, id).unwrap()["iss"] == WRONG_ISSUER
            }),
            (IdTokenFault::WrongAudience, |s, id, _| {
                verified_claims(s, id).unwrap()["aud"] == OTHER_AUDIENCE
            }),
            (IdTokenFault::WrongNonce, |s, id, _| {
                let nonce = &verified_claims(s, id).unwrap()["nonce"];
                nonce.is_string() && nonce != "n-1"
            }),
            (IdTokenFault::WrongAtHash, |s, id, at| {
                verified_claims(s, id).unwrap()["at_hash"] != keys::left_half_hash(at)
            }),
            (IdTokenFault::MultipleAudiencesWithoutAzp, |s, id, _| {
                let claims = verified_claims(s, id).unwrap();
                claims["aud"] == json!([CONF_ID, "another-audience"]) && claims.get("azp").is_none()
            }),
            (IdTokenFault::AlgNone, |s, id, _| {
                part(id, 0)["alg"] == "none"
                    && id.ends_with('.')
                    && verified_claims(s, id).is_none()
            }),
            (IdTokenFault::UnknownKid, |s, id, _| {
                let kid = part(id, 0)["kid"].as_str().unwrap().to_owned();
                kid.starts_with("unknown-") && verified_claims(s, id).is_none()
            }),
            (IdTokenFault::BadSignature, |s, id, _| {
                part(id, 1)["sub"] == "alice" && verified_claims(s, id).is_none()
            }),
            (IdTokenFault::HmacWithPublicKey, |s, id, _| {
                let (input, mac) = id.rsplit_once('.').unwrap();
                let pem = s.state().key.public.pem().to_owned();
                part(id, 0)["alg"] == "HS256"
                    && mac == keys::hs256(pem.as_bytes(), input.as_bytes())
            }),
        ];
        for (fault, check) in checks {
            let s = shared();
            let response = mint(&s, &scope("openid"), Some("n-1"));
            let (id, at) = (
                response["id_token"].as_str().unwrap(),
                response["access_token"].as_str().unwrap(),
            );
            assert!(
                !check(&s, id, at),
                "{fault:?}: the check passes without the fault"
            );
            s.state().faults.push(Fault::IdToken(fault));
            let response = mint(&s, &scope("openid"), Some("n-1"));
            let (id, at) = (
                response["id_token"].as_str().unwrap(),
                response["access_token"].as_str().unwrap(),
            );
            assert!(check(&s, id, at), "{fault:?}");
        }
    }

    #[test]
    fn user_claims_follow_the_scope() {
        let s = shared();
        let mut claims = json!({});
        s.user_claims(&mut claims, "bob", &scope("openid email"));
        assert_eq!(
            claims,
            json!({ "email": "bob@example.test", "email_verified": true })
        );
        let mut claims = json!({});
        s.user_claims(&mut claims, "nobody", &scope("openid profile email"));
        assert_eq!(claims, json!({}));
    }

    #[test]
    fn custom_user_claims_go_everywhere_but_never_over_registered_ones() {
        let mut s = shared();
        s.users[0] = crate::dev::DevUser::new("alice", "Alice", "alice@example.test")
            .claim("roles", json!(["admin"]))
            .claim("sub", json!("mallory"))
            .claim("aud", json!("someone-else"));
        let mut claims = json!({ "sub": "alice" });
        s.user_claims(&mut claims, "alice", &scope("openid"));
        assert_eq!(claims, json!({ "sub": "alice", "roles": ["admin"] }));
        let response = mint(&s, &scope("openid"), Some("n-1"));
        for token in ["id_token", "access_token"] {
            let token = response[token].as_str().unwrap();
            let payload = token.split('.').nth(1).unwrap();
            let payload: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(payload["roles"], json!(["admin"]), "{token}");
            assert_eq!(payload["sub"], json!("alice"), "{token}");
            assert_ne!(payload["aud"], json!("someone-else"), "{token}");
        }
    }

    #[test]
    fn corrupt_signature_changes_only_the_signature() {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!("head.body.{}", engine.encode([0x00, 0xAA, 0x01]));
        let broken = corrupt_signature(&token);
        let (input, sig) = broken.rsplit_once('.').unwrap();
        assert_eq!(input, "head.body");
        assert_eq!(engine.decode(sig).unwrap(), [0x55, 0xAA, 0x01]);
        assert_eq!(corrupt_signature("no-dots"), "no-dots");
    }
}
