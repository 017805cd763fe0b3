//! The validated drill plan: what the runner receives. Every value here has been checked.

use std::time::Duration;

use serde::Serialize;

pub use crate::journal::event::{AnswerKey, Backend, KillAction, Phase};
pub use crate::probe::HttpProbe;
use crate::proxy::toxic::Toxic;
use crate::signal::Signal;

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

/// Something that goes wrong at an offset from t0, for a while or until the run ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Offset from the drill's start.
    pub at: Duration,
    /// How long it stays; `None` = until resolved or the run ends.
    pub duration: Option<Duration>,
    /// What it does.
    pub action: FaultAction,
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// A toxic on a proxy.
    Toxic {
        /// The proxy it goes on.
        proxy: String,
        /// The toxic, validated by the proxy's own rules.
        toxic: Toxic,
    },
    /// Processes, containers or pods killed (once, or every interval).
    Kill(KillPlan),
    /// A traffic spike: the drill's synthetic traffic, `rps` more requests per second on top of
    /// `[traffic]`, to the same entry point and counted in the same SLI, while the fault lasts.
    Spike {
        /// Extra requests per second.
        rps: f64,
    },
}

impl Fault {
    /// The kind recorded on scorecards: the toxic's type, `kill` or `spike`.
    pub fn kind(&self) -> &'static str {
        match &self.action {
            FaultAction::Toxic { toxic, .. } => toxic.kind.type_name(),
            FaultAction::Kill(_) => "kill",
            FaultAction::Spike { .. } => "spike",
        }
    }
}

/// A kill fault: which targets, how many, how, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct KillPlan {
    /// Where the targets are.
    pub selector: Selector,
    /// How many of the matching targets.
    pub pick: Pick,
    /// Kill again every this long until the fault ends; `None` = once.
    pub every: Option<Duration>,
    /// The signal (processes, Docker `kill`).
    pub signal: Signal,
    /// Grace period (Docker `stop`/`restart`, Kubernetes delete).
    pub grace: Duration,
    /// What is done to each target.
    pub action: KillAction,
    /// The most targets down at once, this round's and those not back yet (the drill's
    /// `blast_radius.max_targets`).
    pub max_targets: usize,
}

/// Where a kill fault's targets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Replicas of a service under `firedrill up`.
    Process {
        /// The service's name.
        service: String,
    },
    /// Docker containers carrying every label (the drill's scope included) and, if given, whose
    /// name contains `name`.
    Docker {
        /// Required labels: the selector's own plus the drill's `blast_radius.docker_scope`.
        labels: std::collections::BTreeMap<String, String>,
        /// A name filter (substring, as Docker's `name` filter).
        name: Option<String>,
    },
    /// Kubernetes pods by namespace and label selector.
    Kubernetes {
        /// The namespace (must be in the allow-list).
        namespace: String,
        /// A label selector (`app=wallet,tier!=db`).
        selector: String,
        /// Kubeconfig contexts the drill may run in.
        contexts: Vec<String>,
    },
}

impl Selector {
    /// The backend, as journaled: `process`, `docker` or `kubernetes`.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Process { .. } => Backend::Process,
            Self::Docker { .. } => Backend::Docker,
            Self::Kubernetes { .. } => Backend::Kubernetes,
        }
    }

    /// Where, in words (`docker containers labelled app=wallet`).
    pub fn describe(&self) -> String {
        match self {
            Self::Process { service } => format!("replicas of local service `{service}`"),
            Self::Docker { labels, name } => {
                let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let name = name.as_ref().map(|n| format!(" named *{n}*")).unwrap_or_default();
                format!("Docker containers labelled {}{name}", labels.join(","))
            }
            Self::Kubernetes { namespace, selector, .. } => {
                format!("pods in namespace `{namespace}` matching `{selector}`")
            }
        }
    }
}

/// How many of the matching targets a round takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick {
    /// Exactly this many.
    Count(usize),
    /// This share of them, rounded up (at least one).
    Percent(f64),
    /// Every one.
    All,
}

impl Pick {
    /// How many of `matching` targets.
    pub fn of(self, matching: usize) -> usize {
        match self {
            Self::Count(n) => n,
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            Self::Percent(p) => ((matching as f64 * p / 100.0).ceil() as usize).max(1),
            Self::All => matching,
        }
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

/// The objective a drill's SLI is held to, and where the SLI comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct SloPlan {
    /// Objective and period.
    pub objective: crate::slo::Objective,
    /// The service's production request rate, for production-equivalent budget figures.
    pub production_rps: f64,
    /// Where good and bad events are counted.
    pub source: SliSource,
    /// A request slower than this is bad (synthetic traffic only).
    pub latency: Option<Duration>,
    /// Bad events a rule's long window needs before it may fire.
    pub min_bad: u64,
}

/// Where a drill's SLI comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SliSource {
    /// The drill's synthetic traffic.
    Traffic,
    /// A proxy: an `http` one counts requests, a `tcp` one connections (failed dials are bad).
    Proxy(String),
}

/// Synthetic traffic: requests at a fixed rate from shortly before t0 until the run ends.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficPlan {
    /// What to call.
    pub target: TrafficTarget,
    /// Requests per second.
    pub rps: f64,
    /// How long traffic runs before the timeline (and t0) starts.
    pub warmup: Duration,
    /// A request slower than this failed.
    pub timeout: Duration,
}

/// The entry point synthetic traffic calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficTarget {
    /// An HTTP GET; 2xx–4xx is good, 5xx and failures bad.
    Http(String),
    /// A unary gRPC call with an empty message to `address`, `/package.Service/Method`.
    Grpc {
        /// `host:port`.
        address: String,
        /// The method path.
        path: String,
    },
}

/// An alert the team expects to fire, and by when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedAlert {
    /// A built-in rule's name (`page-1h`) or an Alertmanager `alertname`.
    pub name: String,
    /// From t0.
    pub within: Duration,
    /// Labels an Alertmanager alert must carry to count.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// When a run stops itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Guardrails {
    /// Stop when the SLI stays below this ratio for this long.
    pub sli_floor: Option<(f64, Duration)>,
    /// Stop when the production-equivalent spend passes this share of the budget.
    pub max_budget_spent: Option<f64>,
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
    /// The objective and SLI source, if any.
    pub slo: Option<SloPlan>,
    /// Synthetic traffic, if any.
    pub traffic: Option<TrafficPlan>,
    /// Alerts expected to fire.
    pub alerts: Vec<ExpectedAlert>,
    /// Stop conditions.
    pub guardrails: Guardrails,
}

impl Drill {
    /// Where every kill fault of the drill reaches: together, the targets its blast radius
    /// counts.
    pub fn kill_selectors(&self) -> Vec<&Selector> {
        self.faults
            .iter()
            .filter_map(|f| match &f.action {
                FaultAction::Kill(plan) => Some(&plan.selector),
                _ => None,
            })
            .collect()
    }

    /// When the first fault is due, from the run's start: its offset after the traffic's
    /// warm-up (the timeline waits that out first). `None` for a drill without faults.
    pub fn first_fault_due(&self) -> Option<Duration> {
        let warmup = self.traffic.as_ref().map_or(Duration::ZERO, |t| t.warmup);
        self.faults.iter().map(|f| f.at).min().map(|at| warmup + at)
    }
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
