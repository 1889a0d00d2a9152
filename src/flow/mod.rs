//! The login flow: authorization request, callback, ID token validation, token endpoint
//! calls, logout.

pub(crate) mod backchannel;
pub(crate) mod callback;
pub(crate) mod id_token;
pub(crate) mod login;
pub(crate) mod logout;
pub(crate) mod refresh;
pub(crate) mod token;
