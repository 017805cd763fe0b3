//! `firedrill slo rules`: each drill's SLO as a Prometheus rule file — recording rules for the
//! error ratio over every window and the Workbook's burn-rate alerts — to deploy beside the
//! drills.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};

use super::Failure;
use crate::drill::{self, Environment, SliSource};
use crate::proxy::config::{self, Mode};
use crate::slo::prometheus::{PromSli, SloRules, rule_file};

/// The share of a window the proxies' counters cover, inverted: the window over the daemon's
/// uptime, at least 1. A proxy's counters start with the daemon, so in a fresh dev Prometheus (or
/// after a restart) the seconds before count as good traffic at the rate seen, as the daemon's
/// own rules count them; after a window of uptime it is 1 and the ratio is the plain one.
const HISTORY: &str = "clamp_min({window_seconds} / clamp_min(time() - max(process_start_time_seconds and on(job, instance) \
                       firedrill_build_info), 1), 1)";

/// Writes the rule file for `names` (every drill of `dir` if none) to `out`, or prints it.
pub fn run(names: &[String], dir: &Path, proxy_files: &[PathBuf], out: Option<&Path>) -> Result<(), Failure> {
    let proxy_files =
        if proxy_files.is_empty() { super::validate::default_proxy_files()? } else { proxy_files.to_vec() };
    let configs = config::load_files(&proxy_files).map_err(|errors| {
        Failure::BadInput(anyhow!("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))
    })?;
    let modes: std::collections::BTreeMap<String, Mode> = configs.iter().map(|c| (c.name.clone(), c.mode)).collect();
    let environment = Environment {
        http: configs.iter().filter(|c| c.mode == Mode::Http).map(|c| c.name.clone()).collect(),
        proxies: configs.iter().map(|c| c.name.clone()).collect(),
        external: false,
    };
    let names = if names.is_empty() {
        drill::names_in(dir)
            .with_context(|| format!("cannot list the drills in {}", dir.display()))
            .map_err(Failure::BadInput)?
    } else {
        names.to_vec()
    };
    let mut drills = Vec::new();
    let mut problems = Vec::new();
    if let Some(bad) = names.iter().find(|n| !crate::is_plain_name(n)) {
        return Err(Failure::BadInput(anyhow!(
            "`{bad}` is not a drill name: drills are named (letters, digits, `-`, `_`), never given as paths"
        )));
    }
    for name in &names {
        let path = dir.join(format!("{name}.toml"));
        match drill::load(&path, &environment) {
            Ok(drill) => drills.push(drill),
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    if !problems.is_empty() {
        return Err(Failure::BadInput(anyhow!("{}\nno rules were written", problems.join("\n"))));
    }
    let mut slos = Vec::new();
    let mut rules = Vec::new();
    for drill in &drills {
        let Some(slo) = &drill.slo else { continue };
        let (bad, total) = match (&slo.source, &drill.traffic) {
            (SliSource::Proxy(proxy), _) => {
                let (bad, total) = if modes.get(proxy) == Some(&Mode::Http) {
                    crate::proxy::http::metrics::sli_promql(proxy)
                } else {
                    crate::proxy::metrics::tcp_sli_promql(proxy)
                };
                (bad, format!("({total})\n* {HISTORY}"))
            }
            (SliSource::Traffic, Some(traffic)) => crate::run::manager::traffic_sli_promql(&drill.name, traffic.rps),
            // Loading refuses an [slo] without a proxy or [traffic]; nothing to count.
            (SliSource::Traffic, None) => continue,
        };
        rules.push(crate::slo::default_rules(slo.objective.period, slo.min_bad));
        let name = if slo.latency.is_some() { "latency" } else { "availability" };
        slos.push((drill.name.as_str(), name, slo.objective, PromSli { bad, total }));
    }
    let slos: Vec<SloRules<'_>> = slos
        .into_iter()
        .zip(&rules)
        .map(|((drill, slo, objective, sli), rules)| SloRules { drill, slo, objective, rules, sli })
        .collect();
    if slos.is_empty() {
        return Err(Failure::BadInput(anyhow!("none of the drills has an [slo]; no rules were written")));
    }
    let text = rule_file(&slos);
    if let Some(path) = out {
        return std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::Failed);
    }
    print!("{text}");
    Ok(())
}
