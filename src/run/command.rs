//! What responders and the facilitator ask of a running drill, and why a run refuses.

use std::collections::BTreeMap;

use tokio::sync::oneshot;
use tokio::time::Duration;

/// Why a run refused a responder's command; nothing was journaled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The fault has not gone in yet: nothing counts before t0.
    #[error("{}", not_yet(*.0))]
    NotYet(Option<u64>),
    /// A blind drill takes nothing but acknowledgements until one counts; the same answer
    /// whether it is armed, running before its fault, or running after it.
    #[error(
        "nothing to act on yet: acknowledge (`firedrill ack`) when you notice symptoms; diagnoses, hints, \
         mitigations and resolves follow an acknowledgement of the fault"
    )]
    AckFirst,
    /// `mitigate` needs someone to have acknowledged the fault.
    #[error("acknowledge the fault first (`firedrill ack`): mitigation never comes before detection")]
    NotAcknowledged,
    /// `mitigate` needs a steady-state probe to verify it.
    #[error(
        "this drill has no steady-state probe ([verify] http) to prove a mitigation with the fault in; \
         `firedrill resolve` when it is fixed"
    )]
    NoProbe,
    /// The steady state did not confirm a declared mitigation.
    #[error("not mitigated: {0}; the run goes on")]
    Unverified(String),
}

fn not_yet(due_ms: Option<u64>) -> String {
    match due_ms {
        Some(ms) => format!(
            "the fault has not gone in yet (traffic warming up; it goes in at {} from the run's start): \
             nothing counts before it",
            crate::duration::format(Duration::from_millis(ms))
        ),
        None => "the fault has not gone in yet: nothing counts before it".to_owned(),
    }
}

/// What a responder (or the facilitator) can ask of a running drill.
#[derive(Debug)]
pub enum Command {
    /// "I see it": human detection. Accepted at any time; before t0 it is a false alarm.
    Ack {
        /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
        by: String,
        /// Told once the acknowledgement is in the journal: whether it counted as detection.
        reply: oneshot::Sender<bool>,
    },
    /// A diagnosis; the answer says whether it matched the key.
    Diagnose {
        /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
        by: String,
        /// What they think is wrong.
        text: String,
        /// Receives whether the diagnosis was correct.
        reply: oneshot::Sender<Result<bool, Refusal>>,
    },
    /// Reveal the next hint; the answer is its text, or `None` when none is left.
    Hint {
        /// Who asked.
        by: String,
        /// Receives the hint.
        reply: oneshot::Sender<Result<Option<String>, Refusal>>,
    },
    /// Declare the impact mitigated with the fault still in; verified by the steady state.
    Mitigate {
        /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
        by: String,
        /// Receives the mitigation's time from t0 once verified.
        reply: oneshot::Sender<Result<u64, Refusal>>,
    },
    /// Declare the incident resolved.
    Resolve {
        /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
        by: String,
        /// Told once the declaration is journaled (the run then ends), or why it was refused.
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// End the run now and remove its faults.
    Abort {
        /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
        by: String,
    },
    /// An alert from Alertmanager; it counts if it matches one the drill expects.
    Alert {
        /// `alertname`.
        name: String,
        /// Every label of the alert.
        labels: BTreeMap<String, String>,
        /// Alertmanager's `startsAt`.
        starts_at: String,
        /// Alertmanager's fingerprint.
        fingerprint: String,
        /// Told once handled: whether it was recorded (expected, and not a repeat).
        reply: oneshot::Sender<bool>,
    },
}
