//! The events of a run: everything that happens is one of these, journaled before it takes effect.

use serde::{Deserialize, Serialize};

/// The four response phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Someone (or an alert) noticed.
    Detect,
    /// The cause was named correctly.
    Diagnose,
    /// The steady state holds again.
    Mitigate,
    /// Declared fixed, faults out, steady state holds.
    Resolve,
}

impl Phase {
    /// All phases in order.
    pub const ALL: [Self; 4] = [Self::Detect, Self::Diagnose, Self::Mitigate, Self::Resolve];
}

/// What a correct diagnosis must say: every group must match (alternatives split by `|`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AnswerKey {
    /// The component at fault.
    pub component: String,
    /// The kind of fault.
    pub kind: String,
    /// Groups of lower-case alternatives.
    pub accept: Vec<Vec<String>>,
}

impl AnswerKey {
    /// True when every group has an alternative that appears in `diagnosis` (case-insensitive).
    pub fn matches(&self, diagnosis: &str) -> bool {
        let text = diagnosis.to_lowercase();
        self.accept.iter().all(|group| group.iter().any(|word| text.contains(word.as_str())))
    }
}

/// What a kill fault does to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KillAction {
    /// Send the signal (processes, Docker).
    Kill,
    /// Docker stop with the grace period; the fault's end starts it again.
    Stop,
    /// Docker restart with the grace period.
    Restart,
    /// Docker pause; the fault's end unpauses.
    Pause,
    /// Kubernetes pod delete with the grace period.
    Delete,
    /// Docker: the signal to the container's main process from this host, not through the
    /// API, so Docker sees a crash and the container's restart policy applies.
    Crash,
}

impl KillAction {
    /// The name used in drills and journals.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Pause => "pause",
            Self::Delete => "delete",
            Self::Crash => "crash",
        }
    }

    /// Whether the fault's end must undo it (unpause, start).
    pub fn needs_undo(self) -> bool {
        matches!(self, Self::Stop | Self::Pause)
    }
}

/// Where a kill fault's targets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Local replicas under firedrill's supervisor.
    Process,
    /// Docker containers.
    Docker,
    /// Kubernetes pods.
    Kubernetes,
}

impl Backend {
    /// The name used in journals and scorecards.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Docker => "docker",
            Self::Kubernetes => "kubernetes",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a fault came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Removal {
    /// Its `duration` ran out.
    Duration,
    /// The incident was declared resolved.
    Resolved,
    /// The run's timebox ran out.
    Timebox,
    /// Someone aborted the run.
    Aborted,
    /// The daemon stopped, or crashed and recovered the run.
    Interrupted,
    /// A guardrail tripped.
    Guardrail,
    /// Another fault could not be applied, so the run failed.
    Failed,
}

/// Where an alert came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertSource {
    /// Alertmanager's webhook.
    #[serde(rename = "alertmanager")]
    Alertmanager,
    /// firedrill's own burn-rate rules over the run's SLI.
    #[serde(rename = "burn-rate")]
    BurnRate,
}

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
    /// A guardrail stopped it (the SLI fell too far or the budget burn passed its cap).
    Guardrail,
}

/// The objective a run's SLI was held to, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SloInfo {
    /// Objective in percent.
    pub objective_percent: f64,
    /// Period in seconds.
    pub period_s: f64,
    /// Production requests per second.
    pub production_rps: f64,
}

/// An alert the drill expected, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertExpectation {
    /// Rule or alert name.
    pub name: String,
    /// By when, from t0.
    pub within_ms: u64,
}

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant, reason = "one RunStarted per run; boxing it would only complicate the journal")]
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
        /// Started by blind mode (absent: announced).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        blind: bool,
        /// The timebox.
        timebox_ms: u64,
        /// Production targets per phase.
        production_ms: PhaseMillis,
        /// Dev share of the production targets.
        ratio: f64,
        /// The answer key (hidden from responders; kept for replays).
        answer: AnswerKey,
        /// The SLO, if the drill has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slo: Option<SloInfo>,
        /// Alerts the drill expects.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        expected_alerts: Vec<AlertExpectation>,
    },
    /// A fault went in (journaled before the call, so a crash can always undo it). A kill fault
    /// has no proxy or toxic: its targets are in the `TargetKilled` events that follow.
    FaultApplied {
        /// Index of the fault in the drill.
        fault: usize,
        /// The proxy (empty for a kill fault).
        #[serde(default)]
        proxy: String,
        /// The toxic's name on that proxy (empty for a kill fault).
        #[serde(default)]
        toxic: String,
        /// The toxic's type.
        kind: String,
    },
    /// Applying a fault failed.
    FaultFailed {
        /// Index of the fault in the drill.
        fault: usize,
        /// What failed, with its causes (the engine's own words).
        error: String,
    },
    /// A fault came out (a kill fault: no more rounds, and what it paused or stopped is back).
    FaultRemoved {
        /// Index of the fault in the drill.
        fault: usize,
        /// The proxy (empty for a kill fault).
        #[serde(default)]
        proxy: String,
        /// The toxic's name (empty for a kill fault).
        #[serde(default)]
        toxic: String,
        /// Why, for people: what is down, or what tripped.
        reason: Removal,
    },
    /// A kill fault acted on a target (journaled before the call).
    TargetKilled {
        /// Index of the fault in the drill.
        fault: usize,
        /// Where the target lives.
        backend: Backend,
        /// Replica id, container id or pod name.
        target: String,
        /// Its name for people.
        name: String,
        /// What was done.
        action: KillAction,
        /// Which round of the fault (0 = first; `every` repeats).
        round: u32,
    },
    /// A kill round was skipped: acting would have taken more of the drill's targets down at
    /// once than its blast radius allows (some are still down: an earlier round's, or on their
    /// own). Nothing was touched.
    KillSkipped {
        /// Index of the fault in the drill.
        fault: usize,
        /// Which round.
        round: u32,
        /// Why, with what is down.
        reason: String,
    },
    /// The SIGKILL after a grace period went to a target that had not stopped.
    KillEscalated {
        /// Index of the fault in the drill.
        fault: usize,
        /// The target's id: a replica id, container id or pod name.
        target: String,
        /// What was done.
        detail: String,
    },
    /// A kill round could not act: nothing matched, or the call failed.
    KillFailed {
        /// Index of the fault in the drill.
        fault: usize,
        /// The target, when one was chosen.
        target: Option<String>,
        /// What failed, with its causes (the engine's own words).
        error: String,
    },
    /// A target acted on is healthy again.
    TargetRecovered {
        /// Index of the fault in the drill.
        fault: usize,
        /// The target's id: a replica id, container id or pod name.
        target: String,
        /// What was seen (`pid 4242 healthy after 1 restart(s)`).
        detail: String,
    },
    /// What a kill fault left behind on a target was undone (a stopped container started, a
    /// paused one unpaused).
    TargetRestored {
        /// Index of the fault in the drill.
        fault: usize,
        /// The target's id: a replica id, container id or pod name.
        target: String,
        /// The action undone.
        action: KillAction,
    },
    /// A responder acknowledged: human detection.
    Ack {
        /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
        by: String,
    },
    /// An alert fired: machine detection.
    Alert {
        /// Where it came from.
        source: AlertSource,
        /// The alert's name.
        name: String,
        /// What fired it (a burn-rate rule's ratios), if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Alertmanager's `startsAt` (the alert's own start; the record's time is the receipt).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starts_at: Option<String>,
        /// Alertmanager's fingerprint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
    /// An Alertmanager alert meant for this run (its `firedrill_run` label names the run, or its
    /// `drill` label the drill) that the drill does not expect: noise a team should know about.
    AlertNoise {
        /// The alert's name.
        name: String,
        /// Alertmanager's `startsAt`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        starts_at: Option<String>,
        /// Alertmanager's fingerprint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint: Option<String>,
    },
    /// A burn-rate rule stopped firing.
    AlertCleared {
        /// Where it came from.
        source: AlertSource,
        /// The alert's name.
        name: String,
    },
    /// Cumulative valid and bad events of the run's SLI so far.
    Sli {
        /// Valid events.
        valid: u64,
        /// Bad events.
        bad: u64,
        /// The run-clock instant the counts were read at, when earlier than the record (the
        /// start of a stable window, read then and journaled once the window held).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<u64>,
    },
    /// A responder submitted a diagnosis.
    Diagnosis {
        /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
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
    /// The steady state held for the verification window, starting at `since_ms`, while a fault
    /// was still doing damage (a toxic in force, a pulse on, a kill round): mitigated with the
    /// fault still in.
    Mitigated {
        /// Run-clock milliseconds at which the stable window began.
        since_ms: u64,
    },
    /// The steady-state probe failed for the first time since t0: the fault bit, and from now a
    /// steady state that holds with the fault in is evidence of mitigation.
    SteadyStateLost,
    /// A responder declared the impact mitigated with the fault still in (`firedrill mitigate`);
    /// a `mitigated` event follows once the steady state proves it.
    MitigateDeclared {
        /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
        by: String,
    },
    /// A declared mitigation that the steady state did not confirm in time.
    MitigationUnverified {
        /// Who declared it.
        by: String,
        /// Why it was not confirmed.
        reason: String,
    },
    /// A responder declared the incident resolved.
    ResolveDeclared {
        /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
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
