//! firedrill runs fire drills ("game days") against dev and QA environments: it injects faults
//! through Toxiproxy-compatible proxies, times the team's response phase by phase against a
//! third of the production target, and keeps scorecards.
//!
//! # Layout
//! - [`proxy`]: the fault proxy — listeners, links, toxics, the Toxiproxy admin API, metrics;
//! - [`drill`]: drill files, loaded in two stages into a validated plan;
//! - [`serve`]: the daemon (`firedrill serve`): loads proxy files, runs the API, shuts down cleanly;
//! - [`validate`]: `firedrill validate`, checking drill and proxy files;
//! - [`cli`]: the command tree and the mapping of failures to exit codes.

pub mod cli;
pub mod drill;
pub mod proxy;
pub mod serve;
pub mod validate;
