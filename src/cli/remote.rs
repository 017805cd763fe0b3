//! The responders' side of the control API: one function per CLI verb, printing for people
//! (or JSON for scripts).

use anyhow::{Context as _, anyhow};
use tonic::Request;
use tonic::transport::Channel;

use super::Failure;
use crate::control::proto::control_client::ControlClient;
use crate::control::proto::{
    AbortRequest, ActRequest, DiagnoseRequest, PsRequest, Replica, RunEvent, RunStatus, StartRequest, StatusRequest,
    UpRequest, WatchRequest,
};

/// Where the daemon is and how to prove who may talk to it.
#[derive(Debug, Clone)]
pub struct Remote {
    /// `host:port` of the control API.
    pub addr: String,
    /// Bearer token, when the daemon requires one.
    pub token: Option<String>,
}

/// A connected client.
pub struct Client {
    pub(super) inner: ControlClient<Channel>,
    token: Option<String>,
}

pub(super) fn failure(status: &tonic::Status) -> Failure {
    let error = anyhow!("{}", status.message());
    match status.code() {
        tonic::Code::NotFound
        | tonic::Code::InvalidArgument
        | tonic::Code::FailedPrecondition
        | tonic::Code::AlreadyExists => Failure::BadInput(error),
        _ => Failure::Failed(error),
    }
}

impl Client {
    /// Connects to the daemon.
    pub async fn connect(remote: &Remote) -> Result<Self, Failure> {
        let inner = ControlClient::connect(format!("http://{}", remote.addr)).await.map_err(|e| {
            Failure::Failed(anyhow!(
                "cannot reach the firedrill daemon at {} ({e}); is `firedrill serve` running?",
                remote.addr
            ))
        })?;
        Ok(Self { inner, token: remote.token.clone() })
    }

    pub(super) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(value) = self.token.as_ref().and_then(|t| format!("Bearer {t}").parse().ok()) {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }
}

/// Formats milliseconds as `m:ss`.
pub fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{}:{:02}", secs / 60, secs % 60)
}

/// Prints a run's status for people.
pub fn print_status(run: &RunStatus) {
    if run.sealed {
        println!("a blind drill for team {} is armed or running: acknowledge when you notice symptoms", run.team);
        return;
    }
    if run.run_id.is_empty() {
        println!("the blind drill for team {}: {} (`firedrill abort --all` clears this)", run.team, run.outcome);
        return;
    }
    let state = if run.outcome.is_empty() { "in progress".to_owned() } else { run.outcome.clone() };
    // Phases count from the fault going in, which a traffic warm-up puts after the start.
    let fault_in = match (run.fault_in_ms, run.fault_due_ms) {
        (Some(t), _) => format!(" (fault in at {}; phases count from there)", clock(t)),
        (None, Some(due)) => {
            format!(" (traffic warming up; the fault goes in at {}: nothing counts before it)", clock(due))
        }
        (None, None) => String::new(),
    };
    println!(
        "run {}  drill {}  team {}  {}  elapsed {}{fault_in}",
        run.run_id,
        if run.drill.is_empty() { "(blind)" } else { &run.drill },
        run.team,
        state,
        clock(run.elapsed_ms)
    );
    if !run.briefing.is_empty() {
        println!("  briefing: {}", run.briefing);
    }
    for phase in &run.phases {
        let actual = phase.actual_ms.map_or_else(|| "-".to_owned(), clock);
        println!("  {:<9} target {:>6}  actual {:>6}  {}", phase.phase, clock(phase.target_ms), actual, phase.verdict);
    }
    if !run.scorecard_path.is_empty() {
        println!("  scorecard: {}", run.scorecard_path);
    }
}

fn status_json(run: &RunStatus) -> serde_json::Value {
    if run.sealed {
        return serde_json::json!({ "sealed": true, "team": run.team });
    }
    serde_json::json!({
        "run_id": run.run_id,
        "drill": if run.drill.is_empty() { None } else { Some(&run.drill) },
        "team": run.team,
        "briefing": run.briefing,
        "elapsed_ms": run.elapsed_ms,
        "fault_in_ms": run.fault_in_ms,
        "fault_due_ms": run.fault_due_ms,
        "detected_by": if run.detected_by.is_empty() { None } else { Some(&run.detected_by) },
        "outcome": if run.outcome.is_empty() { None } else { Some(&run.outcome) },
        "scorecard_path": if run.scorecard_path.is_empty() { None } else { Some(&run.scorecard_path) },
        "phases": run.phases.iter().map(|p| serde_json::json!({
            "phase": p.phase, "target_ms": p.target_ms, "actual_ms": p.actual_ms, "verdict": p.verdict,
        })).collect::<Vec<_>>(),
    })
}

/// `firedrill run`: starts a drill on the daemon; with `blind`, a random drill at a random moment
/// within that many milliseconds, and nothing about it is printed.
pub async fn start(
    remote: &Remote,
    drill: String,
    team: String,
    responder: String,
    seed: Option<u64>,
    blind: Option<std::time::Duration>,
) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let blind_within_ms = blind.map_or(0, |w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX).max(1));
    let request = client.request(StartRequest { drill, team, responder, seed, blind_within_ms });
    let run = client.inner.start(request).await.map_err(|s| failure(&s))?.into_inner();
    if blind.is_some() {
        println!(
            "a drill will start some time in the next {}; acknowledge when you notice it",
            crate::duration::format(blind.unwrap_or_default())
        );
        return Ok(());
    }
    println!("started run {}", run.run_id);
    print_status(&run);
    // In a terminal, `run` goes on as the facilitator's live view.
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return watch(remote, run.run_id).await;
    }
    Ok(())
}

/// `firedrill run --dry-run`: the daemon says what the run would touch now.
pub async fn dry_run(remote: &Remote, drill: String, team: String, seed: Option<u64>) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(StartRequest { drill, team, seed, ..StartRequest::default() });
    let reply = client.inner.dry_run(request).await.map_err(|s| failure(&s))?.into_inner();
    print!("{}", reply.text);
    Ok(())
}

/// `firedrill ack`.
pub async fn ack(remote: &Remote, run_id: String, by: String) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(ActRequest { run_id, by: by.clone() });
    let run = client.inner.ack(request).await.map_err(|s| failure(&s))?.into_inner();
    if run.sealed {
        // A blind drill says the same armed as running: whether this counted shows once it ends.
        println!("acknowledged by {by} (blind drill: `firedrill status` shows the run once an acknowledgement counts)");
    } else if let Some((actual, phase)) =
        run.phases.iter().find(|p| p.phase == "detect").and_then(|p| Some((p.actual_ms?, p)))
    {
        // Phases count from the fault going in, not from the run's start (traffic warm-up).
        let first = if run.detected_by.starts_with("alert ") {
            format!("; the {} detected it first, at {}", run.detected_by, clock(actual))
        } else {
            String::new()
        };
        println!(
            "acknowledged by {by} at {} into run {}: detected {} after the fault went in (target {}: {}){first}",
            clock(run.elapsed_ms),
            run.run_id,
            clock(actual),
            clock(phase.target_ms),
            phase.verdict
        );
    } else if run.fault_in_ms.is_none() {
        println!(
            "acknowledged by {by} at {} into run {}: the fault has not gone in yet, so this is recorded as a false alarm",
            clock(run.elapsed_ms),
            run.run_id
        );
    } else {
        println!("acknowledged by {by} at {} into run {}", clock(run.elapsed_ms), run.run_id);
    }
    Ok(())
}

/// `firedrill diagnose`.
pub async fn diagnose(remote: &Remote, run_id: String, by: String, text: String) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(DiagnoseRequest { run_id, by, text });
    let reply = client.inner.diagnose(request).await.map_err(|s| failure(&s))?.into_inner();
    if reply.correct {
        println!("correct: the diagnosis matches; now mitigate and resolve");
    } else {
        println!("not the cause (recorded with its time); keep investigating");
    }
    Ok(())
}

/// `firedrill hint`.
pub async fn hint(remote: &Remote, run_id: String, by: String) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(ActRequest { run_id, by });
    let reply = client.inner.hint(request).await.map_err(|s| failure(&s))?.into_inner();
    if reply.revealed {
        println!("hint: {}", reply.text);
    } else {
        println!("no hints left");
    }
    Ok(())
}

/// `firedrill mitigate`: waits until the steady state confirms the mitigation with the fault in.
pub async fn mitigate(remote: &Remote, run_id: String, by: String) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(ActRequest { run_id, by });
    let run = client.inner.mitigate(request).await.map_err(|s| failure(&s))?.into_inner();
    if let Some((actual, phase)) =
        run.phases.iter().find(|p| p.phase == "mitigate").and_then(|p| Some((p.actual_ms?, p)))
    {
        println!(
            "mitigated with the fault still in: {} after the fault went in (target {}: {})",
            clock(actual),
            clock(phase.target_ms),
            phase.verdict
        );
    }
    print_status(&run);
    Ok(())
}

/// `firedrill resolve`.
pub async fn resolve(remote: &Remote, run_id: String, by: String) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(ActRequest { run_id, by });
    let run = client.inner.resolve(request).await.map_err(|s| failure(&s))?.into_inner();
    print_status(&run);
    Ok(())
}

/// `firedrill abort [--all]`.
pub async fn abort(remote: &Remote, run_id: String, by: String, all: bool) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(AbortRequest { run_id, by, all });
    let reply = client.inner.abort(request).await.map_err(|s| failure(&s))?.into_inner();
    if reply.aborted.is_empty() && reply.disarmed == 0 {
        println!("no run was in progress");
    }
    for id in reply.aborted {
        println!("aborted run {id}; its faults were removed");
    }
    for _ in 0..reply.disarmed {
        if all {
            println!("disarmed a blind drill that had not started");
        } else {
            // The same words armed or running: calling a blind drill off tells nothing of when.
            println!("called off the blind drill; anything it put in was removed");
        }
    }
    Ok(())
}

/// `firedrill status [--json]`.
pub async fn status(remote: &Remote, run_id: String, json: bool) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(StatusRequest { run_id });
    let reply = client.inner.status(request).await.map_err(|s| failure(&s))?.into_inner();
    if json {
        let runs: Vec<serde_json::Value> = reply.runs.iter().map(status_json).collect();
        println!("{}", serde_json::Value::Array(runs));
    } else if reply.runs.is_empty() {
        println!("no runs");
    } else {
        reply.runs.iter().for_each(print_status);
    }
    Ok(())
}

/// Events the live view keeps on screen.
const LIVE_EVENTS: usize = 12;

fn event_line(event: &RunEvent) -> String {
    format!("[{}] {:<16} {}", clock(event.t_ms), event.r#type, event.json)
}

/// `firedrill watch`: on a terminal, the facilitator's live view (elapsed time, each phase with
/// its target and status, the latest events), redrawn in place every second and on every event;
/// otherwise one plain line per event. Ends when the run ends.
pub async fn watch(remote: &Remote, run_id: String) -> Result<(), Failure> {
    use std::io::IsTerminal;
    let mut client = Client::connect(remote).await?;
    let request = client.request(WatchRequest { run_id });
    let mut stream = client.inner.watch(request).await.map_err(|s| failure(&s))?.into_inner();
    if !std::io::stdout().is_terminal() {
        while let Some(event) = stream.message().await.map_err(|s| failure(&s))? {
            println!("{}", event_line(&event));
        }
        return Ok(());
    }
    let mut recent: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut run_id = String::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let message = tokio::select! {
            message = stream.message() => Some(message),
            _ = tick.tick() => None,
        };
        if let Some(message) = message {
            let Some(event) = message.map_err(|s| failure(&s))? else {
                draw(&mut client, &run_id, &recent).await;
                return Ok(());
            };
            if run_id.is_empty() {
                run_id = serde_json::from_str::<serde_json::Value>(&event.json)
                    .ok()
                    .and_then(|v| v["run_id"].as_str().map(str::to_owned))
                    .unwrap_or_default();
            }
            recent.push_back(event_line(&event));
            while recent.len() > LIVE_EVENTS {
                recent.pop_front();
            }
        }
        draw(&mut client, &run_id, &recent).await;
    }
}

/// Redraws the live view: clear, status, recent events.
async fn draw(client: &mut Client, run_id: &str, recent: &std::collections::VecDeque<String>) {
    let request = client.request(StatusRequest { run_id: run_id.to_owned() });
    print!("\x1b[2J\x1b[H");
    if let Ok(reply) = client.inner.status(request).await
        && let Some(run) = reply.into_inner().runs.first()
    {
        print_status(run);
    }
    println!();
    for line in recent {
        println!("{line}");
    }
}

fn print_replicas(replicas: &[Replica]) {
    println!("{:<20} {:<10} {:>8} {:>8}  LAST EXIT", "REPLICA", "STATE", "PID", "RESTARTS");
    for r in replicas {
        let pid = r.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
        println!("{:<20} {:<10} {pid:>8} {:>8}  {}", r.id, r.state, r.restarts, r.last_exit);
    }
}

/// The supervised replicas.
pub async fn replicas(remote: &Remote) -> Result<Vec<Replica>, Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(PsRequest {});
    Ok(client.inner.ps(request).await.map_err(|s| failure(&s))?.into_inner().replicas)
}

/// `firedrill up ENV_FILE`: validates the file here, has the daemon start its services, and
/// waits up to `wait` for every replica to be healthy.
pub async fn up(remote: &Remote, path: &std::path::Path, wait: std::time::Duration) -> Result<(), Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the file", path.display()))
        .map_err(Failure::BadInput)?;
    let absolute = std::path::absolute(path).map_err(|e| Failure::BadInput(e.into()))?;
    if let Err(errors) = crate::supervise::envfile::parse(&absolute, &text) {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(Failure::BadInput(anyhow!("{}", lines.join("\n"))));
    }
    let mut client = Client::connect(remote).await?;
    let request = client.request(UpRequest { path: absolute.to_string_lossy().into_owned(), text });
    let mut replicas = client.inner.up(request).await.map_err(|s| failure(&s))?.into_inner().replicas;
    let deadline = tokio::time::Instant::now() + wait;
    let ours: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
    while !wait.is_zero() && !replicas.iter().filter(|r| ours.contains(&r.id)).all(|r| r.state == "healthy") {
        if tokio::time::Instant::now() >= deadline {
            print_replicas(&replicas);
            return Err(Failure::Failed(anyhow!(
                "not every replica was healthy within {}",
                crate::duration::format(wait)
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let request = client.request(PsRequest {});
        replicas = client.inner.ps(request).await.map_err(|s| failure(&s))?.into_inner().replicas;
    }
    print_replicas(&replicas);
    Ok(())
}

/// `firedrill ps`.
pub async fn ps(remote: &Remote, json: bool) -> Result<(), Failure> {
    let replicas = replicas(remote).await?;
    if json {
        let rows: Vec<serde_json::Value> = replicas
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id, "service": r.service, "pid": r.pid, "state": r.state,
                    "restarts": r.restarts, "last_exit": (!r.last_exit.is_empty()).then_some(&r.last_exit),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else if replicas.is_empty() {
        println!("no services are up; start some with `firedrill up ENV_FILE`");
    } else {
        print_replicas(&replicas);
    }
    Ok(())
}

/// `firedrill down`.
pub async fn down(remote: &Remote) -> Result<(), Failure> {
    let mut client = Client::connect(remote).await?;
    let request = client.request(PsRequest {});
    let services = client.inner.down(request).await.map_err(|s| failure(&s))?.into_inner().services;
    if services.is_empty() {
        println!("no services were up");
    } else {
        println!("stopped {}", services.join(", "));
    }
    Ok(())
}
