//! The readiness verdict: a policy applied to a team's scorecards, READY or NOT READY with each
//! reason, and the same as JUnit XML so any CI system can gate a release on it.

use std::fmt::Write as _;

use serde::Deserialize;

use super::{Scorecard, Verdict};

/// A readiness policy (`--policy FILE`, TOML). Every field has a sensible default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Drills that must be practised; empty = every drill in the drill directory.
    pub required_drills: Vec<String>,
    /// Runs of each required drill needed within the window.
    pub min_runs: usize,
    /// The window, e.g. `"60d"`.
    pub window: String,
    /// How many of the latest runs must meet every phase target.
    pub last_runs_meet_targets: usize,
    /// Whether scorecards that cannot be read (torn, from a newer firedrill, copies of a run) may
    /// be ignored; by default they make the verdict NOT READY, since they may hide a failure.
    pub allow_unreadable: bool,
    /// Every person of the team's on-call rotation must have taken part in a run of the team
    /// within this span (`90d`); unset: not required.
    pub every_on_call_practised_within: Option<String>,
    /// The on-call rotation, from the team file (`teams/<team>.toml`), not the policy file.
    #[serde(skip)]
    pub on_call: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            required_drills: Vec::new(),
            min_runs: 2,
            window: "60d".into(),
            last_runs_meet_targets: 2,
            allow_unreadable: false,
            every_on_call_practised_within: None,
            on_call: Vec::new(),
        }
    }
}

impl Policy {
    /// Reads a policy file; every problem is located (file, line, column), the window included.
    pub fn load(path: &std::path::Path) -> Result<Self, Vec<crate::located::LocatedError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let message = format!("cannot read the file: {e}");
            vec![crate::located::LocatedError { path: path.to_owned(), line: 1, column: 1, message }]
        })?;
        Self::parse(path, &text)
    }

    /// Validates policy text; `path` is only used in messages.
    pub fn parse(path: &std::path::Path, text: &str) -> Result<Self, Vec<crate::located::LocatedError>> {
        /// Where the window is written, to point at it when it does not parse.
        #[derive(Deserialize)]
        struct Window {
            window: Option<toml::Spanned<String>>,
            every_on_call_practised_within: Option<toml::Spanned<String>>,
        }
        let mut errors = crate::located::Errors::new(path, text);
        let Some(policy) = errors.parse::<Self>() else { return Err(errors.into_list()) };
        if let Err(e) = crate::duration::parse(&policy.window) {
            let span = toml::from_str::<Window>(text).ok().and_then(|w| w.window).map_or(0..0, |w| w.span());
            errors.at(&span, format!("window: {e} (write days as `60d`, or a duration such as `12h`)"));
            return Err(errors.into_list());
        }
        if let Some(Err(e)) = policy.every_on_call_practised_within.as_deref().map(crate::duration::parse) {
            let span = toml::from_str::<Window>(text)
                .ok()
                .and_then(|w| w.every_on_call_practised_within)
                .map_or(0..0, |w| w.span());
            errors.at(&span, format!("every_on_call_practised_within: {e} (write days as `90d`)"));
            return Err(errors.into_list());
        }
        Ok(policy)
    }
}

/// A team file (`teams/<team>.toml`): `[team]` with its `on_call` rotation.
pub fn on_call_rotation(path: &std::path::Path) -> Result<Vec<String>, Vec<crate::located::LocatedError>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TeamFile {
        team: TeamSection,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TeamSection {
        #[serde(default)]
        on_call: Vec<String>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        let message = format!("cannot read the team file: {e}");
        vec![crate::located::LocatedError { path: path.to_owned(), line: 1, column: 1, message }]
    })?;
    let mut errors = crate::located::Errors::new(path, &text);
    errors.parse::<TeamFile>().map(|f| f.team.on_call).ok_or_else(|| errors.into_list())
}

/// The on-call requirement: each person of the rotation took part in one of the team's runs
/// within the span.
fn on_call_requirement(
    policy: &Policy,
    team: &str,
    cards: &[Scorecard],
    now_ms: u64,
) -> Option<Result<Requirement, String>> {
    let within = policy.every_on_call_practised_within.as_ref()?;
    let span = match crate::duration::parse(within) {
        Ok(span) => span,
        Err(e) => return Some(Err(format!("every_on_call_practised_within: {e}"))),
    };
    let since = now_ms.saturating_sub(u64::try_from(span.as_millis()).unwrap_or(u64::MAX));
    let name = format!("everyone on call practised within {within}");
    if policy.on_call.is_empty() {
        return Some(Ok(Requirement {
            drill: "(on-call rotation)".into(),
            name,
            failure: Some(format!(
                "the policy requires it but no on-call rotation is known: list it in teams/{team}.toml as                  `[team]` `on_call = [\"name\", …]` (or --team-file)"
            )),
        }));
    }
    let lapsed: Vec<String> = policy
        .on_call
        .iter()
        .filter_map(|person| {
            let last = cards
                .iter()
                .filter(|c| c.team == team && counts(c) && super::practice::took_part(c, person))
                .map(|c| c.started_wall_ms)
                .max();
            match last {
                Some(last) if last >= since => None,
                Some(last) => Some(format!("{person} last practised on {}", super::glance::date(last))),
                None => Some(format!("{person} never practised")),
            }
        })
        .collect();
    Some(Ok(Requirement {
        drill: "(on-call rotation)".into(),
        name,
        failure: (!lapsed.is_empty()).then(|| lapsed.join("; ")),
    }))
}

/// One requirement and whether it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The drill it is about.
    pub drill: String,
    /// What is required.
    pub name: String,
    /// Why it fails, if it does.
    pub failure: Option<String>,
}

/// Whether a scorecard is evidence: a fault went in. A void run, or one whose faults all
/// failed, practised nothing and never counts.
pub fn counts(card: &Scorecard) -> bool {
    !card.void && card.faults_applied > 0
}

/// Applies `policy` to `team`'s scorecards at `now_ms`; `required` are the drills to check and
/// `unreadable` the store's files that could not be read (path and why).
pub fn evaluate(
    policy: &Policy,
    team: &str,
    required: &[String],
    cards: &[Scorecard],
    unreadable: &[super::store::Skipped],
    now_ms: u64,
) -> Result<Vec<Requirement>, String> {
    let window = crate::duration::parse(&policy.window).map_err(|e| format!("policy window: {e}"))?;
    let since = now_ms.saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
    let mut out = Vec::new();
    let unreadable: Vec<&super::store::Skipped> = unreadable.iter().filter(|s| !s.duplicate).collect();
    if !policy.allow_unreadable && !unreadable.is_empty() {
        let listed: Vec<String> = unreadable.iter().map(|s| format!("{}: {}", s.path.display(), s.reason)).collect();
        out.push(Requirement {
            drill: "(scorecard store)".into(),
            name: "every scorecard can be read".into(),
            failure: Some(format!(
                "{} unreadable (a hidden run may have failed; fix or remove them, or set allow_unreadable in a \
                 policy): {}",
                listed.len(),
                listed.join("; ")
            )),
        });
    }
    for drill in required {
        let mut runs: Vec<&Scorecard> = cards
            .iter()
            .filter(|c| c.team == team && &c.drill == drill && c.started_wall_ms >= since && counts(c))
            .collect();
        runs.sort_by_key(|c| (c.started_wall_ms, super::store::run_sequence(&c.run_id)));
        out.push(Requirement {
            drill: drill.clone(),
            name: format!("run at least {} times in the last {}", policy.min_runs, policy.window),
            failure: (runs.len() < policy.min_runs)
                .then(|| format!("{} run(s) in the last {}", runs.len(), policy.window)),
        });
        let last: Vec<&&Scorecard> = runs.iter().rev().take(policy.last_runs_meet_targets).collect();
        let misses: Vec<String> = last
            .iter()
            .flat_map(|c| {
                c.phases.iter().filter(|p| p.verdict != Verdict::Met).map(move |p| {
                    let phase = crate::wire_name(p.phase);
                    let on = super::glance::date(c.started_wall_ms);
                    match (p.verdict, p.actual_ms) {
                        (Verdict::Missed, Some(actual)) => {
                            let human = |ms: u64| crate::duration::format(std::time::Duration::from_millis(ms));
                            format!(
                                "{} {phase} missed by {} ({} against {}) on {on}",
                                c.run_id,
                                human(actual.saturating_sub(p.target_ms)),
                                human(actual),
                                human(p.target_ms)
                            )
                        }
                        _ => format!("{} {phase} not reached on {on}", c.run_id),
                    }
                })
            })
            .collect();
        let failure = if last.len() < policy.last_runs_meet_targets {
            Some(format!("only {} run(s) to judge", last.len()))
        } else if misses.is_empty() {
            None
        } else {
            Some(misses.join("; "))
        };
        out.push(Requirement {
            drill: drill.clone(),
            name: format!("the last {} run(s) meet every phase target", policy.last_runs_meet_targets),
            failure,
        });
        // Only drills that expect alerts are judged on them.
        if last.iter().any(|c| !c.alerts.is_empty()) {
            let missing: Vec<String> = last
                .iter()
                .flat_map(|c| {
                    c.alerts.iter().filter(|a| a.due && !a.met).map(move |a| match a.fired_after_ms {
                        Some(ms) => format!(
                            "{} {} fired late ({} ms, expected within {} ms)",
                            c.run_id, a.name, ms, a.within_ms
                        ),
                        None => format!("{} {} never fired", c.run_id, a.name),
                    })
                })
                .collect();
            out.push(Requirement {
                drill: drill.clone(),
                name: format!("no expected alert missing in the last {} run(s)", policy.last_runs_meet_targets),
                failure: (!missing.is_empty()).then(|| missing.join("; ")),
            });
        }
    }
    if let Some(requirement) = on_call_requirement(policy, team, cards, now_ms) {
        out.push(requirement?);
    }
    Ok(out)
}

/// READY or NOT READY, with each reason.
pub fn text(team: &str, requirements: &[Requirement]) -> String {
    let ready = requirements.iter().all(|r| r.failure.is_none());
    let mut out = format!("{}: team {team}\n", if ready { "READY" } else { "NOT READY" });
    for r in requirements {
        match &r.failure {
            None => {
                let _ = writeln!(out, "  ok    {}: {}", r.drill, r.name);
            }
            Some(why) => {
                let _ = writeln!(out, "  FAIL  {}: {} — {why}", r.drill, r.name);
            }
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The verdict as JUnit XML: one test case per requirement, with the attributes CI systems read
/// (`tests`, `failures`, `errors`, `time`, `timestamp`) and each reason as its failure's text.
/// `timestamp` is the evaluation's wall clock (ms since the epoch), `seconds` how long it took.
pub fn junit(team: &str, requirements: &[Requirement], timestamp_ms: u64, seconds: f64) -> String {
    let failures = requirements.iter().filter(|r| r.failure.is_some()).count();
    let timestamp = jiff::Timestamp::from_millisecond(i64::try_from(timestamp_ms).unwrap_or(0))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"firedrill readiness\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{seconds:.3}\" \
         timestamp=\"{timestamp}\">",
        requirements.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"readiness of {}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" \
         time=\"{seconds:.3}\" timestamp=\"{timestamp}\">",
        escape(team),
        requirements.len()
    );
    for r in requirements {
        let head = format!(
            "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"0\"",
            escape(team),
            escape(&r.drill),
            escape(&r.name)
        );
        match &r.failure {
            None => {
                let _ = writeln!(out, "{head}/>");
            }
            Some(why) => {
                let (message, text) = (escape(why), escape(why));
                let _ = writeln!(
                    out,
                    "{head}>\n      <failure message=\"{message}\" type=\"NotReady\">{text}</failure>\n    </testcase>"
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Why the drills a readiness verdict requires cannot be known (bad input: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The drill directory cannot be listed.
    #[error(
        "cannot list the required drills in `{}` ({error}): the policy names none, so every drill there is \
         required; give the drill directory with --drills DIR, or a policy with required_drills (--policy FILE)",
        dir.display()
    )]
    List {
        /// The directory.
        dir: std::path::PathBuf,
        /// What failed, with its causes (the engine's own words).
        error: std::io::Error,
    },
    /// Some drills there do not load.
    #[error(
        "{}\nevery drill in `{}` is required, so each must load (`firedrill validate {}` checks them)",
        problems.join("\n"),
        dir.display(),
        dir.display()
    )]
    Unloadable {
        /// The directory.
        dir: std::path::PathBuf,
        /// One located line per problem.
        problems: Vec<String>,
    },
}

/// The drills of a directory by `drill.name` (what `run` and `report` use, whatever the file is
/// called). Every `.toml` there must load: one that does not is an error (file, line, column),
/// never a requirement no run could meet.
pub fn required_drills(dir: &std::path::Path) -> Result<Vec<String>, CatalogueError> {
    let files = crate::drill::names_in(dir).map_err(|error| CatalogueError::List { dir: dir.to_owned(), error })?;
    let (mut names, mut problems) = (Vec::new(), Vec::new());
    for stem in files {
        let path = dir.join(format!("{stem}.toml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{}: cannot read the drill: {e}", path.display()));
                continue;
            }
        };
        let mut located = crate::located::Errors::new(&path, &text);
        match located.parse::<crate::drill::file::DrillFile>() {
            Some(file) => names.push(file.drill.get_ref().name.get_ref().clone()),
            None => problems.extend(located.into_list().iter().map(ToString::to_string)),
        }
    }
    if !problems.is_empty() {
        return Err(CatalogueError::Unloadable { dir: dir.to_owned(), problems });
    }
    names.sort();
    names.dedup();
    Ok(names)
}
