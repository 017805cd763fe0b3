//! Drill timelines on tokio's paused clock: phases, hints, and fault cleanup on every path.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use firedrill::drill::{self, Environment};
use firedrill::proxy::Registry;
use firedrill::proxy::config::ProxyConfig;
use firedrill::run::event::Outcome;
use firedrill::run::journal::{self, Journal};
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
        name: "partner".into(),
        listen: "127.0.0.1:0".into(),
        upstream: "127.0.0.1:9".into(),
        enabled: false,
    };
    registry.create(config).await.unwrap();
    registry
}

fn spec() -> RunSpec {
    let environment = Environment { proxies: ["partner".to_owned()].into() };
    let drill = drill::parse(Path::new("partner.toml"), DRILL, &environment).unwrap();
    RunSpec { run_id: "run-1".into(), drill, team: "payments".into(), responder: Some("ana".into()), seed: 7 }
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
    let task =
        tokio::spawn(
            async move { runner::run(&spec(), &registry, journal, rx, shutdown, Arc::default()).await.unwrap() },
        );
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
    assert_eq!(toxic_names(&registry).await, ["firedrill_0_latency_downstream"]);
    at_minute(1.0).await; // 2m30s
    assert_eq!(toxic_names(&registry).await.len(), 2);
    tx.send(Command::Ack { by: "bo".into() }).await.unwrap();
    at_minute(2.5).await; // 5m
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Diagnose { by: "bo".into(), text: "the database is down".into(), reply }).await.unwrap();
    assert!(!answer.await.unwrap());
    at_minute(3.0).await; // 8m: the reset_peer fault has run its 5 minutes
    assert_eq!(toxic_names(&registry).await, ["firedrill_0_latency_downstream"]);
    let (reply, hint) = oneshot::channel();
    tx.send(Command::Hint { by: "ana".into(), reply }).await.unwrap();
    assert_eq!(hint.await.unwrap().as_deref(), Some("Compare latency by upstream."));
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Diagnose { by: "ana".into(), text: "Partner API is slow".into(), reply }).await.unwrap();
    assert!(answer.await.unwrap());
    at_minute(12.0).await; // 20m
    tx.send(Command::Resolve { by: "ana".into() }).await.unwrap();
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
    let card = runner::recover(&path, &registry).await.unwrap().expect("an unfinished run");
    assert_eq!(card.outcome, Some(Outcome::Interrupted));
    assert_eq!(card.faults_left, 0);
    assert!(toxic_names(&registry).await.is_empty(), "recovery removes what the crashed run left");
    assert!(runner::recover(&path, &registry).await.unwrap().is_none(), "a finished run is left alone");
}

#[tokio::test(start_paused = true)]
async fn a_fault_that_cannot_be_applied_fails_the_run_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry().await;
    // A toxic of the same name is already there: the second fault's apply fails with 409.
    let clash = firedrill::proxy::toxic::Toxic::from_create(&serde_json::json!({
        "type": "noop", "name": "firedrill_1_reset_peer_upstream"
    }))
    .unwrap();
    registry.insert_toxic("partner", clash).await.unwrap();
    let (_tx, task) = start(&registry, dir.path(), &CancellationToken::new());
    let card = task.await.unwrap();
    assert_eq!(card.outcome, Some(Outcome::Failed));
    assert_eq!(toxic_names(&registry).await, ["firedrill_1_reset_peer_upstream"], "only the stranger's toxic is left");
}
