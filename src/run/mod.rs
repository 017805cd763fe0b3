//! Runs: the runner that applies a drill's faults on its timeline and takes them out on every
//! ending, and the manager of a daemon's runs.
//!
//! - [`runner`]: one run, from its start event to its scorecard; [`command`]: what responders
//!   ask of it; `schedule`: its timeline; `live`: its SLI; `log`: what watchers see;
//!   [`recover`]: closing a run a crash left open;
//! - [`manager`]: starting runs by name, routing commands, blind drills, status; [`armed`]: blind
//!   drills kept across restarts; [`dry`]: dry runs;
//! - [`sli`]: synthetic traffic and burn-rate watching; [`verify`]: the steady-state rule;
//!   [`alertmanager`]: the webhook that records alerts.

/// The files in `dir` whose names end in `.<extension>`, sorted; none if `dir` cannot be read.
pub(crate) fn files_with_extension(dir: &std::path::Path, extension: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    paths.sort();
    paths
}

pub mod alertmanager;
pub mod armed;
pub mod command;
pub mod dry;
mod live;
mod log;
pub mod manager;
pub mod recover;
pub mod runner;
mod schedule;
pub mod sli;
pub mod verify;
