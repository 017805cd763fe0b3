//! Scorecards over time: per team, drill and phase — runs, share within target, median, p90,
//! min and max against the target. Durations are skewed, so there is never a lone mean.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::store::Skipped;
use super::{Scorecard, Verdict};
use crate::drill::Phase;
use crate::journal::event::Outcome;

/// Which scorecards a report covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this team.
    pub team: Option<String>,
    /// Only this drill.
    pub drill: Option<String>,
    /// Only runs started at or after this wall-clock time (ms since the epoch).
    pub since_ms: Option<u64>,
}

impl Filter {
    /// Whether `card` is covered.
    pub fn keeps(&self, card: &Scorecard) -> bool {
        self.team.as_ref().is_none_or(|t| *t == card.team)
            && self.drill.as_ref().is_none_or(|d| *d == card.drill)
            && self.since_ms.is_none_or(|s| card.started_wall_ms >= s)
    }
}

/// One phase of one drill, over its runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseStats {
    /// The phase.
    pub phase: Phase,
    /// The dev target of the latest run, ms.
    pub target_ms: u64,
    /// Runs in which the phase was reached.
    pub reached: usize,
    /// Runs that met the target.
    pub within_target: usize,
    /// `within_target` / all runs.
    pub share_within_target: f64,
    /// Median of the reached times, ms (nearest rank).
    pub median_ms: Option<u64>,
    /// 90th percentile of the reached times, ms (nearest rank).
    pub p90_ms: Option<u64>,
    /// Fastest.
    pub min_ms: Option<u64>,
    /// Slowest.
    pub max_ms: Option<u64>,
}

impl PhaseStats {
    /// The row every report format prints: phase, target, share within target, median, p90,
    /// min, max.
    pub fn cells(&self) -> [String; 7] {
        [
            crate::wire_name(self.phase),
            clock(Some(self.target_ms)),
            format!("{:.0}%", self.share_within_target * 100.0),
            clock(self.median_ms),
            clock(self.p90_ms),
            clock(self.min_ms),
            clock(self.max_ms),
        ]
    }
}

/// One drill practised by one team.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillStats {
    /// The team.
    pub team: String,
    /// The drill.
    pub drill: String,
    /// Runs covered (void runs not among them).
    pub runs: usize,
    /// Void runs: no fault went in, nothing was practised or scored.
    pub void_runs: usize,
    /// Acknowledgements before the fault went in, over all runs.
    pub false_alarms: usize,
    /// Runs mitigated with the fault still in (the rest that mitigated did so by resolving).
    pub mitigated_with_fault_in: usize,
    /// Runs resolved without a diagnosis that matched the answer key.
    pub resolved_without_diagnosis: usize,
    /// Runs per outcome.
    pub outcomes: BTreeMap<String, usize>,
    /// Per phase, in order.
    pub phases: Vec<PhaseStats>,
    /// Runs started blind (the responder knew neither what nor when).
    pub blind_runs: usize,
    /// Runs detected first by a person.
    pub detected_by_people: usize,
    /// Runs detected first by an alert.
    pub detected_by_alerts: usize,
    /// Wrong diagnoses over all runs.
    pub wrong_diagnoses: usize,
    /// Alerts meant for the runs that the drill did not expect (noise), over all runs.
    pub alert_noise: usize,
    /// Hints used over all runs.
    pub hints: usize,
    /// Start of the latest run, ms since the epoch.
    pub last_run_wall_ms: u64,
    /// Median production-equivalent budget spend over the runs that measured one (share of
    /// the production budget).
    pub budget_share_median: Option<f64>,
    /// The largest such spend.
    pub budget_share_max: Option<f64>,
    /// Each run in time order: the trend the charts draw.
    pub history: Vec<RunPoint>,
}

/// One run of a drill, for trends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunPoint {
    /// The run.
    pub run_id: String,
    /// Its start, ms since the epoch.
    pub started_wall_ms: u64,
    /// How it ended.
    pub outcome: String,
    /// Each phase's time from t0, ms (`None`: not reached).
    pub actual_ms: [Option<u64>; 4],
    /// Each phase's dev target, ms.
    pub target_ms: [u64; 4],
    /// Production-equivalent budget spend, if measured.
    pub budget_share: Option<f64>,
}

/// What a team has and has not practised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The team.
    pub team: String,
    /// Drills of the catalogue the team never ran.
    pub never_run: Vec<String>,
    /// Drills last run before the staleness cut-off.
    pub stale: Vec<String>,
    /// Fault kinds of the catalogue the team never met.
    pub kinds_never_practised: Vec<String>,
}

/// The drill catalogue coverage is measured against: drill name → fault kinds.
pub type Catalogue = BTreeMap<String, Vec<String>>;

/// Coverage per team of the scorecards `filter` keeps; `stale_before_ms` is the cut-off.
pub fn coverage(cards: &[Scorecard], catalogue: &Catalogue, filter: &Filter, stale_before_ms: u64) -> Vec<Coverage> {
    let mut teams: BTreeMap<&str, Vec<&Scorecard>> = BTreeMap::new();
    let practised = cards.iter().filter(|c| super::readiness::counts(c));
    for card in practised.filter(|c| filter.team.as_ref().is_none_or(|t| *t == c.team)) {
        teams.entry(&card.team).or_default().push(card);
    }
    let all_kinds: std::collections::BTreeSet<&String> = catalogue.values().flatten().collect();
    teams
        .into_iter()
        .map(|(team, runs)| {
            let last_run = |drill: &str| runs.iter().filter(|c| c.drill == drill).map(|c| c.started_wall_ms).max();
            let met: std::collections::BTreeSet<&String> = runs.iter().flat_map(|c| &c.fault_kinds).collect();
            Coverage {
                team: team.to_owned(),
                never_run: catalogue.keys().filter(|d| last_run(d).is_none()).cloned().collect(),
                stale: catalogue.keys().filter(|d| last_run(d).is_some_and(|t| t < stale_before_ms)).cloned().collect(),
                kinds_never_practised: all_kinds.iter().filter(|k| !met.contains(*k)).map(|k| (*k).clone()).collect(),
            }
        })
        .collect()
}

impl DrillStats {
    /// Who detected first, wrong diagnoses and hints, as a sentence.
    pub fn detection_sentence(&self) -> String {
        let blind = if self.blind_runs > 0 { format!(" Blind runs: {}.", self.blind_runs) } else { String::new() };
        let noise = if self.alert_noise > 0 {
            format!(" Unexpected alerts (noise): {}.", self.alert_noise)
        } else {
            String::new()
        };
        format!(
            "Detected first by people: {}; by alerts: {}. Wrong diagnoses: {}. Hints: {}.{blind}{noise}",
            self.detected_by_people, self.detected_by_alerts, self.wrong_diagnoses, self.hints
        )
    }

    /// The production-equivalent budget spend, as a sentence, if any run measured one.
    pub fn budget_sentence(&self) -> Option<String> {
        let (median, max) = (self.budget_share_median?, self.budget_share_max?);
        Some(format!(
            "Production-equivalent budget spend: median {:.1}%, max {:.1}% of the budget.",
            median * 100.0,
            max * 100.0
        ))
    }
}

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Per team and drill, sorted.
    pub drills: Vec<DrillStats>,
    /// Per team: drills and fault kinds never practised, and stale drills.
    pub coverage: Vec<Coverage>,
    /// Files that could not be read.
    pub skipped: Vec<SkippedFile>,
    /// The manager's ten-second answer: per team and drill, the verdict, the last run and the
    /// trends (filled by the caller, who knows the time and the policy).
    pub glance: Vec<super::glance::Glance>,
}

/// A skipped file, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    /// The file.
    pub path: String,
    /// Why, in words people read.
    pub reason: String,
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

fn outcome_name(outcome: Option<Outcome>) -> String {
    outcome.map_or_else(|| "open".into(), crate::wire_name)
}

/// Aggregates the scorecards `filter` keeps.
pub fn build(cards: &[Scorecard], skipped: &[Skipped], filter: &Filter) -> Report {
    let mut groups: BTreeMap<(String, String), Vec<&Scorecard>> = BTreeMap::new();
    for card in cards.iter().filter(|c| filter.keeps(c)) {
        groups.entry((card.team.clone(), card.drill.clone())).or_default().push(card);
    }
    let drills = groups
        .into_iter()
        .map(|((team, drill), all)| {
            // A void run practised nothing: listed, never in the statistics.
            let (runs, void): (Vec<&Scorecard>, Vec<&Scorecard>) =
                all.into_iter().partition(|c| super::readiness::counts(c));
            let phases = Phase::ALL
                .iter()
                .enumerate()
                .map(|(i, &phase)| {
                    let mut times: Vec<u64> = runs.iter().filter_map(|c| c.phases.get(i)?.actual_ms).collect();
                    times.sort_unstable();
                    let within =
                        runs.iter().filter(|c| c.phases.get(i).is_some_and(|p| p.verdict == Verdict::Met)).count();
                    PhaseStats {
                        phase,
                        target_ms: runs.last().and_then(|c| c.phases.get(i)).map_or(0, |p| p.target_ms),
                        reached: times.len(),
                        within_target: within,
                        share_within_target: if runs.is_empty() { 0.0 } else { within as f64 / runs.len() as f64 },
                        median_ms: percentile(&times, 0.5),
                        p90_ms: percentile(&times, 0.9),
                        min_ms: times.first().copied(),
                        max_ms: times.last().copied(),
                    }
                })
                .collect();
            let mut outcomes = BTreeMap::new();
            for card in &runs {
                *outcomes.entry(outcome_name(card.outcome)).or_default() += 1;
            }
            let first = |c: &Scorecard| match (c.detection.human_ms, c.detection.machine_ms) {
                (Some(h), Some(m)) => Some(h <= m),
                (Some(_), None) => Some(true),
                (None, Some(_)) => Some(false),
                (None, None) => None,
            };
            let mut ordered = runs.clone();
            ordered.sort_by_key(|c| c.started_wall_ms);
            let history: Vec<RunPoint> = ordered
                .iter()
                .map(|c| RunPoint {
                    run_id: c.run_id.clone(),
                    started_wall_ms: c.started_wall_ms,
                    outcome: outcome_name(c.outcome),
                    actual_ms: [0, 1, 2, 3].map(|i| c.phases.get(i).and_then(|p| p.actual_ms)),
                    target_ms: [0, 1, 2, 3].map(|i| c.phases.get(i).map_or(0, |p| p.target_ms)),
                    budget_share: c.budget.as_ref().map(|b| b.production_share),
                })
                .collect();
            let mut shares: Vec<f64> = history.iter().filter_map(|r| r.budget_share).collect();
            shares.sort_by(f64::total_cmp);
            DrillStats {
                budget_share_median: (!shares.is_empty()).then(|| shares[(shares.len() - 1) / 2]),
                budget_share_max: shares.last().copied(),
                history,
                blind_runs: runs.iter().filter(|c| c.blind).count(),
                detected_by_people: runs.iter().filter(|c| first(c) == Some(true)).count(),
                detected_by_alerts: runs.iter().filter(|c| first(c) == Some(false)).count(),
                wrong_diagnoses: runs.iter().map(|c| c.wrong_diagnoses.len()).sum(),
                alert_noise: runs.iter().map(|c| c.noise.len()).sum(),
                hints: runs.iter().map(|c| c.hints.len()).sum(),
                last_run_wall_ms: runs.iter().map(|c| c.started_wall_ms).max().unwrap_or(0),
                runs: runs.len(),
                void_runs: void.len(),
                false_alarms: runs.iter().chain(&void).map(|c| c.false_alarms.len()).sum(),
                mitigated_with_fault_in: runs
                    .iter()
                    .filter(|c| c.mitigation == Some(super::Mitigation::FaultIn))
                    .count(),
                resolved_without_diagnosis: runs.iter().filter(|c| c.resolved_without_diagnosis).count(),
                outcomes,
                phases,
                team,
                drill,
            }
        })
        .collect();
    let skipped =
        skipped.iter().map(|s| SkippedFile { path: s.path.display().to_string(), reason: s.reason.clone() }).collect();
    Report { drills, coverage: Vec::new(), skipped, glance: Vec::new() }
}

/// `m:ss` for a duration in ms; `-` for none.
pub fn clock(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| format!("{}:{:02}", ms / 60_000, ms / 1000 % 60))
}

/// The report for a terminal.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    if report.drills.is_empty() {
        out.push_str("no scorecards match\n");
    }
    for d in &report.drills {
        let outcomes: Vec<String> = d.outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let blind = if d.blind_runs > 0 { format!(", {} blind", d.blind_runs) } else { String::new() };
        let void = if d.void_runs > 0 {
            format!(", {} void (no fault went in; not counted)", d.void_runs)
        } else {
            String::new()
        };
        let _ = writeln!(out, "{} / {}: {} run(s){blind}{void} ({})", d.team, d.drill, d.runs, outcomes.join(", "));
        let _ = writeln!(out, "  phase      target  within  median     p90     min     max");
        for p in &d.phases {
            let [phase, target, within, median, p90, min, max] = p.cells();
            let _ = writeln!(out, "  {phase:<9} {target:>7} {within:>7} {median:>7} {p90:>7} {min:>7} {max:>7}");
        }
        let _ = writeln!(
            out,
            "  detected first by people {} / by alerts {}; wrong diagnoses {}; hints {}; false alarms {}",
            d.detected_by_people, d.detected_by_alerts, d.wrong_diagnoses, d.hints, d.false_alarms
        );
        if d.alert_noise > 0 {
            let _ = writeln!(out, "  unexpected alerts (noise) {}", d.alert_noise);
        }
        let _ = writeln!(
            out,
            "  mitigated with the fault still in {}; resolved without a matching diagnosis {}",
            d.mitigated_with_fault_in, d.resolved_without_diagnosis
        );
        if let (Some(median), Some(max)) = (d.budget_share_median, d.budget_share_max) {
            let _ = writeln!(
                out,
                "  production-equivalent budget spend: median {:.1}%, max {:.1}% of the budget",
                median * 100.0,
                max * 100.0
            );
        }
    }
    for c in &report.coverage {
        let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
        let _ = writeln!(
            out,
            "{} coverage: never run: {}; stale: {}; fault kinds never practised: {}",
            c.team,
            list(&c.never_run),
            list(&c.stale),
            list(&c.kinds_never_practised)
        );
    }
    for s in &report.skipped {
        let _ = writeln!(out, "skipped {}: {}", s.path, s.reason);
    }
    out
}

/// The report as Markdown tables.
pub fn markdown(report: &Report) -> String {
    let mut out = String::from("# firedrill report\n");
    for d in &report.drills {
        let _ = writeln!(out, "\n## {} / {}\n\n{} run(s).\n", d.team, d.drill, d.runs);
        out.push_str("| phase | target | within target | median | p90 | min | max |\n|---|---|---|---|---|---|---|\n");
        for p in &d.phases {
            let _ = writeln!(out, "| {} |", p.cells().join(" | "));
        }
        let _ = writeln!(out, "\n{}", d.detection_sentence());
        if let Some(budget) = d.budget_sentence() {
            let _ = writeln!(out, "{budget}");
        }
    }
    if !report.coverage.is_empty() {
        out.push_str(
            "\n## Coverage\n\n| team | never run | stale | fault kinds never practised |\n|---|---|---|---|\n",
        );
        for c in &report.coverage {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                c.team,
                c.never_run.join(", "),
                c.stale.join(", "),
                c.kinds_never_practised.join(", ")
            );
        }
    }
    if !report.skipped.is_empty() {
        out.push_str("\n## Skipped files\n\n");
        for s in &report.skipped {
            let _ = writeln!(out, "- `{}`: {}", s.path, s.reason);
        }
    }
    out
}

/// The catalogue of a drill directory: each drill's name and the toxic types of its faults.
/// Files that do not parse are left out (`firedrill validate` is where they are reported).
pub fn catalogue(dir: &std::path::Path) -> Catalogue {
    let mut out = Catalogue::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for path in entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml"))
    {
        let Some(table) = std::fs::read_to_string(&path).ok().and_then(|t| t.parse::<toml::Table>().ok()) else {
            continue;
        };
        let Some(name) = table.get("drill").and_then(|d| d.get("name")).and_then(toml::Value::as_str) else { continue };
        let mut kinds: Vec<String> = table
            .get("faults")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| {
                for kind in ["kill", "spike"] {
                    if f.get(kind).is_some() {
                        return Some(kind.to_owned());
                    }
                }
                f.get("toxic")?.get("type")?.as_str().map(str::to_owned)
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        out.insert(name.to_owned(), kinds);
    }
    out
}

/// What `firedrill report` was asked for.
#[derive(Debug, Clone)]
pub struct ReportArgs {
    /// Only this team.
    pub team: Option<String>,
    /// Only this drill.
    pub drill: Option<String>,
    /// Only runs within this span (`90d`).
    pub since: String,
    /// Drills not run within this span are stale (`30d`).
    pub stale: String,
    /// The drill catalogue for coverage.
    pub drills: std::path::PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(percentile(&values, 0.5), Some(50));
        assert_eq!(percentile(&values, 0.9), Some(90));
        assert_eq!(percentile(&[7], 0.9), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
