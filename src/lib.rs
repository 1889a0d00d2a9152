//! OpenID Connect relying party as one Tower layer.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod config;
mod error;
mod flow;
mod future;
mod identity;
mod jwt;
mod layer;
mod provider;
mod response;
mod service;
mod session;

#[cfg(feature = "dev-provider")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-provider")))]
pub mod dev;

pub use body::ResponseBody;
pub use config::{ClientAuth, Config, ConfigBuilder};
pub use error::{AuthError, AuthErrorKind, ConfigError};
pub use future::ResponseFuture;
pub use identity::Identity;
#[cfg(feature = "axum")]
pub use identity::LoginRequired;
pub use layer::OidcLayer;
pub use service::OidcService;
pub use session::cookie::SessionKey;
