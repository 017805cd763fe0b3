//! firedrill runs fire drills ("game days") against dev and QA environments: it injects faults
//! through Toxiproxy-compatible proxies, times the team's response phase by phase against a
//! third of the production target, and keeps scorecards.
//!
//! # Layout
//! - [`proxy`]: the fault proxy — listeners, links, toxics, the Toxiproxy admin API, metrics;
//! - [`serve`]: the daemon (`firedrill serve`): loads proxy files, runs the API, shuts down cleanly;
//! - [`cli`]: the command tree and the mapping of failures to exit codes.

pub mod cli;
pub mod proxy;
pub mod serve;
