//! The runner: applies a drill's faults at their offsets, reveals hints, takes responders'
//! commands, and ends the run — resolved, timed out, aborted or interrupted — always removing
//! every fault it put in. Every event is journaled before it takes effect.
//!
//! Time is tokio time, so tests drive whole timelines with a paused clock.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::event::{Event, Outcome, PhaseMillis};
use super::journal::{self, Journal, JournalError, Record};
use super::verify;
use crate::drill::Drill;
use crate::proxy::Registry;
use crate::proxy::toxic::Toxic;
use crate::scorecard::Scorecard;

/// Where faults go: the daemon's own proxies, or an external Toxiproxy-compatible API.
pub trait FaultTarget: Send + Sync {
    /// Puts `toxic` on `proxy`.
    fn apply(&self, proxy: &str, toxic: &Toxic) -> impl Future<Output = Result<(), String>> + Send;
    /// Takes the toxic named `toxic` off `proxy`; a toxic that is already gone is not an error.
    fn remove(&self, proxy: &str, toxic: &str) -> impl Future<Output = Result<(), String>> + Send;
}

impl FaultTarget for Registry {
    async fn apply(&self, proxy: &str, toxic: &Toxic) -> Result<(), String> {
        self.insert_toxic(proxy, toxic.clone()).await.map(|_| ()).map_err(|e| format!("proxy `{proxy}`: {e}"))
    }

    async fn remove(&self, proxy: &str, toxic: &str) -> Result<(), String> {
        match self.remove_toxic(proxy, toxic).await {
            Ok(()) => Ok(()),
            Err(e) if e.status.as_u16() == 404 => Ok(()),
            Err(e) => Err(format!("proxy `{proxy}`: {e}")),
        }
    }
}

impl<T: FaultTarget> FaultTarget for Arc<T> {
    fn apply(&self, proxy: &str, toxic: &Toxic) -> impl Future<Output = Result<(), String>> + Send {
        self.as_ref().apply(proxy, toxic)
    }

    fn remove(&self, proxy: &str, toxic: &str) -> impl Future<Output = Result<(), String>> + Send {
        self.as_ref().remove(proxy, toxic)
    }
}

/// What a responder (or the facilitator) can ask of a running drill.
#[derive(Debug)]
pub enum Command {
    /// "I see it": human detection.
    Ack {
        /// Who.
        by: String,
    },
    /// A diagnosis; the answer says whether it matched the key.
    Diagnose {
        /// Who.
        by: String,
        /// What they think is wrong.
        text: String,
        /// Receives whether the diagnosis was correct.
        reply: oneshot::Sender<bool>,
    },
    /// Reveal the next hint; the answer is its text, or `None` when none is left.
    Hint {
        /// Who asked.
        by: String,
        /// Receives the hint.
        reply: oneshot::Sender<Option<String>>,
    },
    /// Declare the incident resolved.
    Resolve {
        /// Who.
        by: String,
    },
    /// End the run now and remove its faults.
    Abort {
        /// Who.
        by: String,
    },
}

/// A run to start.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Unique id (also the journal's and scorecard's file name).
    pub run_id: String,
    /// The validated drill.
    pub drill: Drill,
    /// The team practising.
    pub team: String,
    /// Who started it.
    pub responder: Option<String>,
    /// Seed of the run's draws.
    pub seed: u64,
}

/// Why a run could not be carried out at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The journal could not be written: nothing may happen unrecorded.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The journal has no scorecard.
    #[error(transparent)]
    Score(#[from] crate::scorecard::ScoreError),
}

/// What others may see of a run while it happens: its records so far, and each new one.
#[derive(Debug)]
pub struct RunLog {
    records: std::sync::Mutex<Vec<Record>>,
    /// New records, for watchers; lagging watchers re-read [`RunLog::records`].
    live: tokio::sync::broadcast::Sender<Record>,
}

/// How many records a slow watcher may fall behind before it must re-read.
const WATCH_BACKLOG: usize = 256;

impl Default for RunLog {
    fn default() -> Self {
        Self { records: std::sync::Mutex::default(), live: tokio::sync::broadcast::channel(WATCH_BACKLOG).0 }
    }
}

impl RunLog {
    /// The records so far.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Subscribes to new records; pair with [`RunLog::records`] and skip what was already seen.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Record> {
        self.live.subscribe()
    }

    fn push(&self, record: Record) {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(record.clone());
        let _ = self.live.send(record);
    }
}

/// The name a drill's fault has on its proxy: recognisable, and unique per fault index.
pub fn toxic_name(fault: usize, toxic: &Toxic) -> String {
    format!("firedrill_{fault}_{}", toxic.name)
}

/// How long after a resolve the steady state may take to hold for a whole window.
const RESOLVE_VERIFY_GRACE: Duration = Duration::from_secs(60);

/// How a run ends: outcome, reason, and the reason journaled on each fault's removal.
type End = (Outcome, Option<String>, &'static str);

enum Step {
    Apply(usize),
    Remove(usize),
    Hint(usize),
    Timebox,
}

struct Runner<'a, T> {
    spec: &'a RunSpec,
    target: &'a T,
    journal: Journal,
    records: Vec<Record>,
    /// Shared view of the records, for status and watchers.
    log: Arc<RunLog>,
    started: Instant,
    /// Faults applied and not yet removed, by index: (proxy, toxic name).
    active: BTreeMap<usize, (String, String)>,
    hints_shown: Vec<bool>,
}

impl<T: FaultTarget> Runner<'_, T> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn log(&mut self, event: Event) -> Result<(), RunError> {
        let record = self.journal.append(self.now_ms(), event)?;
        self.log.push(record.clone());
        self.records.push(record);
        Ok(())
    }

    /// Applies fault `index`; false if it failed (journaled).
    async fn apply(&mut self, index: usize) -> Result<bool, RunError> {
        let fault = &self.spec.drill.faults[index];
        let mut toxic = fault.toxic.clone();
        toxic.name = toxic_name(index, &fault.toxic);
        let proxy = fault.proxy.clone();
        self.log(Event::FaultApplied {
            fault: index,
            proxy: proxy.clone(),
            toxic: toxic.name.clone(),
            kind: toxic.kind.type_name().to_owned(),
        })?;
        self.active.insert(index, (proxy.clone(), toxic.name.clone()));
        if let Err(error) = self.target.apply(&proxy, &toxic).await {
            tracing::warn!(%error, "fault could not be applied");
            // Not ours to undo: a toxic of that name may belong to someone else.
            self.active.remove(&index);
            self.log(Event::FaultFailed { fault: index, error })?;
            return Ok(false);
        }
        Ok(true)
    }

    async fn remove(&mut self, index: usize, reason: &str) -> Result<(), RunError> {
        if let Some((proxy, toxic)) = self.active.remove(&index) {
            if let Err(error) = self.target.remove(&proxy, &toxic).await {
                tracing::error!(%error, proxy, toxic, "could not remove a fault; remove it by hand");
            }
            self.log(Event::FaultRemoved { fault: index, proxy, toxic, reason: reason.to_owned() })?;
        }
        Ok(())
    }

    async fn end(&mut self, outcome: Outcome, reason: Option<String>, why: &str) -> Result<(), RunError> {
        let indexes: Vec<usize> = self.active.keys().copied().collect();
        for index in indexes {
            self.remove(index, why).await?;
        }
        self.log(Event::Ended { outcome, reason })
    }

    fn reveal(&mut self, index: usize, by: Option<String>) -> Result<String, RunError> {
        self.hints_shown[index] = true;
        let text = self.spec.drill.hints[index].text.clone();
        self.log(Event::Hint { index, text: text.clone(), by })?;
        Ok(text)
    }

    /// Handles a command; `Some` ends the run with that outcome.
    fn command(&mut self, command: Command) -> Result<Option<End>, RunError> {
        match command {
            Command::Ack { by } => self.log(Event::Ack { by })?,
            Command::Diagnose { by, text, reply } => {
                let correct = self.spec.drill.answer.matches(&text);
                self.log(Event::Diagnosis { by, text, correct })?;
                let _ = reply.send(correct);
            }
            Command::Hint { by, reply } => {
                let next = self.hints_shown.iter().position(|shown| !shown);
                let text = match next {
                    Some(index) => Some(self.reveal(index, Some(by))?),
                    None => None,
                };
                let _ = reply.send(text);
            }
            Command::Resolve { by } => {
                self.log(Event::ResolveDeclared { by })?;
                return Ok(Some((Outcome::Resolved, None, "resolved")));
            }
            Command::Abort { by } => return Ok(Some((Outcome::Aborted, Some(format!("aborted by {by}")), "aborted"))),
        }
        Ok(None)
    }
}

/// Runs a drill to its end and returns its scorecard. `shutdown` (the daemon stopping) ends it as
/// interrupted; every path removes the faults the run applied before returning.
pub async fn run<T: FaultTarget>(
    spec: &RunSpec,
    target: &T,
    journal: Journal,
    mut commands: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
    log: Arc<RunLog>,
) -> Result<Scorecard, RunError> {
    let drill = &spec.drill;
    let mut runner = Runner {
        spec,
        target,
        journal,
        records: Vec::new(),
        log,
        started: Instant::now(),
        active: BTreeMap::new(),
        hints_shown: vec![false; drill.hints.len()],
    };
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    runner.log(Event::RunStarted {
        run_id: spec.run_id.clone(),
        drill: drill.name.clone(),
        title: drill.title.clone(),
        briefing: drill.briefing.clone(),
        team: spec.team.clone(),
        responder: spec.responder.clone(),
        seed: spec.seed,
        timebox_ms: millis(drill.timebox),
        production_ms: PhaseMillis::from_array(drill.targets.production.map(millis)),
        ratio: drill.targets.ratio,
        answer: drill.answer.clone(),
    })?;

    let mut steps = schedule(drill).into_iter().peekable();
    let mut commands_open = true;

    // The steady-state probe runs beside the timeline; results arrive as (run ms, ok).
    let probe = drill.verify.as_ref().and_then(|v| v.http.clone().map(|http| (http, v.window, v.success_ratio)));
    let probe_stop = shutdown.child_token();
    let mut probes = spawn_probe(probe.as_ref().map(|(http, _, _)| http.clone()), probe_stop.clone());
    let mut steady = probe.as_ref().map(|(_, window, ratio)| verify::SteadyState::new(*window, *ratio));
    let mut faulted = false;

    let (outcome, reason, why) = loop {
        let next_at = steps.peek().map_or(drill.timebox, |(at, _)| *at);
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break (Outcome::Interrupted, Some("the daemon stopped".to_owned()), "interrupted"),
            Some(ok) = probes.recv(), if steady.is_some() => {
                let now = runner.now_ms();
                if faulted && let Some(since) = steady.as_mut().and_then(|s| s.observe(now, ok)) {
                    runner.log(Event::Mitigated { since_ms: since })?;
                    steady = None; // mitigation is recorded once
                }
            }
            command = commands.recv(), if commands_open => match command {
                Some(command) => if let Some(end) = runner.command(command)? { break end },
                None => commands_open = false,
            },
            () = sleep_until(runner.started + next_at) => {
                let Some((_, step)) = steps.next() else { continue };
                match step {
                    Step::Apply(index) => {
                        faulted = true;
                        if !runner.apply(index).await? {
                            break (Outcome::Failed, Some(format!("fault {index} could not be applied")), "failed");
                        }
                    }
                    Step::Remove(index) => runner.remove(index, "duration").await?,
                    Step::Hint(index) => {
                        if !runner.hints_shown[index] {
                            runner.reveal(index, None)?;
                        }
                    }
                    Step::Timebox => break (Outcome::Unresolved, Some("the timebox ran out".to_owned()), "timebox"),
                }
            }
        }
    };
    let (outcome, reason) = match (&probe, outcome) {
        (Some((_, window, ratio)), Outcome::Resolved) => {
            verify_resolved(&mut runner, &mut probes, &shutdown, *window, *ratio).await?
        }
        _ => (outcome, reason),
    };
    probe_stop.cancel();
    runner.end(outcome, reason, why).await?;
    Ok(Scorecard::from_journal(&runner.records)?)
}

/// The run's timeline: faults in and out, scheduled hints, and the timebox last.
fn schedule(drill: &Drill) -> Vec<(Duration, Step)> {
    let mut schedule: Vec<(Duration, Step)> = Vec::new();
    for (index, fault) in drill.faults.iter().enumerate() {
        schedule.push((fault.at, Step::Apply(index)));
        if let Some(duration) = fault.duration {
            schedule.push((fault.at + duration, Step::Remove(index)));
        }
    }
    for (index, hint) in drill.hints.iter().enumerate() {
        if let Some(after) = hint.after {
            schedule.push((after, Step::Hint(index)));
        }
    }
    schedule.push((drill.timebox, Step::Timebox));
    schedule.sort_by_key(|(at, step)| (*at, matches!(step, Step::Timebox)));
    schedule
}

/// Probes the steady state every [`verify::PROBE_INTERVAL`] until `stop`; without a probe, the
/// channel stays silent.
fn spawn_probe(http: Option<crate::drill::plan::HttpProbe>, stop: CancellationToken) -> mpsc::Receiver<bool> {
    let (tx, rx) = mpsc::channel::<bool>(8);
    if let Some(http) = http {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(verify::PROBE_INTERVAL) => {}
                }
                if tx.send(verify::probe(&http).await).await.is_err() {
                    return;
                }
            }
        });
    }
    rx
}

/// After a resolve: takes every fault out, then waits for the steady state to hold a window.
async fn verify_resolved<T: FaultTarget>(
    runner: &mut Runner<'_, T>,
    probes: &mut mpsc::Receiver<bool>,
    shutdown: &CancellationToken,
    window: Duration,
    ratio: f64,
) -> Result<(Outcome, Option<String>), RunError> {
    let indexes: Vec<usize> = runner.active.keys().copied().collect();
    for index in indexes {
        runner.remove(index, "resolved").await?;
    }
    // Results probed before the faults came out say nothing about the state after.
    while probes.try_recv().is_ok() {}
    let mut state = verify::SteadyState::new(window, ratio);
    let limit = (window + RESOLVE_VERIFY_GRACE).min(runner.spec.drill.timebox.saturating_sub(runner.started.elapsed()));
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok((Outcome::Interrupted, Some("the daemon stopped".to_owned()))),
            () = &mut deadline => return Ok((
                Outcome::Unresolved,
                Some(format!("the steady state did not hold for {} after the resolve", crate::drill::duration::format(window))),
            )),
            Some(ok) = probes.recv() => {
                if state.observe(runner.now_ms(), ok).is_some() {
                    return Ok((Outcome::Resolved, None));
                }
            }
        }
    }
}

/// After a crash: closes a journal that has no end, removing every fault it applied and did not
/// remove. Returns the scorecard, or `None` if the run had already ended.
pub async fn recover<T: FaultTarget>(path: &Path, target: &T) -> Result<Option<Scorecard>, RunError> {
    let mut records = journal::read(path)?;
    if records.iter().any(|r| matches!(r.event, Event::Ended { .. })) {
        return Ok(None);
    }
    let mut active: BTreeMap<usize, (String, String)> = BTreeMap::new();
    for record in &records {
        match &record.event {
            Event::FaultApplied { fault, proxy, toxic, .. } => {
                active.insert(*fault, (proxy.clone(), toxic.clone()));
            }
            Event::FaultRemoved { fault, .. } | Event::FaultFailed { fault, .. } => {
                active.remove(fault);
            }
            _ => {}
        }
    }
    let mut journal = Journal::reopen(path, &records)?;
    let t_ms = records.last().map_or(0, |r| r.t_ms);
    for (fault, (proxy, toxic)) in active {
        if let Err(error) = target.remove(&proxy, &toxic).await {
            tracing::error!(%error, proxy, toxic, "could not remove a fault left by a crashed run");
        }
        let event = Event::FaultRemoved { fault, proxy, toxic, reason: "interrupted".to_owned() };
        records.push(journal.append(t_ms, event)?);
    }
    let end = Event::Ended { outcome: Outcome::Interrupted, reason: Some("the daemon stopped mid-run".to_owned()) };
    records.push(journal.append(t_ms, end)?);
    Ok(Some(Scorecard::from_journal(&records)?))
}
