//! The write-up of one game day (`firedrill report --gameday ID`): every run with its phases
//! against their targets and its error-budget impact, the day's timeline, and the debrief's
//! notes — as Markdown, and as one self-contained HTML page. Every figure comes from the day's
//! journal and the runs' scorecards.

use std::fmt::Write as _;
use std::path::Path;

use maud::{DOCTYPE, html};

use super::GamedayError;
use super::log::{self, DayEvent, DayRecord};
use crate::scorecard::Scorecard;

/// One game day, gathered for its write-up.
#[derive(Debug)]
pub struct DayReport {
    /// The day's id.
    pub id: String,
    /// Its journal.
    pub records: Vec<DayRecord>,
    /// Each run it started, with its scorecard when one was written.
    pub runs: Vec<(String, Option<Scorecard>)>,
}

/// Gathers game day `id` from `<journals>/<id>.jsonl` and the scorecards under `scorecards`.
pub fn gather(journals: &Path, scorecards: &Path, id: &str) -> Result<DayReport, GamedayError> {
    if !crate::is_plain_name(id) {
        return Err(GamedayError::NoGameday(id.to_owned()));
    }
    let path = journals.join(format!("{id}.jsonl"));
    let records = log::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => GamedayError::NoGameday(id.to_owned()),
        _ => GamedayError::Io(e.to_string()),
    })?;
    let team = match records.first().map(|r| &r.event) {
        Some(DayEvent::Started { team, .. } | DayEvent::Missed { team, .. }) => team.clone(),
        _ => return Err(GamedayError::NoGameday(id.to_owned())),
    };
    let runs = records
        .iter()
        .filter_map(|r| match &r.event {
            DayEvent::DrillStarted { run_id, .. } => Some(run_id.clone()),
            _ => None,
        })
        .map(|run_id| {
            let card = std::fs::read(scorecards.join(&team).join(format!("{run_id}.json")))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Scorecard>(&bytes).ok());
            (run_id, card)
        })
        .collect();
    Ok(DayReport { id: id.to_owned(), records, runs })
}

fn clock(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(0))
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

fn span(ms: u64) -> String {
    crate::duration::format(std::time::Duration::from_millis(ms))
}

/// A phase's cell: `2m10s / 5m met`.
fn phase_cell(card: &Scorecard, index: usize) -> String {
    let Some(phase) = card.phases.get(index) else { return "–".into() };
    let actual = phase.actual_ms.map_or_else(|| "–".to_owned(), span);
    format!("{actual} / {} {}", span(phase.target_ms), crate::wire_name(phase.verdict).replace('_', " "))
}

fn budget_cell(card: &Scorecard) -> String {
    card.budget.as_ref().map_or_else(
        || "–".to_owned(),
        |b| {
            format!(
                "{:.2}% of the production budget ({:.1}% of requests bad)",
                b.production_share * 100.0,
                b.bad_fraction * 100.0
            )
        },
    )
}

/// What happened when, the day's and its runs' moments together, in order.
fn timeline(report: &DayReport) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for record in &report.records {
        let line = match &record.event {
            DayEvent::Started { by, scheduled_ms, .. } => Some(match scheduled_ms {
                Some(_) => "the game day started on schedule".to_owned(),
                None => format!("the game day was started by {by}"),
            }),
            DayEvent::Missed { reason, .. } => Some(format!("missed: {reason}")),
            DayEvent::Environment { text } => Some(format!("environment: {text}")),
            DayEvent::DrillStarted { step, run_id, drill } => Some(format!(
                "step {}: {} started (run {run_id})",
                step + 1,
                drill.as_ref().map_or_else(|| "a blind drill".to_owned(), |d| format!("drill {d}"))
            )),
            DayEvent::DrillEnded { step, drill, outcome, .. } => {
                Some(format!("step {}: drill {drill} ended {outcome}", step + 1))
            }
            DayEvent::StepFailed { step, error } => Some(format!("step {} could not start: {error}", step + 1)),
            DayEvent::Break { step, length_ms } => Some(format!("step {}: a break of {}", step + 1, span(*length_ms))),
            DayEvent::Note { .. } => None,
            DayEvent::NotifyFailed { url, event, attempts, error } => {
                Some(format!("notification {event} to {url} failed after {attempts} tries: {error}"))
            }
            DayEvent::Ended { outcome, by } => Some(match by {
                Some(by) => format!("the game day {outcome} (by {by})"),
                None => format!("the game day {outcome}"),
            }),
        };
        if let Some(line) = line {
            out.push((record.at_ms, line));
        }
    }
    for (_, card) in &report.runs {
        let Some(card) = card else { continue };
        if card.void {
            continue;
        }
        let t0 = card.started_wall_ms + card.t0_ms;
        out.push((t0, format!("{}: the fault went in (t0)", card.drill)));
        let who = |by: &Option<String>| by.as_ref().map_or_else(String::new, |b| format!(" by {b}"));
        let names = ["detected", "diagnosed", "mitigated", "resolved"];
        let by = [
            card.detection
                .human_by
                .clone()
                .or_else(|| card.detection.machine_alert.as_ref().map(|a| format!("alert {a}"))),
            card.diagnosed_by.clone(),
            card.mitigated_by.clone(),
            card.resolved_by.clone(),
        ];
        for ((phase, name), by) in card.phases.iter().zip(names).zip(by.iter()) {
            if let Some(actual) = phase.actual_ms {
                out.push((t0 + actual, format!("{}: {name}{} at t0+{}", card.drill, who(by), span(actual))));
            }
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

struct Header {
    title: String,
    team: String,
    started: u64,
    state: String,
    roles: Vec<[String; 2]>,
    questions: Vec<String>,
}

fn header(report: &DayReport) -> Header {
    let first = report.records.first();
    let (title, team, roles, questions) = match first.map(|r| &r.event) {
        Some(DayEvent::Started { title, team, roles, questions, .. }) => {
            (title.clone(), team.clone(), roles.clone(), questions.clone())
        }
        Some(DayEvent::Missed { title, team, .. }) => (title.clone(), team.clone(), Vec::new(), Vec::new()),
        _ => Default::default(),
    };
    let state = super::conduct::view(&report.id, &report.records, None).map(|v| v.state).unwrap_or_default();
    Header { title, team, started: first.map_or(0, |r| r.at_ms), state, roles, questions }
}

fn notes(report: &DayReport) -> Vec<(Option<usize>, String, String)> {
    report
        .records
        .iter()
        .filter_map(|r| match &r.event {
            DayEvent::Note { by, text, question } => Some((*question, by.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

fn date(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(0))
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// The write-up as Markdown.
pub fn markdown(report: &DayReport) -> String {
    let h = header(report);
    let mut out = format!("# {} — game day {}\n\n", h.title, report.id);
    let _ = writeln!(out, "Team **{}**, {} — {}.\n", h.team, date(h.started), h.state);
    for [role, name] in &h.roles {
        let _ = writeln!(out, "- {role}: {name}");
    }
    let resolved = report
        .runs
        .iter()
        .filter(|(_, c)| c.as_ref().and_then(|c| c.outcome).is_some_and(|o| crate::wire_name(o) == "resolved"))
        .count();
    let _ = writeln!(
        out,
        "\n## Runs\n\n{} drill(s) run, {resolved} resolved. Each phase: time / target (a third of production's) and verdict.\n",
        report.runs.len()
    );
    out.push_str("| Run | Drill | Outcome | Detect | Diagnose | Mitigate | Resolve | Budget impact |\n|---|---|---|---|---|---|---|---|\n");
    for (run_id, card) in &report.runs {
        match card {
            Some(card) => {
                let _ = writeln!(
                    out,
                    "| {run_id} | {} | {} | {} | {} | {} | {} | {} |",
                    card.drill,
                    card.outcome.map_or_else(|| "in progress".to_owned(), crate::wire_name),
                    phase_cell(card, 0),
                    phase_cell(card, 1),
                    phase_cell(card, 2),
                    phase_cell(card, 3),
                    budget_cell(card)
                );
            }
            None => {
                let _ = writeln!(out, "| {run_id} | – | no scorecard yet | – | – | – | – | – |");
            }
        }
    }
    out.push_str("\n## Timeline (UTC)\n\n");
    for (at, line) in timeline(report) {
        let _ = writeln!(out, "- {} {line}", clock(at));
    }
    let notes = notes(report);
    out.push_str("\n## Debrief\n\n");
    for (index, question) in h.questions.iter().enumerate() {
        let _ = writeln!(out, "### {}. {question}\n", index + 1);
        let answers: Vec<_> = notes.iter().filter(|(q, _, _)| *q == Some(index + 1)).collect();
        if answers.is_empty() {
            out.push_str("_No answer recorded._\n\n");
        }
        for (_, by, text) in answers {
            let _ = writeln!(out, "- **{by}**: {text}");
        }
        out.push('\n');
    }
    let other: Vec<_> = notes.iter().filter(|(q, _, _)| q.is_none()).collect();
    if !other.is_empty() {
        out.push_str("### Notes\n\n");
        for (_, by, text) in other {
            let _ = writeln!(out, "- **{by}**: {text}");
        }
    }
    out
}

/// The write-up as one self-contained HTML page (no script, no external resource).
pub fn html(report: &DayReport) -> String {
    let h = header(report);
    let notes = notes(report);
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (h.title) " — game day " (report.id) }
                style { (maud::PreEscaped(crate::scorecard::html::STYLE)) "body{font-family:sans-serif;margin:2em;color:#222}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}" }
            }
            body {
                h1 { (h.title) " — game day " (report.id) }
                p { "Team " strong { (h.team) } ", " (date(h.started)) " — " (h.state) "." }
                ul { @for [role, name] in &h.roles { li { (role) ": " (name) } } }
                h2 { "Runs" }
                table {
                    tr { th { "Run" } th { "Drill" } th { "Outcome" } th { "Detect" } th { "Diagnose" } th { "Mitigate" } th { "Resolve" } th { "Budget impact" } }
                    @for (run_id, card) in &report.runs {
                        tr {
                            td { (run_id) }
                            @if let Some(card) = card {
                                td { (card.drill) }
                                td { (card.outcome.map_or_else(|| "in progress".to_owned(), crate::wire_name)) }
                                @for index in 0..4 { td { (phase_cell(card, index)) } }
                                td { (budget_cell(card)) }
                            } @else {
                                td colspan="7" { "no scorecard yet" }
                            }
                        }
                    }
                }
                h2 { "Timeline (UTC)" }
                ul { @for (at, line) in timeline(report) { li { (clock(at)) " " (line) } } }
                h2 { "Debrief" }
                @for (index, question) in h.questions.iter().enumerate() {
                    h3 { (index + 1) ". " (question) }
                    ul {
                        @for (_, by, text) in notes.iter().filter(|(q, _, _)| *q == Some(index + 1)) { li { strong { (by) } ": " (text) } }
                    }
                }
                @if notes.iter().any(|(q, _, _)| q.is_none()) {
                    h3 { "Notes" }
                    ul { @for (_, by, text) in notes.iter().filter(|(q, _, _)| q.is_none()) { li { strong { (by) } ": " (text) } } }
                }
            }
        }
    };
    page.into_string()
}
