//! Which issuers a provider speaks for: one exact issuer, or a multi-tenant template such as
//! Microsoft Entra ID's `https://login.microsoftonline.com/{tenantid}/v2.0`, where each token
//! names its tenant (`tid`) and its `iss` must be the template filled with that tenant.
//!
//! Depends on nothing else in the crate.

/// The placeholder of a multi-tenant issuer template.
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// The tenants a multi-tenant issuer accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TenantPolicy {
    /// Every tenant (the application serves any organisation).
    Any,
    /// Only these tenant ids (compared exactly).
    Only(Vec<String>),
}

impl TenantPolicy {
    fn allows(&self, tid: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(ids) => ids.iter().any(|id| id == tid),
        }
    }
}

/// Whether `tid` can be a tenant id: non-empty, at most 128 bytes of ASCII letters, digits,
/// `-`, `.` and `_` (Entra's are GUIDs). Anything else could change the issuer's shape.
pub(crate) fn is_tenant_id(tid: &str) -> bool {
    !tid.is_empty()
        && tid.len() <= 128
        && tid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        && tid != "."
        && tid != ".."
}

/// Why a token's issuer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IssuerRefusal {
    /// `iss` is not the provider's (or not the template filled with the token's `tid`).
    Issuer,
    /// The token's tenant (`tid`) is missing, malformed or not allowed.
    Tenant,
}

/// An issuer the layer accepts tokens from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IssuerRule {
    /// Exactly this issuer.
    Exact(String),
    /// A template with one `{tenantid}`: the text before and after it, and the tenants allowed.
    Tenant {
        prefix: String,
        suffix: String,
        tenants: TenantPolicy,
    },
}

impl IssuerRule {
    /// The rule for `issuer`: a template when it contains `{tenantid}` (exactly once; then
    /// `tenants` is required), else exact. An error says what is wrong.
    pub(crate) fn new(issuer: &str, tenants: Option<&TenantPolicy>) -> Result<Self, String> {
        match issuer.split_once(TENANT_PLACEHOLDER) {
            None => Ok(Self::Exact(issuer.to_owned())),
            Some((prefix, suffix)) => {
                if suffix.contains(TENANT_PLACEHOLDER) {
                    return Err(format!("`{issuer}` names `{{tenantid}}` more than once"));
                }
                let tenants = tenants.ok_or_else(|| {
                    format!(
                        "the issuer `{issuer}` is a multi-tenant template: allow tenants with \
                         ConfigBuilder::tenants (or ConfigBuilder::any_tenant)"
                    )
                })?;
                Ok(Self::Tenant {
                    prefix: prefix.to_owned(),
                    suffix: suffix.to_owned(),
                    tenants: tenants.clone(),
                })
            }
        }
    }

    /// Whether this is a multi-tenant template.
    pub(crate) fn is_template(&self) -> bool {
        matches!(self, Self::Tenant { .. })
    }

    /// The tenant `iss` names when it is this template filled with a well-formed tenant id
    /// (allowed or not); `None` for an exact rule or another issuer.
    fn tenant_in<'a>(&self, iss: &'a str) -> Option<&'a str> {
        let Self::Tenant { prefix, suffix, .. } = self else {
            return None;
        };
        iss.strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_suffix(suffix.as_str()))
            .filter(|tid| is_tenant_id(tid))
    }

    /// A token's `iss` with its `tid`: the exact issuer, or the template filled with the
    /// token's own `tid`, which must be an allowed tenant.
    pub(crate) fn check_token(
        &self,
        iss: Option<&str>,
        tid: Option<&str>,
    ) -> Result<(), IssuerRefusal> {
        let iss = iss.ok_or(IssuerRefusal::Issuer)?;
        match self {
            Self::Exact(issuer) if iss == issuer => Ok(()),
            Self::Exact(_) => Err(IssuerRefusal::Issuer),
            Self::Tenant { tenants, .. } => {
                let tid = tid
                    .filter(|t| is_tenant_id(t))
                    .ok_or(IssuerRefusal::Tenant)?;
                // The issuer must carry the token's own tenant, not any allowed one.
                if self.tenant_in(iss) != Some(tid) {
                    return Err(IssuerRefusal::Issuer);
                }
                if !tenants.allows(tid) {
                    return Err(IssuerRefusal::Tenant);
                }
                Ok(())
            }
        }
    }

    /// Whether a concrete issuer (recorded in a session, or an authorization response's `iss`)
    /// is this provider's: the exact issuer, or the template filled with an allowed tenant.
    pub(crate) fn accepts(&self, iss: &str) -> bool {
        match self {
            Self::Exact(issuer) => iss == issuer,
            Self::Tenant { tenants, .. } => self.tenant_in(iss).is_some_and(|t| tenants.allows(t)),
        }
    }

    /// Whether `configured` (the issuer the application named, where discovery is) is this
    /// template filled with one path segment, such as Entra's `common` or `organizations`:
    /// a discovery document may answer with a template only for its own location.
    pub(crate) fn is_instance(&self, configured: &str) -> bool {
        let Self::Tenant { prefix, suffix, .. } = self else {
            return false;
        };
        configured
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_suffix(suffix.as_str()))
            .is_some_and(is_tenant_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "https://login.example.com/{tenantid}/v2.0";
    const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const B: &str = "bbbbbbbb-0000-4000-8000-000000000002";

    fn only(ids: &[&str]) -> TenantPolicy {
        TenantPolicy::Only(ids.iter().map(|s| (*s).to_owned()).collect())
    }

    fn iss(tid: &str) -> String {
        T.replace(TENANT_PLACEHOLDER, tid)
    }

    #[test]
    fn exact_issuers_match_exactly() {
        let rule = IssuerRule::new("https://id.example.com", Some(&TenantPolicy::Any)).unwrap();
        assert!(!rule.is_template());
        assert_eq!(
            rule.check_token(Some("https://id.example.com"), None),
            Ok(())
        );
        assert_eq!(
            rule.check_token(Some("https://id.example.com/"), None),
            Err(IssuerRefusal::Issuer)
        );
        assert_eq!(rule.check_token(None, None), Err(IssuerRefusal::Issuer));
        assert!(rule.accepts("https://id.example.com"));
        assert!(!rule.accepts("https://other.example.com"));
    }

    #[test]
    fn templates_need_a_tenant_policy_and_one_placeholder() {
        assert!(IssuerRule::new(T, None).is_err());
        assert!(
            IssuerRule::new("https://x/{tenantid}/{tenantid}", Some(&TenantPolicy::Any)).is_err()
        );
        assert!(IssuerRule::new(T, Some(&TenantPolicy::Any))
            .unwrap()
            .is_template());
    }

    #[test]
    fn a_token_names_its_own_allowed_tenant() {
        let rule = IssuerRule::new(T, Some(&only(&[A]))).unwrap();
        assert_eq!(rule.check_token(Some(&iss(A)), Some(A)), Ok(()));
        // Another tenant than allowed.
        assert_eq!(
            rule.check_token(Some(&iss(B)), Some(B)),
            Err(IssuerRefusal::Tenant)
        );
        // `iss` of the allowed tenant, `tid` of another: refused, whichever is allowed.
        assert_eq!(
            rule.check_token(Some(&iss(A)), Some(B)),
            Err(IssuerRefusal::Issuer)
        );
        assert_eq!(
            rule.check_token(Some(&iss(B)), Some(A)),
            Err(IssuerRefusal::Issuer)
        );
        // No or a malformed `tid`.
        assert_eq!(
            rule.check_token(Some(&iss(A)), None),
            Err(IssuerRefusal::Tenant)
        );
        assert_eq!(
            rule.check_token(Some(&iss("a/b")), Some("a/b")),
            Err(IssuerRefusal::Tenant)
        );
        // The template itself, or another host.
        assert_eq!(
            rule.check_token(Some(T), Some(A)),
            Err(IssuerRefusal::Issuer)
        );
        assert_eq!(
            rule.check_token(Some(&format!("https://evil.example/{A}/v2.0")), Some(A)),
            Err(IssuerRefusal::Issuer)
        );
        let any = IssuerRule::new(T, Some(&TenantPolicy::Any)).unwrap();
        assert_eq!(any.check_token(Some(&iss(B)), Some(B)), Ok(()));
        assert_eq!(
            any.check_token(Some(&iss(A)), Some(B)),
            Err(IssuerRefusal::Issuer)
        );
    }

    #[test]
    fn recorded_issuers_and_discovery_locations() {
        let rule = IssuerRule::new(T, Some(&only(&[A]))).unwrap();
        assert!(rule.accepts(&iss(A)));
        assert!(!rule.accepts(&iss(B)));
        assert!(!rule.accepts(T));
        assert!(rule.is_instance("https://login.example.com/common/v2.0"));
        assert!(rule.is_instance("https://login.example.com/organizations/v2.0"));
        assert!(!rule.is_instance("https://login.example.com/a/b/v2.0"));
        assert!(!rule.is_instance("https://evil.example.com/common/v2.0"));
        assert!(!rule.is_instance("https://login.example.com//v2.0"));
    }
}
