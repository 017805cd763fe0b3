//! Integration tests over real sockets on port 0, real child processes and real clients.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod api;
mod cli;
mod clients;
mod drill_e2e;
mod harness;
mod live;
mod replay;
mod report;
mod runner;
mod toxicity;
mod toxics;
mod validate;
