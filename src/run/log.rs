//! A run's records as others see them while it happens: status and watchers read the records
//! so far and follow each new one.

use crate::journal::Record;

/// What others may see of a run while it happens: its records so far, and each new one.
#[derive(Debug)]
pub struct RunLog {
    records: std::sync::Mutex<Vec<Record>>,
    /// New records, for watchers; lagging watchers re-read [`RunLog::records`].
    live: tokio::sync::broadcast::Sender<Record>,
    /// The live SLI's burn rate per window, updated every second (not journaled: samples are).
    burn: std::sync::Mutex<Vec<(std::time::Duration, f64)>>,
    /// Told of every record, with every other run's (the manager's counter of changes).
    changes: Option<tokio::sync::watch::Sender<u64>>,
}

/// How many records a slow watcher may fall behind before it must re-read.
const WATCH_BACKLOG: usize = 256;

impl Default for RunLog {
    fn default() -> Self {
        Self {
            records: std::sync::Mutex::default(),
            live: tokio::sync::broadcast::channel(WATCH_BACKLOG).0,
            burn: std::sync::Mutex::default(),
            changes: None,
        }
    }
}

impl RunLog {
    /// A log that also bumps `changes` on each record.
    pub fn counting(changes: tokio::sync::watch::Sender<u64>) -> Self {
        Self { changes: Some(changes), ..Self::default() }
    }

    /// The records so far.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Subscribes to new records; pair with [`RunLog::records`] and skip what was already seen.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Record> {
        self.live.subscribe()
    }

    /// The live SLI's burn rate per window (empty without an SLO, or before the first second).
    pub fn burn_rates(&self) -> Vec<(std::time::Duration, f64)> {
        self.burn.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub(super) fn set_burn_rates(&self, rates: Vec<(std::time::Duration, f64)>) {
        *self.burn.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = rates;
    }

    pub(super) fn push(&self, record: Record) {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(record.clone());
        let _ = self.live.send(record);
        if let Some(changes) = &self.changes {
            changes.send_modify(|n| *n += 1);
        }
    }
}
