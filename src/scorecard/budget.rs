//! The error-budget side of a scorecard: what the run burned, what the same response would
//! have burned in production, and which expected alerts fired in time.

use serde::{Deserialize, Serialize};

use crate::journal::Record;
use crate::journal::event::{AlertExpectation, Event, SloInfo};
use crate::slo::Objective;

/// What a run burned and its production equivalent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetImpact {
    /// The objective, percent.
    pub objective_percent: f64,
    /// The budget period, seconds.
    pub period_s: f64,
    /// Production requests per second.
    pub production_rps: f64,
    /// How long the impact lasted: t0 to mitigation, or to the end of the run.
    pub impact_ms: u64,
    /// Valid events during the impact (between the SLI samples at t0 and at its end).
    pub valid: u64,
    /// Bad events during the impact.
    pub bad: u64,
    /// bad / valid.
    pub bad_fraction: f64,
    /// The burn rate of that fraction.
    pub burn_rate: f64,
    /// The same fraction at production traffic for `impact_ms`, as a share of the budget.
    pub production_share: f64,
    /// The same had the team mitigated at the dev target.
    pub at_dev_target_share: f64,
    /// The same had the team mitigated at the production target.
    pub at_production_target_share: f64,
}

/// An alert the drill expected, and whether it fired in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertScore {
    /// Rule or alert name.
    pub name: String,
    /// The deadline, from t0.
    pub within_ms: u64,
    /// When it first fired, from t0 (`None`: never).
    pub fired_after_ms: Option<u64>,
    /// Fired within the deadline.
    pub met: bool,
    /// Judged: it fired, or the run lasted past the deadline. An alert that had not fired when
    /// a run ended before its deadline (a quick mitigation) is neither met nor missed.
    /// Scorecards written before this field existed read as judged.
    #[serde(default = "judged")]
    pub due: bool,
    /// It was already firing when the fault went in (received before t0, or its `startsAt` is
    /// before t0): it proves nothing about this fault and is never met.
    #[serde(default)]
    pub already_firing: bool,
}

const fn judged() -> bool {
    true
}

/// The cumulative SLI sample read at or before `t_ms` (or the first one after, if none is
/// before). Samples are read at t0, at the mitigation, at a resolve and at the end, so the
/// impact's bounds are exact counts, never interpolated.
fn sample_at(samples: &[(u64, u64, u64)], t_ms: u64) -> Option<(u64, u64)> {
    samples
        .iter()
        .filter(|(t, _, _)| *t <= t_ms)
        .max_by_key(|(t, _, _)| *t)
        .or_else(|| samples.iter().min_by_key(|(t, _, _)| *t))
        .map(|(_, valid, bad)| (*valid, *bad))
}

/// The budget impact of a journal, if its drill had an SLO: t0 and the end of impact are run
/// milliseconds; `targets` are the dev and production mitigation targets (ms).
pub fn impact(
    records: &[Record],
    slo: &SloInfo,
    t0: u64,
    impact_end: u64,
    targets: (u64, u64),
) -> Option<BudgetImpact> {
    let samples: Vec<(u64, u64, u64)> = records
        .iter()
        .filter_map(|r| match r.event {
            Event::Sli { valid, bad, at_ms } => Some((at_ms.unwrap_or(r.t_ms), valid, bad)),
            _ => None,
        })
        .collect();
    let objective = Objective::new(slo.objective_percent, std::time::Duration::from_secs_f64(slo.period_s))?;
    let (v0, b0) = sample_at(&samples, t0)?;
    let (v1, b1) = sample_at(&samples, impact_end)?;
    let (valid, bad) = (v1.saturating_sub(v0), b1.saturating_sub(b0));
    #[allow(clippy::cast_precision_loss)]
    let bad_fraction = if valid == 0 { 0.0 } else { bad as f64 / valid as f64 };
    let rps = slo.production_rps;
    #[allow(clippy::cast_precision_loss)]
    let share = |ms: u64| objective.spent(bad_fraction * rps * ms as f64 / 1000.0, rps);
    let impact_ms = impact_end.saturating_sub(t0);
    Some(BudgetImpact {
        objective_percent: slo.objective_percent,
        period_s: slo.period_s,
        production_rps: rps,
        impact_ms,
        valid,
        bad,
        bad_fraction,
        burn_rate: objective.burn_rate(bad_fraction),
        production_share: share(impact_ms),
        at_dev_target_share: share(targets.0),
        at_production_target_share: share(targets.1),
    })
}

/// Each expected alert against the alert events of the journal (times from t0, whose wall
/// clock is `t0_wall`): only an alert received after t0 whose `startsAt` is not before t0 counts.
pub fn alerts(records: &[Record], expected: &[AlertExpectation], t0: u64, t0_wall: u64) -> Vec<AlertScore> {
    let lasted_ms = records.last().map_or(0, |r| r.t_ms.saturating_sub(t0));
    let t0_at = super::t0_position(records).unwrap_or(records.len());
    expected
        .iter()
        .map(|e| {
            let mut already_firing = false;
            let fired_after_ms = records.iter().enumerate().find_map(|(position, r)| match &r.event {
                Event::Alert { name, starts_at, .. } if *name == e.name => {
                    if position > t0_at && super::alert_started_after(starts_at.as_deref(), t0_wall) {
                        Some(r.t_ms.saturating_sub(t0))
                    } else {
                        already_firing = true;
                        None
                    }
                }
                _ => None,
            });
            AlertScore {
                name: e.name.clone(),
                within_ms: e.within_ms,
                fired_after_ms,
                met: fired_after_ms.is_some_and(|t| t <= e.within_ms),
                due: fired_after_ms.is_some() || lasted_ms >= e.within_ms,
                already_firing,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::event::AlertSource;

    fn record(seq: u64, t_ms: u64, event: Event) -> Record {
        Record { seq, t_ms, wall_ms: 0, event }
    }

    fn fired(seq: u64, t_ms: u64, name: &str) -> Record {
        let event = Event::Alert {
            source: AlertSource::BurnRate,
            name: name.into(),
            detail: None,
            starts_at: None,
            fingerprint: None,
        };
        record(seq, t_ms, event)
    }

    #[test]
    fn an_alert_is_judged_once_it_fired_or_its_deadline_passed_during_the_run() {
        let expected = |name: &str| AlertExpectation { name: name.into(), within_ms: 60_000 };
        let expect = [expected("in-time"), expected("late"), expected("silent")];
        let t0 = 1_000;
        let ack = |seq, t_ms| record(seq, t_ms, Event::Ack { by: "ana".into() });
        // The run ends 30 s after t0, before the deadlines: only what fired is judged.
        let fault = || {
            let event = Event::FaultApplied { fault: 0, proxy: "p".into(), toxic: "t".into(), kind: "latency".into() };
            record(0, t0, event)
        };
        let short = [fault(), fired(1, t0 + 20_000, "in-time"), ack(2, t0 + 30_000)];
        let scores = alerts(&short, &expect, t0, 0);
        let judged: Vec<(bool, bool)> = scores.iter().map(|a| (a.met, a.due)).collect();
        assert_eq!(judged, [(true, true), (false, false), (false, false)]);
        // The run lasts 90 s: the late one fired after its deadline, the silent one never did.
        let long = [fault(), fired(1, t0 + 20_000, "in-time"), fired(2, t0 + 75_000, "late"), ack(3, t0 + 90_000)];
        let scores = alerts(&long, &expect, t0, 0);
        let judged: Vec<(Option<u64>, bool, bool)> = scores.iter().map(|a| (a.fired_after_ms, a.met, a.due)).collect();
        assert_eq!(judged, [(Some(20_000), true, true), (Some(75_000), false, true), (None, false, true)]);
    }

    #[test]
    fn an_alert_that_started_before_t0_is_already_firing_and_never_met() {
        let expect = [AlertExpectation { name: "page-1h".into(), within_ms: 60_000 }];
        let t0_wall = 1_800_000_000_000; // 2027-01-15T08:00:00Z
        let fault = Event::FaultApplied { fault: 0, proxy: "p".into(), toxic: "t".into(), kind: "latency".into() };
        let alert = |starts_at: &str| Event::Alert {
            source: AlertSource::Alertmanager,
            name: "page-1h".into(),
            detail: None,
            starts_at: Some(starts_at.into()),
            fingerprint: Some("f".into()),
        };
        // Received after t0, but it started an hour before: it proves nothing.
        let stale = [record(0, 1_000, fault.clone()), record(1, 5_000, alert("2027-01-15T07:00:00Z"))];
        let score = &alerts(&stale, &expect, 1_000, t0_wall)[0];
        assert!(score.already_firing && !score.met && score.fired_after_ms.is_none());
        // Within the clock-skew allowance (and with an offset): it counts.
        let fresh = [record(0, 1_000, fault), record(1, 5_000, alert("2027-01-15T08:59:57+01:00"))];
        let score = &alerts(&fresh, &expect, 1_000, t0_wall)[0];
        assert!(!score.already_firing && score.met && score.fired_after_ms == Some(4_000));
    }

    #[test]
    fn scorecards_from_before_the_due_field_read_as_judged() {
        let old = r#"{"name":"page-1h","within_ms":60000,"fired_after_ms":null,"met":false}"#;
        let score: AlertScore = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}"));
        assert!(score.due && !score.met);
    }
}
