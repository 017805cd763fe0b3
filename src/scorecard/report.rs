//! Scorecards over time: per team, drill and phase — runs, share within target, median, p90,
//! min and max against the target. Durations are skewed, so there is never a lone mean.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::store::Skipped;
use super::{Scorecard, Verdict};
use crate::drill::Phase;
use crate::run::event::Outcome;

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

/// One drill practised by one team.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillStats {
    /// The team.
    pub team: String,
    /// The drill.
    pub drill: String,
    /// Runs covered.
    pub runs: usize,
    /// Runs per outcome.
    pub outcomes: BTreeMap<String, usize>,
    /// Per phase, in order.
    pub phases: Vec<PhaseStats>,
    /// Runs detected first by a person.
    pub detected_by_people: usize,
    /// Runs detected first by an alert.
    pub detected_by_alerts: usize,
    /// Wrong diagnoses over all runs.
    pub wrong_diagnoses: usize,
    /// Hints used over all runs.
    pub hints: usize,
    /// Start of the latest run, ms since the epoch.
    pub last_run_wall_ms: u64,
}

/// A whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Per team and drill, sorted.
    pub drills: Vec<DrillStats>,
    /// Files that could not be read.
    pub skipped: Vec<SkippedFile>,
}

/// A skipped file, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    /// The file.
    pub path: String,
    /// Why.
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
    outcome
        .and_then(|o| serde_json::to_value(o).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or("open".into())
}

/// Aggregates the scorecards `filter` keeps.
pub fn build(cards: &[Scorecard], skipped: &[Skipped], filter: &Filter) -> Report {
    let mut groups: BTreeMap<(String, String), Vec<&Scorecard>> = BTreeMap::new();
    for card in cards.iter().filter(|c| filter.keeps(c)) {
        groups.entry((card.team.clone(), card.drill.clone())).or_default().push(card);
    }
    let drills = groups
        .into_iter()
        .map(|((team, drill), runs)| {
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
                        share_within_target: within as f64 / runs.len() as f64,
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
            DrillStats {
                detected_by_people: runs.iter().filter(|c| first(c) == Some(true)).count(),
                detected_by_alerts: runs.iter().filter(|c| first(c) == Some(false)).count(),
                wrong_diagnoses: runs.iter().map(|c| c.wrong_diagnoses.len()).sum(),
                hints: runs.iter().map(|c| c.hints.len()).sum(),
                last_run_wall_ms: runs.iter().map(|c| c.started_wall_ms).max().unwrap_or(0),
                runs: runs.len(),
                outcomes,
                phases,
                team,
                drill,
            }
        })
        .collect();
    let skipped =
        skipped.iter().map(|s| SkippedFile { path: s.path.display().to_string(), reason: s.reason.clone() }).collect();
    Report { drills, skipped }
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
        let _ = writeln!(out, "{} / {}: {} run(s) ({})", d.team, d.drill, d.runs, outcomes.join(", "));
        let _ = writeln!(out, "  phase      target  within  median     p90     min     max");
        for p in &d.phases {
            let _ = writeln!(
                out,
                "  {:<9} {:>7} {:>6.0}% {:>7} {:>7} {:>7} {:>7}",
                serde_json::to_value(p.phase).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                clock(Some(p.target_ms)),
                p.share_within_target * 100.0,
                clock(p.median_ms),
                clock(p.p90_ms),
                clock(p.min_ms),
                clock(p.max_ms),
            );
        }
        let _ = writeln!(
            out,
            "  detected first by people {} / by alerts {}; wrong diagnoses {}; hints {}",
            d.detected_by_people, d.detected_by_alerts, d.wrong_diagnoses, d.hints
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
            let name =
                serde_json::to_value(p.phase).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            let _ = writeln!(
                out,
                "| {name} | {} | {:.0}% | {} | {} | {} | {} |",
                clock(Some(p.target_ms)),
                p.share_within_target * 100.0,
                clock(p.median_ms),
                clock(p.p90_ms),
                clock(p.min_ms),
                clock(p.max_ms)
            );
        }
        let _ = writeln!(
            out,
            "\nDetected first by people: {}; by alerts: {}. Wrong diagnoses: {}. Hints: {}.",
            d.detected_by_people, d.detected_by_alerts, d.wrong_diagnoses, d.hints
        );
    }
    if !report.skipped.is_empty() {
        out.push_str("\n## Skipped files\n\n");
        for s in &report.skipped {
            let _ = writeln!(out, "- `{}`: {}", s.path, s.reason);
        }
    }
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

/// `firedrill report`.
pub fn run(
    root: &std::path::Path,
    team: Option<String>,
    drill: Option<String>,
    since: &str,
    format: crate::cli::ReportFormat,
    out: Option<&std::path::Path>,
) -> Result<(), crate::cli::Failure> {
    use crate::cli::{Failure, ReportFormat};
    let span = super::readiness::parse_window(since).map_err(|e| Failure::BadInput(anyhow::anyhow!("--since: {e}")))?;
    let since_ms = now_ms().saturating_sub(u64::try_from(span.as_millis()).unwrap_or(u64::MAX));
    let (cards, skipped) = super::store::read_all(root);
    let report = build(&cards, &skipped, &Filter { team, drill, since_ms: Some(since_ms) });
    let rendered = match format {
        ReportFormat::Text => text(&report),
        ReportFormat::Markdown => markdown(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report).map_err(|e| Failure::Failed(e.into()))? + "\n",
    };
    if let Some(path) = out {
        return std::fs::write(path, rendered)
            .map_err(|e| Failure::Failed(anyhow::anyhow!("cannot write {}: {e}", path.display())));
    }
    print!("{rendered}");
    Ok(())
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
