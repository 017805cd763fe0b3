//! The daemon's runs on `/metrics`: what is in progress and each drill's synthetic traffic, so
//! dashboards can mark a drill and Prometheus can evaluate the rules of `firedrill slo rules`.
//! Bounded: one `firedrill_run_active` series per run in progress (none once it ends) and two
//! `firedrill_sli_events_total` series per drill that has run with synthetic traffic. Blind runs
//! do not appear while they are sealed: their drill would give them away.

use std::fmt::Write as _;
use std::sync::PoisonError;

use super::Manager;

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
