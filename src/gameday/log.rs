//! A game day's journal (`<data>/gamedays/<id>.jsonl`): what the day did, step by step, the
//! debrief's notes and the notifications that failed. Each run keeps its own journal; this one
//! names them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One thing that happened on a game day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DayEvent {
    /// The day began.
    Started {
        /// The plan's name.
        plan: String,
        /// Its title.
        title: String,
        /// The team.
        team: String,
        /// Who started it (`schedule` when the daemon did, on time).
        by: String,
        /// The occurrence it is, ms since the Unix epoch (absent: started by hand).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduled_ms: Option<i64>,
        /// The sequence, as people read it.
        steps: Vec<String>,
        /// Everyone and their role: `[role, name]`.
        roles: Vec<[String; 2]>,
        /// The debrief's questions.
        questions: Vec<String>,
    },
    /// An occurrence that passed while no daemon was up to start it (or while the plan's
    /// previous game day still ran): never started late.
    Missed {
        /// The plan.
        plan: String,
        /// Its title.
        title: String,
        /// The team.
        team: String,
        /// The occurrence, ms since the Unix epoch.
        scheduled_ms: i64,
        /// Why.
        reason: String,
    },
    /// The plan's environment file was brought up (or was already).
    Environment {
        /// What happened, in words.
        text: String,
    },
    /// A step's drill started.
    DrillStarted {
        /// The step (0-based).
        step: usize,
        /// The run.
        run_id: String,
        /// The drill; absent for a blind pick until it ends.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drill: Option<String>,
    },
    /// A step's drill ended.
    DrillEnded {
        /// The step.
        step: usize,
        /// The run.
        run_id: String,
        /// The drill.
        drill: String,
        /// How the run ended (`resolved`, `unresolved`, `aborted`, …).
        outcome: String,
    },
    /// A step could not start; the day went on.
    StepFailed {
        /// The step.
        step: usize,
        /// Why.
        error: String,
    },
    /// A break began.
    Break {
        /// The step.
        step: usize,
        /// How long, ms.
        length_ms: u64,
    },
    /// A note or an answer to a debrief question.
    Note {
        /// Who wrote it.
        by: String,
        /// What they wrote.
        text: String,
        /// The question it answers (1-based), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        question: Option<usize>,
    },
    /// A notification that could not be delivered after every retry.
    NotifyFailed {
        /// The webhook (its URL without the query, which may hold a secret).
        url: String,
        /// What it was about.
        event: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last error.
        error: String,
    },
    /// The day ended.
    Ended {
        /// `completed` (every step done), `ended` (ended early by a person or the kill switch) or
        /// `interrupted` (the daemon stopped or crashed).
        outcome: String,
        /// Who ended it early.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
}

/// A journal line: when, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayRecord {
    /// Wall-clock ms since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: DayEvent,
}

/// An open game-day journal: appends one line per event, flushed at once.
#[derive(Debug)]
pub struct DayLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl DayLog {
    /// Creates a new journal (never overwrites one).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create_new(true).append(true).open(path)?;
        Ok(Self { path: path.to_owned(), file: Mutex::new(file) })
    }

    /// Opens an existing journal to append to it.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self { path: path.to_owned(), file: Mutex::new(file) })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event`, stamped now.
    pub fn append(&self, event: DayEvent) -> std::io::Result<DayRecord> {
        let record = DayRecord { at_ms: crate::clock::wall_ms(), event };
        let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(&line)?;
        file.sync_data()?;
        Ok(record)
    }

    /// Appends `event`; a failure is logged, not returned (the day goes on).
    pub fn record(&self, event: DayEvent) {
        if let Err(err) = self.append(event) {
            tracing::error!(%err, path = %self.path.display(), "could not write to the game day's journal");
        }
    }
}

/// Every record of a game-day journal; a torn last line (a crash mid-write) is skipped.
pub fn read(path: &Path) -> std::io::Result<Vec<DayRecord>> {
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(record) => out.push(record),
            Err(_) if index + 1 == lines.len() => {}
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}:{}: {e}", path.display(), index + 1),
                ));
            }
        }
    }
    Ok(out)
}
