//! Runs: the events of a run, its crash-safe journal, and the runner that applies faults.

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
pub mod manager;
pub mod recover;
pub mod runner;
mod schedule;
pub mod sli;
pub mod verify;
