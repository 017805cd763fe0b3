//! The daemon's game days: starting a plan (by hand, or on schedule), running its steps through
//! the manager of runs one after the other, ending it early, the debrief's notes, and closing a
//! day a crash interrupted. At most one game day is in progress at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::GamedayError;
use super::log::{self, DayEvent, DayLog, DayRecord};
use super::notify::{Notice, Notifier, Outbox};
use super::plan::{self, Plan, Step};
use crate::run::manager::Manager;

/// How late a scheduled game day may still start (a daemon restarting at its moment): later
/// than this it is reported missed, never started late unannounced.
pub const GRACE_MS: i64 = 60_000;

/// What the daemon knows of one game day.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DayView {
    /// The day's id (its journal's name).
    pub id: String,
    /// The plan.
    pub plan: String,
    /// Its title.
    pub title: String,
    /// The team.
    pub team: String,
    /// `running`, `completed`, `ended`, `interrupted` or `missed`.
    pub state: String,
    /// When it started (for a missed one: when it should have), ms since the Unix epoch.
    pub started_ms: i64,
    /// When it ended.
    pub ended_ms: Option<u64>,
    /// The sequence.
    pub steps: Vec<String>,
    /// The step in progress (0-based), while running.
    pub step: Option<usize>,
    /// Its runs, in order: `[run id, drill (empty while a blind pick is sealed), outcome (empty
    /// while running)]`.
    pub runs: Vec<[String; 3]>,
    /// How many notes were taken.
    pub notes: usize,
    /// Why it was missed, or who ended it early.
    pub detail: String,
}

/// A plan the daemon will start on its own.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ScheduledView {
    /// The plan.
    pub plan: String,
    /// Its title.
    pub title: String,
    /// The next occurrence, ms since the Unix epoch.
    pub next_ms: i64,
    /// The same, on the plan's wall clock, with its zone.
    pub next_local: String,
}

/// Game days past and in progress, and what is scheduled.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct Overview {
    /// The days, newest first.
    pub days: Vec<DayView>,
    /// The plans armed, soonest first.
    pub scheduled: Vec<ScheduledView>,
}

/// What a step came to.
enum StepResult {
    /// A drill ran: its run id, drill and outcome.
    Ran((String, String, String)),
    /// A break, or a step that could not start.
    Next,
    /// The daemon is stopping.
    Stop,
}

struct Day {
    id: String,
    log: Arc<DayLog>,
    /// Ends the day early.
    end: CancellationToken,
    ended_by: Mutex<Option<String>>,
    /// Becomes true when the day's task is done.
    done: watch::Receiver<bool>,
    step: AtomicUsize,
}

/// The daemon's game days.
pub struct Gamedays {
    manager: Arc<Manager>,
    plans: PathBuf,
    dir: PathBuf,
    notifier: Notifier,
    current: Mutex<Option<Arc<Day>>>,
    pub(super) scheduled: Mutex<BTreeMap<String, ScheduledView>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// What the schedule keeps across restarts: the next occurrence each armed plan waits for.
#[derive(Debug, Serialize, serde::Deserialize)]
pub(super) struct Armed {
    pub(super) next_ms: Option<i64>,
}

impl Gamedays {
    /// Game days from the plans in `plans`, journaled under `<data>/gamedays/`, their runs
    /// started through `manager`; notifications retried as `retry` says.
    pub fn new(manager: Arc<Manager>, plans: PathBuf, data: &Path, retry: super::notify::Retry) -> Arc<Self> {
        let shutdown = CancellationToken::new();
        Arc::new(Self {
            notifier: Notifier::new(retry, shutdown.clone()),
            manager,
            plans,
            dir: data.join("gamedays"),
            current: Mutex::default(),
            scheduled: Mutex::default(),
            shutdown,
            tracker: TaskTracker::new(),
        })
    }

    /// The runs the game days start.
    pub fn manager(&self) -> &Arc<Manager> {
        &self.manager
    }

    /// Where plans are read from.
    pub fn plans_dir(&self) -> &Path {
        &self.plans
    }

    /// Where game-day journals are kept.
    pub fn journal_dir(&self) -> &Path {
        &self.dir
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<Arc<Day>>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A plan by name, checked against the daemon's drill directory.
    pub fn plan(&self, name: &str) -> Result<Plan, GamedayError> {
        if !crate::is_plain_name(name) {
            return Err(GamedayError::NoPlan(name.to_owned()));
        }
        let path = self.plans.join(format!("{name}.toml"));
        if !path.is_file() {
            return Err(GamedayError::NoPlan(name.to_owned()));
        }
        let drills = crate::drill::names_in(self.manager.drills_dir()).unwrap_or_default();
        plan::load(&path, Some(&drills)).map_err(|errors| {
            GamedayError::BadPlan(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        })
    }

    /// Every plan in the plan directory: its name, and the plan or why it does not load.
    pub fn plans(&self) -> Vec<(String, Result<Plan, GamedayError>)> {
        plan_names(&self.plans).into_iter().map(|name| (name.clone(), self.plan(&name))).collect()
    }

    /// Starts a game day of `plan` now; returns its id. Refused while another is in progress.
    pub fn start(self: &Arc<Self>, plan: &str, by: &str) -> Result<String, GamedayError> {
        let plan = self.plan(plan)?;
        self.begin(plan, by, None)
    }

    pub(super) fn begin_scheduled(self: &Arc<Self>, plan: Plan, at_ms: i64) -> Result<String, GamedayError> {
        self.begin(plan, "schedule", Some(at_ms))
    }

    pub(super) fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    pub(super) fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    pub(super) fn stopping(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.shutdown.cancelled()
    }

    fn begin(self: &Arc<Self>, plan: Plan, by: &str, scheduled_ms: Option<i64>) -> Result<String, GamedayError> {
        if self.shutdown.is_cancelled() {
            return Err(GamedayError::Stopping);
        }
        let mut current = self.current();
        if let Some(day) = current.as_ref() {
            return Err(GamedayError::InProgress(day.id.clone()));
        }
        let (id, log) = self.create_log(&plan.name, "")?;
        log.append(DayEvent::Started {
            plan: plan.name.clone(),
            title: plan.title.clone(),
            team: plan.team.clone(),
            by: by.to_owned(),
            scheduled_ms,
            steps: plan.sequence.iter().map(Step::describe).collect(),
            roles: plan.roles.everyone().into_iter().map(|(role, p)| [role.to_owned(), p.name.clone()]).collect(),
            questions: plan.questions.clone(),
        })
        .map_err(|e| GamedayError::Io(e.to_string()))?;
        let log = Arc::new(log);
        let (done_tx, done) = watch::channel(false);
        let day = Arc::new(Day {
            id: id.clone(),
            log: log.clone(),
            end: CancellationToken::new(),
            ended_by: Mutex::default(),
            done,
            step: AtomicUsize::new(0),
        });
        *current = Some(day.clone());
        drop(current);
        let outbox = self.notifier.outbox(&plan.notify, &log);
        let this = self.clone();
        let by = by.to_owned();
        self.tracker.spawn(async move {
            this.conduct(&plan, &day, &outbox, &by).await;
            *this.current() = None;
            done_tx.send_replace(true);
        });
        Ok(id)
    }

    /// A new journal `<plan>-<UTC time><suffix>.jsonl` (a counter added if taken).
    fn create_log(&self, plan: &str, suffix: &str) -> Result<(String, DayLog), GamedayError> {
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
        for n in 1..100 {
            let id = if n == 1 { format!("{plan}-{stamp}{suffix}") } else { format!("{plan}-{stamp}{suffix}-{n}") };
            match DayLog::create(&self.dir.join(format!("{id}.jsonl"))) {
                Ok(log) => return Ok((id, log)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(GamedayError::Io(format!("{}: {e}", self.dir.display()))),
            }
        }
        Err(GamedayError::Io("too many game days of this plan in one second".into()))
    }

    pub(super) fn notice(plan: &Plan, day: &str, event: &'static str, text: String) -> Notice {
        Notice {
            event,
            gameday: day.to_owned(),
            plan: plan.name.clone(),
            title: plan.title.clone(),
            team: plan.team.clone(),
            at_ms: crate::clock::wall_ms(),
            text,
            details: serde_json::Map::new(),
        }
    }

    /// The day itself: the environment, then each step in order, until done, ended or stopped.
    async fn conduct(&self, plan: &Plan, day: &Day, outbox: &Outbox, by: &str) {
        outbox.send(&Self::notice(
            plan,
            &day.id,
            "gameday_started",
            format!(
                "Game day \"{}\" for team {} has started ({} step(s)); join the console, or `firedrill status`.",
                plan.title,
                plan.team,
                plan.sequence.len()
            ),
        ));
        if let Some(up) = &plan.environment.up {
            day.log.record(DayEvent::Environment { text: self.bring_up(up).await });
        }
        if !plan.environment.proxies.is_empty() {
            day.log.record(DayEvent::Environment { text: self.bring_proxies(&plan.environment.proxies).await });
        }
        let starter = plan.roles.facilitator.as_ref().map_or_else(|| by.to_owned(), |p| p.name.clone());
        let mut runs: Vec<(String, String, String)> = Vec::new();
        for (index, step) in plan.sequence.iter().enumerate() {
            if day.end.is_cancelled() || self.shutdown.is_cancelled() {
                break;
            }
            day.step.store(index, Ordering::Relaxed);
            match self.step(plan, day, outbox, index, step, &starter).await {
                StepResult::Ran(run) => runs.push(run),
                StepResult::Next => {}
                StepResult::Stop => break,
            }
        }
        let ended_by = day.ended_by.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let outcome = if self.shutdown.is_cancelled() && ended_by.is_none() {
            "interrupted"
        } else if day.end.is_cancelled() {
            "ended"
        } else {
            "completed"
        };
        day.log.record(DayEvent::Ended { outcome: outcome.to_owned(), by: ended_by });
        let resolved = runs.iter().filter(|r| r.2 == "resolved").count();
        let summary: Vec<String> =
            runs.iter().map(|(id, drill, outcome)| format!("{drill}: {outcome} ({id})")).collect();
        let mut notice = Self::notice(
            plan,
            &day.id,
            "gameday_ended",
            format!(
                "Game day \"{}\" {outcome}: {} drill(s) run, {resolved} resolved.{}{}\nThe write-up: firedrill report --gameday {}",
                plan.title,
                runs.len(),
                if summary.is_empty() { "" } else { "\n" },
                summary.join("\n"),
                day.id
            ),
        );
        notice.details.insert("outcome".into(), outcome.into());
        notice.details.insert(
            "summary".into(),
            serde_json::json!(
                runs.iter()
                    .map(|(id, drill, outcome)| serde_json::json!({"run_id": id, "drill": drill, "outcome": outcome}))
                    .collect::<Vec<_>>()
            ),
        );
        outbox.send(&notice);
    }

    /// One step of the day: a break waited out, or a drill started and waited for.
    async fn step(
        &self,
        plan: &Plan,
        day: &Day,
        outbox: &Outbox,
        index: usize,
        step: &Step,
        starter: &str,
    ) -> StepResult {
        let started = match step {
            Step::Break(length) => {
                day.log.record(DayEvent::Break {
                    step: index,
                    length_ms: u64::try_from(length.as_millis()).unwrap_or(u64::MAX),
                });
                tokio::select! {
                    () = day.end.cancelled() => {}
                    () = self.shutdown.cancelled() => {}
                    () = tokio::time::sleep(*length) => {}
                }
                return StepResult::Next;
            }
            Step::Drill(name) => {
                self.manager.start(name, &plan.team, Some(starter.to_owned()), None).await.map(|id| (id, Some(name)))
            }
            Step::Blind(set) => {
                let seed: u64 = rand::random();
                let name = &set[usize::try_from(seed % set.len() as u64).unwrap_or(0)];
                self.manager
                    .start_sealed(name, &plan.team, Some(starter.to_owned()), Some(seed))
                    .await
                    .map(|id| (id, None))
            }
        };
        let (run_id, shown) = match started {
            Ok(started) => started,
            Err(err) => {
                day.log.record(DayEvent::StepFailed { step: index, error: err.to_string() });
                outbox.send(&Self::notice(
                    plan,
                    &day.id,
                    "drill_failed",
                    format!("Game day \"{}\": step {} could not start: {err}", plan.title, index + 1),
                ));
                return StepResult::Next;
            }
        };
        day.log.record(DayEvent::DrillStarted { step: index, run_id: run_id.clone(), drill: shown.cloned() });
        let mut notice = Self::notice(
            plan,
            &day.id,
            "drill_started",
            format!(
                "Game day \"{}\": step {} — {} has started (run {run_id}).",
                plan.title,
                index + 1,
                shown.map_or_else(|| "a blind drill".to_owned(), |d| format!("drill {d}"))
            ),
        );
        notice.details.insert("run_id".into(), run_id.clone().into());
        notice.details.insert("drill".into(), shown.cloned().unwrap_or_default().into());
        outbox.send(&notice);
        tokio::select! {
            () = self.manager.wait_finished(&run_id) => {}
            () = day.end.cancelled() => {
                let who = day.ended_by.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default();
                let _ = self.manager.abort(&run_id, who).await;
            }
            // The daemon stops: the manager interrupts the run and removes its faults.
            () = self.shutdown.cancelled() => return StepResult::Stop,
        }
        let (drill, outcome) = self.ended(&run_id);
        day.log.record(DayEvent::DrillEnded {
            step: index,
            run_id: run_id.clone(),
            drill: drill.clone(),
            outcome: outcome.clone(),
        });
        let mut notice = Self::notice(
            plan,
            &day.id,
            "drill_ended",
            format!("Game day \"{}\": drill {drill} ended: {outcome} (run {run_id}).", plan.title),
        );
        notice.details.insert("run_id".into(), run_id.clone().into());
        notice.details.insert("drill".into(), drill.clone().into());
        notice.details.insert("outcome".into(), outcome.clone().into());
        outbox.send(&notice);
        StepResult::Ran((run_id, drill, outcome))
    }

    /// The drill and outcome of an ended run, from its status.
    fn ended(&self, run_id: &str) -> (String, String) {
        let details = self
            .manager
            .status(Some(run_id))
            .ok()
            .and_then(|v| v.into_iter().next())
            .and_then(crate::run::manager::RunView::into_run);
        let drill = details.as_ref().map(|d| d.drill.clone()).unwrap_or_default();
        let outcome =
            details.and_then(|d| d.card).and_then(|c| c.outcome).map_or_else(|| "unknown".to_owned(), crate::wire_name);
        (drill, outcome)
    }

    /// Creates the proxies of the plan's proxy files the daemon does not have yet; what
    /// happened, in words. A drill whose proxy is still missing fails at its start, as it would
    /// by hand.
    async fn bring_proxies(&self, files: &[PathBuf]) -> String {
        let shown = files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
        let configs = match crate::proxy::config::load_files(files) {
            Ok(configs) => configs,
            Err(errors) => {
                let errors = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                return format!("proxies not created: {errors}");
            }
        };
        match self.manager.ensure_proxies(configs).await {
            Ok(created) if created.is_empty() => format!("the proxies of {shown} were already there"),
            Ok(created) => format!("created proxies {} from {shown}", created.join(", ")),
            Err(e) => format!("proxies of {shown} not created: {e}"),
        }
    }

    /// Brings the plan's environment file up; what happened, in words.
    async fn bring_up(&self, path: &Path) -> String {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return format!("cannot read {}: {e}", path.display()),
        };
        let services = match crate::supervise::envfile::parse(path, &text) {
            Ok(services) => services,
            Err(errors) => return errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        };
        let supervisor = self.manager.supervisor();
        match supervisor.up(services) {
            Ok(names) => {
                let mut changes = supervisor.changes();
                // Not past the day's end or the daemon's stop.
                let healthy = tokio::time::timeout(Duration::from_secs(60), async {
                    loop {
                        let ps = supervisor.ps();
                        if !ps.is_empty() && ps.iter().all(|r| r.state == crate::supervise::ReplicaState::Healthy) {
                            return;
                        }
                        tokio::select! {
                            changed = changes.changed() => if changed.is_err() { return },
                            () = self.shutdown.cancelled() => return,
                        }
                    }
                })
                .await
                .is_ok();
                let state = if healthy { "healthy" } else { "not all healthy after 60s" };
                format!("started {} from {} ({state})", names.join(", "), path.display())
            }
            Err(e) => format!("{} was not started: {e}", path.display()),
        }
    }

    /// Ends the game day in progress (the one named, if `id` is not empty): its run is aborted
    /// and its remaining steps skipped. Returns its id once it has ended.
    pub async fn end(&self, id: &str, by: &str) -> Result<String, GamedayError> {
        let day = self.current().clone();
        let Some(day) = day.filter(|d| id.is_empty() || d.id == id) else {
            return Err(if id.is_empty() {
                GamedayError::NoneInProgress
            } else {
                GamedayError::NotInProgress(id.to_owned())
            });
        };
        day.ended_by.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| by.to_owned());
        day.end.cancel();
        let mut done = day.done.clone();
        let _ = done.wait_for(|d| *d).await;
        Ok(day.id.clone())
    }

    /// Records a note, or an answer to debrief question `question` (1-based), in the game day
    /// named, else the one in progress, else the latest. Returns the day's id.
    pub fn note(&self, id: &str, by: &str, text: &str, question: Option<usize>) -> Result<String, GamedayError> {
        let text = text.trim();
        if text.is_empty() || text.len() > 10_000 {
            return Err(GamedayError::BadNote("a note is between 1 and 10000 characters".into()));
        }
        if by.trim().is_empty() {
            return Err(GamedayError::BadNote("say who writes it (--as NAME or FIREDRILL_RESPONDER)".into()));
        }
        let id = if !id.is_empty() {
            if !crate::is_plain_name(id) || !self.dir.join(format!("{id}.jsonl")).is_file() {
                return Err(GamedayError::NoGameday(id.to_owned()));
            }
            id.to_owned()
        } else if let Some(day) = self.current().as_ref() {
            day.id.clone()
        } else {
            self.overview_days().into_iter().find(|d| d.state != "missed").map(|d| d.id).ok_or(GamedayError::NoneYet)?
        };
        let path = self.dir.join(format!("{id}.jsonl"));
        let records = log::read(&path).map_err(|e| GamedayError::Io(e.to_string()))?;
        let questions = match records.first().map(|r| &r.event) {
            Some(DayEvent::Started { questions, .. }) => questions.len(),
            _ => return Err(GamedayError::NoGameday(id)),
        };
        if let Some(q) = question
            && !(1..=questions).contains(&q)
        {
            return Err(GamedayError::BadNote(format!(
                "the plan has {questions} debrief question(s); --question is 1 to {questions}"
            )));
        }
        let event = DayEvent::Note { by: by.trim().to_owned(), text: text.to_owned(), question };
        let current = self.current().clone().filter(|d| d.id == id);
        match current {
            Some(day) => day.log.append(event),
            None => DayLog::open(&path).and_then(|log| log.append(event)),
        }
        .map_err(|e| GamedayError::Io(e.to_string()))?;
        Ok(id)
    }

    /// Closes every game-day journal a crash left open (the runs themselves are recovered by
    /// the manager). Returns their ids.
    pub fn recover(&self) -> Vec<String> {
        let mut closed = Vec::new();
        for (id, records) in self.journals() {
            let open = matches!(records.first().map(|r| &r.event), Some(DayEvent::Started { .. }))
                && !records.iter().any(|r| matches!(r.event, DayEvent::Ended { .. }));
            if open {
                let path = self.dir.join(format!("{id}.jsonl"));
                match DayLog::open(&path)
                    .and_then(|log| log.append(DayEvent::Ended { outcome: "interrupted".into(), by: None }))
                {
                    Ok(_) => closed.push(id),
                    Err(err) => tracing::error!(%err, path = %path.display(), "could not close a game day"),
                }
            }
        }
        closed
    }

    pub(super) fn journals(&self) -> Vec<(String, Vec<DayRecord>)> {
        crate::run::files_with_extension(&self.dir, "jsonl")
            .into_iter()
            .filter_map(|path| {
                let id = path.file_stem()?.to_string_lossy().into_owned();
                log::read(&path).ok().map(|records| (id, records))
            })
            .collect()
    }

    fn overview_days(&self) -> Vec<DayView> {
        let current = self.current().clone();
        let mut days: Vec<DayView> = self
            .journals()
            .into_iter()
            .filter_map(|(id, records)| {
                let step = current.as_ref().filter(|d| d.id == id).map(|d| d.step.load(Ordering::Relaxed));
                view(&id, &records, step)
            })
            .collect();
        days.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then_with(|| b.id.cmp(&a.id)));
        days
    }

    /// Game days past and in progress (newest first), and what is scheduled.
    pub fn overview(&self) -> Overview {
        let mut scheduled: Vec<ScheduledView> =
            self.scheduled.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        scheduled.sort_by_key(|s| s.next_ms);
        Overview { days: self.overview_days(), scheduled }
    }

    /// The id of the game day in progress.
    pub fn in_progress(&self) -> Option<String> {
        self.current().as_ref().map(|d| d.id.clone())
    }

    /// The kill switch: ends the game day in progress, if any.
    pub async fn end_all(&self, by: &str) -> Option<String> {
        self.end("", by).await.ok()
    }

    /// Stops: the day in progress ends as interrupted (its run is interrupted by the manager's
    /// own shutdown, which must come after this); no scheduled plan starts any more.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.notifier.flush().await;
    }
}

/// The `.toml` plans of a directory, by file stem, sorted.
pub fn plan_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml") && plan::is_plan(p))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A day's view from its journal; `step` is the step in progress for the day running here.
pub fn view(id: &str, records: &[DayRecord], step: Option<usize>) -> Option<DayView> {
    let first = records.first()?;
    let mut out = match &first.event {
        DayEvent::Started { plan, title, team, steps, .. } => DayView {
            id: id.to_owned(),
            plan: plan.clone(),
            title: title.clone(),
            team: team.clone(),
            state: if step.is_some() { "running" } else { "interrupted" }.to_owned(),
            started_ms: i64::try_from(first.at_ms).unwrap_or(i64::MAX),
            ended_ms: None,
            steps: steps.clone(),
            step,
            runs: Vec::new(),
            notes: 0,
            detail: String::new(),
        },
        DayEvent::Missed { plan, title, team, scheduled_ms, reason } => {
            return Some(DayView {
                id: id.to_owned(),
                plan: plan.clone(),
                title: title.clone(),
                team: team.clone(),
                state: "missed".into(),
                started_ms: *scheduled_ms,
                ended_ms: None,
                steps: Vec::new(),
                step: None,
                runs: Vec::new(),
                notes: 0,
                detail: reason.clone(),
            });
        }
        _ => return None,
    };
    for record in &records[1..] {
        match &record.event {
            DayEvent::DrillStarted { run_id, drill, .. } => {
                out.runs.push([run_id.clone(), drill.clone().unwrap_or_default(), String::new()]);
            }
            DayEvent::DrillEnded { run_id, drill, outcome, .. } => {
                if let Some(run) = out.runs.iter_mut().find(|r| &r[0] == run_id) {
                    run[1].clone_from(drill);
                    run[2].clone_from(outcome);
                }
            }
            DayEvent::Note { .. } => out.notes += 1,
            DayEvent::Ended { outcome, by } => {
                out.state.clone_from(outcome);
                out.ended_ms = Some(record.at_ms);
                out.step = None;
                if let Some(by) = by {
                    out.detail = format!("ended by {by}");
                }
            }
            _ => {}
        }
    }
    Some(out)
}
