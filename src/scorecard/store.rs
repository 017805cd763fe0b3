//! Scorecard files: `scorecards/<team>/<run-id>.json`, written atomically.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::Scorecard;

/// Writes `card` to `<root>/<team>/<run-id>.json` atomically (temporary file, fsync, rename) and
/// returns the path.
pub fn write(root: &Path, card: &Scorecard) -> io::Result<PathBuf> {
    let dir = root.join(sanitize(&card.team));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.json", sanitize(&card.run_id)));
    let mut text = serde_json::to_string_pretty(card).map_err(io::Error::other)?;
    text.push('\n');
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it, fsync, rename, fsync of
/// the directory. A crash leaves the old file or the new one, never a torn one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A scorecard file that could not be read; the report lists these and goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
    /// It holds a run another file holds too: the run is counted once, nothing is hidden.
    pub duplicate: bool,
}

/// Reads every `<root>/<team>/*.json`. Unknown fields (from newer versions) are ignored; a file
/// that does not parse is skipped and reported, never fatal. Sorted by start time, then run id.
pub fn read_all(root: &Path) -> (Vec<Scorecard>, Vec<Skipped>) {
    let mut paths = Vec::new();
    if let Ok(teams) = std::fs::read_dir(root) {
        for team in teams.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()) {
            let Ok(files) = std::fs::read_dir(&team) else { continue };
            paths.extend(
                files.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")),
            );
        }
    }
    // Reading and parsing is the whole cost of a report over many runs: spread it over the cores.
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = paths.len().div_ceil(workers).max(1);
    let parsed: Vec<Vec<Result<(Scorecard, &PathBuf), Skipped>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut buffer = Vec::new();
                    part.iter().map(|p| read_one(p, &mut buffer).map(|card| (card, p))).collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let (mut cards, mut skipped) = (Vec::new(), Vec::new());
    for result in parsed.into_iter().flatten() {
        match result {
            Ok(card) => cards.push(card),
            Err(skip) => skipped.push(skip),
        }
    }
    // One run id is one run of a team, whatever the files: a copy is listed, never counted twice.
    // The first file by path is kept; marking by index moves no scorecard around.
    let keep: Vec<bool> = {
        let mut seen = std::collections::HashSet::with_capacity(cards.len());
        let mut by_path: Vec<usize> = (0..cards.len()).collect();
        by_path.sort_unstable_by(|&a, &b| cards[a].1.as_os_str().cmp(cards[b].1.as_os_str()));
        let mut keep = vec![false; cards.len()];
        for i in by_path {
            keep[i] = seen.insert((cards[i].0.team.as_str(), cards[i].0.run_id.as_str()));
        }
        keep
    };
    let mut unique: Vec<Scorecard> = Vec::with_capacity(cards.len());
    for ((card, path), keep) in cards.into_iter().zip(keep) {
        if keep {
            unique.push(card);
        } else {
            let reason = format!("another file holds run `{}` too; it is counted once", card.run_id);
            skipped.push(Skipped { path: path.clone(), reason, duplicate: true });
        }
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    (in_start_order(unique), skipped)
}

/// Runs in the order they started: by start time, then by the daemon's sequence (the run id's
/// last number, so `…-9` comes before `…-10`), then by id. The sequence is parsed once per card
/// and indexes are sorted, not the scorecards themselves.
fn in_start_order(cards: Vec<Scorecard>) -> Vec<Scorecard> {
    let sequences: Vec<u64> = cards.iter().map(|c| run_sequence(&c.run_id)).collect();
    let key = |i: usize| (cards[i].started_wall_ms, sequences[i], cards[i].run_id.as_str());
    let mut order: Vec<usize> = (0..cards.len()).collect();
    order.sort_unstable_by(|&a, &b| key(a).cmp(&key(b)));
    let mut slots: Vec<Option<Scorecard>> = cards.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// The daemon's sequence number in a run id (`partner-latency-1796060944-12` → 12); 0 if none.
pub fn run_sequence(run_id: &str) -> u64 {
    run_id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Only a scorecard's version, to say why a newer one is not read.
#[derive(serde::Deserialize)]
struct Version {
    schema_version: u32,
}

/// Reads and parses one scorecard, reusing `buffer` between files.
///
/// System calls per file are the cost of a report over a large store: `std::fs::read` asks the
/// size with `statx` and allocates anew for every file; reading to the end into a buffer the
/// worker keeps spends `openat`, two `read`s and `close`.
fn read_one(path: &Path, buffer: &mut Vec<u8>) -> Result<Scorecard, Skipped> {
    let skip = |reason: String| Skipped { path: path.to_owned(), reason, duplicate: false };
    buffer.clear();
    std::fs::File::open(path).and_then(|mut file| file.read_to_end(buffer)).map_err(|e| skip(e.to_string()))?;
    let newer = |version: u32| {
        skip(format!(
            "written by a newer firedrill (schema_version {version}; this one reads up to {}): upgrade firedrill to count it",
            super::SCHEMA_VERSION
        ))
    };
    match serde_json::from_slice::<Scorecard>(buffer) {
        Ok(card) if card.schema_version > super::SCHEMA_VERSION => Err(newer(card.schema_version)),
        Ok(card) => Ok(card),
        Err(e) => match serde_json::from_slice::<Version>(buffer) {
            Ok(v) if v.schema_version > super::SCHEMA_VERSION => Err(newer(v.schema_version)),
            _ => Err(skip(e.to_string())),
        },
    }
}

/// A name made safe as one path component: no separators, and no leading `.` (so never `.` or
/// `..`, and never hidden).
fn sanitize(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .collect();
    match safe.strip_prefix('.') {
        Some(rest) => format!("_{rest}"),
        None if safe.is_empty() => "_".to_owned(),
        None => safe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_under_the_team() {
        let text = include_str!("../../tests/fixtures/partner-latency.jsonl");
        let records = crate::journal::parse(Path::new("fixture"), text).unwrap();
        let mut card = Scorecard::from_journal(&records).unwrap();
        card.team = "pay/ments".into();
        let root = tempfile::tempdir().unwrap();
        let path = write(root.path(), &card).unwrap();
        assert_eq!(path, root.path().join("pay_ments/2026-11-21-payments-1.json"));
        let back: Scorecard = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, card);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn reads_small_and_large_cards_and_skips_broken_ones_by_name() {
        let text = include_str!("../../tests/fixtures/partner-latency.jsonl");
        let records = crate::journal::parse(Path::new("fixture"), text).unwrap();
        let small = Scorecard::from_journal(&records).unwrap();
        let mut large = small.clone();
        large.run_id = "2026-11-21-payments-2".into();
        large.title = "slow ".repeat(40_000); // 200 KB: read in several pieces
        let root = tempfile::tempdir().unwrap();
        write(root.path(), &small).unwrap();
        let large_path = write(root.path(), &large).unwrap();
        assert!(std::fs::metadata(&large_path).unwrap().len() > 128 * 1024);
        let dir = large_path.parent().unwrap();
        let full = std::fs::read(&large_path).unwrap();
        std::fs::write(dir.join("torn.json"), &full[..full.len() / 2]).unwrap();
        std::fs::write(dir.join("empty.json"), b"").unwrap();

        let (cards, skipped) = read_all(root.path());
        assert_eq!(cards, vec![small, large]);
        let names: Vec<_> = skipped.iter().map(|s| s.path.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["empty.json", "torn.json"]);
        assert!(skipped.iter().all(|s| s.reason.contains("EOF")), "{skipped:?}");
    }

    #[test]
    fn names_never_leave_their_directory() {
        for (name, safe) in [("..", "_."), (".", "_"), ("", "_"), (".hidden", "_hidden"), ("a/../b", "a_.._b")] {
            assert_eq!(sanitize(name), safe);
        }
    }
}
