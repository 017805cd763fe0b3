//! The scorecard: a run's result, computed from its journal alone (so runs replay exactly).
//!
//! Phases are timed from t0, the first fault applied (the run's start when a drill has no fault).
//! Detection keeps its two sources apart: a responder's acknowledgement and an alert.

pub mod budget;
pub mod glance;
pub mod html;
pub mod practice;
pub mod readiness;
pub mod report;
pub mod store;

use serde::{Deserialize, Serialize};

pub use self::budget::{AlertScore, BudgetImpact};

use crate::drill::Phase;
use crate::journal::Record;
use crate::journal::event::{Backend, Event, KillAction, Outcome, PhaseMillis};

/// The version of the scorecard's JSON; bumped on incompatible changes.
/// Version 2 added `void`, `false_alarms`, `faults_failed`, `mitigation`,
/// `resolved_without_diagnosis` and the alerts' `already_firing`; version 1 cards still load.
pub const SCHEMA_VERSION: u32 = 2;

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

/// An acknowledgement before the fault went in: a false alarm, never a detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FalseAlarm {
    /// When, run-clock ms (from the run's start: there is no t0 yet).
    pub at_ms: u64,
    /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
    pub by: String,
}

/// How a run's impact was mitigated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mitigation {
    /// The steady state held while the fault was still doing damage.
    FaultIn,
    /// Only when the resolution took the fault out.
    Resolution,
}

/// A diagnosis that did not match the answer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrongDiagnosis {
    /// When, ms from t0.
    pub at_ms: u64,
    /// Who acted: the name a responder gave (`--as`, or their login), as the scorecard credits it.
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
    /// Run-clock ms at which the first fault went in (the run's start in a void run).
    pub t0_ms: u64,
    /// No fault went in: nothing was practised, nothing is scored, readiness never counts it.
    #[serde(default)]
    pub void: bool,
    /// How the run ended (`None` when the journal has no end yet).
    pub outcome: Option<Outcome>,
    /// Why, when it did not end by itself.
    pub outcome_reason: Option<String>,
    /// The four phases.
    pub phases: Vec<PhaseScore>,
    /// Human and machine detection.
    pub detection: Detection,
    /// Acknowledgements before the fault went in (or while a blind drill was armed).
    #[serde(default)]
    pub false_alarms: Vec<FalseAlarm>,
    /// Who named the cause correctly.
    pub diagnosed_by: Option<String>,
    /// Who declared the mitigation the steady state confirmed (absent: none, or confirmed
    /// without a declaration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigated_by: Option<String>,
    /// Who declared the run resolved, when it counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// Wrong diagnoses, in order.
    pub wrong_diagnoses: Vec<WrongDiagnosis>,
    /// Hints revealed, in order.
    pub hints: Vec<HintUsed>,
    /// Faults applied.
    pub faults_applied: usize,
    /// Faults that could not be applied.
    #[serde(default)]
    pub faults_failed: usize,
    /// Faults applied and never seen removed (must be 0 for a finished run).
    pub faults_left: usize,
    /// The toxic types the run applied (`latency`, `reset_peer`, …), sorted, for coverage.
    #[serde(default)]
    pub fault_kinds: Vec<String>,
    /// Every target a kill fault acted on, and when it was seen healthy again.
    #[serde(default)]
    pub kills: Vec<KillScore>,
    /// How the impact ended: with the fault still in (evidence from the steady state), or by
    /// the resolution taking the fault out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<Mitigation>,
    /// Resolved without a diagnosis that matched the answer key.
    #[serde(default)]
    pub resolved_without_diagnosis: bool,
    /// What the run burned of its SLO's budget, and the production equivalent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetImpact>,
    /// The alerts the drill expected, and whether each fired in time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertScore>,
    /// Alerts meant for the run that the drill did not expect (noise), in the order received.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noise: Vec<NoiseAlert>,
}

/// An alert meant for the run that its drill did not expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseAlert {
    /// The alert's name.
    pub name: String,
    /// When it was received, from t0 (`None`: before the fault went in).
    pub after_ms: Option<u64>,
}

/// One target a kill fault acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillScore {
    /// Index of the fault in the drill.
    pub fault: usize,
    /// Where the target lives.
    pub backend: Backend,
    /// Replica id, container id or pod name.
    pub target: String,
    /// What was done.
    pub action: KillAction,
    /// When, from t0.
    pub at_ms: u64,
    /// How long until it was seen healthy again (`None`: not within the run).
    pub recovered_after_ms: Option<u64>,
}

impl Scorecard {
    /// Fills in the budget impact and the expected alerts, from the run's start event.
    fn score_budget(&mut self, records: &[Record], t0: u64, t0_wall: u64, mitigated: Option<u64>) {
        // The impact ends at mitigation (ms from t0), or with the run.
        let Some(Event::RunStarted { slo, expected_alerts, .. }) = records.first().map(|r| &r.event) else { return };
        if let Some(slo) = slo {
            let end = mitigated.map_or_else(|| records.last().map_or(t0, |r| r.t_ms), |m| t0 + m);
            let mitigate = &self.phases[Phase::Mitigate as usize];
            let targets = (mitigate.target_ms, mitigate.production_target_ms);
            self.budget = budget::impact(records, slo, t0, end, targets);
        }
        self.alerts = budget::alerts(records, expected_alerts, t0, t0_wall);
    }

    /// Adds a kill, or the recovery of the last unrecovered kill of that target, at `at` from t0.
    fn record_kill(&mut self, event: &Event, at: u64) {
        match event {
            Event::TargetKilled { fault, backend, target, action, .. } => self.kills.push(KillScore {
                fault: *fault,
                backend: *backend,
                target: target.clone(),
                action: *action,
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

/// How far before t0 an Alertmanager alert's `startsAt` may lie and still count as caused by the
/// fault: the clocks of Prometheus, Alertmanager and firedrill may disagree by this much.
pub const ALERT_CLOCK_SKEW_MS: u64 = 5_000;

/// Where t0 is in a journal: the first fault applied that did not fail. `None`: a void run.
fn t0_position(records: &[Record]) -> Option<usize> {
    let failed: std::collections::BTreeSet<usize> = records
        .iter()
        .filter_map(|r| match r.event {
            Event::FaultFailed { fault, .. } => Some(fault),
            _ => None,
        })
        .collect();
    records.iter().position(|r| matches!(r.event, Event::FaultApplied { fault, .. } if !failed.contains(&fault)))
}

/// Whether an alert received after t0 was caused by the fault: Alertmanager's `startsAt` (when
/// it has one) is no earlier than t0's wall clock less [`ALERT_CLOCK_SKEW_MS`]. An unreadable
/// `startsAt` proves nothing and does not count.
pub fn alert_started_after(starts_at: Option<&str>, t0_wall_ms: u64) -> bool {
    let Some(starts_at) = starts_at else { return true };
    let Ok(at) = starts_at.parse::<jiff::Timestamp>() else { return false };
    let at_ms = at.as_millisecond();
    at_ms >= i64::try_from(t0_wall_ms.saturating_sub(ALERT_CLOCK_SKEW_MS)).unwrap_or(i64::MAX)
}

impl Scorecard {
    /// Computes the scorecard of a journal. Pure: the same records give the same scorecard.
    ///
    /// The rules (the README's scoring section states them):
    /// - t0 is the first fault applied (one that failed does not count). Nothing before t0
    ///   counts: an acknowledgement then is a false alarm, a diagnosis is not scored, an alert is
    ///   noise. A run with no fault applied is void: no phase, and readiness never counts it.
    /// - Detection is the earlier of the first acknowledgement and the first alert after t0; an
    ///   Alertmanager alert whose `startsAt` is before t0 (less the clock skew) was already
    ///   firing and proves nothing.
    /// - Mitigation with the fault still in counts from the `mitigated` event (the runner writes
    ///   it only when the steady state held while a fault was doing damage), never before
    ///   detection; otherwise a resolution mitigates at the resolve declaration.
    /// - Resolve is the declaration of a run that ended resolved, or that a crash interrupted
    ///   while the resolution was being verified.
    pub fn from_journal(records: &[Record]) -> Result<Self, ScoreError> {
        let Some(first) = records.first() else { return Err(ScoreError::NotStarted) };
        let Event::RunStarted { production_ms, ratio, .. } = &first.event else {
            return Err(ScoreError::NotStarted);
        };
        let t0_at = t0_position(records);
        let t0_record = t0_at.map_or(first, |i| &records[i]);
        let (t0, t0_wall) = (t0_record.t_ms, t0_record.wall_ms);
        let since = |t: u64| t.saturating_sub(t0);
        let mut card = Self::blank(&first.event, first.wall_ms);
        card.t0_ms = t0;
        card.void = t0_at.is_none();
        let mut applied = std::collections::BTreeSet::new();
        // Kinds by fault index: a fault that failed to go in practised nothing.
        let mut kinds = std::collections::BTreeMap::new();
        let (mut diagnosed, mut mitigated, mut declared) = (None, None, None);
        let (mut mitigate_by, mut declared_by): (Option<String>, Option<String>) = (None, None);
        let mut resolved = None;
        for (position, record) in records.iter().enumerate().skip(1) {
            let counts = t0_at.is_some_and(|t0_at| position >= t0_at);
            match &record.event {
                Event::FaultApplied { fault, kind, .. } => {
                    card.faults_applied += 1;
                    applied.insert(*fault);
                    kinds.insert(*fault, kind.clone());
                }
                Event::FaultRemoved { fault, .. } => {
                    applied.remove(fault);
                }
                Event::TargetKilled { .. } | Event::TargetRecovered { .. } => {
                    card.record_kill(&record.event, since(record.t_ms));
                }
                Event::FaultFailed { fault, .. } => {
                    card.faults_applied = card.faults_applied.saturating_sub(1);
                    card.faults_failed += 1;
                    applied.remove(fault);
                    kinds.remove(fault);
                }
                Event::Ack { by } if !counts => {
                    card.false_alarms.push(FalseAlarm { at_ms: record.t_ms, by: by.clone() });
                }
                Event::Ack { by } if card.detection.human_ms.is_none() => {
                    card.detection.human_ms = Some(since(record.t_ms));
                    card.detection.human_by = Some(by.clone());
                }
                Event::AlertNoise { name, .. } => {
                    card.noise.push(NoiseAlert { name: name.clone(), after_ms: counts.then(|| since(record.t_ms)) });
                }
                Event::Alert { name, starts_at, .. }
                    if counts
                        && card.detection.machine_ms.is_none()
                        && alert_started_after(starts_at.as_deref(), t0_wall) =>
                {
                    card.detection.machine_ms = Some(since(record.t_ms));
                    card.detection.machine_alert = Some(name.clone());
                }
                Event::Diagnosis { by, text, correct } if counts => {
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
                Event::MitigateDeclared { by } if counts => mitigate_by = Some(by.clone()),
                Event::Mitigated { since_ms } if counts && mitigated.is_none() => {
                    mitigated = Some(since(*since_ms));
                    card.mitigated_by = mitigate_by.take();
                }
                Event::ResolveDeclared { by, .. } if counts => {
                    declared = Some(since(record.t_ms));
                    declared_by = Some(by.clone());
                }
                Event::Ended { outcome, reason } => {
                    card.outcome = Some(*outcome);
                    card.outcome_reason.clone_from(reason);
                    // The declaration is the timestamp: verifying the steady state afterwards is
                    // not charged to the team. A crash during that verification keeps it.
                    if matches!(outcome, Outcome::Resolved | Outcome::Interrupted) {
                        resolved = declared;
                        card.resolved_by = declared.and(declared_by.clone());
                    }
                }
                _ => {}
            }
        }
        card.fault_kinds = kinds.into_values().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        card.faults_left = applied.len();
        let resolved = if card.void { None } else { resolved };
        card.phases = card.phase_times(production_ms, *ratio, diagnosed, mitigated, resolved);
        if !card.void {
            let mitigated = card.phases[Phase::Mitigate as usize].actual_ms;
            card.score_budget(records, t0, t0_wall, mitigated);
        }
        Ok(card)
    }

    /// A scorecard with the run's identity and nothing scored yet.
    fn blank(started: &Event, started_wall_ms: u64) -> Self {
        let (run_id, drill, title, team, responder, blind) = match started {
            Event::RunStarted { run_id, drill, title, team, responder, blind, .. } => {
                (run_id.clone(), drill.clone(), title.clone(), team.clone(), responder.clone(), *blind)
            }
            _ => Default::default(),
        };
        Self {
            schema_version: SCHEMA_VERSION,
            run_id,
            drill,
            title,
            team,
            responder,
            blind,
            started_wall_ms,
            t0_ms: 0,
            void: true,
            outcome: None,
            outcome_reason: None,
            phases: Vec::new(),
            detection: Detection::default(),
            false_alarms: Vec::new(),
            diagnosed_by: None,
            mitigated_by: None,
            resolved_by: None,
            wrong_diagnoses: Vec::new(),
            hints: Vec::new(),
            faults_applied: 0,
            faults_failed: 0,
            faults_left: 0,
            fault_kinds: Vec::new(),
            kills: Vec::new(),
            mitigation: None,
            resolved_without_diagnosis: false,
            budget: None,
            alerts: Vec::new(),
            noise: Vec::new(),
        }
    }

    /// The phases from what the journal showed, keeping their order: detection is the first
    /// acknowledgement or alert (or, without either, the resolve declaration); mitigation with the
    /// fault in never precedes detection, and a resolution mitigates at the latest.
    fn phase_times(
        &mut self,
        production: &PhaseMillis,
        ratio: f64,
        diagnosed: Option<u64>,
        mitigated: Option<u64>,
        resolved: Option<u64>,
    ) -> Vec<PhaseScore> {
        let alerted = self.detection.machine_ms;
        let detected = [self.detection.human_ms, alerted, resolved].into_iter().flatten().min();
        let mitigated = match (mitigated, detected) {
            (Some(m), Some(d)) => Some(m.max(d)),
            _ => None,
        };
        self.mitigation = match (mitigated, resolved) {
            (Some(m), Some(r)) if m > r => Some(Mitigation::Resolution),
            (Some(_), _) => Some(Mitigation::FaultIn),
            (None, Some(_)) => Some(Mitigation::Resolution),
            (None, None) => None,
        };
        let mitigated = match (mitigated, resolved) {
            (Some(m), Some(r)) => Some(m.min(r)),
            (m, r) => m.or(r),
        };
        self.resolved_without_diagnosis = resolved.is_some() && diagnosed.is_none();
        phase_scores(production.as_array(), ratio, [detected, diagnosed, mitigated, resolved])
    }

    /// Dev targets per phase, as journaled.
    pub fn targets(&self) -> PhaseMillis {
        PhaseMillis::from_array([0, 1, 2, 3].map(|i| self.phases.get(i).map_or(0, |p| p.target_ms)))
    }
}
