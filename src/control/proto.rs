//! The generated types and stubs of `proto/control.proto`.
#![allow(missing_docs, clippy::pedantic, clippy::all)]

tonic::include_proto!("firedrill.control.v1");
