//! Integration tests over real sockets on port 0, real child processes and real clients.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod api;
mod cli;
mod clients;
mod console;
mod demo;
mod docker;
mod drill_e2e;
mod gameday;
mod garbage;
mod grpc;
mod harness;
mod http;
mod http_l7;
mod kill;
mod kubernetes;
mod layers;
mod live;
mod prometheus;
mod replay;
mod report;
mod runner;
mod scoring;
mod scoring_model;
mod shop;
mod slo;
mod soak;
mod supervise;
mod texts;
mod toxicity;
mod toxics;
mod validate;
mod verb;
