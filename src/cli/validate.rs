//! `firedrill validate PATH...`: checks drill files and proxy files, and reports every problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};

use super::Failure;
use crate::drill::{self, Environment, FaultAction};
use crate::proxy::config;
use crate::proxy::config::Mode;

/// Where proxy files are looked for when no proxy file is named.
pub const DEFAULT_PROXY_DIR: &str = "proxies";

/// Expands directories into their `.toml` and `.json` files, sorted.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries =
                std::fs::read_dir(path).with_context(|| path.display().to_string()).map_err(Failure::BadInput)?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml" || x == "json"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// The proxy files of `proxies/`, when there is such a directory.
pub(super) fn default_proxy_files() -> Result<Vec<PathBuf>, Failure> {
    if !Path::new(DEFAULT_PROXY_DIR).is_dir() {
        return Ok(Vec::new());
    }
    Ok(expand(&[PathBuf::from(DEFAULT_PROXY_DIR)])?.into_iter().filter(|p| is_proxy_file(p)).collect())
}

fn is_proxy_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "json")
}

/// Validates every file; prints one line per good file on stdout and every problem on stderr.
/// Drills are checked against the proxies of the proxy files given, or of `proxies/` if none is.
pub fn run(paths: &[PathBuf]) -> Result<(), Failure> {
    let files = expand(paths)?;
    let mut proxy_files: Vec<PathBuf> = files.iter().filter(|p| is_proxy_file(p)).cloned().collect();
    let checked_proxy_files = proxy_files.clone();
    if proxy_files.is_empty() {
        proxy_files = default_proxy_files()?;
    }
    let mut problems: Vec<String> = Vec::new();
    let environment = match config::load_files(&proxy_files) {
        Ok(configs) => Environment {
            http: configs.iter().filter(|c| c.mode == Mode::Http).map(|c| c.name.clone()).collect(),
            proxies: configs.into_iter().map(|c| c.name).collect(),
            external: false,
        },
        Err(errors) => {
            problems.extend(errors.iter().map(ToString::to_string));
            Environment::default()
        }
    };
    for file in &checked_proxy_files {
        if !problems.iter().any(|p| p.starts_with(&file.display().to_string())) {
            println!("ok  {}", file.display());
        }
    }
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    let (plans, drills): (Vec<&PathBuf>, Vec<&PathBuf>) =
        files.iter().filter(|p| !is_proxy_file(p)).partition(|p| crate::gameday::plan::is_plan(p));
    validate_plans(&plans, &mut problems);
    for file in drills {
        match drill::load(file, &environment) {
            Ok(drill) => {
                if let Some(first) = names.insert(drill.name.clone(), file.clone()) {
                    problems.push(format!(
                        "{}: drill name `{}` is also used by {}; drill names must be unique",
                        file.display(),
                        drill.name,
                        first.display()
                    ));
                    continue;
                }
                println!(
                    "ok  {}  ({}: {} fault(s), {} hint(s), timebox {})",
                    file.display(),
                    drill.name,
                    drill.faults.len(),
                    drill.hints.len(),
                    crate::duration::format(drill.timebox)
                );
                for (index, fault) in drill.faults.iter().enumerate() {
                    if let FaultAction::Kill(plan) = &fault.action {
                        println!("      fault {index}: {}", crate::run::dry::kill_line(plan));
                        if let crate::drill::Selector::Kubernetes { contexts, .. } = &plan.selector
                            && let Some(current) =
                                crate::fault::kubernetes::KubernetesTargets::default().context_outside(contexts)
                        {
                            println!(
                                "warning  {}: fault {index}: the kubeconfig's current context `{current}` is not in \
                                 the drill's allow-list ({}); a run from here would be refused",
                                file.display(),
                                contexts.join(", ")
                            );
                        }
                    }
                }
                for warning in slo_warnings(&drill) {
                    println!("warning  {}: {warning}", file.display());
                }
            }
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    Err(Failure::BadInput(anyhow!("{} problem(s) found; nothing was changed", problems.len())))
}

/// Checks game-day plans; their drill names against `drills/` beside them (or here).
fn validate_plans(plans: &[&PathBuf], problems: &mut Vec<String>) {
    for file in plans {
        let known = super::gameday::drills_beside(file);
        match crate::gameday::plan::load(file, known.as_deref()) {
            Ok(plan) => {
                let when = plan.when.as_ref().map_or_else(
                    || "started by hand".to_owned(),
                    |w| {
                        format!(
                            "from {} {}{}",
                            w.start.format("%Y-%m-%d %H:%M"),
                            w.zone.name(),
                            w.repeat.as_ref().map_or_else(String::new, |r| format!(", {r}"))
                        )
                    },
                );
                let before = problems.len();
                if known.is_none() {
                    println!(
                        "warning  {}: no drills/ directory beside it or here: its drill names were not checked",
                        file.display()
                    );
                }
                // The environment it names: proxy files and the environment file, as the
                // daemon will read them at the start of the day.
                if let Err(errors) = crate::proxy::config::load_files(&plan.environment.proxies) {
                    problems.extend(errors.iter().map(|e| format!("{e} (named by {})", file.display())));
                }
                if let Some(up) = &plan.environment.up {
                    match std::fs::read_to_string(up) {
                        Ok(text) => {
                            if let Err(errors) = crate::supervise::envfile::parse(up, &text) {
                                problems.extend(errors.iter().map(ToString::to_string));
                            }
                        }
                        Err(e) => problems.push(format!(
                            "{}: cannot read it ({e}), named by {}",
                            up.display(),
                            file.display()
                        )),
                    }
                }
                if problems.len() == before {
                    println!(
                        "ok  {}  (game day {}: {} step(s), {when})",
                        file.display(),
                        plan.name,
                        plan.sequence.len()
                    );
                }
            }
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
}

/// What a drill's SLO makes impossible: burn-rate rules that can never fire, and expected
/// built-in alerts that cannot fire in time even if every request fails while the drill's
/// faults are in (bursts and gaps included).
fn slo_warnings(drill: &drill::Drill) -> Vec<String> {
    let Some(slo) = &drill.slo else { return Vec::new() };
    let rules = crate::slo::default_rules(slo.objective.period, slo.min_bad);
    let mut warnings: Vec<String> = rules
        .iter()
        .filter(|rule| !rule.can_fire(&slo.objective))
        .map(|rule| {
            format!(
                "rule {} can never fire at {}%: its threshold is an error ratio of {:.0}%",
                rule.name,
                slo.objective.target * 100.0,
                rule.threshold(&slo.objective) * 100.0
            )
        })
        .collect();
    // The fault timeline at its worst: every request fails while any fault is in.
    let t0 = drill.faults.iter().map(|f| f.at).min().unwrap_or_default();
    let bad = |second: u64| {
        let at = t0 + std::time::Duration::from_secs(second - 1);
        drill.faults.iter().any(|f| f.at <= at && f.duration.is_none_or(|d| at < f.at + d))
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a request rate, rounded up")]
    let rps = drill.traffic.as_ref().map_or(slo.production_rps, |t| t.rps).ceil().max(1.0) as u64;
    for expected in &drill.alerts {
        let Some(rule) = rules.iter().find(|r| r.name == expected.name) else { continue };
        let within = expected.within.as_secs();
        let horizon = drill.timebox.as_secs().max(within);
        let earliest = crate::slo::eval::first_firing(slo.objective, rule.clone(), rps, horizon, bad);
        if earliest.is_some_and(|second| second <= within) {
            continue;
        }
        let reason = match (earliest, rule.time_to_fire(&slo.objective, 1.0)) {
            (Some(s), _) => {
                format!("fires after {} at the earliest", crate::duration::format(std::time::Duration::from_secs(s)))
            }
            (None, Some(t)) => format!(
                "needs {} of errors at the earliest and does not fire within the timebox",
                crate::slo::human(t.as_secs_f64())
            ),
            (None, None) => "can never fire".to_owned(),
        };
        warnings.push(format!(
            "alert {} is expected within {} but {reason} (every request failing while a fault is in)",
            expected.name,
            crate::duration::format(expected.within),
        ));
    }
    warnings
}
