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

/// Polls `check` for up to `limit`.
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
    let recovered =
        eventually(Duration::from_secs(30), || events_of(&journal(dir.path()), "target_recovered").len() >= 2);
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

    // No more rounds after the run ended.
    let after = events_of(&journal(dir.path()), "target_killed").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(events_of(&journal(dir.path()), "target_killed").len(), after);

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
    let done = eventually(Duration::from_secs(20), || {
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
    assert_eq!(serve.verb(&["run", "wallet-crash", "--team", "payments"]).0, Some(0));
    let escalated = || events_of(&journal(dir.path()), "kill_escalated");
    assert!(eventually(Duration::from_secs(15), || !escalated().is_empty()), "{:#?}", journal(dir.path()));
    assert!(escalated()[0]["detail"].as_str().unwrap().contains(&format!("SIGKILL to pid {first}")));
    assert!(eventually(Duration::from_secs(10), || pid().is_some_and(|p| p != first)), "restarted");
    assert_eq!(serve.verb(&["abort", "--all"]).0, Some(0));

    // Aborted inside the grace period: the SIGKILL is never sent.
    let second = pid().unwrap();
    let killed_before = events_of(&journal(dir.path()), "target_killed").len();
    assert_eq!(serve.verb(&["run", "wallet-crash", "--team", "payments"]).0, Some(0));
    assert!(
        eventually(Duration::from_secs(10), || events_of(&journal(dir.path()), "target_killed").len() > killed_before)
    );
    assert_eq!(serve.verb(&["abort", "--all"]).0, Some(0));
    // Past the grace period (an absence can only be seen by waiting it out).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(pid(), Some(second), "the process that ignored SIGTERM still runs: no SIGKILL after the abort");
    assert_eq!(escalated().len(), 1, "only the first run's");
}
