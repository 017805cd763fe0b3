//! One person's practice over time (`firedrill report --responder NAME`): the runs they took
//! part in, the phases they drove (acknowledged, diagnosed, declared mitigated, declared
//! resolved), the medians of those phases against their targets, and the drills of the
//! catalogue they never practised. Every figure comes from the scorecards.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::report::percentile;
use super::{Phase, Scorecard};

/// One run a person took part in.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PracticeRun {
    /// The run.
    pub run_id: String,
    /// The drill.
    pub drill: String,
    /// The team.
    pub team: String,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_wall_ms: u64,
    /// How it ended.
    pub outcome: String,
    /// The phases this person drove (`detect`, `diagnose`, `mitigate`, `resolve`).
    pub drove: Vec<String>,
}

/// A phase this person drove, over their runs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PhasePractice {
    /// Which phase.
    pub phase: String,
    /// How many times they drove it.
    pub times: usize,
    /// Median time from t0, ms.
    pub median_ms: Option<u64>,
    /// Median target (a third of production's), ms.
    pub median_target_ms: Option<u64>,
    /// How many of those met their target.
    pub met: usize,
}

/// One person's practice.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Practice {
    /// The person.
    pub responder: String,
    /// Their runs, oldest first.
    pub runs: Vec<PracticeRun>,
    /// The phases they drove.
    pub phases: Vec<PhasePractice>,
    /// Drills of the catalogue they have never taken part in.
    pub never_practised: Vec<String>,
    /// When they last took part, ms since the Unix epoch.
    pub last_ms: Option<u64>,
}

/// Who drove each phase of a run: the acknowledging responder, the one who named the cause,
/// who declared the mitigation the steady state confirmed, who declared it resolved.
pub fn drivers(card: &Scorecard) -> [Option<&str>; 4] {
    [
        card.detection.human_by.as_deref(),
        card.diagnosed_by.as_deref(),
        card.mitigated_by.as_deref(),
        card.resolved_by.as_deref(),
    ]
}

/// Whether `name` took part in the run: started it or acted in it (an acknowledgement, a
/// diagnosis right or wrong, a hint asked for, a declaration).
pub fn took_part(card: &Scorecard, name: &str) -> bool {
    card.responder.as_deref() == Some(name)
        || drivers(card).contains(&Some(name))
        || card.false_alarms.iter().any(|f| f.by == name)
        || card.wrong_diagnoses.iter().any(|w| w.by == name)
        || card.hints.iter().any(|h| h.by.as_deref() == Some(name))
}

/// `name`'s practice in `cards` since `since_ms`, against the drills of `catalogue`.
pub fn practice(cards: &[Scorecard], name: &str, catalogue: &[String], since_ms: u64) -> Practice {
    let mut mine: Vec<&Scorecard> =
        cards.iter().filter(|c| !c.void && c.started_wall_ms >= since_ms && took_part(c, name)).collect();
    mine.sort_by_key(|c| (c.started_wall_ms, c.run_id.clone()));
    let mut per_phase: BTreeMap<usize, (Vec<u64>, Vec<u64>, usize)> = BTreeMap::new();
    let runs = mine
        .iter()
        .map(|card| {
            let mut drove = Vec::new();
            for (index, driver) in drivers(card).iter().enumerate() {
                if *driver != Some(name) {
                    continue;
                }
                let Some(score) = card.phases.get(index) else { continue };
                drove.push(crate::wire_name(score.phase));
                let entry = per_phase.entry(index).or_default();
                if let Some(actual) = score.actual_ms {
                    entry.0.push(actual);
                    entry.1.push(score.target_ms);
                    entry.2 += usize::from(actual <= score.target_ms);
                }
            }
            PracticeRun {
                run_id: card.run_id.clone(),
                drill: card.drill.clone(),
                team: card.team.clone(),
                started_wall_ms: card.started_wall_ms,
                outcome: card.outcome.map_or_else(|| "in progress".to_owned(), crate::wire_name),
                drove,
            }
        })
        .collect();
    let phases = per_phase
        .into_iter()
        .map(|(index, (mut actual, mut target, met))| {
            actual.sort_unstable();
            target.sort_unstable();
            PhasePractice {
                phase: crate::wire_name(Phase::ALL[index]),
                times: actual.len(),
                median_ms: percentile(&actual, 0.5),
                median_target_ms: percentile(&target, 0.5),
                met,
            }
        })
        .collect();
    let practised: BTreeSet<&str> = mine.iter().map(|c| c.drill.as_str()).collect();
    let never_practised = catalogue.iter().filter(|d| !practised.contains(d.as_str())).cloned().collect();
    Practice {
        responder: name.to_owned(),
        last_ms: mine.last().map(|c| c.started_wall_ms),
        runs,
        phases,
        never_practised,
    }
}

fn span(ms: u64) -> String {
    crate::duration::format(std::time::Duration::from_millis(ms))
}

fn day(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(0))
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// The practice as Markdown (also what a terminal shows).
pub fn markdown(p: &Practice) -> String {
    let mut out = format!("# Practice of {}\n\n", p.responder);
    match p.last_ms {
        Some(last) => {
            let _ = writeln!(out, "{} run(s); last on {}.\n", p.runs.len(), day(last));
        }
        None => out.push_str("No run yet in this span.\n\n"),
    }
    if !p.phases.is_empty() {
        out.push_str("## Phases driven\n\n| Phase | Times | Median | Median target | Met |\n|---|---|---|---|---|\n");
        for phase in &p.phases {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {}/{} |",
                phase.phase,
                phase.times,
                phase.median_ms.map_or_else(|| "–".into(), span),
                phase.median_target_ms.map_or_else(|| "–".into(), span),
                phase.met,
                phase.times
            );
        }
        out.push('\n');
    }
    if !p.runs.is_empty() {
        out.push_str("## Runs\n\n| Date | Run | Drill | Team | Outcome | Drove |\n|---|---|---|---|---|---|\n");
        for run in &p.runs {
            let drove = if run.drove.is_empty() { "–".to_owned() } else { run.drove.join(", ") };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {drove} |",
                day(run.started_wall_ms),
                run.run_id,
                run.drill,
                run.team,
                run.outcome
            );
        }
        out.push('\n');
    }
    if !p.never_practised.is_empty() {
        let _ = writeln!(out, "## Never practised\n\n{}", p.never_practised.join(", "));
    }
    out
}
