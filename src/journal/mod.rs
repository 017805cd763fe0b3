//! A run's journal: append-only JSON Lines, one event per line, each written and fsync'd before
//! it takes effect. A torn last line (a crash mid-write) is tolerated on read.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod event;

use std::collections::BTreeMap;

use event::{Backend, Event, KillAction};

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1, 2, 3, … in write order.
    pub seq: u64,
    /// Milliseconds since the run started, on the run's clock.
    pub t_ms: u64,
    /// Wall-clock time, milliseconds since the Unix epoch (for people; never for arithmetic).
    pub wall_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// Why a journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The journal.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A line before the last one is not a valid event: the file was edited or corrupted.
    #[error("{path}:{line}: not a journal event ({message}); the journal is corrupt before its last line")]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        message: String,
    },
}

/// An open journal, appended to by one run.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    next_seq: u64,
}

impl Journal {
    /// Creates a new journal; fails if the file exists (a run id is never reused).
    pub fn create(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io { path: path.to_owned(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new().append(true).create_new(true).open(path).map_err(io)?;
        Ok(Self { path: path.to_owned(), file, next_seq: 1 })
    }

    /// Reopens a journal for appending after a crash; `records` are what [`read`] returned. A torn
    /// last line is cut off first, so the next event starts on a line of its own.
    pub fn reopen(path: &Path, records: &[Record]) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io { path: path.to_owned(), source };
        let text = std::fs::read_to_string(path).map_err(io)?;
        let keep: usize = text.split_inclusive('\n').take(records.len()).map(str::len).sum();
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        file.set_len(keep as u64).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(Self { path: path.to_owned(), file, next_seq: records.last().map_or(1, |r| r.seq + 1) })
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event and waits until it is on disk.
    pub fn append(&mut self, t_ms: u64, event: Event) -> Result<Record, JournalError> {
        let record = Record { seq: self.next_seq, t_ms, wall_ms: crate::clock::wall_ms(), event };
        let mut line = serde_json::to_vec(&record)
            .map_err(|e| JournalError::Io { path: self.path.clone(), source: io::Error::other(e) })?;
        line.push(b'\n');
        let io = |source| JournalError::Io { path: self.path.clone(), source };
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.next_seq += 1;
        Ok(record)
    }
}

/// Reads a journal. A last line that does not parse (a torn write) is dropped; any other bad
/// line is an error naming the line.
pub fn read(path: &Path) -> Result<Vec<Record>, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|source| JournalError::Io { path: path.to_owned(), source })?;
    parse(path, &text)
}

/// How much of a journal's end [`last_record`] reads: more than any `ended` line.
const TAIL: u64 = 64 * 1024;

/// The last complete record of a journal, read from its end alone (a daemon starting over
/// thousands of finished runs must not parse them all to learn that they ended). `None` when
/// the last complete line is not a record, or the file cannot be read.
pub fn last_record(path: &Path) -> Option<Record> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path).ok()?;
    let length = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    // Only whole lines: what follows the last newline is torn (or empty).
    let whole = &text[..text.rfind('\n')?];
    let line = whole.rsplit('\n').next()?;
    serde_json::from_str(line).ok()
}

/// Parses journal text; see [`read`].
pub fn parse(path: &Path, text: &str) -> Result<Vec<Record>, JournalError> {
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    let complete = text.ends_with('\n');
    let mut records = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        let last = index + 1 == lines.len();
        match serde_json::from_str::<Record>(line) {
            Ok(record) => records.push(record),
            Err(_) if last && (!complete || line.trim().is_empty()) => break,
            Err(_) if last => break, // a torn line that happened to end at a newline
            Err(e) => {
                return Err(JournalError::Corrupt { path: path.to_owned(), line: index + 1, message: e.to_string() });
            }
        }
    }
    Ok(records)
}

/// What a run put in and has not taken out yet, as its journal tells it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InForce {
    /// Every fault applied and not removed (nor failed), by index: (proxy, toxic name), both
    /// empty for kill and spike faults.
    pub faults: BTreeMap<usize, (String, String)>,
    /// Kills whose effect lasts until undone (a stopped or paused container), by (fault,
    /// target): where the target lives and what was done.
    pub lasting: BTreeMap<(usize, String), (Backend, KillAction)>,
}

/// Folds a journal into the faults still in force at its end: what a run's ending takes out,
/// and what crash recovery takes out of a run that never ended.
pub fn in_force(records: &[Record]) -> InForce {
    let mut state = InForce::default();
    for record in records {
        match &record.event {
            Event::FaultApplied { fault, proxy, toxic, .. } => {
                state.faults.insert(*fault, (proxy.clone(), toxic.clone()));
            }
            Event::FaultRemoved { fault, .. } | Event::FaultFailed { fault, .. } => {
                state.faults.remove(fault);
            }
            Event::TargetKilled { fault, backend, target, action, .. } if action.needs_undo() => {
                state.lasting.insert((*fault, target.clone()), (*backend, *action));
            }
            Event::TargetRestored { fault, target, .. } => {
                state.lasting.remove(&(*fault, target.clone()));
            }
            _ => {}
        }
    }
    state
}

/// The built-in burn-rate alerts firing at the end of `records`, by rule, with the wall-clock
/// ms each started firing (what `/metrics` and Alertmanager are told).
pub fn builtin_firing(records: &[Record]) -> BTreeMap<String, u64> {
    let mut firing = BTreeMap::new();
    for record in records {
        match &record.event {
            Event::Alert { source: event::AlertSource::BurnRate, name, .. } => {
                firing.entry(name.clone()).or_insert(record.wall_ms);
            }
            Event::AlertCleared { source: event::AlertSource::BurnRate, name } => {
                firing.remove(name);
            }
            _ => {}
        }
    }
    firing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::event::Event;

    #[test]
    fn appends_reads_and_tolerates_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/r1.jsonl");
        let mut journal = Journal::create(&path).unwrap();
        journal.append(0, Event::Ack { by: "ana".into() }).unwrap();
        journal.append(1500, Event::Hint { index: 0, text: "look".into(), by: None }).unwrap();
        assert!(Journal::create(&path).is_err(), "a journal is never overwritten");
        let mut text = std::fs::read_to_string(&path).unwrap();
        let records = parse(&path, &text).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((records[1].seq, records[1].t_ms), (2, 1500));
        assert_eq!(records[0].event, Event::Ack { by: "ana".into() });

        text.push_str(r#"{"seq":3,"t_ms":20"#);
        assert_eq!(parse(&path, &text).unwrap().len(), 2, "torn last line dropped");
        std::fs::write(&path, &text).unwrap();
        let records = read(&path).unwrap();
        let mut reopened = Journal::reopen(&path, &records).unwrap();
        reopened.append(2000, Event::Ack { by: "bo".into() }).unwrap();
        let after = read(&path).unwrap();
        assert_eq!(after.len(), 3, "the torn line was cut and the new event is whole");
        assert_eq!(after[2].seq, 3);
        let corrupt = text.replacen("\"seq\":1", "\"seq\":\"x\"", 1);
        assert!(matches!(parse(&path, &corrupt), Err(JournalError::Corrupt { line: 1, .. })));
    }

    #[test]
    fn the_last_record_is_read_from_the_end_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut journal = Journal::create(&path).unwrap();
        // More than the tail holds, so the start of the file is never read.
        for t in 0..2_000 {
            journal.append(t, Event::Sli { valid: t, bad: 0, at_ms: None }).unwrap();
        }
        journal.append(2_000, Event::Ack { by: "ana".into() }).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > TAIL);
        assert_eq!(last_record(&path).map(|r| (r.seq, r.event)), Some((2_001, Event::Ack { by: "ana".into() })));
        // A torn last line does not count; the whole line before it does.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(r#"{"seq":2002,"t_ms":20"#);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(last_record(&path).map(|r| r.seq), Some(2_001));
        assert!(last_record(&dir.path().join("missing.jsonl")).is_none());
    }

    #[test]
    fn the_faults_in_force_are_what_went_in_and_did_not_come_out() {
        // Written by earlier versions with plain strings: the enums read and write the same text.
        let lines = [
            r#"{"seq":1,"t_ms":0,"wall_ms":0,"type":"fault_applied","fault":0,"proxy":"partner","toxic":"t0","kind":"latency"}"#,
            r#"{"seq":2,"t_ms":1,"wall_ms":0,"type":"fault_applied","fault":1,"proxy":"ledger","toxic":"t1","kind":"timeout"}"#,
            r#"{"seq":3,"t_ms":2,"wall_ms":0,"type":"fault_removed","fault":0,"proxy":"partner","toxic":"t0","reason":"duration"}"#,
            r#"{"seq":4,"t_ms":3,"wall_ms":0,"type":"target_killed","fault":2,"backend":"docker","target":"c1","name":"shop-1","action":"pause","round":0}"#,
            r#"{"seq":5,"t_ms":4,"wall_ms":0,"type":"target_killed","fault":2,"backend":"docker","target":"c2","name":"shop-2","action":"stop","round":1}"#,
            r#"{"seq":6,"t_ms":5,"wall_ms":0,"type":"target_killed","fault":3,"backend":"process","target":"wallet-1","name":"wallet-1","action":"kill","round":0}"#,
            r#"{"seq":7,"t_ms":6,"wall_ms":0,"type":"target_restored","fault":2,"target":"c1","action":"pause"}"#,
            r#"{"seq":8,"t_ms":7,"wall_ms":0,"type":"alert","source":"burn-rate","name":"page-1h"}"#,
            r#"{"seq":9,"t_ms":8,"wall_ms":0,"type":"alert_cleared","source":"alertmanager","name":"X"}"#,
        ];
        let text = lines.join("\n") + "\n";
        let records = parse(Path::new("fixture"), &text).unwrap();
        for (record, line) in records.iter().zip(lines) {
            assert_eq!(serde_json::to_string(record).unwrap(), line, "the on-disk form is unchanged");
        }
        let state = in_force(&records);
        assert_eq!(state.faults.into_iter().collect::<Vec<_>>(), [(1, ("ledger".to_owned(), "t1".to_owned()))]);
        assert_eq!(
            state.lasting.into_iter().collect::<Vec<_>>(),
            [((2, "c2".to_owned()), (Backend::Docker, KillAction::Stop))],
            "a kill needs no undo; a restored pause is undone already"
        );
        // The burn-rate page fires; an Alertmanager alert clearing does not clear it.
        assert_eq!(builtin_firing(&records).into_iter().collect::<Vec<_>>(), [("page-1h".to_owned(), 0)]);
        // An unknown reason is a corrupt journal (a torn last line alone would be dropped).
        let unknown = format!("{}\n{}\n", lines[2].replace("duration", "whenever"), lines[3]);
        assert!(matches!(parse(Path::new("f"), &unknown), Err(JournalError::Corrupt { line: 1, .. })));
    }
}
