//! Support code shared by the integration tests (`mod support;` in a test file).
//!
//! Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub(crate) mod app;
pub(crate) mod apt;
pub(crate) mod browser;
pub(crate) mod clock;
pub(crate) mod dpop;
pub(crate) mod html;
pub(crate) mod oidc_provider;
pub(crate) mod redis;
pub(crate) mod wait;
