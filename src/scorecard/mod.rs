//! The scorecard: a run's result, computed from its journal alone (so runs replay exactly).
//!
//! Phases are timed from t0, the first fault applied (the run's start when a drill has no fault).
//! Detection keeps its two sources apart: a responder's acknowledgement and an alert.

pub mod budget;
pub mod html;
pub mod readiness;
pub mod report;
pub mod store;

use serde::{Deserialize, Serialize};

pub use self::budget::{AlertScore, BudgetImpact};

use crate::drill::Phase;
use crate::run::event::{Event, Outcome, PhaseMillis};
use crate::run::journal::Record;

/// The version of the scorecard's JSON; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Whether a phase met its dev target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Reached within the target.
    Met,
    /// Reached, but after the target.
    Missed,
    /// Never reached in this run.
    NotReached,
}

/// One phase's line on the scorecard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseScore {
    /// Which phase.
    pub phase: Phase,
    /// Dev target (production × ratio), ms from t0.
    pub target_ms: u64,
    /// Production target, ms from t0.
    pub production_target_ms: u64,
    /// When the phase ended, ms from t0.
    pub actual_ms: Option<u64>,
    /// Against the dev target.
    pub verdict: Verdict,
}

/// Who or what detected the fault, and when (ms from t0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Detection {
    /// First acknowledgement.
    pub human_ms: Option<u64>,
    /// Who acknowledged first.
    pub human_by: Option<String>,
    /// First alert.
    pub machine_ms: Option<u64>,
    /// Which alert.
    pub machine_alert: Option<String>,
}

/// A diagnosis that did not match the answer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrongDiagnosis {
    /// When, ms from t0.
    pub at_ms: u64,
    /// Who.
    pub by: String,
    /// What they said.
    pub text: String,
}

/// A hint that was revealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HintUsed {
    /// When, ms from t0.
    pub at_ms: u64,
    /// Which hint.
    pub index: usize,
    /// Who asked; `None` = on schedule.
    pub by: Option<String>,
}

/// A run's scorecard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run.
    pub run_id: String,
    /// The drill's name.
    pub drill: String,
    /// The drill's title.
    pub title: String,
    /// The team.
    pub team: String,
    /// Who started the run.
    pub responder: Option<String>,
    /// A blind run: the responder knew neither what nor when (absent: announced).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blind: bool,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_wall_ms: u64,
    /// Run-clock ms at which the first fault went in.
    pub t0_ms: u64,
    /// How the run ended (`None` when the journal has no end yet).
    pub outcome: Option<Outcome>,
    /// Why, when it did not end by itself.
    pub outcome_reason: Option<String>,
    /// The four phases.
    pub phases: Vec<PhaseScore>,
    /// Human and machine detection.
    pub detection: Detection,
    /// Who named the cause correctly.
    pub diagnosed_by: Option<String>,
    /// Wrong diagnoses, in order.
    pub wrong_diagnoses: Vec<WrongDiagnosis>,
    /// Hints revealed, in order.
    pub hints: Vec<HintUsed>,
    /// Faults applied.
    pub faults_applied: usize,
    /// Faults applied and never seen removed (must be 0 for a finished run).
    pub faults_left: usize,
    /// The toxic types the run applied (`latency`, `reset_peer`, …), sorted, for coverage.
    #[serde(default)]
    pub fault_kinds: Vec<String>,
    /// Every target a kill fault acted on, and when it was seen healthy again.
    #[serde(default)]
    pub kills: Vec<KillScore>,
    /// What the run burned of its SLO's budget, and the production equivalent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetImpact>,
    /// The alerts the drill expected, and whether each fired in time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertScore>,
}

/// One target a kill fault acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillScore {
    /// Index of the fault in the drill.
    pub fault: usize,
    /// `process`, `docker` or `kubernetes`.
    pub backend: String,
    /// Replica id, container id or pod name.
    pub target: String,
    /// What was done (`kill`, `stop`, `restart`, `pause`, `delete`).
    pub action: String,
    /// When, from t0.
    pub at_ms: u64,
    /// How long until it was seen healthy again (`None`: not within the run).
    pub recovered_after_ms: Option<u64>,
}

impl Scorecard {
    /// Fills in the budget impact and the expected alerts, from the run's start event.
    fn score_budget(&mut self, records: &[Record], t0: u64, mitigated: Option<u64>) {
        let Some(Event::RunStarted { slo, expected_alerts, .. }) = records.first().map(|r| &r.event) else { return };
        if let Some(slo) = slo {
            let end = mitigated.map_or_else(|| records.last().map_or(t0, |r| r.t_ms), |m| t0 + m);
            let mitigate = &self.phases[Phase::Mitigate as usize];
            let targets = (mitigate.target_ms, mitigate.production_target_ms);
            self.budget = budget::impact(records, slo, t0, end, targets);
        }
        self.alerts = budget::alerts(records, expected_alerts, t0);
    }

    /// Adds a kill, or the recovery of the last unrecovered kill of that target, at `at` from t0.
    fn record_kill(&mut self, event: &Event, at: u64) {
        match event {
            Event::TargetKilled { fault, backend, target, action, .. } => self.kills.push(KillScore {
                fault: *fault,
                backend: backend.clone(),
                target: target.clone(),
                action: action.clone(),
                at_ms: at,
                recovered_after_ms: None,
            }),
            Event::TargetRecovered { fault, target, .. } => {
                if let Some(kill) = self
                    .kills
                    .iter_mut()
                    .rev()
                    .find(|k| k.fault == *fault && k.target == *target && k.recovered_after_ms.is_none())
                {
                    kill.recovered_after_ms = Some(at.saturating_sub(kill.at_ms));
                }
            }
            _ => {}
        }
    }
}

/// Each phase's time against its dev target (production × `ratio`).
fn phase_scores(production: [u64; 4], ratio: f64, actual: [Option<u64>; 4]) -> Vec<PhaseScore> {
    Phase::ALL
        .iter()
        .map(|&phase| {
            let production_target_ms = production[phase as usize];
            let target_ms = (production_target_ms as f64 * ratio).round() as u64;
            let actual_ms = actual[phase as usize];
            let verdict = match actual_ms {
                None => Verdict::NotReached,
                Some(t) if t <= target_ms => Verdict::Met,
                Some(_) => Verdict::Missed,
            };
            PhaseScore { phase, target_ms, production_target_ms, actual_ms, verdict }
        })
        .collect()
}

/// Why a journal has no scorecard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    /// The journal does not begin with `run_started`.
    #[error("the journal does not start with a run_started event")]
    NotStarted,
}

impl Scorecard {
    /// Computes the scorecard of a journal. Pure: the same records give the same scorecard.
    pub fn from_journal(records: &[Record]) -> Result<Self, ScoreError> {
        let Some((first, rest)) = records.split_first() else { return Err(ScoreError::NotStarted) };
        let Event::RunStarted { run_id, drill, title, team, responder, production_ms, ratio, blind, .. } = &first.event
        else {
            return Err(ScoreError::NotStarted);
        };
        let t0 = rest.iter().find(|r| matches!(r.event, Event::FaultApplied { .. })).map_or(first.t_ms, |r| r.t_ms);
        let since = |t: u64| t.saturating_sub(t0);
        let mut card = Self {
            schema_version: SCHEMA_VERSION,
            run_id: run_id.clone(),
            drill: drill.clone(),
            title: title.clone(),
            team: team.clone(),
            responder: responder.clone(),
            blind: *blind,
            started_wall_ms: first.wall_ms,
            t0_ms: t0,
            outcome: None,
            outcome_reason: None,
            phases: Vec::new(),
            detection: Detection::default(),
            diagnosed_by: None,
            wrong_diagnoses: Vec::new(),
            hints: Vec::new(),
            faults_applied: 0,
            faults_left: 0,
            fault_kinds: Vec::new(),
            kills: Vec::new(),
            budget: None,
            alerts: Vec::new(),
        };
        let mut applied = std::collections::BTreeSet::new();
        let (mut diagnosed, mut mitigated, mut resolved, mut declared) = (None, None, None, None);
        for record in rest {
            match &record.event {
                Event::FaultApplied { fault, kind, .. } => {
                    card.faults_applied += 1;
                    applied.insert(*fault);
                    if !card.fault_kinds.contains(kind) {
                        card.fault_kinds.push(kind.clone());
                        card.fault_kinds.sort();
                    }
                }
                Event::FaultRemoved { fault, .. } => {
                    applied.remove(fault);
                }
                Event::TargetKilled { .. } | Event::TargetRecovered { .. } => {
                    card.record_kill(&record.event, since(record.t_ms));
                }
                Event::FaultFailed { fault, .. } => {
                    card.faults_applied = card.faults_applied.saturating_sub(1);
                    applied.remove(fault);
                }
                Event::Ack { by } if card.detection.human_ms.is_none() => {
                    card.detection.human_ms = Some(since(record.t_ms));
                    card.detection.human_by = Some(by.clone());
                }
                // An alert before the first fault is noise, not detection.
                Event::Alert { name, .. } if card.detection.machine_ms.is_none() && record.t_ms >= t0 => {
                    card.detection.machine_ms = Some(since(record.t_ms));
                    card.detection.machine_alert = Some(name.clone());
                }
                Event::Diagnosis { by, text, correct } => {
                    if *correct {
                        if diagnosed.is_none() {
                            diagnosed = Some(since(record.t_ms));
                            card.diagnosed_by = Some(by.clone());
                        }
                    } else {
                        card.wrong_diagnoses.push(WrongDiagnosis {
                            at_ms: since(record.t_ms),
                            by: by.clone(),
                            text: text.clone(),
                        });
                    }
                }
                Event::Hint { index, by, .. } => {
                    card.hints.push(HintUsed { at_ms: since(record.t_ms), index: *index, by: by.clone() });
                }
                Event::Mitigated { since_ms } if mitigated.is_none() => mitigated = Some(since(*since_ms)),
                Event::ResolveDeclared { .. } => declared = Some(since(record.t_ms)),
                Event::Ended { outcome, reason } => {
                    card.outcome = Some(*outcome);
                    card.outcome_reason.clone_from(reason);
                    if *outcome == Outcome::Resolved {
                        // The declaration is the timestamp: verifying the steady state afterwards
                        // is not charged to the team.
                        resolved = declared.or(Some(since(record.t_ms)));
                    }
                }
                _ => {}
            }
        }
        card.faults_left = applied.len();
        let detected = match (card.detection.human_ms, card.detection.machine_ms) {
            (Some(h), Some(m)) => Some(h.min(m)),
            (h, m) => h.or(m),
        };
        // Without a steady-state check, mitigation is only known when the incident is resolved.
        let mitigated = mitigated.or(resolved);
        card.phases = phase_scores(production_ms.as_array(), *ratio, [detected, diagnosed, mitigated, resolved]);
        card.score_budget(records, t0, mitigated);
        Ok(card)
    }

    /// Dev targets per phase, as journaled.
    pub fn targets(&self) -> PhaseMillis {
        PhaseMillis::from_array([0, 1, 2, 3].map(|i| self.phases.get(i).map_or(0, |p| p.target_ms)))
    }
}
