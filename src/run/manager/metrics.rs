//! The daemon's runs on `/metrics`: what is in progress and each drill's synthetic traffic, so
//! dashboards can mark a drill and Prometheus can evaluate the rules of `firedrill slo rules`.
//! Bounded: per run in progress (none once it ends) one `firedrill_run_active`, one
//! `firedrill_fault_active` per fault in force, five `firedrill_slo_burn_rate` (one per window), one `firedrill_alert_firing` per built-in
//! burn-rate alert firing (three rules at most) and one `firedrill_budget_spent_ratio`; two
//! `firedrill_sli_events_total` series per drill that has run with synthetic traffic. Blind runs
//! do not appear while they are sealed: their drill would give them away.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::PoisonError;

use super::Manager;
use crate::journal::Record;
use crate::journal::event::Event;

/// The synthetic-traffic SLI of `drill` (sent at `rps`) as Prometheus queries over a `{window}`
/// range, for rule files: (bad events, all events), from the series [`Manager::metrics`]
/// renders. The seconds of the window without traffic (before the run, or a dev Prometheus's
/// short history) count as good requests at `rps`, as the daemon's own rules count them, so an
/// alert fires when `firedrill slo budget` says it would after a steady state.
pub fn traffic_sli_promql(drill: &str, rps: f64) -> (String, String) {
    let series = |outcome: &str| format!("firedrill_sli_events_total{{drill=\"{drill}\"{outcome}}}");
    (
        format!("(sum(increase({}[{{window}}])) or vector(0))", series(",outcome=\"bad\"")),
        format!("clamp_min(sum(increase({}[{{window}}])), {rps} * {{window_seconds}})", series("")),
    )
}

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The faults of a run in force at the end of `records`, by index: (kind, target).
fn faults_in_force(records: &[Record]) -> BTreeMap<usize, (String, String)> {
    let mut faults = BTreeMap::new();
    for record in records {
        match &record.event {
            Event::FaultApplied { fault, proxy, kind, .. } => {
                let target = if proxy.is_empty() && kind == "spike" { "traffic".to_owned() } else { proxy.clone() };
                faults.insert(*fault, (kind.clone(), target));
            }
            Event::TargetKilled { fault, backend, .. } => {
                if let Some((_, target)) = faults.get_mut(fault) {
                    backend.as_str().clone_into(target);
                }
            }
            Event::FaultRemoved { fault, .. } | Event::FaultFailed { fault, .. } => {
                faults.remove(fault);
            }
            _ => {}
        }
    }
    faults
}

/// What `/metrics` shows of one run in progress.
struct Active {
    run: String,
    drill: String,
    team: String,
    records: Vec<Record>,
    burn: Vec<(std::time::Duration, f64)>,
}

impl Active {
    /// `run="…",drill="…"`, escaped.
    fn labels(&self) -> String {
        format!("run=\"{}\",drill=\"{}\"", label(&self.run), label(&self.drill))
    }
}

/// Writes a family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The per-run families of `active`.
fn render_runs(out: &mut String, active: &[Active]) {
    family(out, "firedrill_run_active", "gauge", "A drill run in progress (1 while it lasts; gone when it ends).");
    for a in active {
        let _ = writeln!(out, "firedrill_run_active{{{},team=\"{}\"}} 1", a.labels(), label(&a.team));
    }
    family(
        out,
        "firedrill_fault_active",
        "gauge",
        "A fault of a run in force now, by its index in the drill, kind and target (a proxy; the backend of a \
         kill; `traffic` for a spike).",
    );
    for a in active {
        for (fault, (kind, target)) in faults_in_force(&a.records) {
            let (kind, target) = (label(&kind), label(&target));
            let _ = writeln!(
                out,
                "firedrill_fault_active{{{},fault=\"{fault}\",kind=\"{kind}\",target=\"{target}\"}} 1",
                a.labels()
            );
        }
    }
    family(out, "firedrill_alert_firing", "gauge", "A built-in burn-rate alert of a run firing now.");
    for a in active {
        for alert in crate::journal::builtin_firing(&a.records).into_keys() {
            let severity = if alert.starts_with("page") { "page" } else { "ticket" };
            let _ = writeln!(
                out,
                "firedrill_alert_firing{{{},alert=\"{}\",severity=\"{severity}\"}} 1",
                a.labels(),
                label(&alert)
            );
        }
    }
    family(
        out,
        "firedrill_slo_burn_rate",
        "gauge",
        "A run's live SLI: the burn rate over each window of the built-in rules (the seconds before the run \
         counted as good traffic).",
    );
    for a in active {
        for (window, burn) in &a.burn {
            let window = crate::slo::prometheus::prom_duration(*window);
            let _ = writeln!(out, "firedrill_slo_burn_rate{{{},window=\"{window}\"}} {burn}", a.labels());
        }
    }
    family(
        out,
        "firedrill_budget_spent_ratio",
        "gauge",
        "The production error budget a run's response would have spent so far (its production equivalent, as \
         on the scorecard).",
    );
    for a in active {
        let spent = crate::scorecard::Scorecard::from_journal(&a.records).ok().and_then(|c| c.budget);
        if let Some(budget) = spent {
            let _ = writeln!(out, "firedrill_budget_spent_ratio{{{}}} {}", a.labels(), budget.production_share);
        }
    }
}

impl Manager {
    /// The runs' series in Prometheus text format.
    pub fn metrics(&self) -> String {
        let active: Vec<Active> = self
            .runs()
            .iter()
            .filter(|(_, e)| !e.blind && e.finished.borrow().is_none())
            .map(|(id, e)| Active {
                run: id.clone(),
                drill: e.drill.clone(),
                team: e.team.clone(),
                records: e.log.records(),
                burn: e.log.burn_rates(),
            })
            .collect();
        let mut out = String::new();
        render_runs(&mut out, &active);
        family(
            &mut out,
            "firedrill_sli_events_total",
            "counter",
            "Requests of drills' synthetic traffic (their SLI), by outcome, since the daemon started.",
        );
        let totals = self.sli_totals.lock().unwrap_or_else(PoisonError::into_inner);
        for (drill, counts) in totals.iter() {
            let (valid, bad) = counts.get();
            let drill = label(drill);
            let _ = writeln!(out, "firedrill_sli_events_total{{drill=\"{drill}\",outcome=\"good\"}} {}", valid - bad);
            let _ = writeln!(out, "firedrill_sli_events_total{{drill=\"{drill}\",outcome=\"bad\"}} {bad}");
        }
        out
    }
}
