//! The gRPC service: maps the control API onto the daemon's [`Manager`].

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::proto::control_server::Control;
use super::proto::{
    AbortReply, AbortRequest, ActRequest, DiagnoseReply, DiagnoseRequest, DownReply, DryRunReply, GamedayReply,
    GamedayRequest, HintReply, NoteRequest, PhaseStatus, PsReply, PsRequest, Replica, RunEvent, RunStatus,
    StartRequest, StatusReply, StatusRequest, UpRequest, WatchRequest,
};
use crate::gameday::{GamedayError, Gamedays};
use crate::journal::Record;
use crate::run::manager::{Manager, ManagerError, Route, RunView};
use crate::run::runner::Refusal;

/// How many events a watcher may have in flight.
const WATCH_QUEUE: usize = 64;

/// The control service of one daemon.
pub struct ControlService {
    manager: Arc<Manager>,
    gamedays: Arc<Gamedays>,
}

impl ControlService {
    /// Serves the runs and game days of a daemon.
    pub fn new(gamedays: Arc<Gamedays>) -> Self {
        Self { manager: gamedays.manager().clone(), gamedays }
    }

    fn view(&self, run_id: &str) -> Result<RunStatus, Status> {
        let views = self.manager.status(Some(run_id)).map_err(status)?;
        views.into_iter().next().map(run_status).ok_or_else(|| Status::not_found(run_id.to_owned()))
    }
}

#[allow(clippy::needless_pass_by_value)] // a `map_err` adapter: it takes what `map_err` gives
fn status(err: ManagerError) -> Status {
    match err {
        ManagerError::NoDrill(_) | ManagerError::NoBlindDrill | ManagerError::NoRun(_) => {
            Status::not_found(err.to_string())
        }
        ManagerError::BadDrill(_) => Status::invalid_argument(err.to_string()),
        ManagerError::Ambiguous(_)
        | ManagerError::Ended(_)
        | ManagerError::Refused(_)
        | ManagerError::Conflict { .. } => Status::failed_precondition(err.to_string()),
        ManagerError::Run(_) | ManagerError::Arm(_) => Status::internal(err.to_string()),
        ManagerError::Proxies(_) => Status::unavailable(err.to_string()),
    }
}

#[allow(clippy::needless_pass_by_value)] // a `map_err` adapter: it takes what `map_err` gives
fn gameday_status(err: GamedayError) -> Status {
    match err {
        GamedayError::NoPlan(_) | GamedayError::NoGameday(_) | GamedayError::NoneYet => {
            Status::not_found(err.to_string())
        }
        GamedayError::BadPlan(_) | GamedayError::BadNote(_) => Status::invalid_argument(err.to_string()),
        GamedayError::InProgress(_) | GamedayError::NoneInProgress | GamedayError::NotInProgress(_) => {
            Status::failed_precondition(err.to_string())
        }
        GamedayError::Stopping => Status::unavailable(err.to_string()),
        GamedayError::Io(_) => Status::internal(err.to_string()),
    }
}

/// The longest responder or team name taken.
const MAX_NAME: usize = 64;
/// The longest diagnosis taken: a sentence or a short paragraph, not a log file.
const MAX_DIAGNOSIS: usize = 2_000;

fn who(by: &str) -> Result<String, Status> {
    if by.trim().is_empty() {
        return Err(Status::invalid_argument("say who you are (--as NAME)"));
    }
    if by.chars().count() > MAX_NAME || by.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "a responder's name is one line of at most {MAX_NAME} characters (--as NAME)"
        )));
    }
    Ok(by.to_owned())
}

/// A team names a scorecard directory: letters, digits, `-`, `_` and `.`, not starting with `.`.
fn team(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        Err(Status::invalid_argument("a run needs a team (--team TEAM)"))
    } else if !crate::is_team_name(name, MAX_NAME) {
        Err(Status::invalid_argument(format!(
            "team `{name}`: use letters, digits, `-`, `_` and `.` (not first), at most {MAX_NAME}; it names the \
             team's scorecard directory"
        )))
    } else {
        Ok(())
    }
}

/// The run an act goes to; a blind drill that is armed takes nothing but acknowledgements, and
/// says so as a blind run that has not been acknowledged does.
fn run_of(route: Route) -> Result<String, Status> {
    match route {
        Route::Run(id) => Ok(id),
        Route::Armed => Err(status(ManagerError::Refused(Refusal::AckFirst))),
    }
}

/// A run as the API reports it: a sealed blind drill as its team and the `sealed` flag, one
/// that could not start with `not started: why` in place of an outcome.
pub fn run_status(view: RunView) -> RunStatus {
    let view = match view {
        RunView::Run(details) => *details,
        RunView::Sealed { team } => return RunStatus { team, sealed: true, ..RunStatus::default() },
        RunView::NotStarted { team, why } => {
            return RunStatus { team, outcome: format!("not started: {why}"), ..RunStatus::default() };
        }
    };
    let card = view.card;
    RunStatus {
        run_id: view.run_id,
        drill: view.drill,
        team: view.team,
        elapsed_ms: view.elapsed_ms,
        fault_in_ms: view.fault_in_ms,
        fault_due_ms: view.fault_due_ms,
        detected_by: view.detected_by.unwrap_or_default(),
        phases: card
            .as_ref()
            .map(|c| {
                c.phases
                    .iter()
                    .map(|p| PhaseStatus {
                        phase: crate::wire_name(p.phase),
                        target_ms: p.target_ms,
                        actual_ms: p.actual_ms,
                        verdict: crate::wire_name(p.verdict),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        outcome: card.as_ref().and_then(|c| c.outcome).map(crate::wire_name).unwrap_or_default(),
        scorecard_path: view.scorecard_path.map(|p| p.display().to_string()).unwrap_or_default(),
        briefing: view.briefing,
        sealed: false,
    }
}

/// A record as responders may see it: the answer key is never sent.
fn event(record: &Record) -> RunEvent {
    let mut json = serde_json::to_value(record).unwrap_or_default();
    if let Some(object) = json.as_object_mut() {
        object.remove("answer");
    }
    RunEvent {
        seq: record.seq,
        t_ms: record.t_ms,
        r#type: json.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
        json: json.to_string(),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<RunEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Control for ControlService {
    async fn start(&self, request: Request<StartRequest>) -> Result<Response<RunStatus>, Status> {
        let r = request.into_inner();
        team(&r.team)?;
        if !r.responder.is_empty() {
            who(&r.responder)?;
        }
        let responder = (!r.responder.is_empty()).then_some(r.responder);
        if r.drill.is_empty() && r.blind_within_ms > 0 {
            let within = std::time::Duration::from_millis(r.blind_within_ms);
            self.manager.start_blind(r.team.clone(), responder, r.seed, within).await.map_err(status)?;
            return Ok(Response::new(RunStatus { team: r.team, ..RunStatus::default() }));
        }
        let run_id = self.manager.start(&r.drill, &r.team, responder, r.seed).await.map_err(status)?;
        self.view(&run_id).map(Response::new)
    }

    async fn dry_run(&self, request: Request<StartRequest>) -> Result<Response<DryRunReply>, Status> {
        let r = request.into_inner();
        team(&r.team)?;
        let text = self.manager.dry_run(&r.drill, r.seed).await.map_err(status)?;
        Ok(Response::new(DryRunReply { text }))
    }

    async fn ack(&self, request: Request<ActRequest>) -> Result<Response<RunStatus>, Status> {
        let r = request.into_inner();
        let by = who(&r.by)?;
        let id = match self.manager.route(&r.run_id).map_err(status)? {
            Route::Run(id) => id,
            // Recorded as a false alarm; the answer is the one a blind run before its fault gives.
            Route::Armed => {
                let view = self.manager.ack_armed(by).ok_or_else(|| status(ManagerError::NoBlindDrill))?;
                return Ok(Response::new(run_status(view)));
            }
        };
        self.manager.ack(&id, by).await.map_err(status)?;
        self.view(&id).map(Response::new)
    }

    async fn diagnose(&self, request: Request<DiagnoseRequest>) -> Result<Response<DiagnoseReply>, Status> {
        let r = request.into_inner();
        let route = self.manager.route(&r.run_id).map_err(status)?;
        if r.text.trim().is_empty() || r.text.chars().count() > MAX_DIAGNOSIS {
            return Err(Status::invalid_argument(format!(
                "a diagnosis is a sentence or two (1 to {MAX_DIAGNOSIS} characters): what is wrong, and where"
            )));
        }
        let by = who(&r.by)?;
        let id = run_of(route)?;
        let correct = self.manager.diagnose(&id, by, r.text).await.map_err(status)?;
        Ok(Response::new(DiagnoseReply { correct }))
    }

    async fn hint(&self, request: Request<ActRequest>) -> Result<Response<HintReply>, Status> {
        let r = request.into_inner();
        let by = who(&r.by)?;
        let id = run_of(self.manager.route(&r.run_id).map_err(status)?)?;
        let hint = self.manager.hint(&id, by).await.map_err(status)?;
        Ok(Response::new(HintReply { revealed: hint.is_some(), text: hint.unwrap_or_default() }))
    }

    async fn mitigate(&self, request: Request<ActRequest>) -> Result<Response<RunStatus>, Status> {
        let r = request.into_inner();
        let by = who(&r.by)?;
        let id = run_of(self.manager.route(&r.run_id).map_err(status)?)?;
        self.manager.mitigate(&id, by).await.map_err(status)?;
        self.view(&id).map(Response::new)
    }

    async fn resolve(&self, request: Request<ActRequest>) -> Result<Response<RunStatus>, Status> {
        let r = request.into_inner();
        let by = who(&r.by)?;
        let id = run_of(self.manager.route(&r.run_id).map_err(status)?)?;
        self.manager.resolve(&id, by).await.map_err(status)?;
        self.view(&id).map(Response::new)
    }

    async fn abort(&self, request: Request<AbortRequest>) -> Result<Response<AbortReply>, Status> {
        let r = request.into_inner();
        let by = who(&r.by)?;
        if r.all {
            // The game day first: it must not start its next drill once the kill switch is pressed.
            self.gamedays.end_all(&by).await;
            let done = self.manager.abort_all(&by).await;
            let disarmed = u32::try_from(done.disarmed).unwrap_or(u32::MAX);
            return Ok(Response::new(AbortReply { aborted: done.runs, disarmed }));
        }
        // A blind drill is called off alike, armed or running and not acknowledged.
        let id = match self.manager.route(&r.run_id).map_err(status)? {
            Route::Armed => {
                let disarmed = u32::try_from(self.manager.disarm_waiting()).unwrap_or(u32::MAX);
                return Ok(Response::new(AbortReply { aborted: vec![], disarmed }));
            }
            Route::Run(id) => id,
        };
        let sealed = self.view(&id)?.sealed;
        self.manager.abort(&id, by).await.map_err(status)?;
        if sealed {
            return Ok(Response::new(AbortReply { aborted: vec![], disarmed: 1 }));
        }
        Ok(Response::new(AbortReply { aborted: vec![id], disarmed: 0 }))
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let r = request.into_inner();
        let id = (!r.run_id.is_empty()).then_some(r.run_id);
        let views = self.manager.status(id.as_deref()).map_err(status)?;
        Ok(Response::new(StatusReply { runs: views.into_iter().map(run_status).collect() }))
    }

    type WatchStream = EventStream;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<EventStream>, Status> {
        let run_id = request.into_inner().run_id;
        // The same answer whether a blind drill is armed or running: watching must not tell when.
        if (run_id.is_empty() && self.manager.blind_pending()) || self.manager.is_sealed(&run_id) {
            return Err(Status::failed_precondition(
                "a blind drill is armed or running: its events stay sealed until it ends \
                 (`firedrill status` shows your phases once you acknowledge)",
            ));
        }
        let id = self.manager.resolve_id(&run_id).map_err(status)?;
        let log = self.manager.log(&id).map_err(status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_QUEUE);
        tokio::spawn(async move {
            // Subscribe before reading the backlog, then skip what the backlog already had.
            let mut live = log.subscribe();
            let mut last = 0;
            for record in log.records() {
                last = record.seq;
                let ended = matches!(record.event, crate::journal::event::Event::Ended { .. });
                if tx.send(Ok(event(&record))).await.is_err() || ended {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(record) if record.seq <= last => {}
                    Ok(record) => {
                        last = record.seq;
                        let ended = matches!(record.event, crate::journal::event::Event::Ended { .. });
                        if tx.send(Ok(event(&record))).await.is_err() || ended {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let seen = last;
                        for record in log.records().into_iter().filter(|r| r.seq > seen) {
                            last = record.seq;
                            if tx.send(Ok(event(&record))).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn up(&self, request: Request<UpRequest>) -> Result<Response<PsReply>, Status> {
        let r = request.into_inner();
        let path = std::path::PathBuf::from(&r.path);
        let services = crate::supervise::envfile::parse(&path, &r.text).map_err(|errors| {
            Status::invalid_argument(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
        })?;
        let supervisor = self.manager.supervisor();
        supervisor.up(services).map_err(|e| Status::already_exists(e.to_string()))?;
        Ok(Response::new(ps(supervisor)))
    }

    async fn gameday_start(&self, request: Request<GamedayRequest>) -> Result<Response<GamedayReply>, Status> {
        let r = request.into_inner();
        let by = who(&r.by)?;
        let id = self.gamedays.start(&r.plan, &by).map_err(gameday_status)?;
        Ok(Response::new(GamedayReply { id, json: String::new() }))
    }

    async fn gameday_end(&self, request: Request<GamedayRequest>) -> Result<Response<GamedayReply>, Status> {
        let r = request.into_inner();
        let by = who(&r.by)?;
        let id = self.gamedays.end(&r.id, &by).await.map_err(gameday_status)?;
        Ok(Response::new(GamedayReply { id, json: String::new() }))
    }

    async fn gameday_status(&self, request: Request<GamedayRequest>) -> Result<Response<GamedayReply>, Status> {
        let r = request.into_inner();
        let mut overview = self.gamedays.overview();
        if !r.id.is_empty() {
            overview.days.retain(|d| d.id == r.id);
            if overview.days.is_empty() {
                return Err(gameday_status(GamedayError::NoGameday(r.id)));
            }
        }
        let json = serde_json::to_string(&overview).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(GamedayReply { id: self.gamedays.in_progress().unwrap_or_default(), json }))
    }

    async fn note(&self, request: Request<NoteRequest>) -> Result<Response<GamedayReply>, Status> {
        let r = request.into_inner();
        let by = who(&r.by)?;
        let question = (r.question > 0).then_some(r.question as usize);
        let id = self.gamedays.note(&r.id, &by, &r.text, question).map_err(gameday_status)?;
        Ok(Response::new(GamedayReply { id, json: String::new() }))
    }

    async fn ps(&self, _request: Request<PsRequest>) -> Result<Response<PsReply>, Status> {
        Ok(Response::new(ps(self.manager.supervisor())))
    }

    async fn down(&self, _request: Request<PsRequest>) -> Result<Response<DownReply>, Status> {
        Ok(Response::new(DownReply { services: self.manager.supervisor().down().await }))
    }
}

fn ps(supervisor: &crate::supervise::Supervisor) -> PsReply {
    let replicas = supervisor
        .ps()
        .into_iter()
        .map(|r| Replica {
            id: r.id,
            service: r.service,
            pid: r.pid,
            state: crate::wire_name(r.state),
            restarts: r.restarts,
            last_exit: r.last_exit.unwrap_or_default(),
        })
        .collect();
    PsReply { replicas }
}
