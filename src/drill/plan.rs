//! The validated drill plan: what the runner receives. Every value here has been checked.

use std::time::Duration;

use serde::Serialize;

use crate::proxy::toxic::Toxic;

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

/// Targets per phase, measured from t0 (the first fault applied).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Targets {
    /// Production targets, in phase order.
    pub production: [Duration; 4],
    /// Dev target = production × ratio (default 1/3).
    pub ratio: f64,
}

impl Targets {
    /// The dev target of a phase.
    pub fn dev(&self, phase: Phase) -> Duration {
        self.production[phase as usize].mul_f64(self.ratio)
    }
}

/// A toxic put on a proxy at an offset from t0, for a while or until the run ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Offset from the drill's start.
    pub at: Duration,
    /// How long it stays; `None` = until resolved or the run ends.
    pub duration: Option<Duration>,
    /// The proxy it goes on.
    pub proxy: String,
    /// The toxic, validated by the proxy's own rules.
    pub toxic: Toxic,
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

/// A hint, revealed on request or `after` the drill started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hint {
    /// When it is revealed on its own, if ever.
    pub after: Option<Duration>,
    /// What it says.
    pub text: String,
}

/// How mitigation and resolution are checked: the steady state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verify {
    /// An HTTP probe: a 2xx from `url` within `within`.
    pub http: Option<HttpProbe>,
    /// Share of probes that must succeed over the window.
    pub success_ratio: f64,
    /// How long the steady state must hold.
    pub window: Duration,
}

/// One HTTP steady-state probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpProbe {
    /// What to GET.
    pub url: String,
    /// The slowest answer that still counts as healthy.
    pub within: Duration,
}

/// A validated drill.
#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    /// Short, unique name (the file's `drill.name`).
    pub name: String,
    /// One line for people.
    pub title: String,
    /// What responders are told.
    pub briefing: String,
    /// What the facilitator needs to know (never shown to responders).
    pub facilitator: Option<String>,
    /// The run ends unresolved after this long.
    pub timebox: Duration,
    /// Phase targets.
    pub targets: Targets,
    /// What goes wrong, in order of `at`.
    pub faults: Vec<Fault>,
    /// The answer key (hidden from responders).
    pub answer: AnswerKey,
    /// Hints in file order.
    pub hints: Vec<Hint>,
    /// The steady-state check, if any.
    pub verify: Option<Verify>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_must_match() {
        let key = AnswerKey {
            component: "partner".into(),
            kind: "latency".into(),
            accept: vec![vec!["partner".into()], vec!["latency".into(), "slow".into()]],
        };
        assert!(key.matches("The PARTNER API is slow"));
        assert!(!key.matches("the partner is down"));
        assert!(!key.matches("the database is slow"));
    }

    #[test]
    fn dev_target_is_a_third_by_default() {
        let targets = Targets { production: [Duration::from_secs(300); 4], ratio: 1.0 / 3.0 };
        assert_eq!(targets.dev(Phase::Detect).as_secs(), 100);
    }
}
