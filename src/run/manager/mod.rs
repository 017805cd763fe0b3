//! The daemon's runs: starting drills by name, routing responders' commands, status, the kill
//! switch, writing scorecards, and closing runs a crash left open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod blind;
mod metrics;
pub mod page;
mod status;

use blind::Armed;
pub use blind::blind_pick;
pub use metrics::traffic_sli_promql;
pub use status::{RunDetails, RunView};

use super::armed;
use crate::drill::{self, Environment};
use crate::fault::Proxies;
use crate::fault::kill::Killers;
use crate::journal::{Journal, JournalError};
use crate::run::runner::{self, Command, RunLog, RunSpec};
use crate::scorecard::store;

/// How many commands may wait for a run at once.
const COMMAND_QUEUE: usize = 32;

/// Where a daemon finds drills and keeps journals and scorecards.
#[derive(Debug, Clone)]
pub struct RunDirs {
    /// Drill files, looked up by file stem or `drill.name`.
    pub drills: PathBuf,
    /// Journals go to `<data>/runs/<run-id>.jsonl`.
    pub data: PathBuf,
    /// Scorecards go to `<scorecards>/<team>/<run-id>.json`.
    pub scorecards: PathBuf,
}

/// What the kill switch did.
#[derive(Debug, Default)]
pub struct Aborted {
    /// The runs it aborted.
    pub runs: Vec<String>,
    /// Blind drills it disarmed before they started.
    pub disarmed: usize,
}

/// Why a request about runs failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No drill of that name.
    #[error("no drill `{0}` in the drill directory; `firedrill validate` lists the drills it finds")]
    NoDrill(String),
    /// The drill file is invalid.
    #[error("the drill is invalid:\n{0}")]
    BadDrill(String),
    /// Blind mode found nothing it could start.
    #[error(
        "no drill in the drill directory can run blind: it needs one with at least one fault that this \
         environment can run (`firedrill validate` checks them)"
    )]
    NoBlindDrill,
    /// No run with that id.
    #[error("no run `{0}`")]
    NoRun(String),
    /// No run id given and not exactly one run in progress.
    #[error("{0}; pass --run ID")]
    Ambiguous(String),
    /// The run already ended.
    #[error("run `{0}` has ended")]
    Ended(String),
    /// The journal could not be written.
    #[error(transparent)]
    Run(#[from] runner::RunError),
    /// The proxies could not be listed.
    #[error("cannot list the proxies: {0}")]
    Proxies(String),
    /// A blind drill could not be written down, so a restart would lose it.
    #[error("cannot arm the blind drill: {0} (check that the data directory is writable)")]
    Arm(String),
    /// The run refused the command (nothing counts before the fault, …).
    #[error(transparent)]
    Refused(#[from] runner::Refusal),
    /// Another run's faults touch what this drill's faults would.
    #[error(
        "run `{run}` is in progress on {what}: two runs there would undo or claim each other's faults; \
         wait for it to end or `firedrill abort --run {run}`"
    )]
    Conflict {
        /// The other run.
        run: String,
        /// What both would touch.
        what: String,
    },
}

/// Where an act goes: a run, or the blind drill armed and not started yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A run in progress (or the one named).
    Run(String),
    /// The one blind drill armed while no run is in progress.
    Armed,
}

/// What a drill's faults touch, in words: two runs that touch one of the same may not overlap.
/// Proxies by name, local services by name; Docker containers and Kubernetes pods (per
/// namespace) as a whole, since two selectors may match the same ones.
fn touches(drill: &crate::drill::Drill) -> Vec<String> {
    use crate::drill::{FaultAction, Selector};
    let mut out: Vec<String> = drill
        .faults
        .iter()
        .filter_map(|fault| match &fault.action {
            FaultAction::Toxic { proxy, .. } => Some(format!("proxy `{proxy}`")),
            FaultAction::Kill(plan) => Some(match &plan.selector {
                Selector::Process { service } => format!("local service `{service}`"),
                Selector::Docker { .. } => "Docker containers".to_owned(),
                Selector::Kubernetes { namespace, .. } => format!("Kubernetes namespace `{namespace}`"),
            }),
            FaultAction::Spike { .. } => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

struct Entry {
    /// The drill and the team, known before the run has journaled anything.
    drill: String,
    team: String,
    /// Started by blind mode: status and watch keep it sealed (see [`RunView::sealed`]).
    blind: bool,
    /// What its faults touch ([`touches`]).
    touches: Vec<String>,
    /// When its first fault is due, ms from its start.
    fault_due_ms: Option<u64>,
    commands: mpsc::Sender<Command>,
    log: Arc<RunLog>,
    started: Instant,
    /// Becomes `Some` when the run ended: its scorecard file, or why it could not be written.
    finished: watch::Receiver<Option<Result<PathBuf, String>>>,
}

/// The runs of one daemon.
pub struct Manager {
    /// Where faults go.
    proxies: Proxies,
    /// Where kill faults go.
    kills: Killers,
    dirs: RunDirs,
    runs: Mutex<BTreeMap<String, Entry>>,
    /// Blind drills not started yet, by arming number.
    armed: Mutex<BTreeMap<u64, Armed>>,
    /// Ends every run as interrupted when the daemon stops.
    shutdown: CancellationToken,
    /// Run tasks, so the daemon can wait for their cleanup before it exits.
    tracker: TaskTracker,
    counter: AtomicU64,
    /// Each drill's synthetic traffic, across this daemon's runs (not blind ones), for `/metrics`.
    sli_totals: Mutex<BTreeMap<String, Arc<crate::run::sli::Counts>>>,
    /// Counts every change a viewer could see: a record of any run, a blind drill armed or gone.
    changes: watch::Sender<u64>,
}

impl Manager {
    /// A manager whose drills act on `proxies` and, for kills, through `kills`.
    pub fn new(proxies: Proxies, kills: Killers, dirs: RunDirs) -> Arc<Self> {
        Arc::new(Self {
            proxies,
            kills,
            dirs,
            runs: Mutex::default(),
            armed: Mutex::default(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            counter: AtomicU64::new(0),
            sli_totals: Mutex::default(),
            changes: watch::channel(0).0,
        })
    }

    /// Told of every change a viewer could see (a record of any run, a blind drill armed or
    /// disarmed): wait on it, then look at [`Manager::status`]. It carries no detail, so it
    /// says nothing a sealed view would not.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(super) fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Creates each proxy of `configs` the daemon does not have yet; returns the names created.
    pub async fn ensure_proxies(
        &self,
        configs: Vec<crate::proxy::config::ProxyConfig>,
    ) -> Result<Vec<String>, ManagerError> {
        self.proxies.ensure(configs).await.map_err(|e| ManagerError::Proxies(e.describe()))
    }

    /// The local services' supervisor (`firedrill up`).
    pub fn supervisor(&self) -> &Arc<crate::supervise::Supervisor> {
        self.kills.supervisor()
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The journal of an ended run, by id: `None` if there is no such run or it has not ended
    /// (a run in progress is seen through [`Manager::status`], which keeps blind drills sealed).
    pub fn ended_journal(&self, run_id: &str) -> Option<Vec<crate::journal::Record>> {
        if !crate::is_plain_name(run_id) {
            return None;
        }
        let records = crate::journal::read(&self.journal_dir().join(format!("{run_id}.jsonl"))).ok()?;
        matches!(records.last()?.event, crate::journal::event::Event::Ended { .. }).then_some(records)
    }

    fn journal_dir(&self) -> PathBuf {
        self.dirs.data.join("runs")
    }

    fn armed_dir(&self) -> PathBuf {
        self.dirs.data.join("armed")
    }

    /// Closes every journal a crash left open (removing its faults) and writes its scorecard.
    /// Returns the ids of the runs it closed.
    pub async fn recover(&self) -> Vec<String> {
        let mut closed = Vec::new();
        for path in super::files_with_extension(&self.journal_dir(), "jsonl") {
            match runner::recover(&path, &self.proxies, &self.kills).await {
                Ok(Some(card)) => {
                    if let Err(err) = store::write(&self.dirs.scorecards, &card) {
                        tracing::error!(%err, run = card.run_id, "could not write the scorecard of a recovered run");
                    }
                    tracing::warn!(run = card.run_id, "closed a run interrupted by a crash; its faults were removed");
                    closed.push(card.run_id);
                }
                Ok(None) => {}
                Err(err) => tracing::error!(%err, path = %path.display(), "could not recover a journal"),
            }
        }
        closed
    }

    fn find_drill(&self, name: &str) -> Result<PathBuf, ManagerError> {
        // A name, never a path: nothing outside the drill directory is read.
        if !crate::is_plain_name(name) {
            return Err(ManagerError::NoDrill(name.to_owned()));
        }
        let direct = self.dirs.drills.join(format!("{name}.toml"));
        if direct.is_file() {
            return Ok(direct);
        }
        let entries = std::fs::read_dir(&self.dirs.drills).map_err(|_| ManagerError::NoDrill(name.to_owned()))?;
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            if let Ok(table) = text.parse::<toml::Table>()
                && table.get("drill").and_then(|d| d.get("name")).and_then(toml::Value::as_str) == Some(name)
            {
                return Ok(path);
            }
        }
        Err(ManagerError::NoDrill(name.to_owned()))
    }

    fn armed(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Armed>> {
        self.armed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What drills are checked against: this daemon's proxies.
    async fn environment(&self) -> Result<Environment, ManagerError> {
        Ok(Environment {
            proxies: self.proxies.names().await.map_err(|e| ManagerError::Proxies(e.describe()))?,
            http: self.proxies.http_names().await,
            external: matches!(self.proxies, crate::fault::Proxies::External(_)),
        })
    }

    /// Every drill file in the drill directory, by name, loaded against this daemon's
    /// environment: the drill, or why it does not load here.
    pub async fn catalogue(&self) -> Vec<(String, Result<crate::drill::Drill, String>)> {
        let environment = self.environment().await;
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dirs.drills)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        paths.retain(|p| p.extension().is_some_and(|x| x == "toml"));
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let loaded = match &environment {
                    Ok(environment) => drill::load(&path, environment)
                        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
                    Err(e) => Err(e.to_string()),
                };
                let name = loaded.as_ref().map_or(stem, |d| d.name.clone());
                (name, loaded)
            })
            .collect()
    }

    /// Where this daemon writes scorecards.
    pub fn scorecards_dir(&self) -> &Path {
        &self.dirs.scorecards
    }

    /// What `run` would do with `drill` now, touching nothing: the drill found and checked as
    /// `start` finds and checks it, each fault with what it would touch (see [`super::dry`]).
    pub async fn dry_run(&self, drill: &str, seed: Option<u64>) -> Result<String, ManagerError> {
        let path = self.find_drill(drill)?;
        let environment = self.environment().await?;
        let drill = drill::load(&path, &environment).map_err(|errors| {
            ManagerError::BadDrill(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        })?;
        self.check_overlap(&touches(&drill))?;
        let addresses = self.proxies.addresses().await.map_err(|e| ManagerError::Proxies(e.describe()))?;
        super::dry::describe(&drill, &path, &addresses, &self.kills, seed)
            .await
            .map_err(|e| ManagerError::BadDrill(format!("{}: {e}", path.display())))
    }

    /// Starts `drill` for `team`; returns the run id.
    pub async fn start(
        self: &Arc<Self>,
        drill: &str,
        team: &str,
        responder: Option<String>,
        seed: Option<u64>,
    ) -> Result<String, ManagerError> {
        self.start_run(drill, team, responder, seed, None, false).await
    }

    /// Starts `drill` sealed, as a blind drill runs: status and watch name neither the drill nor
    /// its faults until it ends (a game day's blind pick, drawn by the caller).
    pub async fn start_sealed(
        self: &Arc<Self>,
        drill: &str,
        team: &str,
        responder: Option<String>,
        seed: Option<u64>,
    ) -> Result<String, ManagerError> {
        self.start_run(drill, team, responder, seed, None, true).await
    }

    async fn start_run(
        self: &Arc<Self>,
        drill: &str,
        team: &str,
        responder: Option<String>,
        seed: Option<u64>,
        armed: Option<u64>,
        blind: bool,
    ) -> Result<String, ManagerError> {
        let path = self.find_drill(drill)?;
        let environment = self.environment().await?;
        let drill = drill::load(&path, &environment).map_err(|errors| {
            ManagerError::BadDrill(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        })?;
        let touched = touches(&drill);
        self.check_overlap(&touched)?;
        // Kill faults are checked against what exists now, before anything is touched.
        for (index, fault) in drill.faults.iter().enumerate() {
            if let crate::drill::FaultAction::Kill(plan) = &fault.action {
                self.kills
                    .choose(plan, &drill.kill_selectors(), &std::collections::BTreeSet::new(), 0)
                    .await
                    .map_err(|e| ManagerError::BadDrill(format!("{}: fault {index}: {e}", path.display())))?;
            }
        }
        let wall = crate::clock::wall_ms() / 1000;
        // A daemon restarted within the same second counts from 1 again: skip ids already taken.
        let (run_id, journal) = loop {
            // A blind run's id must not name its drill: responders see it in messages.
            let prefix = if blind { "blind" } else { drill.name.as_str() };
            let run_id = format!("{prefix}-{wall}-{}", self.counter.fetch_add(1, Ordering::Relaxed) + 1);
            match Journal::create(&self.journal_dir().join(format!("{run_id}.jsonl"))) {
                Err(JournalError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                other => break (run_id, other.map_err(runner::RunError::from)?),
            }
        };
        let seed = seed.unwrap_or_else(rand::random);
        let armed_acks =
            armed.and_then(|n| self.armed().get_mut(&n).map(|a| std::mem::take(&mut a.acks))).unwrap_or_default();
        let fault_due_ms = drill.first_fault_due().map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        // A blind run's traffic would name its drill on `/metrics` while it is sealed.
        let sli_totals = (!blind && drill.traffic.is_some()).then(|| {
            let mut totals = self.sli_totals.lock().unwrap_or_else(PoisonError::into_inner);
            totals.entry(drill.name.clone()).or_default().clone()
        });
        let spec = RunSpec {
            run_id: run_id.clone(),
            drill,
            team: team.to_owned(),
            responder,
            seed,
            blind,
            armed_acks,
            sli_totals,
        };
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let log = Arc::new(RunLog::counting(self.changes.clone()));
        let (finished_tx, finished) = watch::channel(None);
        let entry = Entry {
            drill: spec.drill.name.clone(),
            team: spec.team.clone(),
            blind,
            touches: touched,
            fault_due_ms,
            commands,
            log: log.clone(),
            started: Instant::now(),
            finished,
        };
        {
            // Locks in status's order (runs, then armed): a blind drill is never listed twice.
            let mut runs = self.runs();
            // Checked again under the lock: two starts at once must not both pass.
            if let Some((run, what)) = overlap(&runs, &entry.touches) {
                drop(runs);
                let _ = std::fs::remove_file(self.journal_dir().join(format!("{run_id}.jsonl")));
                return Err(ManagerError::Conflict { run, what });
            }
            runs.insert(run_id.clone(), entry);
            // Its journal carries it from here: a crash no longer needs the armed file.
            if let Some(blind) = armed.and_then(|number| self.armed().remove(&number)) {
                armed::remove(&blind.file);
            }
        }
        let manager = self.clone();
        self.tracker.spawn(async move {
            let result =
                runner::run(&spec, &manager.proxies, &manager.kills, journal, rx, manager.shutdown.child_token(), log)
                    .await;
            let outcome = match result {
                Ok(card) => store::write(&manager.dirs.scorecards, &card)
                    .map_err(|e| format!("cannot write the scorecard: {e}")),
                Err(err) => Err(err.to_string()),
            };
            if let Err(err) = &outcome {
                tracing::error!(run = spec.run_id, %err, "run failed");
            }
            finished_tx.send_replace(Some(outcome));
        });
        // Wait until the run has journaled its start, so status and commands see it at once.
        let mut live = self.log(&run_id)?.subscribe();
        if self.log(&run_id)?.records().is_empty() {
            let _ = live.recv().await;
        }
        Ok(run_id)
    }

    /// Refuses a drill whose faults touch what a run in progress touches.
    fn check_overlap(&self, touched: &[String]) -> Result<(), ManagerError> {
        match overlap(&self.runs(), touched) {
            Some((run, what)) => Err(ManagerError::Conflict { run, what }),
            None => Ok(()),
        }
    }

    /// Where an act goes: the run named, the one run in progress, or — with no run in progress
    /// and no id given — the blind drill armed and waiting, so that a blind drill answers the
    /// same armed as running.
    pub fn route(&self, run_id: &str) -> Result<Route, ManagerError> {
        match self.resolve_id(run_id) {
            Ok(id) => Ok(Route::Run(id)),
            Err(ManagerError::Ambiguous(_))
                if run_id.is_empty()
                    && self.armed().values().any(Armed::waiting)
                    && !self.runs().values().any(|e| e.finished.borrow().is_none()) =>
            {
                Ok(Route::Armed)
            }
            Err(err) => Err(err),
        }
    }

    /// Resolves an optional run id: empty means the one run in progress.
    pub fn resolve_id(&self, run_id: &str) -> Result<String, ManagerError> {
        let runs = self.runs();
        if !run_id.is_empty() {
            return if runs.contains_key(run_id) {
                Ok(run_id.to_owned())
            } else {
                Err(ManagerError::NoRun(run_id.to_owned()))
            };
        }
        let active: Vec<&String> =
            runs.iter().filter(|(_, e)| e.finished.borrow().is_none()).map(|(id, _)| id).collect();
        match active.as_slice() {
            [one] => Ok((*one).clone()),
            [] if self.armed().values().any(Armed::waiting) => Err(ManagerError::Ambiguous(
                "no drill is running yet (a blind drill is armed: act when you notice symptoms)".into(),
            )),
            [] => Err(ManagerError::Ambiguous("no run is in progress".into())),
            many => Err(ManagerError::Ambiguous(format!(
                "{} runs are in progress ({})",
                many.len(),
                many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The shared log of a run.
    pub fn log(&self, run_id: &str) -> Result<Arc<RunLog>, ManagerError> {
        self.runs().get(run_id).map(|e| e.log.clone()).ok_or_else(|| ManagerError::NoRun(run_id.to_owned()))
    }

    async fn send(&self, run_id: &str, command: Command) -> Result<(), ManagerError> {
        let sender = self
            .runs()
            .get(run_id)
            .map(|e| e.commands.clone())
            .ok_or_else(|| ManagerError::NoRun(run_id.to_owned()))?;
        sender.send(command).await.map_err(|_| ManagerError::Ended(run_id.to_owned()))
    }

    /// Hands an Alertmanager alert to every run in progress (each decides whether it expected it)
    /// and waits until each has handled it. Returns how many runs recorded it.
    pub async fn alert(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        starts_at: &str,
        fingerprint: &str,
    ) -> usize {
        let senders: Vec<mpsc::Sender<Command>> =
            self.runs().values().filter(|e| e.finished.borrow().is_none()).map(|e| e.commands.clone()).collect();
        let mut recorded = 0;
        for sender in senders {
            let (reply, answer) = oneshot::channel();
            let command = Command::Alert {
                name: name.to_owned(),
                labels: labels.clone(),
                starts_at: starts_at.to_owned(),
                fingerprint: fingerprint.to_owned(),
                reply,
            };
            // A run that ended meanwhile has nothing to record it in.
            if sender.send(command).await.is_ok() && answer.await.unwrap_or(false) {
                recorded += 1;
            }
        }
        recorded
    }

    /// Acknowledges on behalf of `by`; true if it counted as detection (false: before the
    /// fault went in, a false alarm).
    pub async fn ack(&self, run_id: &str, by: String) -> Result<bool, ManagerError> {
        let (reply, recorded) = oneshot::channel();
        self.send(run_id, Command::Ack { by, reply }).await?;
        recorded.await.map_err(|_| ManagerError::Ended(run_id.to_owned()))
    }

    /// Sends a command that answers, and waits for the answer.
    async fn ask<R>(
        &self,
        run_id: &str,
        command: impl FnOnce(oneshot::Sender<Result<R, runner::Refusal>>) -> Command,
    ) -> Result<R, ManagerError> {
        let (reply, answer) = oneshot::channel();
        self.send(run_id, command(reply)).await?;
        Ok(answer.await.map_err(|_| ManagerError::Ended(run_id.to_owned()))??)
    }

    /// Submits a diagnosis; true if it matched the answer key.
    pub async fn diagnose(&self, run_id: &str, by: String, text: String) -> Result<bool, ManagerError> {
        self.ask(run_id, |reply| Command::Diagnose { by, text, reply }).await
    }

    /// Reveals the next hint, if any is left.
    pub async fn hint(&self, run_id: &str, by: String) -> Result<Option<String>, ManagerError> {
        self.ask(run_id, |reply| Command::Hint { by, reply }).await
    }

    /// Declares the impact mitigated with the fault still in; answers once the steady state
    /// confirms it (the mitigation's time from t0) or it could not.
    pub async fn mitigate(&self, run_id: &str, by: String) -> Result<u64, ManagerError> {
        self.ask(run_id, |reply| Command::Mitigate { by, reply }).await
    }

    /// Declares the run resolved and waits until it has ended.
    pub async fn resolve(&self, run_id: &str, by: String) -> Result<(), ManagerError> {
        self.ask(run_id, |reply| Command::Resolve { by, reply }).await?;
        self.wait_finished(run_id).await;
        Ok(())
    }

    /// Aborts one run and waits until its faults are out.
    pub async fn abort(&self, run_id: &str, by: String) -> Result<(), ManagerError> {
        self.send(run_id, Command::Abort { by }).await?;
        self.wait_finished(run_id).await;
        Ok(())
    }

    /// The kill switch: disarms every blind drill not started yet and aborts every run in
    /// progress.
    pub async fn abort_all(&self, by: &str) -> Aborted {
        let disarmed = self.disarm();
        let active: Vec<String> =
            self.runs().iter().filter(|(_, e)| e.finished.borrow().is_none()).map(|(id, _)| id.clone()).collect();
        let mut aborted = Vec::new();
        for id in active {
            if self.abort(&id, by.to_owned()).await.is_ok() {
                aborted.push(id);
            }
        }
        Aborted { runs: aborted, disarmed }
    }

    /// Whether a blind drill is armed or in progress: `watch` then stays sealed.
    pub fn blind_pending(&self) -> bool {
        let armed = self.armed().values().any(Armed::waiting);
        armed || self.runs().values().any(|e| e.blind && e.finished.borrow().is_none())
    }

    /// Waits until a run has ended and its scorecard is written.
    pub async fn wait_finished(&self, run_id: &str) {
        let finished = self.runs().get(run_id).map(|e| e.finished.clone());
        if let Some(mut finished) = finished {
            let _ = finished.wait_for(Option::is_some).await;
        }
    }

    /// Completes when the daemon begins to stop (for streams that would otherwise never end).
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.shutdown.clone().cancelled_owned()
    }

    /// Stops every run (as interrupted) and waits for their cleanup.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Where drills are looked up.
    pub fn drills_dir(&self) -> &Path {
        &self.dirs.drills
    }
}

/// The first run in progress whose faults touch one of `touched`: its id and what.
fn overlap(runs: &BTreeMap<String, Entry>, touched: &[String]) -> Option<(String, String)> {
    runs.iter()
        .filter(|(_, e)| e.finished.borrow().is_none())
        .find_map(|(id, e)| e.touches.iter().find(|t| touched.contains(t)).map(|t| (id.clone(), t.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn blind_draws_are_seeded_and_within_bounds() {
        let within = Duration::from_secs(30 * 60);
        assert_eq!(blind_pick(8, 42, within), blind_pick(8, 42, within));
        let draws: std::collections::BTreeSet<usize> =
            (0..200).filter_map(|s| blind_pick(8, s, within)).map(|d| d.0).collect();
        assert_eq!(draws.len(), 8, "every drill can be drawn");
        assert!((0..200).filter_map(|s| blind_pick(8, s, within)).all(|(_, d)| d < within));
        assert_eq!(blind_pick(0, 1, within), None);
    }
}
