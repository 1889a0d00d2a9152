//! An in-process OpenID provider for local development and tests.
