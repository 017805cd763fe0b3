//! Blind drills waiting for their moment, kept on disk (`<data>/armed/*.json`) so that a daemon
//! restart or crash does not silently cancel a drill a responder was told to expect.
//!
//! A file is written when a blind drill is armed and removed when the drill starts (its journal
//! then carries it) or when the kill switch disarms it; a daemon that stops keeps it.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a daemon needs to start an armed blind drill later, perhaps after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arming {
    /// The drill drawn (file stem or `drill.name`).
    pub drill: String,
    /// The team it is for.
    pub team: String,
    /// Who asked for it.
    pub responder: Option<String>,
    /// The seed of the draw, reused by the run.
    pub seed: u64,
    /// When it starts, ms since the Unix epoch.
    pub at_wall_ms: u64,
    /// The span its moment was drawn within (`--within`), in ms; 0 in files from before it was
    /// kept (such a drill starts at once if its moment passed).
    #[serde(default)]
    pub within_ms: u64,
}

impl Arming {
    /// The moment of a drill whose moment passed while no daemon was up, drawn again within the
    /// same span from `now_ms` (a drill starting the instant the daemon comes back would tell the
    /// responder when). Repeatable: the draw depends only on the arming.
    #[must_use]
    pub fn redrawn(&self, now_ms: u64) -> u64 {
        let span = std::time::Duration::from_millis(self.within_ms);
        let seed = self.seed.rotate_left(17) ^ self.at_wall_ms;
        let delay = super::manager::blind_pick(1, seed, span).map_or(0, |(_, delay)| delay.as_millis());
        now_ms.saturating_add(u64::try_from(delay).unwrap_or(u64::MAX))
    }
}

/// Writes `arming` to `<dir>/<key>.json` atomically and returns the path.
pub fn save(dir: &Path, key: &str, arming: &Arming) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{key}.json"));
    save_to(&path, arming)?;
    Ok(path)
}

/// Writes `arming` to `path` atomically (a new file, or an update of one [`load_all`] found).
pub fn save_to(path: &Path, arming: &Arming) -> io::Result<()> {
    let text = serde_json::to_vec_pretty(arming).map_err(io::Error::other)?;
    crate::scorecard::store::write_atomic(path, &text)
}

/// Every armed drill in `dir`, by file name. A file that does not parse is returned as an error
/// beside the others (and left in place for a person to look at), never dropped silently.
pub fn load_all(dir: &Path) -> Vec<(PathBuf, Result<Arming, String>)> {
    super::files_with_extension(dir, "json")
        .into_iter()
        .map(|path| {
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
            (path, parsed)
        })
        .collect()
}

/// Forgets an armed drill (started or disarmed). A file already gone is not an error.
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => tracing::error!(%err, path = %path.display(), "could not remove an armed blind drill's file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_armings_load_back_and_corrupt_ones_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let arming = Arming {
            drill: "partner-latency".into(),
            team: "solo".into(),
            responder: Some("ana".into()),
            seed: 7,
            at_wall_ms: 1_790_000_000_000,
            within_ms: 1_800_000,
        };
        let path = save(dir.path(), "blind-1", &arming).unwrap();
        std::fs::write(dir.path().join("broken.json"), "{").unwrap();
        let loaded = load_all(dir.path());
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0], (path.clone(), Ok(arming.clone())));
        assert!(loaded[1].1.as_ref().is_err_and(|e| e.contains("EOF")), "{loaded:?}");
        // A moment that passed is drawn again within the span from now, the same way each time.
        let now = arming.at_wall_ms + 3_600_000;
        let again = arming.redrawn(now);
        assert!((now..now + arming.within_ms).contains(&again), "{again}");
        assert_eq!(arming.redrawn(now), again);
        // An arming from before the span was kept starts at once.
        assert_eq!(Arming { within_ms: 0, ..arming.clone() }.redrawn(now), now);
        remove(&path);
        remove(&path);
        assert_eq!(load_all(dir.path()).len(), 1);
    }
}
