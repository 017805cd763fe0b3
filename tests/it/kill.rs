//! Kill faults on local processes: real replicas under `firedrill up`, killed by a drill, brought
//! back by the supervisor, with both in the journal and the scorecard.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::ServeProcess;

/// The example service, built by `cargo test` next to the test binary.
pub fn healthd() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().unwrap().parent().unwrap();
    let path = debug.join("examples/healthd");
    if !path.exists() {
        // `cargo test` builds examples; `cargo test --test it` does not.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo).args(["build", "--example", "healthd"]).status().unwrap();
        assert!(status.success() && path.exists(), "cannot build {}", path.display());
    }
    path
}

/// A port whose next one is free too (two replicas count from it).
fn free_port() -> u16 {
    loop {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

const DRILL: &str = r#"
[drill]
name = "wallet-crash"
title = "Wallet replicas keep dying"
briefing = "Payments fail now and then."
timebox = "10m"

[targets]
production = { detect = 3, diagnose = 6, mitigate = 9, resolve = 12 }

[[faults]]
at = "0s"
kill = { process = "wallet", count = 1, every = "2s", signal = "SIGKILL" }

[answer]
component = "wallet"
kind = "crash"
accept = ["wallet", "crash|kill|restart|die"]
"#;

/// A working directory with the drill and an environment of two wallet replicas.
fn setup(dir: &Path, drill: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("drills")).unwrap();
    std::fs::write(dir.join("drills/wallet-crash.toml"), drill).unwrap();
    let port = free_port();
    let env = format!(
        r#"
[[services]]
name = "wallet"
command = "{}"
args = ["--listen", "127.0.0.1:{{port}}"]
replicas = 2
port = {port}
health = {{ http = "http://127.0.0.1:{{port}}/healthz", interval = "100ms" }}
restart = {{ policy = "always", backoff = "200ms", max_backoff = "1s" }}
"#,
        healthd().display()
    );
    let path = dir.join("env.toml");
    std::fs::write(&path, env).unwrap();
    path
}

pub fn journal(dir: &Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(dir.join(".firedrill/runs")) else { return Vec::new() };
    entries
        .flat_map(|e| {
            std::fs::read_to_string(e.unwrap().path()).unwrap().lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect()
}

pub fn events_of(records: &[serde_json::Value], kind: &str) -> Vec<serde_json::Value> {
    records.iter().filter(|r| r["type"] == kind).cloned().collect()
}

/// Waits until replica `id` of `supervisor` is as `wanted`, at most `limit`, woken by each of the
/// supervisor's status changes.
pub async fn replica_becomes(
    supervisor: &firedrill::supervise::Supervisor,
    id: &str,
    limit: Duration,
    wanted: impl Fn(&firedrill::supervise::ReplicaStatus) -> bool,
) -> bool {
    let mut changes = supervisor.changes();
    let waited = tokio::time::timeout(limit, async {
        loop {
            if supervisor.replica(id).is_some_and(|r| wanted(&r)) {
                return;
            }
            changes.changed().await.unwrap();
        }
    });
    waited.await.is_ok()
}

/// Whether process `pid` ignores SIGTERM yet (`trap '' TERM` has run): a replica is up as soon as
/// it is spawned, before its shell has read the trap.
pub fn ignores_term(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

/// Polls `check` for up to `limit`: for state no event announces (a container's state in
/// Docker, a metric on a scraped endpoint, Prometheus or Alertmanager, `/proc`, a port).
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_killed_replica_comes_back_and_the_journal_has_both() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), DRILL);
    let serve = ServeProcess::start_in(dir.path(), &[]);
    let (code, out, err) = serve.verb(&["up", env.to_str().unwrap(), "--wait", "20s"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("wallet-0") && out.contains("wallet-1") && out.contains("healthy"), "{out}");

    // The dry run names the replicas it would choose from, and with a seed the one it would kill.
    // Asked from another directory: the daemon answers, from its own drills and environment.
    let dry = ["run", "wallet-crash", "--team", "payments", "--dry-run", "--seed", "3"];
    let (code, out, err) = serve.verb(&dry);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("kill replicas of local service `wallet`"), "{out}");
    assert!(out.contains("matching now (2): wallet-0, wallet-1"), "{out}");
    assert!(out.contains("first round with --seed 3: wallet-"), "{out}");
    assert_eq!(events_of(&journal(dir.path()), "target_killed").len(), 0, "a dry run kills nothing");

    let (code, out, err) = serve.verb(&["run", "wallet-crash", "--team", "payments", "--seed", "3"]);
    assert_eq!(code, Some(0), "{out}{err}");
    // Two rounds, each seen back.
    let recovered = crate::harness::until(dir.path(), Duration::from_secs(30), || {
        events_of(&journal(dir.path()), "target_recovered").len() >= 2
    });
    let records = journal(dir.path());
    assert!(recovered, "{records:#?}");
    let killed = events_of(&records, "target_killed");
    assert!(killed.len() >= 2, "{killed:?}");
    assert_eq!(killed[0]["backend"], "process");
    assert_eq!(killed[0]["action"], "kill");
    assert_eq!(killed[1]["round"], 1);
    let back = events_of(&records, "target_recovered");
    assert!(back[0]["detail"].as_str().unwrap().contains("healthy after"), "{back:?}");

    let (_, ps, _) = serve.verb(&["ps", "--json"]);
    let replicas: serde_json::Value = serde_json::from_str(&ps).unwrap();
    let restarts: u64 = replicas.as_array().unwrap().iter().map(|r| r["restarts"].as_u64().unwrap()).sum();
    assert!(restarts >= 2, "the supervisor restarted what was killed: {replicas}");
    assert!(
        replicas.as_array().unwrap().iter().any(|r| r["last_exit"] == "signal: 9 (SIGKILL)"),
        "the kill is what the supervisor saw: {replicas}"
    );

    let (code, _, err) = serve.verb(&["abort", "--all"]);
    assert_eq!(code, Some(0), "{err}");
    let cards: Vec<serde_json::Value> = std::fs::read_dir(dir.path().join("scorecards/payments"))
        .unwrap()
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    let kills = cards[0]["kills"].as_array().unwrap();
    assert!(kills.len() >= 2, "{kills:?}");
    assert!(kills[0]["recovered_after_ms"].as_u64().is_some(), "{kills:?}");
    assert_eq!(cards[0]["fault_kinds"], serde_json::json!(["kill"]));

    // That no round follows the end of the run is seen on the paused clock, below
    // (`paused::no_round_follows_the_end_of_a_run`).

    let (code, out, _) = serve.verb(&["down"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), "stopped wallet");
    let (_, out, _) = serve.verb(&["ps"]);
    assert!(out.contains("no services are up"), "{out}");
}

#[test]
fn kills_outside_the_blast_radius_or_matching_nothing_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Two per round against a radius of one: refused when the file is read.
    let wide = DRILL.replace("count = 1,", "count = 2,");
    let env = setup(dir.path(), &wide);
    let serve = ServeProcess::start_in(dir.path(), &[]);
    let (code, _, err) = serve.verb(&["run", "wallet-crash", "--team", "payments"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("wallet-crash.toml:13:38:"), "{err}");
    assert!(err.contains("faults.kill.count 2 is more targets than blast_radius.max_targets (1)"), "{err}");

    // Every replica (`all`) with a radius of one: refused before the run, once it is known how many match.
    std::fs::write(dir.path().join("drills/wallet-crash.toml"), DRILL.replace("count = 1,", "all = true,")).unwrap();
    let (code, _, err) = serve.verb(&["run", "wallet-crash", "--team", "payments"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no local service `wallet` is up"), "matching nothing is an error: {err}");
    let (code, out, err) = serve.verb(&["up", env.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, err) = serve.verb(&["run", "wallet-crash", "--team", "payments"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("this round would take 2 of 2 replicas of local service `wallet`"), "{err}");
    assert!(events_of(&journal(dir.path()), "target_killed").is_empty());
    let (_, ps, _) = serve.verb(&["ps", "--json"]);
    let replicas: serde_json::Value = serde_json::from_str(&ps).unwrap();
    assert!(replicas.as_array().unwrap().iter().all(|r| r["restarts"] == 0), "{replicas}");

    // Bad environment files are refused with their place.
    std::fs::write(dir.path().join("bad.toml"), "[[services]]\nname = \"x\"\ncommand = \"y\"\nreplicas = 0\n").unwrap();
    let (code, _, err) = serve.verb(&["up", dir.path().join("bad.toml").to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml:4:12: services.replicas must be 1 to 64"), "{err}");
    let (code, _, err) = serve.verb(&["up", env.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("service `wallet` is already up"), "{err}");
}

#[test]
fn a_crashed_daemon_leaves_no_supervised_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), DRILL);
    let mut serve = ServeProcess::start_in(dir.path(), &[]);
    let (code, out, err) = serve.verb(&["up", env.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (_, ps, _) = serve.verb(&["ps", "--json"]);
    let replicas: serde_json::Value = serde_json::from_str(&ps).unwrap();
    let pids: Vec<u64> = replicas.as_array().unwrap().iter().map(|r| r["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    serve.signal("KILL");
    serve.wait(Duration::from_secs(10));
    let gone = eventually(Duration::from_secs(5), || pids.iter().all(|p| !Path::new(&format!("/proc/{p}")).exists()));
    assert!(gone, "replicas {pids:?} outlived their daemon");
}

/// Whether, at each `target_killed` of the journal, at most `max` targets acted on were not back.
fn never_more_than(records: &[serde_json::Value], max: usize) -> Result<(), String> {
    let mut out: Vec<String> = Vec::new();
    for record in records {
        let target = record["target"].as_str().unwrap_or_default().to_owned();
        match record["type"].as_str() {
            Some("target_killed") => {
                out.push(target);
                if out.len() > max {
                    return Err(format!("{} down at once: {out:?}", out.len()));
                }
            }
            Some("target_recovered") => out.retain(|t| *t != target),
            _ => {}
        }
    }
    Ok(())
}

#[test]
fn rounds_never_take_more_replicas_down_than_the_blast_radius() {
    let dir = tempfile::tempdir().unwrap();
    // Rounds every second; a killed replica takes about 1.5 s to come back (its backoff): a round
    // that falls while one is in backoff must be skipped, not take the other one too.
    let drill = DRILL
        .replace("every = \"2s\"", "every = \"1s\"")
        .replace("[[faults]]\nat = \"0s\"", "[[faults]]\nat = \"0s\"\nduration = \"6s\"");
    let env = setup(dir.path(), &drill);
    std::fs::write(
        &env,
        std::fs::read_to_string(&env)
            .unwrap()
            .replace("backoff = \"200ms\", max_backoff = \"1s\"", "backoff = \"1500ms\", max_backoff = \"1500ms\""),
    )
    .unwrap();
    let serve = ServeProcess::start_in(dir.path(), &[]);
    let (code, out, err) = serve.verb(&["up", env.to_str().unwrap(), "--wait", "20s"]);
    assert_eq!(code, Some(0), "{out}{err}");

    // The dry run, asked from elsewhere, says how many may be down at once.
    let (code, out, err) = serve.verb(&["run", "wallet-crash", "--team", "payments", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("blast radius: at most 1 of the drill's kill targets down at once"), "{out}");
    assert!(out.contains("a round that would exceed it is skipped"), "{out}");

    let (code, out, err) = serve.verb(&["run", "wallet-crash", "--team", "payments", "--seed", "1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let mut worst = 0;
    let rounds = || {
        let records = journal(dir.path());
        events_of(&records, "target_killed").len() + events_of(&records, "kill_skipped").len()
    };
    let done = crate::harness::until(dir.path(), Duration::from_secs(20), || {
        // Sampled while the rounds go on: replicas short of healthy, whatever the journal says.
        let (_, ps, _) = serve.verb(&["ps", "--json"]);
        let replicas: serde_json::Value = serde_json::from_str(&ps).unwrap_or_default();
        let down = replicas.as_array().into_iter().flatten().filter(|r| r["state"] != "healthy").count();
        worst = worst.max(down);
        rounds() >= 6
    });
    let records = journal(dir.path());
    assert!(done, "six rounds: {records:#?}");
    assert!(worst <= 1, "{worst} replicas were down at once");
    never_more_than(&records, 1).unwrap();
    let skipped = events_of(&records, "kill_skipped");
    assert!(!skipped.is_empty(), "rounds during a backoff are skipped: {records:#?}");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("process/wallet-"), "{skipped:?}");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("round skipped, nothing was killed"), "{skipped:?}");
    assert_eq!(serve.verb(&["abort", "--all"]).0, Some(0));
}

#[test]
fn a_dry_run_is_the_daemons_answer_with_runs_lookup_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    // The file's name is not the drill's: `run` finds it by `drill.name`, and so must the dry run.
    let env = setup(dir.path(), DRILL);
    std::fs::rename(dir.path().join("drills/wallet-crash.toml"), dir.path().join("drills/renamed.toml")).unwrap();
    let serve = ServeProcess::start_in(dir.path(), &[]);
    assert_eq!(serve.verb(&["up", env.to_str().unwrap(), "--wait", "20s"]).0, Some(0));
    let (code, out, err) = serve.verb(&["run", "wallet-crash", "--team", "payments", "--dry-run", "--seed", "4"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("renamed.toml") && out.contains("first round with --seed 4: wallet-"), "{out}");
    for (args, code) in [
        (["run", "no-such-drill", "--team", "payments"], Some(2)),
        (["run", "wallet-crash", "--team", "bad team!"], Some(2)),
    ] {
        let (run_code, _, run_err) = serve.verb(&args);
        let mut dry: Vec<&str> = args.to_vec();
        dry.push("--dry-run");
        let (dry_code, _, dry_err) = serve.verb(&dry);
        assert_eq!((run_code, dry_code), (code, code), "{run_err}\n{dry_err}");
    }
    std::fs::write(dir.path().join("drills/renamed.toml"), DRILL.replace("count = 1,", "all = true,")).unwrap();
    let (run_code, _, run_err) = serve.verb(&["run", "wallet-crash", "--team", "payments"]);
    let (dry_code, _, dry_err) = serve.verb(&["run", "wallet-crash", "--team", "payments", "--dry-run"]);
    assert_eq!((run_code, dry_code), (Some(2), Some(2)), "{run_err}\n{dry_err}");
    assert!(dry_err.contains("this round would take 2 of 2 replicas"), "{dry_err}");
    assert!(events_of(&journal(dir.path()), "target_killed").is_empty(), "nothing was touched");
}

#[test]
fn a_grace_periods_sigkill_belongs_to_the_run_journaled_when_sent_and_never_sent_after_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let drill = DRILL.replace(
        "kill = { process = \"wallet\", count = 1, every = \"2s\", signal = \"SIGKILL\" }",
        "kill = { process = \"wallet\", count = 1, signal = \"SIGTERM\", grace = \"1s\" }",
    );
    setup(dir.path(), &drill);
    // A replica that ignores SIGTERM: only the follow-up SIGKILL stops it.
    let env = dir.path().join("stubborn.toml");
    std::fs::write(
        &env,
        "[[services]]\nname = \"wallet\"\ncommand = \"sh\"\nargs = [\"-c\", \"trap '' TERM; exec sleep 600\"]\n\
         restart = { policy = \"always\", backoff = \"100ms\" }\n",
    )
    .unwrap();
    let serve = ServeProcess::start_in(dir.path(), &[]);
    assert_eq!(serve.verb(&["up", env.to_str().unwrap(), "--wait", "20s"]).0, Some(0));
    let pid = || {
        let (_, ps, _) = serve.verb(&["ps", "--json"]);
        serde_json::from_str::<serde_json::Value>(&ps).unwrap()[0]["pid"].as_u64()
    };

    // Left to run: the SIGKILL goes out when the grace period ends, and the journal says so.
    let first = pid().unwrap();
    assert!(eventually(Duration::from_secs(10), || ignores_term(first as u32)), "the trap is set");
    assert_eq!(serve.verb(&["run", "wallet-crash", "--team", "payments"]).0, Some(0));
    let escalated = || events_of(&journal(dir.path()), "kill_escalated");
    assert!(
        crate::harness::until(dir.path(), Duration::from_secs(15), || !escalated().is_empty()),
        "{:#?}",
        journal(dir.path())
    );
    assert!(escalated()[0]["detail"].as_str().unwrap().contains(&format!("SIGKILL to pid {first}")));
    assert!(
        crate::harness::until(dir.path(), Duration::from_secs(10), || pid().is_some_and(|p| p != first)),
        "restarted"
    );
    assert_eq!(serve.verb(&["abort", "--all"]).0, Some(0));

    // Aborted inside the grace period: the SIGKILL is never sent.
    let second = pid().unwrap();
    assert!(eventually(Duration::from_secs(10), || ignores_term(second as u32)), "the trap is set");
    let killed_before = events_of(&journal(dir.path()), "target_killed").len();
    assert_eq!(serve.verb(&["run", "wallet-crash", "--team", "payments"]).0, Some(0));
    assert!(crate::harness::until(dir.path(), Duration::from_secs(10), || events_of(
        &journal(dir.path()),
        "target_killed"
    )
    .len()
        > killed_before));
    assert_eq!(serve.verb(&["abort", "--all"]).0, Some(0));
    // Aborted: the run's end is journaled, with no SIGKILL before it. That none follows it,
    // past the grace period, is seen on the paused clock (`paused::an_abort_inside_…`).
    let ended = || events_of(&journal(dir.path()), "ended").len() == 2;
    assert!(crate::harness::until(dir.path(), Duration::from_secs(10), ended));
    assert_eq!(pid(), Some(second), "the process that ignored SIGTERM still runs");
    assert_eq!(escalated().len(), 1, "only the first run's");
}

/// What must not happen once a run has ended, seen on tokio's paused clock: real supervised
/// processes, the real runner and killers, and minutes of paused time instead of seconds of
/// waiting. The clock is paused for what needs no real process to move: after the run's end,
/// and (for the grace period) from the run's start to its SIGKILL.
mod paused {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use firedrill::drill::{self, Environment};
    use firedrill::fault::kill::Killers;
    use firedrill::journal::Journal;
    use firedrill::run::runner::{self, Command, RunSpec};
    use firedrill::supervise::{ReplicaState, Supervisor, envfile};
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::{DRILL, events_of, replica_becomes};

    /// A supervisor running `replicas` of `wallet` as `script` (for `sh -c`), each one up.
    async fn wallets(script: &str, replicas: u32) -> Arc<Supervisor> {
        let supervisor = Supervisor::new();
        let text = format!(
            "[[services]]\nname = \"wallet\"\ncommand = \"sh\"\nargs = [\"-c\", \"{script}\"]\nreplicas = {replicas}\n\
             restart = {{ policy = \"always\", backoff = \"100ms\" }}\n"
        );
        supervisor.up(envfile::parse(Path::new("/tmp/env.toml"), &text).unwrap()).unwrap();
        for n in 0..replicas {
            let up = |r: &firedrill::supervise::ReplicaStatus| r.state == ReplicaState::Healthy;
            assert!(replica_becomes(&supervisor, &format!("wallet-{n}"), Duration::from_secs(10), up).await);
        }
        supervisor
    }

    /// Starts `drill` as run `run-1` with a journal in `dir`.
    fn start(
        drill_text: &str,
        supervisor: &Arc<Supervisor>,
        dir: &Path,
    ) -> (mpsc::Sender<Command>, tokio::task::JoinHandle<firedrill::scorecard::Scorecard>) {
        let environment = Environment { proxies: ["partner".to_owned()].into(), ..Environment::default() };
        let spec = RunSpec {
            run_id: "run-1".into(),
            drill: drill::parse(Path::new("wallet-crash.toml"), drill_text, &environment).unwrap(),
            team: "payments".into(),
            responder: None,
            seed: 3,
            blind: false,
            armed_acks: Vec::new(),
            sli_totals: None,
        };
        let journal = Journal::create(&dir.join("run-1.jsonl")).unwrap();
        let (tx, rx) = mpsc::channel(8);
        let kills = Killers::new(supervisor.clone());
        let registry = firedrill::proxy::Registry::new(Some(1));
        let task = tokio::spawn(async move {
            runner::run(&spec, &registry, &kills, journal, rx, CancellationToken::new(), Arc::default()).await.unwrap()
        });
        (tx, task)
    }

    fn records(dir: &Path, kind: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(dir.join("run-1.jsonl")).unwrap();
        let all: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        events_of(&all, kind)
    }

    /// Whether process `pid` is alive (not gone, not a zombie).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
    }

    #[tokio::test]
    async fn no_round_follows_the_end_of_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = wallets("exec sleep 600", 2).await;
        // The run in real time (a round waits for the last one's replica to be back, which takes
        // real processes real time), until its second round is journaled.
        let (tx, task) = start(DRILL, &supervisor, dir.path());
        let journals = dir.path().to_owned();
        let two = move || records(&journals, "target_killed").len() >= 2;
        let watched = dir.path().to_owned();
        let rounds = tokio::task::spawn_blocking(move || crate::harness::until(&watched, Duration::from_secs(30), two));
        assert!(rounds.await.unwrap(), "rounds ran while the run did");
        tx.send(Command::Abort { by: "facilitator".into() }).await.unwrap();
        task.await.unwrap();
        let killed = records(dir.path(), "target_killed").len();
        // Whatever was killed is back: each replica restarted once per kill of it and up (a
        // replica still shown up may be one whose SIGKILL the supervisor has not reaped yet).
        // Then ten minutes (300 rounds' worth) pass on the paused clock.
        let kills = records(dir.path(), "target_killed");
        for n in 0..2 {
            let id = format!("wallet-{n}");
            let of_it = u32::try_from(kills.iter().filter(|k| k["target"] == id.as_str()).count()).unwrap();
            let back =
                |r: &firedrill::supervise::ReplicaStatus| r.restarts == of_it && r.state == ReplicaState::Healthy;
            assert!(replica_becomes(&supervisor, &id, Duration::from_secs(10), back).await, "{id}: {kills:?}");
        }
        let pids: Vec<u32> = supervisor.replicas_of("wallet").iter().map(|r| r.pid.unwrap()).collect();
        let restarts: u32 = supervisor.replicas_of("wallet").iter().map(|r| r.restarts).sum();
        tokio::time::pause();
        tokio::time::sleep(Duration::from_secs(600)).await;
        tokio::time::resume();
        assert_eq!(records(dir.path(), "target_killed").len(), killed, "no round was journaled after the end");
        assert!(pids.iter().all(|&p| alive(p)), "no replica was killed after the end");
        let now: Vec<u32> = supervisor.replicas_of("wallet").iter().map(|r| r.pid.unwrap()).collect();
        assert_eq!((now, supervisor.replicas_of("wallet").iter().map(|r| r.restarts).sum::<u32>()), (pids, restarts));
        supervisor.shutdown().await;
    }

    #[tokio::test]
    async fn an_abort_inside_the_grace_period_sends_no_sigkill() {
        let drill_text = DRILL.replace(
            "kill = { process = \"wallet\", count = 1, every = \"2s\", signal = \"SIGKILL\" }",
            "kill = { process = \"wallet\", count = 1, signal = \"SIGTERM\", grace = \"1s\" }",
        );
        // A replica that ignores SIGTERM: only the follow-up SIGKILL would stop it.
        let supervisor = wallets("trap '' TERM; exec sleep 600", 1).await;
        let pid = supervisor.replica("wallet-0").unwrap().pid.unwrap();
        assert!(super::eventually(Duration::from_secs(10), || super::ignores_term(pid)), "the trap is set");

        // Left to run (the control): the SIGKILL goes out when the grace period ends.
        let dir = tempfile::tempdir().unwrap();
        tokio::time::pause();
        let (tx, task) = start(&drill_text, &supervisor, dir.path());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let escalated = records(dir.path(), "kill_escalated");
        assert_eq!(escalated.len(), 1, "the SIGKILL at the end of the grace period");
        assert!(escalated[0]["detail"].as_str().unwrap().contains(&format!("SIGKILL to pid {pid}")));
        tx.send(Command::Abort { by: "facilitator".into() }).await.unwrap();
        task.await.unwrap();
        tokio::time::resume();
        let restarted = |r: &firedrill::supervise::ReplicaStatus| r.pid.is_some_and(|p| p != pid);
        assert!(replica_becomes(&supervisor, "wallet-0", Duration::from_secs(10), restarted).await);
        let up = |r: &firedrill::supervise::ReplicaStatus| r.state == ReplicaState::Healthy;
        assert!(replica_becomes(&supervisor, "wallet-0", Duration::from_secs(10), up).await);

        // Aborted inside the grace period: a minute of paused time later, no SIGKILL was sent.
        let second = supervisor.replica("wallet-0").unwrap().pid.unwrap();
        assert!(super::eventually(Duration::from_secs(10), || super::ignores_term(second)), "the trap is set");
        let dir = tempfile::tempdir().unwrap();
        tokio::time::pause();
        let (tx, task) = start(&drill_text, &supervisor, dir.path());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(records(dir.path(), "target_killed").len(), 1, "the SIGTERM went out");
        tx.send(Command::Abort { by: "facilitator".into() }).await.unwrap();
        task.await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        tokio::time::resume();
        assert!(records(dir.path(), "kill_escalated").is_empty(), "no SIGKILL after the abort");
        assert!(alive(second), "the process that ignored SIGTERM still runs");
        assert_eq!(supervisor.replica("wallet-0").unwrap().pid, Some(second));
        supervisor.shutdown().await;
    }
}
