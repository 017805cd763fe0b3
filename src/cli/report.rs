//! `firedrill report` and `firedrill readiness`: read the scorecards, render, print or write.

use anyhow::{Context as _, anyhow};

use super::{Failure, ReportFormat};
use crate::scorecard::readiness::{self, Policy};
use crate::scorecard::{report, store};

/// `firedrill report`: builds the report and prints it, or writes it to `out`.
pub fn report(
    root: &std::path::Path,
    args: report::ReportArgs,
    format: ReportFormat,
    out: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let span = |text: &str, flag: &str| {
        crate::duration::parse(text)
            .map(|d| crate::clock::wall_ms().saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
            .map_err(|e| Failure::BadInput(anyhow!("{flag}: {e}")))
    };
    let (since_ms, stale_ms) = (span(&args.since, "--since")?, span(&args.stale, "--stale")?);
    let (cards, skipped) = store::read_all(root);
    let filter = report::Filter { team: args.team, drill: args.drill, since_ms: Some(since_ms) };
    let mut built = report::build(&cards, &skipped, &filter);
    built.coverage = report::coverage(&cards, &report::catalogue(&args.drills), &filter, stale_ms);
    built.glance = crate::scorecard::glance::build(&cards, &filter, &Policy::default(), crate::clock::wall_ms());
    let rendered = match format {
        ReportFormat::Text => report::text(&built),
        ReportFormat::Markdown => report::markdown(&built),
        ReportFormat::Json => serde_json::to_string_pretty(&built).map_err(|e| Failure::Failed(e.into()))? + "\n",
        ReportFormat::Html => crate::scorecard::html::html(&built),
    };
    if let Some(path) = out {
        return std::fs::write(path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::Failed);
    }
    print!("{rendered}");
    Ok(())
}

fn emit(rendered: &str, out: Option<&std::path::Path>) -> Result<(), Failure> {
    if let Some(path) = out {
        return std::fs::write(path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::Failed);
    }
    print!("{rendered}");
    Ok(())
}

/// `firedrill report --gameday ID`: the day's write-up.
pub fn gameday(
    journals: &std::path::Path,
    scorecards: &std::path::Path,
    id: &str,
    format: ReportFormat,
    out: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let day = crate::gameday::report::gather(journals, scorecards, id).map_err(|e| match e {
        crate::gameday::GamedayError::Io(_) => Failure::Failed(e.into()),
        _ => Failure::BadInput(anyhow!("{e} (looked in {}; --data-dir names the daemon's)", journals.display())),
    })?;
    let rendered = match format {
        ReportFormat::Text | ReportFormat::Markdown => crate::gameday::report::markdown(&day),
        ReportFormat::Html => crate::gameday::report::html(&day),
        ReportFormat::Json => {
            let value = serde_json::json!({ "id": day.id, "journal": day.records, "runs": day.runs.iter().map(|(id, card)| serde_json::json!({"run_id": id, "scorecard": card})).collect::<Vec<_>>() });
            serde_json::to_string_pretty(&value).map_err(|e| Failure::Failed(e.into()))? + "\n"
        }
    };
    emit(&rendered, out)
}

/// `firedrill report --responder NAME`: one person's practice.
pub fn responder(
    root: &std::path::Path,
    name: &str,
    since: &str,
    drills: &std::path::Path,
    format: ReportFormat,
    out: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let since = crate::duration::parse(since).map_err(|e| Failure::BadInput(anyhow!("--since: {e}")))?;
    let since_ms = crate::clock::wall_ms().saturating_sub(u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    let (cards, _) = store::read_all(root);
    let catalogue: Vec<String> = report::catalogue(drills).into_keys().collect();
    let practice = crate::scorecard::practice::practice(&cards, name, &catalogue, since_ms);
    let rendered = match format {
        ReportFormat::Text | ReportFormat::Markdown => crate::scorecard::practice::markdown(&practice),
        ReportFormat::Json => serde_json::to_string_pretty(&practice).map_err(|e| Failure::Failed(e.into()))? + "\n",
        ReportFormat::Html => {
            return Err(Failure::BadInput(anyhow!(
                "--responder writes text, markdown or json; --format html is for team reports and --gameday"
            )));
        }
    };
    emit(&rendered, out)
}

/// The files `firedrill readiness` reads and writes.
pub struct ReadinessFiles {
    /// The policy (default: [`Policy::default`]).
    pub policy: Option<std::path::PathBuf>,
    /// Where to write JUnit XML.
    pub junit: Option<std::path::PathBuf>,
    /// The team file (default: `teams/<team>.toml` when it exists).
    pub team_file: Option<std::path::PathBuf>,
    /// The drill directory.
    pub drills: std::path::PathBuf,
    /// The scorecards.
    pub scorecards: std::path::PathBuf,
}

/// `firedrill readiness`: prints the verdict, writes JUnit if asked; NOT READY fails (exit 1).
pub fn readiness(team: &str, files: &ReadinessFiles) -> Result<(), Failure> {
    let (policy, junit_path, drills, root) =
        (files.policy.as_deref(), files.junit.as_deref(), files.drills.as_path(), files.scorecards.as_path());
    // A readiness that fails on bad input must not leave an earlier verdict behind: a stale
    // green gate is worse than none.
    if let Some(path) = junit_path {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Failure::Failed(
                    anyhow::Error::new(e).context(format!("cannot replace {}", path.display())),
                ));
            }
        }
    }
    let started = std::time::Instant::now();
    let located = |errors: Vec<crate::located::LocatedError>| {
        Failure::BadInput(anyhow!("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))
    };
    let mut policy = match policy {
        Some(path) => Policy::load(path).map_err(located)?,
        None => Policy::default(),
    };
    let default_team_file = std::path::Path::new("teams").join(format!("{team}.toml"));
    let team_file = files.team_file.clone().or_else(|| default_team_file.is_file().then_some(default_team_file));
    if let Some(path) = team_file {
        policy.on_call = readiness::on_call_rotation(&path).map_err(located)?;
    }
    let required = if policy.required_drills.is_empty() {
        readiness::required_drills(drills).map_err(|e| Failure::BadInput(e.into()))?
    } else {
        policy.required_drills.clone()
    };
    let (cards, unreadable) = store::read_all(root);
    let now = crate::clock::wall_ms();
    let requirements = readiness::evaluate(&policy, team, &required, &cards, &unreadable, now)
        .map_err(|e| Failure::BadInput(anyhow!(e)))?;
    print!("{}", readiness::text(team, &requirements));
    for copy in unreadable.iter().filter(|s| s.duplicate) {
        println!("  note  {}: {}", copy.path.display(), copy.reason);
    }
    if let Some(path) = junit_path {
        store::write_atomic(
            path,
            readiness::junit(team, &requirements, now, started.elapsed().as_secs_f64()).as_bytes(),
        )
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(Failure::Failed)?;
    }
    if requirements.iter().all(|r| r.failure.is_none()) {
        Ok(())
    } else {
        Err(Failure::Failed(anyhow!("team {team} is NOT READY")))
    }
}
