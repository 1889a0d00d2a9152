//! Placeholder until the back-channel logout module lands (replaced on merge).
#![allow(missing_docs, dead_code, unreachable_pub)]

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub issuer: String,
    pub sid: Option<String>,
    pub sub: Option<String>,
    pub at: u64,
}

pub trait RevocationStore: Send + Sync + 'static {
    fn revoke(&self, revocation: Revocation, keep_until: u64);
    fn is_revoked(
        &self,
        issuer: &str,
        sid: Option<&str>,
        sub: &str,
        created_at: u64,
        now: u64,
    ) -> bool;
    fn first_use_of_jti(&self, issuer: &str, jti: &str, keep_until: u64, now: u64) -> bool;
}

#[derive(Debug, Default)]
pub struct MemoryRevocationStore {
    _private: (),
}

impl RevocationStore for MemoryRevocationStore {
    fn revoke(&self, _: Revocation, _: u64) {}
    fn is_revoked(&self, _: &str, _: Option<&str>, _: &str, _: u64, _: u64) -> bool {
        false
    }
    fn first_use_of_jti(&self, _: &str, _: &str, _: u64, _: u64) -> bool {
        true
    }
}
