//! OpenID Connect relying party as one Tower layer.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "dev-provider")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-provider")))]
pub mod dev;
