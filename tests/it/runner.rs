//! Drill timelines on tokio's paused clock: phases, hints, and fault cleanup on every path.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use firedrill::drill::{self, Environment};
use firedrill::journal::event::Outcome;
use firedrill::journal::{self, Journal};
use firedrill::proxy::Registry;
use firedrill::proxy::config::ProxyConfig;
use firedrill::run::runner::{self, Command, RunSpec};
use firedrill::scorecard::{Scorecard, Verdict};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

const DRILL: &str = r#"
[drill]
name = "partner-latency"
title = "The payment partner slows to 3 s"
briefing = "Checkout is slow."
timebox = "45m"

[targets]
production = { detect = 6, diagnose = 30, mitigate = 45, resolve = 60 }

[[faults]]
at = "1m"
proxy = "partner"
toxic = { type = "latency", attributes = { latency = 3000 } }

[[faults]]
at = "2m"
duration = "5m"
proxy = "partner"
toxic = { type = "reset_peer", stream = "upstream", toxicity = 0.1 }

[answer]
component = "partner"
kind = "latency"
accept = ["partner", "latency|slow"]

[[hints]]
after = "10m"
text = "Compare latency by upstream."

[[hints]]
text = "Look at the partner's dashboard."
"#;

async fn registry() -> Arc<Registry> {
    let registry = Registry::new(Some(1));
    let config = ProxyConfig {
        mode: firedrill::proxy::config::Mode::Tcp,
        name: "partner".into(),
        listen: "127.0.0.1:0".into(),
        upstream: "127.0.0.1:9".into(),
        enabled: false,
        http: firedrill::proxy::config::HttpOptions::default(),
    };
    registry.create(config).await.unwrap();
    registry
}

fn spec() -> RunSpec {
    let environment = Environment {
        proxies: ["partner".to_owned()].into(),
        http: std::collections::BTreeSet::new(),
        external: false,
    };
    let drill = drill::parse(Path::new("partner.toml"), DRILL, &environment).unwrap();
    RunSpec {
        run_id: "run-1".into(),
        drill,
        team: "payments".into(),
        responder: Some("ana".into()),
        seed: 7,
        blind: false,
        armed_acks: Vec::new(),
        sli_totals: None,
    }
}

async fn toxic_names(registry: &Registry) -> Vec<String> {
    registry.toxics("partner").await.unwrap().into_iter().map(|t| t.name).collect()
}

/// Starts a run in the background; returns its command sender and its join handle.
fn start(
    registry: &Arc<Registry>,
    dir: &Path,
    shutdown: &CancellationToken,
) -> (mpsc::Sender<Command>, tokio::task::JoinHandle<Scorecard>) {
    let (tx, rx) = mpsc::channel(8);
    let journal = Journal::create(&dir.join("run-1.jsonl")).unwrap();
    let (registry, shutdown) = (registry.clone(), shutdown.clone());
    let task = tokio::spawn(async move {
        runner::run(&spec(), &registry, &killers(), journal, rx, shutdown, Arc::default()).await.unwrap()
    });
    (tx, task)
}

async fn at_minute(minutes: f64) {
    tokio::time::sleep(Duration::from_secs_f64(minutes * 60.0)).await;
}

#[tokio::test(start_paused = true)]
async fn a_full_timeline_scores_every_phase() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry().await;
    let shutdown = CancellationToken::new();
    let (tx, task) = start(&registry, dir.path(), &shutdown);

    at_minute(0.5).await;
    assert!(toxic_names(&registry).await.is_empty(), "nothing before the first offset");
    at_minute(1.0).await; // 1m30s
    assert_eq!(toxic_names(&registry).await, ["firedrill_run-1_0_latency_downstream"]);
    at_minute(1.0).await; // 2m30s
    assert_eq!(toxic_names(&registry).await.len(), 2);
    let (reply, recorded) = oneshot::channel();
    tx.send(Command::Ack { by: "bo".into(), reply }).await.unwrap();
    recorded.await.unwrap();
    at_minute(2.5).await; // 5m
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Diagnose { by: "bo".into(), text: "the database is down".into(), reply }).await.unwrap();
    assert_eq!(answer.await.unwrap(), Ok(false));
    at_minute(3.0).await; // 8m: the reset_peer fault has run its 5 minutes
    assert_eq!(toxic_names(&registry).await, ["firedrill_run-1_0_latency_downstream"]);
    let (reply, hint) = oneshot::channel();
    tx.send(Command::Hint { by: "ana".into(), reply }).await.unwrap();
    assert_eq!(hint.await.unwrap().unwrap().as_deref(), Some("Compare latency by upstream."));
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Diagnose { by: "ana".into(), text: "Partner API is slow".into(), reply }).await.unwrap();
    assert_eq!(answer.await.unwrap(), Ok(true));
    at_minute(12.0).await; // 20m
    let (reply, resolved) = oneshot::channel();
    tx.send(Command::Resolve { by: "ana".into(), reply }).await.unwrap();
    assert_eq!(resolved.await.unwrap(), Ok(()));
    let card = task.await.unwrap();

    assert!(toxic_names(&registry).await.is_empty(), "resolving removes every fault");
    assert_eq!(card.outcome, Some(Outcome::Resolved));
    assert_eq!(card.t0_ms, 60_000, "t0 is the first fault");
    let actual: Vec<Option<u64>> = card.phases.iter().map(|p| p.actual_ms).collect();
    assert_eq!(actual, [Some(90_000), Some(420_000), Some(1_140_000), Some(1_140_000)]);
    let targets: Vec<u64> = card.phases.iter().map(|p| p.target_ms).collect();
    assert_eq!(targets, [120_000, 600_000, 900_000, 1_200_000], "a third of production");
    let verdicts: Vec<Verdict> = card.phases.iter().map(|p| p.verdict).collect();
    assert_eq!(verdicts, [Verdict::Met, Verdict::Met, Verdict::Missed, Verdict::Met]);
    assert_eq!(card.detection.human_by.as_deref(), Some("bo"));
    assert_eq!(card.detection.machine_ms, None);
    assert_eq!(card.wrong_diagnoses.len(), 1);
    assert_eq!(card.wrong_diagnoses[0].at_ms, 240_000);
    assert_eq!(card.diagnosed_by.as_deref(), Some("ana"));
    assert_eq!(card.hints.len(), 1, "the scheduled hint was already revealed on request");
    assert_eq!((card.faults_applied, card.faults_left), (2, 0));

    // The scorecard is a pure function of the journal.
    let replayed = Scorecard::from_journal(&journal::read(&dir.path().join("run-1.jsonl")).unwrap()).unwrap();
    assert_eq!(replayed, card);
}

#[tokio::test(start_paused = true)]
async fn the_timebox_ends_unresolved_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry().await;
    let (_tx, task) = start(&registry, dir.path(), &CancellationToken::new());
    let card = task.await.unwrap();
    assert_eq!(card.outcome, Some(Outcome::Unresolved));
    assert!(card.phases.iter().all(|p| p.verdict == Verdict::NotReached));
    assert_eq!(card.hints.len(), 1, "the scheduled hint came at 10m");
    assert!(toxic_names(&registry).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn abort_removes_the_faults_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry().await;
    let (tx, task) = start(&registry, dir.path(), &CancellationToken::new());
    at_minute(3.0).await;
    assert_eq!(toxic_names(&registry).await.len(), 2);
    tx.send(Command::Abort { by: "facilitator".into() }).await.unwrap();
    let card = task.await.unwrap();
    assert_eq!(card.outcome, Some(Outcome::Aborted));
    assert_eq!(card.outcome_reason.as_deref(), Some("aborted by facilitator"));
    assert!(toxic_names(&registry).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_daemon_shutdown_interrupts_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry().await;
    let shutdown = CancellationToken::new();
    let (_tx, task) = start(&registry, dir.path(), &shutdown);
    at_minute(1.5).await;
    assert_eq!(toxic_names(&registry).await.len(), 1);
    shutdown.cancel();
    let card = task.await.unwrap();
    assert_eq!(card.outcome, Some(Outcome::Interrupted));
    assert!(toxic_names(&registry).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_crashed_run_is_recovered_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry().await;
    let (_tx, task) = start(&registry, dir.path(), &CancellationToken::new());
    at_minute(2.5).await;
    // A crash: the run stops dead, its faults stay on the proxy.
    task.abort();
    let _ = task.await;
    assert_eq!(toxic_names(&registry).await.len(), 2);
    let path = dir.path().join("run-1.jsonl");
    let card = runner::recover(&path, &registry, &killers()).await.unwrap().expect("an unfinished run");
    assert_eq!(card.outcome, Some(Outcome::Interrupted));
    assert_eq!(card.faults_left, 0);
    assert!(toxic_names(&registry).await.is_empty(), "recovery removes what the crashed run left");
    assert!(runner::recover(&path, &registry, &killers()).await.unwrap().is_none(), "a finished run is left alone");
}

#[tokio::test(start_paused = true)]
async fn a_fault_that_cannot_be_applied_fails_the_run_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry().await;
    // A toxic of the same name is already there: the second fault's apply fails with 409.
    let clash = firedrill::proxy::toxic::Toxic::from_create(&serde_json::json!({
        "type": "noop", "name": "firedrill_run-1_1_reset_peer_upstream"
    }))
    .unwrap();
    registry.insert_toxic("partner", clash).await.unwrap();
    let (_tx, task) = start(&registry, dir.path(), &CancellationToken::new());
    let card = task.await.unwrap();
    assert_eq!(card.outcome, Some(Outcome::Failed));
    assert_eq!(
        toxic_names(&registry).await,
        ["firedrill_run-1_1_reset_peer_upstream"],
        "only the stranger's toxic is left"
    );
}

fn killers() -> firedrill::fault::kill::Killers {
    firedrill::fault::kill::Killers::new(firedrill::supervise::Supervisor::new())
}

/// A fault target whose proxy reports 100 requests a second, all bad while a fault is applied:
/// the SLI of an outage, on the paused clock.
#[derive(Default)]
struct Outage {
    state: std::sync::Mutex<(Option<tokio::time::Instant>, f64)>,
    started: std::sync::OnceLock<tokio::time::Instant>,
}

impl firedrill::fault::FaultTarget for Outage {
    async fn apply(
        &self,
        _proxy: &str,
        _toxic: &firedrill::proxy::toxic::Toxic,
    ) -> Result<(), firedrill::fault::FaultError> {
        self.state.lock().unwrap().0 = Some(tokio::time::Instant::now());
        Ok(())
    }

    async fn remove(&self, _proxy: &str, _toxic: &str) -> Result<(), firedrill::fault::FaultError> {
        let mut state = self.state.lock().unwrap();
        if let Some(since) = state.0.take() {
            state.1 += since.elapsed().as_secs_f64();
        }
        Ok(())
    }

    async fn counts(&self, _proxy: &str) -> Option<(u64, u64)> {
        let started = *self.started.get_or_init(tokio::time::Instant::now);
        let state = self.state.lock().unwrap();
        let bad_seconds = state.1 + state.0.map_or(0.0, |s| s.elapsed().as_secs_f64());
        Some(((started.elapsed().as_secs_f64() * 100.0) as u64, (bad_seconds * 100.0) as u64))
    }
}

const OUTAGE: &str = r#"
[drill]
name = "outage"
title = "The API fails"
briefing = "Errors."
timebox = "45m"

[targets]
production = { detect = 6, diagnose = 30, mitigate = 45, resolve = 60 }

[[faults]]
at = "0s"
duration = "60s"
proxy = "api"
toxic = { type = "latency", attributes = { latency = 1 } }

[answer]
component = "api"
kind = "errors"
accept = ["api"]

[slo]
objective = 99.9
production_rps = 100
proxy = "api"
"#;

/// Runs the outage drill for 400 s of paused time; returns each alert event's (type, name, s).
async fn outage_alerts(drill_text: &str) -> Vec<(String, String, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let environment =
        Environment { proxies: ["api".to_owned()].into(), http: std::collections::BTreeSet::new(), external: false };
    let drill = drill::parse(Path::new("outage.toml"), drill_text, &environment).unwrap();
    let spec = RunSpec {
        run_id: "outage-1".into(),
        drill,
        team: "t".into(),
        responder: None,
        seed: 1,
        blind: false,
        armed_acks: Vec::new(),
        sli_totals: None,
    };
    let (tx, rx) = mpsc::channel(8);
    let path = dir.path().join("outage.jsonl");
    let journal = Journal::create(&path).unwrap();
    let target = Arc::new(Outage::default());
    let task = tokio::spawn({
        let target = target.clone();
        async move {
            runner::run(&spec, &target, &killers(), journal, rx, CancellationToken::new(), Arc::default())
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_secs(400)).await;
    tx.send(Command::Abort { by: "t".into() }).await.unwrap();
    task.await.unwrap();
    journal::read(&path)
        .unwrap()
        .into_iter()
        .filter_map(|r| {
            let json = serde_json::to_value(&r.event).unwrap();
            let kind = json["type"].as_str().unwrap().to_owned();
            (kind == "alert" || kind == "alert_cleared")
                .then(|| (kind, json["name"].as_str().unwrap().to_owned(), r.t_ms / 1000))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn burn_rate_rules_fire_when_predicted_and_clear_after_the_errors_stop() {
    let alerts = outage_alerts(OUTAGE).await;
    // 100 % errors against 99.9 %: the 1 h page crosses 1.44 % after 51.84 s (the tick of second
    // 52); the 60 s outage leaves the 5 min window once under 4.32 s of it remain (second 356).
    assert_eq!(
        alerts,
        [("alert".to_owned(), "page-1h".to_owned(), 52), ("alert_cleared".to_owned(), "page-1h".to_owned(), 356)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_minimum_of_bad_events_keeps_the_rules_quiet() {
    let quiet = OUTAGE.replace("production_rps = 100\n", "production_rps = 100\nmin_bad = 100000\n");
    assert!(outage_alerts(&quiet).await.is_empty(), "6,000 bad events are under the minimum of 100,000");
}

#[tokio::test(start_paused = true)]
async fn before_the_fault_an_ack_is_a_false_alarm_and_the_rest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry().await;
    let shutdown = CancellationToken::new();
    let (tx, task) = start(&registry, dir.path(), &shutdown);

    at_minute(0.5).await; // the first fault goes in at 1m
    let (reply, counted) = oneshot::channel();
    tx.send(Command::Ack { by: "eve".into(), reply }).await.unwrap();
    assert!(!counted.await.unwrap(), "before t0 an acknowledgement is a false alarm");
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Resolve { by: "eve".into(), reply }).await.unwrap();
    assert!(matches!(answer.await.unwrap(), Err(runner::Refusal::NotYet(Some(60_000)))));
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Diagnose { by: "eve".into(), text: "partner slow".into(), reply }).await.unwrap();
    assert!(answer.await.unwrap().is_err(), "a diagnosis before t0 is not scored");
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Mitigate { by: "eve".into(), reply }).await.unwrap();
    assert!(answer.await.unwrap().is_err());

    at_minute(1.0).await; // 1m30s: the fault is in
    let (reply, counted) = oneshot::channel();
    tx.send(Command::Ack { by: "eve".into(), reply }).await.unwrap();
    assert!(counted.await.unwrap());
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Mitigate { by: "eve".into(), reply }).await.unwrap();
    assert_eq!(answer.await.unwrap(), Err(runner::Refusal::NoProbe), "no probe to prove it with");
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Resolve { by: "eve".into(), reply }).await.unwrap();
    assert_eq!(answer.await.unwrap(), Ok(()));
    let card = task.await.unwrap();
    assert_eq!(card.false_alarms.len(), 1);
    assert_eq!(card.detection.human_ms, Some(30_000));
    assert!(card.resolved_without_diagnosis);
    assert_eq!(card.mitigation, Some(firedrill::scorecard::Mitigation::Resolution));
}

/// A health endpoint for the steady-state probe, in this runtime (so it runs on the paused
/// clock): it answers after 400 ms, past the probe's 200 ms, while the proxy holds a toxic and
/// `fixed` is false; at once otherwise.
async fn health_endpoint(registry: Arc<Registry>, fixed: Arc<std::sync::atomic::AtomicBool>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let (registry, fixed) = (registry.clone(), fixed.clone());
            tokio::spawn(async move {
                let mut request = [0; 1024];
                let _ = stream.read(&mut request).await;
                let toxic = !registry.toxics("partner").await.unwrap().is_empty();
                if toxic && !fixed.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    url
}

/// Runs a one-fault drill whose steady state is `url`'s health, verified over a 2 s window.
fn start_verified(
    registry: &Arc<Registry>,
    dir: &Path,
    url: &str,
) -> (mpsc::Sender<Command>, tokio::task::JoinHandle<Scorecard>) {
    let text = format!(
        "[drill]\nname = \"slow-partner\"\ntitle = \"Slow\"\nbriefing = \"Slow.\"\ntimebox = \"45m\"\n\n\
         [targets]\nproduction = {{ detect = 6, diagnose = 30, mitigate = 45, resolve = 60 }}\n\n\
         [[faults]]\nat = \"0s\"\nproxy = \"partner\"\ntoxic = {{ type = \"latency\", attributes = {{ latency = 400 }} }}\n\n\
         [answer]\ncomponent = \"partner\"\nkind = \"latency\"\naccept = [\"partner\"]\n\n\
         [verify]\nhttp = {{ url = \"{url}\", within = \"200ms\" }}\nsuccess_ratio = 1.0\nwindow = \"2s\"\n"
    );
    let environment = Environment { proxies: ["partner".to_owned()].into(), ..Environment::default() };
    let mut spec = spec();
    spec.drill = drill::parse(Path::new("slow-partner.toml"), &text, &environment).unwrap();
    let (tx, rx) = mpsc::channel(8);
    let journal = Journal::create(&dir.join("run-1.jsonl")).unwrap();
    let registry = registry.clone();
    let task = tokio::spawn(async move {
        runner::run(&spec, &registry, &killers(), journal, rx, CancellationToken::new(), Arc::default()).await.unwrap()
    });
    (tx, task)
}

fn journaled(dir: &Path, kind: &str) -> usize {
    let text = std::fs::read_to_string(dir.join("run-1.jsonl")).unwrap();
    text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"] == kind).count()
}

#[tokio::test(start_paused = true)]
async fn taking_the_runs_own_toxic_off_behind_its_back_is_no_mitigation() {
    // The control: the team fixes the service with the fault still in; the steady state holds
    // for the window and the run records the mitigation.
    let dir = tempfile::tempdir().unwrap();
    let registry = registry().await;
    let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = health_endpoint(registry.clone(), fixed.clone()).await;
    let (tx, task) = start_verified(&registry, dir.path(), &url);
    at_minute(0.05).await; // 3 s: the probes have failed
    assert_eq!(journaled(dir.path(), "steady_state_lost"), 1);
    let (reply, _) = oneshot::channel();
    tx.send(Command::Ack { by: "ana".into(), reply }).await.unwrap();
    fixed.store(true, std::sync::atomic::Ordering::SeqCst);
    at_minute(0.1).await; // 6 s later: two windows of good probes
    assert_eq!(journaled(dir.path(), "mitigated"), 1, "mitigated with the fault still in");
    tx.send(Command::Abort { by: "facilitator".into() }).await.unwrap();
    task.await.unwrap();

    // Taking the run's own toxic off through the admin API instead: the probes pass again, but
    // no fault is in force any more. Ten minutes later, still no mitigation.
    let dir = tempfile::tempdir().unwrap();
    fixed.store(false, std::sync::atomic::Ordering::SeqCst);
    let (tx, task) = start_verified(&registry, dir.path(), &url);
    at_minute(0.05).await;
    assert_eq!(journaled(dir.path(), "steady_state_lost"), 1);
    let (reply, _) = oneshot::channel();
    tx.send(Command::Ack { by: "ana".into(), reply }).await.unwrap();
    let name = toxic_names(&registry).await.pop().unwrap();
    registry.remove_toxic("partner", &name).await.unwrap();
    at_minute(10.0).await;
    assert_eq!(journaled(dir.path(), "mitigated"), 0, "no mitigation with no fault in force");
    tx.send(Command::Abort { by: "facilitator".into() }).await.unwrap();
    task.await.unwrap();
}
