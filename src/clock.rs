//! Wall-clock time, for people and file names; a run is timed with tokio's clock instead, so
//! tests can pause it.

/// Wall-clock time in milliseconds since the Unix epoch: for people and for file names, never
/// for timing a run (that is tokio time, so tests can pause it).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
