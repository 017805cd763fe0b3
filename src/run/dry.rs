//! `firedrill run --dry-run`, answered by the daemon: the drill found as `run` finds it, checked
//! against the same environment, and each fault with what it would touch now — proxies, and the
//! processes, containers or pods a kill would choose from — touching nothing.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::drill::plan::TrafficTarget;
use crate::drill::{Drill, FaultAction, KillPlan};
use crate::fault::kill::{self, Killers};

pub use crate::fault::Addresses;

/// The dry run's text, or why the run would be refused (a kill that matches nothing, or whose
/// first round would exceed the blast radius), as `run` would refuse it.
pub async fn describe(
    drill: &Drill,
    path: &Path,
    addresses: &Addresses,
    kills: &Killers,
    seed: Option<u64>,
) -> Result<String, String> {
    let mut out = String::new();
    let _ = writeln!(out, "dry run of {} ({}): nothing is touched", drill.name, path.display());
    let _ = writeln!(out, "  timebox {}", crate::duration::format(drill.timebox));
    let selectors = drill.kill_selectors();
    if !selectors.is_empty() {
        let down = kills.down(&selectors, &BTreeSet::new()).await.map_err(|e| e.describe())?;
        let max = drill.faults.iter().find_map(|f| match &f.action {
            FaultAction::Kill(plan) => Some(plan.max_targets),
            _ => None,
        });
        let _ = writeln!(
            out,
            "  blast radius: at most {} of the drill's kill targets down at once, whatever took them down; \
             down now: {}",
            max.unwrap_or(1),
            if down.is_empty() { "none".to_owned() } else { down.iter().cloned().collect::<Vec<_>>().join(", ") }
        );
    }
    for (index, fault) in drill.faults.iter().enumerate() {
        let until = fault
            .duration
            .map_or_else(|| "until the run ends".to_owned(), |d| format!("for {}", crate::duration::format(d)));
        let at = crate::duration::format(fault.at);
        match &fault.action {
            FaultAction::Toxic { proxy, toxic } => {
                let toxic = serde_json::to_string(toxic).unwrap_or_default();
                let address = addresses.get(proxy).map_or("?", String::as_str);
                let _ = writeln!(out, "  fault {index}: at {at} {until}, proxy `{proxy}` ({address}): toxic {toxic}");
            }
            FaultAction::Spike { rps } => {
                let entry = match drill.traffic.as_ref().map(|t| &t.target) {
                    Some(TrafficTarget::Http(url)) => format!("GET {url}"),
                    Some(TrafficTarget::Grpc { address, path }) => format!("gRPC {address}{path}"),
                    None => "?".to_owned(),
                };
                let base = drill.traffic.as_ref().map_or(0.0, |t| t.rps);
                let _ = writeln!(
                    out,
                    "  fault {index}: at {at} {until}, traffic spike: {rps} more requests/s to {entry} (on top of {base}/s)"
                );
            }
            FaultAction::Kill(plan) => {
                let _ = writeln!(out, "  fault {index}: at {at} {until}, {}", kill_line(plan));
                let matching =
                    kills.list(&plan.selector).await.map_err(|e| format!("fault {index}: {}", e.describe()))?;
                let names: Vec<String> = matching
                    .iter()
                    .map(|t| if t.ready { t.name.clone() } else { format!("{} (not ready)", t.name) })
                    .collect();
                let _ = writeln!(
                    out,
                    "    matching now ({}): {}",
                    matching.len(),
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                );
                let draw = seed.map_or(0, |s| kill::round_seed(s, index, 0));
                let chosen = kills
                    .choose(plan, &selectors, &BTreeSet::new(), draw)
                    .await
                    .map_err(|e| format!("fault {index}: {e}"))?
                    .0;
                let picked: Vec<&str> = chosen.iter().map(|a| a.target.name.as_str()).collect();
                let _ = match seed {
                    Some(seed) => writeln!(out, "    first round with --seed {seed}: {}", picked.join(", ")),
                    None => {
                        writeln!(out, "    each round: {} of them at random (give --seed to see which)", chosen.len())
                    }
                };
            }
        }
    }
    for hint in &drill.hints {
        let when =
            hint.after.map_or_else(|| "on request".to_owned(), |a| format!("after {}", crate::duration::format(a)));
        let _ = writeln!(out, "  hint {when}: {}", hint.text);
    }
    Ok(out)
}

/// A kill fault in words: what, how often, how, and how many may be down at once.
pub fn kill_line(plan: &KillPlan) -> String {
    let every = plan.every.map_or_else(String::new, |e| format!(" every {}", crate::duration::format(e)));
    format!(
        "{} {}{every} (signal {}, grace {}); at most {} target(s) of the drill down at once{}",
        plan.action.as_str(),
        plan.selector.describe(),
        plan.signal,
        crate::duration::format(plan.grace),
        plan.max_targets,
        if plan.every.is_some() { ": a round that would exceed it is skipped" } else { "" }
    )
}
