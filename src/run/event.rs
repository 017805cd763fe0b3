//! The events of a run: everything that happens is one of these, journaled before it takes effect.

use serde::{Deserialize, Serialize};

use crate::drill::AnswerKey;

/// A duration per phase, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseMillis {
    /// Detect.
    pub detect: u64,
    /// Diagnose.
    pub diagnose: u64,
    /// Mitigate.
    pub mitigate: u64,
    /// Resolve.
    pub resolve: u64,
}

impl PhaseMillis {
    /// The values in phase order.
    pub fn as_array(self) -> [u64; 4] {
        [self.detect, self.diagnose, self.mitigate, self.resolve]
    }

    /// From values in phase order.
    pub fn from_array([detect, diagnose, mitigate, resolve]: [u64; 4]) -> Self {
        Self { detect, diagnose, mitigate, resolve }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Declared resolved, faults removed, steady state held.
    Resolved,
    /// The timebox ran out first.
    Unresolved,
    /// A responder or the kill switch ended it.
    Aborted,
    /// The daemon stopped or crashed mid-run; cleaned up on the way down or at restart.
    Interrupted,
    /// A fault could not be applied, so there was nothing to practise on.
    Failed,
}

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The run began; carries everything the scorecard needs from the drill.
    RunStarted {
        /// Unique id of the run.
        run_id: String,
        /// The drill's name.
        drill: String,
        /// The drill's title.
        title: String,
        /// What responders are told (absent in journals of firedrill before it was recorded).
        #[serde(default)]
        briefing: String,
        /// The team practising.
        team: String,
        /// Who started it, if said.
        responder: Option<String>,
        /// Seed of the run's random draws.
        seed: u64,
        /// The timebox.
        timebox_ms: u64,
        /// Production targets per phase.
        production_ms: PhaseMillis,
        /// Dev share of the production targets.
        ratio: f64,
        /// The answer key (hidden from responders; kept for replays).
        answer: AnswerKey,
    },
    /// A fault went in (journaled before the call, so a crash can always undo it).
    FaultApplied {
        /// Index of the fault in the drill.
        fault: usize,
        /// The proxy.
        proxy: String,
        /// The toxic's name on that proxy.
        toxic: String,
        /// The toxic's type.
        kind: String,
    },
    /// Applying a fault failed.
    FaultFailed {
        /// Index of the fault in the drill.
        fault: usize,
        /// Why.
        error: String,
    },
    /// A fault came out.
    FaultRemoved {
        /// Index of the fault in the drill.
        fault: usize,
        /// The proxy.
        proxy: String,
        /// The toxic's name.
        toxic: String,
        /// Why: `duration`, `resolved`, `timebox`, `aborted`, `interrupted`, …
        reason: String,
    },
    /// A responder acknowledged: human detection.
    Ack {
        /// Who.
        by: String,
    },
    /// An alert fired: machine detection.
    Alert {
        /// Where it came from (`alertmanager`, `burn-rate`, …).
        source: String,
        /// The alert's name.
        name: String,
    },
    /// A responder submitted a diagnosis.
    Diagnosis {
        /// Who.
        by: String,
        /// What they said.
        text: String,
        /// Whether it matched the answer key.
        correct: bool,
    },
    /// A hint was revealed.
    Hint {
        /// Index of the hint in the drill.
        index: usize,
        /// Its text.
        text: String,
        /// Who asked; `None` when revealed on schedule.
        by: Option<String>,
    },
    /// The steady state held for the verification window, starting at `since_ms`.
    Mitigated {
        /// Run-clock milliseconds at which the stable window began.
        since_ms: u64,
    },
    /// A responder declared the incident resolved.
    ResolveDeclared {
        /// Who.
        by: String,
    },
    /// The run ended.
    Ended {
        /// How.
        outcome: Outcome,
        /// Who ended it or why, when it did not end by itself.
        reason: Option<String>,
    },
}
