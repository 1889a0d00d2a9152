//! The flows the layer serves: login (the authorization request), callback (code exchange and
//! the new session), ID token validation, calls to the provider's endpoints, refresh, logout
//! and back-channel logout.

pub(crate) mod backchannel;
pub(crate) mod callback;
pub(crate) mod id_token;
pub(crate) mod jar;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod par;
pub(crate) mod provider_calls;
pub(crate) mod refresh;
