//! The command tree (clap derive: the doc comments are the help text) and exit codes.

use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::serve::{Daemon, ServeError, ServeOptions};

pub mod demo;
pub mod gameday;
pub mod remote;
pub mod report;
pub mod rules;
pub mod validate;

/// Fire drills for dev and QA environments: inject faults, time the response, keep scorecards.
#[derive(Debug, Parser)]
#[command(name = "firedrill", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether this runs a service of the example shop (which logs JSON on stdout).
    pub fn is_shop(&self) -> bool {
        matches!(self.command, Command::Shop { .. })
    }

    /// Whether this serves connections (the daemon, the demo, a shop service) rather than
    /// printing a result and exiting.
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Serve(_) | Command::Demo { .. } | Command::Shop { .. })
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy daemon: the Toxiproxy-compatible admin API and the proxies in each `PROXY_FILE`.
    Serve(ServeArgs),
    /// Start a drill on the daemon (or, with --dry-run, show what it would touch).
    Run {
        /// The drill: a name from the daemon's drill directory (omit with --blind).
        #[arg(required_unless_present = "blind", default_value = "")]
        drill: String,
        /// Blind practice: a random drill from the daemon's drill directory starts at a random
        /// moment within --within; you are told neither which nor when.
        #[arg(long, requires = "within", conflicts_with = "dry_run")]
        blind: bool,
        /// With --blind: the span the start is drawn from, such as 30m.
        #[arg(long, value_parser = parse_duration)]
        within: Option<std::time::Duration>,
        /// The team practising.
        #[arg(long)]
        team: String,
        /// Who is starting it.
        #[arg(long, env = "FIREDRILL_RESPONDER")]
        responder: Option<String>,
        /// Seed for the run's random draws.
        #[arg(long)]
        seed: Option<u64>,
        /// Ask the daemon what the run would touch now — every fault with its proxy, toxic and
        /// timing, the targets each kill would choose from — and touch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Where the daemon is.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Acknowledge the incident (human detection).
    Ack(Act),
    /// Submit a diagnosis: what is wrong, in a few words.
    Diagnose {
        /// The diagnosis.
        text: String,
        /// The run and the responder.
        #[command(flatten)]
        act: Act,
    },
    /// Reveal the next hint.
    Hint(Act),
    /// Declare the impact mitigated with the fault still in (a fallback, a rollback, more
    /// replicas): waits until the steady state confirms it.
    Mitigate(Act),
    /// Declare the incident resolved: the run ends and its faults come out.
    Resolve(Act),
    /// End a run now, removing its faults; --all is the kill switch for every run.
    Abort {
        /// Abort every run in progress.
        #[arg(long)]
        all: bool,
        /// The run and the responder.
        #[command(flatten)]
        act: Act,
    },
    /// Show runs: phases against targets, outcome.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// One run (default: all).
        #[arg(long = "run", value_name = "ID", default_value = "")]
        run_id: String,
        /// Where the daemon is.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Follow a run's events as they happen, until it ends.
    Watch {
        /// The run (default: the one in progress).
        #[arg(long = "run", value_name = "ID", default_value = "")]
        run_id: String,
        /// Where the daemon is.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Recompute a run's scorecard from its journal (a `.jsonl` file) and print it as JSON.
    Replay {
        /// The journal.
        #[arg(value_name = "JOURNAL")]
        journal: PathBuf,
    },
    /// Game days: plans with roles, a schedule and a sequence of drills (list, show, calendar),
    /// and the daemon's game days (start, status, end).
    Gameday {
        /// What to do.
        #[command(subcommand)]
        command: gameday::GamedayCommand,
    },
    /// Take a note, or answer a debrief question, in the game day's journal (the one in
    /// progress, else the latest); `firedrill report --gameday ID` shows them.
    Note {
        /// The note.
        text: String,
        /// The debrief question it answers (1-based, as `firedrill gameday show` numbers them).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        question: Option<u32>,
        /// The game day (default: the one in progress, else the latest).
        #[arg(long = "gameday", value_name = "ID", default_value = "")]
        id: String,
        /// Who writes it (default: your login name).
        #[arg(long = "as", value_name = "NAME", env = "FIREDRILL_RESPONDER")]
        by: Option<String>,
        /// Where the daemon is.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Report on scorecards over time: per team, drill and phase, against the targets; or one
    /// game day's write-up (--gameday), or one person's practice (--responder).
    Report {
        /// One game day's write-up: every run, the timeline, phase results, budget impact and
        /// the debrief's notes (Markdown, or --format html).
        #[arg(long, value_name = "ID", conflicts_with_all = ["responder", "team", "drill"])]
        gameday: Option<String>,
        /// One person's practice: runs, phases they drove, medians against targets, drills never
        /// practised.
        #[arg(long, value_name = "NAME", conflicts_with_all = ["team", "drill"])]
        responder: Option<String>,
        /// The daemon's data directory, where game-day journals are (with --gameday).
        #[arg(long, default_value = ".firedrill")]
        data_dir: PathBuf,
        /// Only this team.
        #[arg(long)]
        team: Option<String>,
        /// Only this drill.
        #[arg(long)]
        drill: Option<String>,
        /// Only runs started within this span, such as 90d.
        #[arg(long, default_value = "90d")]
        since: String,
        /// Drills not practised within this span are reported as stale.
        #[arg(long, default_value = "30d")]
        stale: String,
        /// The drill catalogue, for coverage (drills and fault kinds never practised).
        #[arg(long, default_value = "drills")]
        drills: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where the scorecards are.
        #[arg(long, default_value = "scorecards")]
        scorecards: PathBuf,
    },
    /// READY or NOT READY: a readiness policy applied to a team's scorecards (exit 0 or 1).
    Readiness {
        /// The team.
        #[arg(long)]
        team: String,
        /// A policy file (TOML); default: every drill in --drills run twice in 60 days, the last
        /// two runs of each meeting every phase target.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Also write the verdict as JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// The team file with its on-call rotation (`[team]` `on_call = [...]`), for a policy's
        /// `every_on_call_practised_within` (default: `teams/TEAM.toml` when it exists).
        #[arg(long)]
        team_file: Option<PathBuf>,
        /// Where the drills are (the required set when the policy names none).
        #[arg(long, default_value = "drills")]
        drills: PathBuf,
        /// Where the scorecards are.
        #[arg(long, default_value = "scorecards")]
        scorecards: PathBuf,
    },
    /// Check drill files (`.toml`) and proxy files (`.json`), or every such file in a directory.
    /// Drills are checked against the proxies of the proxy files given (or of `proxies/`).
    /// Exits 2 if anything is wrong.
    Validate {
        /// Files or directories to check.
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
    /// Start and supervise the local services an environment file declares (replicas, health
    /// checks, restart with backoff), so kill faults can choose among them.
    Up {
        /// The environment file (TOML with `[[services]]`).
        env_file: PathBuf,
        /// Wait this long for every replica to be healthy (0s: do not wait); exit 1 if not.
        #[arg(long, value_parser = parse_duration, default_value = "30s")]
        wait: std::time::Duration,
        /// Where the daemon is.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List the supervised replicas: state, pid, restarts, last exit.
    Ps {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Where the daemon is.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Error-budget arithmetic: budgets, burn rates, and when the burn-rate rules fire.
    Slo {
        /// What to compute.
        #[command(subcommand)]
        command: SloCommand,
    },
    /// A practice drill on the example shop, end to end: the daemon, the shop, synthetic traffic
    /// and a drill; interactive, or `--auto` with a scripted responder (under a minute).
    Demo {
        /// Play a scripted responder, print the scorecard and stop.
        #[arg(long)]
        auto: bool,
        /// The drill (default: partner-503-burst with --auto, a random one otherwise).
        #[arg(long)]
        drill: Option<String>,
        /// Seed of the run's draws (and of the random drill choice).
        #[arg(long)]
        seed: Option<u64>,
        /// Run the shop and its proxies on ports the system has free instead of 18080,
        /// 18091-18093 and 19091-19093 (the drills' URLs and levers move with them).
        #[arg(long)]
        free_ports: bool,
    },
    /// Run one service of the example shop (what `firedrill up examples/shop/shop.toml` and
    /// `firedrill demo` start).
    #[command(hide = true)]
    Shop {
        /// The service.
        #[command(subcommand)]
        service: crate::shop::Service,
    },
    /// Stop every supervised service.
    Down {
        /// Where the daemon is.
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// `firedrill slo ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SloCommand {
    /// The budget in events, how long it lasts at each error ratio, and when each of the
    /// Workbook's multi-window burn-rate rules fires (or why it never does).
    Budget {
        /// The objective in percent, e.g. 99.9.
        #[arg(long)]
        objective: f64,
        /// The period, e.g. 30d.
        #[arg(long, value_parser = parse_duration, default_value = "30d")]
        period: std::time::Duration,
        /// Requests per second (production traffic).
        #[arg(long)]
        rps: f64,
        /// Error ratios to look at, in [0, 1] (repeatable; default 1.0 and 0.01).
        #[arg(long = "error-ratio")]
        error_ratios: Vec<f64>,
        /// Bad events a rule's long window needs before it may fire (low traffic).
        #[arg(long, default_value_t = 0)]
        min_bad: u64,
        /// JSON with stable field names (see the README).
        #[arg(long)]
        json: bool,
    },
    /// Each drill's SLO as a Prometheus rule file: recording rules for the error ratio over
    /// every window, and the Workbook's multi-window burn-rate alerts with the drill's objective
    /// and minimum-events guard (check it with `promtool check rules`).
    Rules {
        /// The drills (default: every drill of --drills).
        #[arg(value_name = "DRILL")]
        names: Vec<String>,
        /// Where drills are looked up by name.
        #[arg(long, default_value = "drills")]
        drills: PathBuf,
        /// The proxy files the drills run against (default: proxies/*.json).
        #[arg(long = "proxies", value_name = "FILE")]
        proxies: Vec<PathBuf>,
        /// Write the rule file here instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

fn slo_budget(
    objective: f64,
    period: std::time::Duration,
    rps: f64,
    ratios: Vec<f64>,
    min_bad: u64,
    json: bool,
) -> Result<(), Failure> {
    let Some(objective) = crate::slo::Objective::new(objective, period) else {
        return Err(Failure::BadInput(anyhow::anyhow!(
            "--objective must be between 0 and 100 (exclusive) and --period longer than 0, got {objective} over {}",
            crate::duration::format(period)
        )));
    };
    if !(rps.is_finite() && rps > 0.0) {
        return Err(Failure::BadInput(anyhow::anyhow!("--rps must be a positive number, got {rps}")));
    }
    let ratios = if ratios.is_empty() { vec![1.0, 0.01] } else { ratios };
    if let Some(bad) = ratios.iter().find(|r| !(0.0..=1.0).contains(*r)) {
        return Err(Failure::BadInput(anyhow::anyhow!("--error-ratio must be between 0 and 1, got {bad}")));
    }
    let rules = crate::slo::default_rules(objective.period, min_bad);
    let report = crate::slo::budget_report(&objective, rps, &ratios, &rules);
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Failure::Failed(e.into()))?);
    } else {
        print!("{}", crate::slo::render(&report));
    }
    Ok(())
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(text)
}

/// What `firedrill serve` takes.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the admin API. Anything but loopback requires --token.
    #[arg(long, default_value = "127.0.0.1:8474", env = "FIREDRILL_API")]
    pub api: SocketAddr,
    /// Bearer token the admin API requires (required when --api is not loopback).
    #[arg(long, env = "FIREDRILL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seed for toxicity and jitter draws, for repeatable runs.
    #[arg(long, env = "FIREDRILL_SEED")]
    pub seed: Option<u64>,
    /// Address of the gRPC control API (runs, acknowledgements, diagnoses, …).
    #[arg(long, default_value = crate::control::DEFAULT_ADDR, env = "FIREDRILL_CONTROL")]
    pub control: SocketAddr,
    /// Where drills are looked up by name.
    #[arg(long, default_value = "drills")]
    pub drills: PathBuf,
    /// Where run journals are kept (`<dir>/runs/<run-id>.jsonl`).
    #[arg(long, default_value = ".firedrill")]
    pub data_dir: PathBuf,
    /// Where scorecards are written (`<dir>/<team>/<run-id>.json`).
    #[arg(long, default_value = "scorecards")]
    pub scorecards: PathBuf,
    /// Where game-day plans are (`gamedays start` takes their names); every plan with a `start`
    /// is scheduled and started on time.
    #[arg(long, default_value = "gamedays")]
    pub gamedays: PathBuf,
    /// Apply drills' faults through this Toxiproxy-compatible API (`host:port`) instead of
    /// this daemon's own proxies.
    #[arg(long, env = "FIREDRILL_TOXIPROXY")]
    pub toxiproxy: Option<String>,
    /// Listen backlog of the proxies and APIs (default: the system's maximum, somaxconn).
    #[arg(long, env = "FIREDRILL_BACKLOG", value_parser = clap::value_parser!(u32).range(1..))]
    pub backlog: Option<u32>,
    /// Most proxied connections open at once across every proxy (default, and at most:
    /// what the descriptor budget fits); a client over it is refused at once.
    #[arg(long, env = "FIREDRILL_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Most proxied connections open at once on any one proxy (default: --max-connections).
    #[arg(long, env = "FIREDRILL_MAX_PROXY_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_proxy_connections: Option<u64>,
    /// A second bearer token that opens `POST /webhooks/alertmanager` and nothing else: give it
    /// to Alertmanager instead of --token (which can also reset every proxy).
    #[arg(long, env = "FIREDRILL_WEBHOOK_TOKEN", hide_env_values = true)]
    pub webhook_token: Option<String>,
    /// Send the built-in burn-rate alerts to this Alertmanager (base URL, repeatable): they
    /// route, page, silence and inhibit like any alert, and resolve when they clear.
    #[arg(long = "alertmanager", value_name = "URL")]
    pub alertmanagers: Vec<String>,
    /// Toxiproxy config files (JSON arrays of {name, listen, upstream, enabled}).
    #[arg(value_name = "PROXY_FILE")]
    pub files: Vec<PathBuf>,
}

impl ServeArgs {
    fn options(self) -> ServeOptions {
        let dirs =
            crate::run::manager::RunDirs { drills: self.drills, data: self.data_dir, scorecards: self.scorecards };
        let caps = crate::proxy::budget::Caps {
            max_connections: self.max_connections.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            max_per_proxy: self.max_proxy_connections.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        };
        ServeOptions {
            api: self.api,
            token: self.token,
            seed: self.seed,
            files: self.files,
            control: self.control,
            dirs,
            toxiproxy: self.toxiproxy,
            backlog: self.backlog,
            caps,
            alertmanagers: self.alertmanagers,
            webhook_token: self.webhook_token,
            gamedays: self.gamedays,
        }
    }
}

/// Formats of `firedrill report`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    /// For a terminal.
    Text,
    /// Markdown tables.
    Markdown,
    /// JSON, for scripts.
    Json,
    /// One self-contained HTML file with SVG charts (works offline).
    Html,
}

/// Where the daemon's control API is.
#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// The daemon's control address.
    #[arg(long, env = "FIREDRILL_ADDR", default_value = crate::control::DEFAULT_ADDR)]
    pub addr: String,
    /// Bearer token, when the daemon requires one.
    #[arg(long, env = "FIREDRILL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl RemoteArgs {
    fn remote(&self) -> remote::Remote {
        remote::Remote { addr: self.addr.clone(), token: self.token.clone() }
    }
}

/// A responder's action on a run.
#[derive(Debug, clap::Args)]
pub struct Act {
    /// The run (default: the one in progress).
    #[arg(long = "run", value_name = "ID", default_value = "")]
    pub run_id: String,
    /// Who is acting (default: your login name).
    #[arg(long = "as", value_name = "NAME", env = "FIREDRILL_RESPONDER")]
    pub by: Option<String>,
    /// Where the daemon is.
    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl Act {
    fn by(&self) -> String {
        self.by
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_else(|| "responder".into())
    }
}

/// Why a command failed, and so which exit code it ends with.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Bad input or usage: exit code 2.
    #[error(transparent)]
    BadInput(anyhow::Error),
    /// The run itself failed: exit code 1.
    #[error(transparent)]
    Failed(anyhow::Error),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::BadInput(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}

/// Runs a parsed command line to completion.
pub fn run(cli: Cli) -> Result<(), Failure> {
    use remote as client;
    let runtime = || tokio::runtime::Runtime::new().map_err(|e| Failure::Failed(e.into()));
    match cli.command {
        Command::Serve(args) => runtime()?.block_on(serve(args.options())),
        Command::Run { drill, blind, within, team, responder, seed, dry_run, remote } => {
            if dry_run {
                return runtime()?.block_on(client::dry_run(&remote.remote(), drill, team, seed));
            }
            let blind = if blind { within } else { None };
            let drill = if blind.is_some() { String::new() } else { drill };
            runtime()?.block_on(client::start(
                &remote.remote(),
                drill,
                team,
                responder.unwrap_or_default(),
                seed,
                blind,
            ))
        }
        Command::Ack(act) => runtime()?.block_on(client::ack(&act.remote.remote(), act.run_id.clone(), act.by())),
        Command::Diagnose { text, act } => {
            runtime()?.block_on(client::diagnose(&act.remote.remote(), act.run_id.clone(), act.by(), text))
        }
        Command::Hint(act) => runtime()?.block_on(client::hint(&act.remote.remote(), act.run_id.clone(), act.by())),
        Command::Mitigate(act) => {
            runtime()?.block_on(client::mitigate(&act.remote.remote(), act.run_id.clone(), act.by()))
        }
        Command::Resolve(act) => {
            runtime()?.block_on(client::resolve(&act.remote.remote(), act.run_id.clone(), act.by()))
        }
        Command::Abort { all, act } => {
            runtime()?.block_on(client::abort(&act.remote.remote(), act.run_id.clone(), act.by(), all))
        }
        Command::Status { json, run_id, remote } => runtime()?.block_on(client::status(&remote.remote(), run_id, json)),
        Command::Watch { run_id, remote } => runtime()?.block_on(client::watch(&remote.remote(), run_id)),
        Command::Validate { paths } => validate::run(&paths),
        Command::Up { env_file, wait, remote } => runtime()?.block_on(client::up(&remote.remote(), &env_file, wait)),
        Command::Slo { command: SloCommand::Budget { objective, period, rps, error_ratios, min_bad, json } } => {
            slo_budget(objective, period, rps, error_ratios, min_bad, json)
        }
        Command::Slo { command: SloCommand::Rules { names, drills, proxies, out } } => {
            rules::run(&names, &drills, &proxies, out.as_deref())
        }
        Command::Demo { auto, drill, seed, free_ports } => {
            demo::run(&demo::DemoOptions { auto, drill, seed, free_ports })
        }
        Command::Shop { service } => {
            runtime()?.block_on(crate::shop::run(service)).context("shop").map_err(Failure::Failed)
        }
        Command::Ps { json, remote } => runtime()?.block_on(client::ps(&remote.remote(), json)),
        Command::Down { remote } => runtime()?.block_on(client::down(&remote.remote())),
        Command::Gameday { command } => gameday::run(command),
        Command::Note { text, question, id, by, remote } => {
            let by = Act { run_id: String::new(), by, remote: RemoteArgs { addr: String::new(), token: None } }.by();
            gameday::note(&remote.remote(), id, by, text, question)
        }
        Command::Report { gameday: Some(id), data_dir, format, out, scorecards, .. } => {
            report::gameday(&gameday::journals(&data_dir), &scorecards, &id, format, out.as_deref())
        }
        Command::Report { responder: Some(name), since, drills, format, out, scorecards, .. } => {
            report::responder(&scorecards, &name, &since, &drills, format, out.as_deref())
        }
        Command::Report { team, drill, since, stale, drills, format, out, scorecards, .. } => {
            let args = crate::scorecard::report::ReportArgs { team, drill, since, stale, drills };
            report::report(&scorecards, args, format, out.as_deref())
        }
        Command::Readiness { team, policy, junit, team_file, drills, scorecards } => {
            let files = report::ReadinessFiles { policy, junit, team_file, drills, scorecards };
            report::readiness(&team, &files)
        }
        Command::Replay { journal } => {
            let records = crate::journal::read(&journal).map_err(|e| Failure::BadInput(e.into()))?;
            let card = crate::scorecard::Scorecard::from_journal(&records)
                .with_context(|| journal.display().to_string())
                .map_err(Failure::BadInput)?;
            let text = serde_json::to_string_pretty(&card).map_err(|e| Failure::Failed(e.into()))?;
            println!("{text}");
            Ok(())
        }
    }
}

impl From<ServeError> for Failure {
    fn from(error: ServeError) -> Self {
        if error.is_bad_input() { Self::BadInput(error.into()) } else { Self::Failed(error.into()) }
    }
}

/// Writes a startup line to stdout, ignoring a closed stdout: a script that read the first line
/// and went away (`firedrill serve | head -1`) must not bring the daemon down with it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `firedrill serve`: start, announce on stdout, serve until Ctrl-C, SIGTERM or SIGHUP.
async fn serve(options: ServeOptions) -> Result<(), Failure> {
    let daemon = Daemon::start(options).await?;
    let proxies = daemon.registry.list().await;
    say!(
        "firedrill: admin API listening on http://{} with {} proxies; control API on {}",
        daemon.api,
        proxies.len(),
        daemon.control
    );
    say!(
        "firedrill: console on http://{api}/ui/ (responders join at http://{api}{}, observers at http://{api}{})",
        daemon.console.responder_link(),
        daemon.console.observer_link(),
        api = daemon.api,
    );
    for proxy in proxies.values() {
        say!("firedrill: proxy {} {} -> {}", proxy.name, proxy.listen, proxy.upstream);
    }
    let (global, per_proxy, descriptors) = crate::proxy::budget::caps();
    say!(
        "firedrill: at most {global} proxied connections at once ({per_proxy} per proxy), {descriptors} descriptors \
         for them; the rest is kept for the APIs"
    );
    for run in &daemon.recovered {
        say!("firedrill: closed run {run}, interrupted by a crash; its faults were removed");
    }
    for team in &daemon.rearmed {
        say!("firedrill: a blind drill for team {team}, armed before this daemon started, is armed again");
    }
    for day in &daemon.closed_gamedays {
        say!("firedrill: closed game day {day}, interrupted by a crash");
    }
    for plan in daemon.gamedays.overview().scheduled {
        say!("firedrill: game day {} ({}) is scheduled; next {}", plan.plan, plan.title, plan.next_local);
    }
    Ok(daemon.run(crate::signal::shutdown_signal()).await?)
}
