//! A run as the console shows it, built from its status and its journal records. The answer key
//! and the facilitator's notes are never read here, so no page can show them.

use crate::journal::Record;
use crate::journal::event::Event;
use crate::run::manager::{Manager, RunView};

use super::pages::{Panel, PhaseRow, RunPanel};

/// One line of the timeline, or `None` for records people need not see (SLI samples). Unless
/// `reveal`, what the faults are and what they hit stays out: that is what responders diagnose.
pub fn describe(event: &Event, reveal: bool) -> Option<String> {
    if !reveal {
        match event {
            Event::FaultApplied { .. } => return Some("a fault went in".into()),
            Event::FaultFailed { .. } => return Some("a fault could not go in".into()),
            Event::FaultRemoved { .. } => return Some("a fault came out".into()),
            Event::TargetKilled { .. }
            | Event::KillSkipped { .. }
            | Event::KillEscalated { .. }
            | Event::KillFailed { .. }
            | Event::TargetRecovered { .. }
            | Event::TargetRestored { .. } => return None,
            _ => {}
        }
    }
    Some(match event {
        Event::RunStarted { team, .. } => format!("run started for team {team}"),
        Event::FaultApplied { fault, kind, proxy, .. } if proxy.is_empty() => format!("fault {fault} in: {kind}"),
        Event::FaultApplied { fault, kind, proxy, .. } => format!("fault {fault} in: {kind} on {proxy}"),
        Event::FaultFailed { fault, error } => format!("fault {fault} could not go in: {error}"),
        Event::FaultRemoved { fault, reason, .. } => format!("fault {fault} out ({})", crate::wire_name(reason)),
        Event::TargetKilled { target, action, .. } => format!("{} {target}", crate::wire_name(action)),
        Event::KillSkipped { reason, .. } => format!("kill round skipped: {reason}"),
        Event::KillEscalated { detail, .. } => format!("escalated: {detail}"),
        Event::KillFailed { error, .. } => format!("kill failed: {error}"),
        Event::TargetRecovered { target, .. } => format!("{target} is back"),
        Event::TargetRestored { target, .. } => format!("{target} restored"),
        Event::Ack { by } => format!("{by} acknowledged"),
        Event::Alert { name, source, .. } => format!("alert {name} fired ({})", crate::wire_name(source)),
        Event::AlertNoise { name, .. } => format!("unexpected alert {name}"),
        Event::AlertCleared { name, .. } => format!("alert {name} cleared"),
        Event::Diagnosis { by, text, correct } => {
            format!("{by} diagnosed “{text}”: {}", if *correct { "right" } else { "wrong" })
        }
        Event::Hint { text, by, .. } => match by {
            Some(by) => format!("hint for {by}: {text}"),
            None => format!("hint: {text}"),
        },
        Event::Mitigated { .. } => "mitigated with the fault still in (the steady state held)".into(),
        Event::SteadyStateLost => "the steady state was lost".into(),
        Event::MitigateDeclared { by } => format!("{by} declared it mitigated"),
        Event::MitigationUnverified { by, reason } => format!("{by}'s mitigation not verified: {reason}"),
        Event::ResolveDeclared { by } => format!("{by} declared it resolved"),
        Event::Ended { outcome, .. } => format!("ended: {}", crate::wire_name(outcome)),
        Event::Sli { .. } => return None,
    })
}

/// The panel of a run that may be shown; `reveal`: whether its faults may be named (not to
/// responders, and to nobody while a blind drill runs: it stays unnamed until it ends).
fn run_panel(manager: &Manager, details: crate::run::manager::RunDetails, reveal: bool) -> RunPanel {
    let records: Vec<Record> = manager.log(&details.run_id).map(|log| log.records()).unwrap_or_default();
    let card = details.card;
    let started_wall_ms = card.as_ref().map_or(0, |c| c.started_wall_ms);
    let outcome = card.as_ref().and_then(|c| c.outcome).map(crate::wire_name);
    let blind_running = card.as_ref().is_some_and(|c| c.blind) && outcome.is_none();
    let reveal = reveal && !blind_running;
    let phases = card
        .as_ref()
        .map(|c| {
            c.phases
                .iter()
                .map(|p| PhaseRow {
                    name: crate::wire_name(p.phase),
                    target_ms: p.target_ms,
                    actual_ms: p.actual_ms,
                    verdict: if p.actual_ms.is_none() && outcome.is_none() {
                        "pending".into()
                    } else {
                        crate::wire_name(p.verdict).replace('_', " ")
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let in_force = crate::journal::in_force(&records);
    let kinds: std::collections::BTreeMap<usize, String> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::FaultApplied { fault, kind, proxy, .. } => {
                Some((*fault, if proxy.is_empty() { kind.clone() } else { format!("{kind} on {proxy}") }))
            }
            _ => None,
        })
        .collect();
    let mut faults: Vec<String> =
        in_force.faults.keys().map(|i| format!("fault {i}: {}", kinds.get(i).cloned().unwrap_or_default())).collect();
    faults.extend(
        in_force.lasting.iter().map(|((_, target), (_, action))| format!("{target} {}", crate::wire_name(action))),
    );
    if !reveal && !faults.is_empty() {
        faults = vec![format!("{} (what, the responders find out)", faults.len())];
    }
    let alerts = card.as_ref().map(alert_lines).unwrap_or_default();
    let noise = card.as_ref().map(|c| c.noise.iter().map(|n| n.name.clone()).collect()).unwrap_or_default();
    let bad_ratios = bad_ratios(&records);
    let burn = manager
        .log(&details.run_id)
        .map(|log| {
            log.burn_rates()
                .iter()
                .map(|(window, rate)| format!("{rate:.1}× over {}", crate::duration::format(*window)))
                .collect()
        })
        .unwrap_or_default();
    RunPanel {
        title: if blind_running {
            "A blind drill".to_owned()
        } else {
            card.as_ref().map_or_else(|| details.drill.clone(), |c| c.title.clone())
        },
        briefing: details.briefing,
        team: details.team,
        t0_wall_ms: details.fault_in_ms.map(|t0| started_wall_ms + t0),
        final_ms: outcome.as_ref().and(details.fault_in_ms).map(|t0| details.elapsed_ms.saturating_sub(t0)),
        outcome,
        phases,
        faults,
        alerts,
        noise,
        timeline: records.iter().filter_map(|r| Some((r.t_ms, describe(&r.event, reveal)?))).collect(),
        bad_ratios,
        burn,
        run_id: details.run_id,
    }
}

/// Each expected alert and how it went.
fn alert_lines(card: &crate::scorecard::Scorecard) -> Vec<String> {
    card.alerts
        .iter()
        .map(|a| {
            let within = clock_words(a.within_ms);
            match (a.met, a.fired_after_ms) {
                (true, Some(at)) => {
                    format!("{}: fired after {} (expected within {within}), on time", a.name, clock_words(at))
                }
                (false, Some(at)) => {
                    format!("{}: fired after {} (expected within {within}), late", a.name, clock_words(at))
                }
                _ if a.due => format!("{}: never fired (expected within {within})", a.name),
                _ => format!("{}: expected within {within}, not yet", a.name),
            }
        })
        .collect()
}

/// The share of bad events between one SLI sample and the next.
fn bad_ratios(records: &[Record]) -> Vec<f64> {
    let mut last = (0_u64, 0_u64);
    records
        .iter()
        .filter_map(|r| match r.event {
            Event::Sli { valid, bad, .. } => {
                let (dv, db) = (valid.saturating_sub(last.0), bad.saturating_sub(last.1));
                last = (valid, bad);
                #[allow(clippy::cast_precision_loss)]
                (dv > 0).then(|| db as f64 / dv as f64)
            }
            _ => None,
        })
        .collect()
}

fn clock_words(ms: u64) -> String {
    crate::duration::format(std::time::Duration::from_millis(ms))
}

/// Every run and blind drill the daemon knows, as panels: running first, then the ended ones
/// (the newest first), at most `ended` of those; faults named only if `reveal`.
pub fn panels(manager: &Manager, ended: usize, reveal: bool) -> Vec<Panel> {
    let views = manager.status(None).unwrap_or_default();
    let mut running = Vec::new();
    let mut done = Vec::new();
    for view in views {
        match view {
            RunView::Sealed { team } => running.push(Panel::Sealed { team }),
            RunView::NotStarted { team, why } => running.push(Panel::NotStarted { team, why }),
            RunView::Run(details) => {
                let panel = run_panel(manager, *details, reveal);
                if panel.outcome.is_some() { done.push(panel) } else { running.push(Panel::Run(Box::new(panel))) }
            }
        }
    }
    done.reverse();
    running.extend(done.into_iter().take(ended).map(|p| Panel::Run(Box::new(p))));
    running
}
