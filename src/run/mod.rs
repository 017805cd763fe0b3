//! Runs: the events of a run, its crash-safe journal, and the runner that applies faults.

/// Wall-clock time in milliseconds since the Unix epoch: for people and for file names, never
/// for timing a run (that is tokio time, so tests can pause it).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

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
pub mod dry;
pub mod event;
pub mod journal;
pub mod manager;
pub mod runner;
pub mod sli;
pub mod verify;
