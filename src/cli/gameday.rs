//! `firedrill gameday …` and `firedrill note`: plans read here (list, show, calendar), game days
//! run by the daemon (start, status, end), and the debrief's notes.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::Failure;
use super::remote::{Client, Remote, failure};
use crate::control::proto::{GamedayRequest, NoteRequest};
use crate::gameday::{Overview, Plan, plan};

/// `firedrill gameday ...`.
#[derive(Debug, clap::Subcommand)]
pub enum GamedayCommand {
    /// The plans of the plan directory: schedule, next occurrence, steps.
    List {
        /// Where the plans are.
        #[arg(long, default_value = "gamedays")]
        gamedays: PathBuf,
    },
    /// One plan in full: roles, schedule and its next occurrences, sequence, debrief.
    Show {
        /// The plan (a name from --gamedays, or a file).
        plan: String,
        /// Where the plans are.
        #[arg(long, default_value = "gamedays")]
        gamedays: PathBuf,
        /// How many upcoming occurrences to list.
        #[arg(long, default_value_t = 5)]
        next: usize,
    },
    /// Start a game day of a plan on the daemon now.
    Start {
        /// The plan: a name from the daemon's plan directory.
        plan: String,
        /// Who starts it.
        #[arg(long = "as", value_name = "NAME", env = "FIREDRILL_RESPONDER")]
        by: Option<String>,
        /// Where the daemon is.
        #[command(flatten)]
        remote: super::RemoteArgs,
    },
    /// Game days in progress and past, and the plans scheduled.
    Status {
        /// One game day.
        #[arg(long = "gameday", value_name = "ID", default_value = "")]
        id: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Where the daemon is.
        #[command(flatten)]
        remote: super::RemoteArgs,
    },
    /// End the game day in progress now: its run is aborted and its faults come out; the
    /// remaining steps are skipped.
    End {
        /// The game day (default: the one in progress).
        #[arg(long = "gameday", value_name = "ID", default_value = "")]
        id: String,
        /// Who ends it.
        #[arg(long = "as", value_name = "NAME", env = "FIREDRILL_RESPONDER")]
        by: Option<String>,
        /// Where the daemon is.
        #[command(flatten)]
        remote: super::RemoteArgs,
    },
    /// Write the plan's iCalendar file (RFC 5545) for calendar applications to import.
    Calendar {
        /// The plan (a name from --gamedays, or a file).
        plan: String,
        /// Where the plans are.
        #[arg(long, default_value = "gamedays")]
        gamedays: PathBuf,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn login(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "facilitator".into())
}

/// A plan by name (from `dir`) or by path; its drills are checked against `drills/` beside the
/// plan directory when there is one.
fn load(name: &str, dir: &Path) -> Result<Plan, Failure> {
    let path = if Path::new(name).extension().is_some_and(|x| x.eq_ignore_ascii_case("toml")) || name.contains('/') {
        PathBuf::from(name)
    } else {
        dir.join(format!("{name}.toml"))
    };
    if !path.is_file() {
        return Err(Failure::BadInput(anyhow!(
            "no plan {} (plans are `.toml` files in {}; `firedrill gameday list` shows them)",
            path.display(),
            dir.display()
        )));
    }
    let drills = drills_beside(&path);
    plan::load(&path, drills.as_deref()).map_err(|errors| {
        for error in &errors {
            eprintln!("{error}");
        }
        Failure::BadInput(anyhow!("the plan is invalid ({} problem(s)); nothing was done", errors.len()))
    })
}

/// The drill names of the `drills/` directory next to a plan's directory (or in the working
/// directory), when there is one.
pub(super) fn drills_beside(plan: &Path) -> Option<Vec<String>> {
    let beside = plan.parent().and_then(Path::parent).map(|p| p.join("drills"));
    [beside, Some(PathBuf::from("drills"))]
        .into_iter()
        .flatten()
        .find(|d| d.is_dir())
        .and_then(|d| crate::drill::names_in(&d).ok())
}

fn now_ms() -> i64 {
    i64::try_from(crate::clock::wall_ms()).unwrap_or(i64::MAX)
}

fn schedule_line(plan: &Plan) -> String {
    match &plan.when {
        None => "started by hand (no start)".to_owned(),
        Some(when) => {
            let next = when.next_from(now_ms()).map_or_else(
                || "no occurrence left".to_owned(),
                |o| format!("next {}", o.local.format("%a %Y-%m-%d %H:%M")),
            );
            let repeat = when.repeat.as_deref().map_or_else(|| "once".to_owned(), |r| format!("repeats {r}"));
            format!("{} {}, {repeat}; {next}", when.start.format("%Y-%m-%d %H:%M"), when.zone.name())
        }
    }
}

/// Runs one `gameday` command.
pub fn run(command: GamedayCommand) -> Result<(), Failure> {
    let runtime = || tokio::runtime::Runtime::new().map_err(|e| Failure::Failed(e.into()));
    match command {
        GamedayCommand::List { gamedays } => {
            let names = crate::gameday::conduct::plan_names(&gamedays);
            if names.is_empty() {
                println!(
                    "no game-day plans in {} (a plan is a `.toml` file with a [gameday] table)",
                    gamedays.display()
                );
            }
            let mut bad = 0;
            for name in names {
                match load(&name, &gamedays) {
                    Ok(plan) => println!(
                        "{name}  {} — team {}, {} step(s); {}",
                        plan.title,
                        plan.team,
                        plan.sequence.len(),
                        schedule_line(&plan)
                    ),
                    Err(e) => {
                        bad += 1;
                        println!("{name}  does not load: {e}");
                    }
                }
            }
            if bad > 0 {
                return Err(Failure::BadInput(anyhow!("{bad} plan(s) do not load")));
            }
            Ok(())
        }
        GamedayCommand::Show { plan, gamedays, next } => {
            let plan = load(&plan, &gamedays)?;
            print!("{}", show(&plan, next));
            Ok(())
        }
        GamedayCommand::Calendar { plan, gamedays, out } => {
            let plan = load(&plan, &gamedays)?;
            let Some(text) = crate::gameday::ical::calendar(&plan, now_ms()) else {
                return Err(Failure::BadInput(anyhow!(
                    "{}: the plan has no `start`, so there is nothing to put in a calendar; add `start` and `time_zone` to [gameday]",
                    plan.path.display()
                )));
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, text).map_err(|e| Failure::Failed(anyhow!("{}: {e}", path.display())))?;
                    println!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        GamedayCommand::Start { plan, by, remote } => runtime()?.block_on(start(&remote.remote(), plan, login(by))),
        GamedayCommand::Status { id, json, remote } => runtime()?.block_on(status(&remote.remote(), id, json)),
        GamedayCommand::End { id, by, remote } => runtime()?.block_on(end(&remote.remote(), id, login(by))),
    }
}

/// `gameday show`'s text.
pub fn show(plan: &Plan, next: usize) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{} ({})\nteam: {}\nwhen: {}\n", plan.title, plan.name, plan.team, schedule_line(plan));
    if let Some(when) = &plan.when {
        for occurrence in when.occurrences_from(now_ms(), next) {
            let offset = occurrence.offset_secs;
            let _ = writeln!(
                out,
                "  {} {} (UTC{}{:02}:{:02})",
                occurrence.local.format("%a %Y-%m-%d %H:%M"),
                when.zone.name(),
                if offset < 0 { '-' } else { '+' },
                offset.unsigned_abs() / 3600,
                offset.unsigned_abs() % 3600 / 60
            );
        }
    }
    let _ = writeln!(out, "length: {}", crate::duration::format(plan.length));
    for (role, person) in plan.roles.everyone() {
        let _ = writeln!(
            out,
            "{role}: {}{}",
            person.name,
            person.email.as_ref().map_or_else(String::new, |e| format!(" <{e}>"))
        );
    }
    out.push_str("sequence:\n");
    for (index, step) in plan.sequence.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", index + 1, step.describe());
    }
    if let Some(up) = &plan.environment.up {
        let _ = writeln!(out, "environment: firedrill up {}", up.display());
    }
    for proxies in &plan.environment.proxies {
        let _ = writeln!(out, "proxies: {}", proxies.display());
    }
    if !plan.questions.is_empty() {
        out.push_str("debrief:\n");
        for (index, question) in plan.questions.iter().enumerate() {
            let _ = writeln!(out, "  {}. {question}", index + 1);
        }
    }
    for hook in &plan.notify {
        let _ = writeln!(out, "notify: {} ({:?})", crate::gameday::notify::redact(&hook.url), hook.format);
    }
    out
}

async fn start(remote: &Remote, plan: String, by: String) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(GamedayRequest { plan, id: String::new(), by });
    let id = client.inner.gameday_start(request).await.map_err(|s| failure(&s))?.into_inner().id;
    println!(
        "game day {id} started; follow it with `firedrill gameday status`, end it early with `firedrill gameday end`"
    );
    Ok(())
}

async fn end(remote: &Remote, id: String, by: String) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(GamedayRequest { plan: String::new(), id, by });
    let id = client.inner.gameday_end(request).await.map_err(|s| failure(&s))?.into_inner().id;
    println!("game day {id} ended; its faults are out. The write-up: firedrill report --gameday {id}");
    Ok(())
}

async fn status(remote: &Remote, id: String, json: bool) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(GamedayRequest { plan: String::new(), id, by: String::new() });
    let reply = client.inner.gameday_status(request).await.map_err(|s| failure(&s))?.into_inner();
    if json {
        println!("{}", reply.json);
        return Ok(());
    }
    let overview: Overview = serde_json::from_str(&reply.json).map_err(|e| Failure::Failed(e.into()))?;
    if overview.days.is_empty() && overview.scheduled.is_empty() {
        println!("no game day has taken place and none is scheduled");
    }
    for day in &overview.days {
        let step = day.step.map_or_else(String::new, |s| format!(", step {} of {}", s + 1, day.steps.len()));
        println!(
            "{}  {} — {}{step}{}",
            day.id,
            day.title,
            day.state,
            if day.detail.is_empty() { String::new() } else { format!(" ({})", day.detail) }
        );
        for [run, drill, outcome] in &day.runs {
            let drill = if drill.is_empty() { "(sealed)" } else { drill };
            let outcome = if outcome.is_empty() { "in progress" } else { outcome };
            println!("    {run}  {drill}  {outcome}");
        }
    }
    for plan in &overview.scheduled {
        println!("scheduled  {}  {} — next {}", plan.plan, plan.title, plan.next_local);
    }
    Ok(())
}

/// `firedrill note`.
pub fn note(remote: &Remote, id: String, by: String, text: String, question: Option<u32>) -> Result<(), Failure> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::Failed(e.into()))?;
    runtime.block_on(async {
        let mut client = Client::connect(remote).await?;
        let request = client.request(NoteRequest { id, by, text, question: question.unwrap_or(0) });
        let id = client.inner.note(request).await.map_err(|s| failure(&s))?.into_inner().id;
        println!("noted in game day {id}");
        Ok(())
    })
}

/// The journal directory of game days under a daemon's data directory.
pub(super) fn journals(data: &Path) -> PathBuf {
    data.join("gamedays")
}
