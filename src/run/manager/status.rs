//! What status shows of the runs: each run's details, or — for a blind drill — as little as
//! keeps it blind.

use std::path::PathBuf;

use super::{Entry, Manager, ManagerError};
use crate::scorecard::Scorecard;

/// What status reports about a run, or about a blind drill.
#[derive(Debug, Clone)]
pub enum RunView {
    /// A run whose details may be shown.
    Run(Box<RunDetails>),
    /// A blind drill, sealed: armed, or in progress and not yet acknowledged. Everything that
    /// would tell the responder what or when (id, drill, briefing, elapsed time, phases) is left
    /// out until they acknowledge; the drill's name stays out until the run ends.
    Sealed {
        /// The team it is for.
        team: String,
    },
    /// A blind drill that could not start when its moment came.
    NotStarted {
        /// The team it was for.
        team: String,
        /// Why it could not start.
        why: String,
    },
}

impl RunView {
    /// The run's details, unless it is a sealed or unstarted blind drill.
    pub fn into_run(self) -> Option<RunDetails> {
        match self {
            Self::Run(details) => Some(*details),
            Self::Sealed { .. } | Self::NotStarted { .. } => None,
        }
    }

    /// Whether it is a sealed blind drill.
    pub fn is_sealed(&self) -> bool {
        matches!(self, Self::Sealed { .. })
    }
}

/// A run as status shows it.
#[derive(Debug, Clone)]
pub struct RunDetails {
    /// The run.
    pub run_id: String,
    /// The drill it runs (empty for a blind drill until it ends).
    pub drill: String,
    /// The team it scores.
    pub team: String,
    /// Milliseconds since it started (or its length, once ended).
    pub elapsed_ms: u64,
    /// When the first fault went in (t0), ms from the start; `None` before then.
    pub fault_in_ms: Option<u64>,
    /// The scorecard so far (outcome `None` while in progress).
    pub card: Option<Scorecard>,
    /// What responders are told.
    pub briefing: String,
    /// Where the final scorecard was written.
    pub scorecard_path: Option<PathBuf>,
    /// When the first fault is due, ms from the run's start, while the traffic warms up; never
    /// set for a blind drill.
    pub fault_due_ms: Option<u64>,
    /// Who or what detected the fault first: a responder's name, or `alert NAME`.
    pub detected_by: Option<String>,
}

impl Manager {
    /// One run, or all runs, as status sees them; blind drills sealed ([`RunView::Sealed`]),
    /// armed ones included, so that armed and started look the same until acknowledged.
    pub fn status(&self, run_id: Option<&str>) -> Result<Vec<RunView>, ManagerError> {
        let runs = self.runs();
        let view = |id: &String, entry: &Entry| {
            let records = entry.log.records();
            let card = Scorecard::from_journal(&records).ok();
            let finished = entry.finished.borrow().clone();
            let ended = card.as_ref().is_some_and(|c| c.outcome.is_some());
            let elapsed_ms = match (ended, records.last()) {
                (true, Some(last)) => last.t_ms,
                _ => u64::try_from(entry.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
            let briefing = match records.first().map(|r| &r.event) {
                Some(crate::journal::event::Event::RunStarted { briefing, .. }) => briefing.clone(),
                _ => String::new(),
            };
            // Only an acknowledgement after the fault unseals a blind run: a false alarm must
            // look the same as an acknowledgement while the drill is armed.
            let acknowledged = card.as_ref().is_some_and(|c| c.detection.human_ms.is_some());
            // The scorecard's t0 is the run's start until a fault goes in.
            let fault_in_ms = card.as_ref().filter(|c| !c.void).map(|c| c.t0_ms);
            let fault_due_ms =
                if entry.blind || ended { None } else { entry.fault_due_ms.filter(|_| fault_in_ms.is_none()) };
            let detected_by = card.as_ref().and_then(|c| {
                let d = &c.detection;
                match (d.human_ms, d.machine_ms) {
                    (Some(h), Some(m)) if m < h => d.machine_alert.as_ref().map(|a| format!("alert {a}")),
                    (Some(_), _) => d.human_by.clone(),
                    (None, Some(_)) => d.machine_alert.as_ref().map(|a| format!("alert {a}")),
                    (None, None) => None,
                }
            });
            if entry.blind && !ended && !acknowledged {
                return RunView::Sealed { team: entry.team.clone() };
            }
            RunView::Run(Box::new(RunDetails {
                run_id: id.clone(),
                drill: if entry.blind && !ended { String::new() } else { entry.drill.clone() },
                team: entry.team.clone(),
                elapsed_ms,
                fault_in_ms,
                fault_due_ms,
                detected_by,
                card,
                briefing,
                scorecard_path: finished.and_then(Result::ok),
            }))
        };
        if let Some(id) = run_id {
            return runs
                .get(id)
                .map(|e| vec![view(&id.to_owned(), e)])
                .ok_or_else(|| ManagerError::NoRun(id.to_owned()));
        }
        let armed = self
            .armed()
            .values()
            .map(|a| match &a.failed {
                None => RunView::Sealed { team: a.team.clone() },
                Some(why) => RunView::NotStarted { team: a.team.clone(), why: why.clone() },
            })
            .collect::<Vec<_>>();
        Ok(runs.iter().map(|(id, e)| view(id, e)).chain(armed).collect())
    }

    /// Whether a run is a blind one still in progress: its events stay sealed until it ends.
    pub fn is_sealed(&self, run_id: &str) -> bool {
        self.runs().get(run_id).is_some_and(|e| e.blind && e.finished.borrow().is_none())
    }
}
