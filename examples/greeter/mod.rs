//! Messages, client and server for `greeter.proto`, the tiny gRPC service of the tonic example
//! and of `tests/tonic_grpc.rs`.
//!
//! `greeter.rs` is generated code, committed so that building needs neither `protoc` nor a
//! build script. It was produced once, outside this repository, by `tonic-prost-build` 0.14
//! from `greeter.proto` parsed with `protox` 0.9 (pure Rust, no `protoc`):
//!
//! ```text
//! let fds = protox::compile(["greeter.proto"], ["."])?;
//! tonic_prost_build::configure().out_dir(OUT).emit_rerun_if_changed(false).compile_fds(fds)?;
//! ```
//!
//! Regenerate it the same way after changing the `.proto`; do not edit it by hand.
#![allow(missing_docs, unreachable_pub)]

include!("greeter.rs");
