//! The daemon's runs on `/metrics`: what is in progress and each drill's synthetic traffic, so
//! dashboards can mark a drill and Prometheus can evaluate the rules of `firedrill slo rules`.
//! Bounded: per run in progress (none once it ends) one `firedrill_run_active`, one
//! `firedrill_fault_active` per fault in force, one `firedrill_alert_firing` per built-in
//! burn-rate alert firing (three rules at most) and one `firedrill_budget_spent_ratio`; two
//! `firedrill_sli_events_total` series per drill that has run with synthetic traffic. Blind runs
//! do not appear while they are sealed: their drill would give them away.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::PoisonError;

use super::Manager;
use crate::journal::Record;
use crate::journal::event::{AlertSource, Event};

/// The synthetic-traffic SLI of `drill` as Prometheus queries over a `{window}` range, for rule
/// files: (bad events, all events), from the series [`Manager::metrics`] renders.
pub fn traffic_sli_promql(drill: &str) -> (String, String) {
    let series = |outcome: &str| format!("firedrill_sli_events_total{{drill=\"{drill}\"{outcome}}}");
    (
        format!("(sum(increase({}[{{window}}])) or vector(0))", series(",outcome=\"bad\"")),
        format!("sum(increase({}[{{window}}]))", series("")),
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

/// The built-in burn-rate alerts firing at the end of `records`.
fn firing(records: &[Record]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for record in records {
        match &record.event {
            Event::Alert { source: AlertSource::BurnRate, name, .. } if !names.contains(name) => {
                names.push(name.clone());
            }
            Event::AlertCleared { source: AlertSource::BurnRate, name } => names.retain(|n| n != name),
            _ => {}
        }
    }
    names
}

impl Manager {
    /// The runs' series in Prometheus text format.
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP firedrill_run_active A drill run in progress (1 while it lasts; gone when it ends).\n\
             # TYPE firedrill_run_active gauge"
        );
        for (id, entry) in self.runs().iter() {
            if entry.blind || entry.finished.borrow().is_some() {
                continue;
            }
            let _ = writeln!(
                out,
                "firedrill_run_active{{run=\"{}\",drill=\"{}\",team=\"{}\"}} 1",
                label(id),
                label(&entry.drill),
                label(&entry.team)
            );
        }
        let active: Vec<(String, String, Vec<Record>)> = self
            .runs()
            .iter()
            .filter(|(_, e)| !e.blind && e.finished.borrow().is_none())
            .map(|(id, e)| (id.clone(), e.drill.clone(), e.log.records()))
            .collect();
        let _ = writeln!(
            out,
            "# HELP firedrill_fault_active A fault of a run in force now, by its index in the drill, kind and \
             target (a proxy; the backend of a kill; `traffic` for a spike).\n# TYPE firedrill_fault_active gauge"
        );
        for (run, drill, records) in &active {
            for (fault, (kind, target)) in faults_in_force(records) {
                let _ = writeln!(
                    out,
                    "firedrill_fault_active{{run=\"{}\",drill=\"{}\",fault=\"{fault}\",kind=\"{}\",target=\"{}\"}} 1",
                    label(run),
                    label(drill),
                    label(&kind),
                    label(&target)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP firedrill_alert_firing A built-in burn-rate alert of a run firing now.\n\
             # TYPE firedrill_alert_firing gauge"
        );
        for (run, drill, records) in &active {
            for alert in firing(records) {
                let severity = if alert.starts_with("page") { "page" } else { "ticket" };
                let _ = writeln!(
                    out,
                    "firedrill_alert_firing{{run=\"{}\",drill=\"{}\",alert=\"{}\",severity=\"{severity}\"}} 1",
                    label(run),
                    label(drill),
                    label(&alert)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP firedrill_budget_spent_ratio The production error budget a run's response would have \
             spent so far (its production equivalent, as on the scorecard).\n# TYPE firedrill_budget_spent_ratio gauge"
        );
        for (run, drill, records) in &active {
            let spent = crate::scorecard::Scorecard::from_journal(records).ok().and_then(|c| c.budget);
            if let Some(budget) = spent {
                let _ = writeln!(
                    out,
                    "firedrill_budget_spent_ratio{{run=\"{}\",drill=\"{}\"}} {}",
                    label(run),
                    label(drill),
                    budget.production_share
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP firedrill_sli_events_total Requests of drills' synthetic traffic (their SLI), by outcome, \
             since the daemon started.\n# TYPE firedrill_sli_events_total counter"
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
