//! tower-oidc
