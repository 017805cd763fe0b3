//! End to end with real processes: a service behind a firedrill proxy, a drill run through the
//! daemon, a scripted responder using the CLI verbs, and the scorecard checked field by field.
//! Also the cleanup paths that need a real daemon: the kill switch, SIGTERM, SIGKILL + restart.

use std::path::Path;
use std::time::Duration;

use crate::harness::ServeProcess;

pub const DRILL: &str = r#"
[drill]
name = "slow-partner"
title = "The partner slows down"
briefing = "Checkout is slow."
timebox = "10m"

[targets]
production = { detect = 3, diagnose = 6, mitigate = 9, resolve = 12 }

[[faults]]
at = "0s"
proxy = "partner"
toxic = { type = "latency", attributes = { latency = 200 } }

[answer]
component = "partner"
kind = "latency"
accept = ["partner", "latency|slow"]

[[hints]]
text = "Time the calls to the partner."
"#;

/// A working directory with a drill, a proxy file in front of an echo service, and the daemon.
pub fn setup(dir: &Path) -> Vec<String> {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in upstream.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut read = stream.try_clone().unwrap();
                let mut write = stream;
                let _ = std::io::copy(&mut read, &mut write);
            });
        }
    });
    std::fs::create_dir_all(dir.join("drills")).unwrap();
    std::fs::write(dir.join("drills/slow-partner.toml"), DRILL).unwrap();
    let proxies = format!(r#"[{{"name":"partner","listen":"127.0.0.1:0","upstream":"{address}"}}]"#);
    std::fs::write(dir.join("env.json"), proxies).unwrap();
    vec!["env.json".to_owned()]
}

/// A daemon in `dir` with the drill and proxies of [`setup`].
fn serve_in(dir: &Path) -> ServeProcess {
    let args = setup(dir);
    ServeProcess::start_in(dir, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn toxics(serve: &ServeProcess) -> Vec<String> {
    raw_toxics(serve).iter().map(|name| without_run(name)).collect()
}

/// The toxic names on the partner proxy, as the admin API lists them.
fn raw_toxics(serve: &ServeProcess) -> Vec<String> {
    serve.proxies()["partner"]["toxics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A run's toxic name without its run id (`firedrill_<run>_0_latency_downstream` →
/// `firedrill_0_latency_downstream`), after checking that a run id is there: two runs never
/// share a toxic name.
fn without_run(name: &str) -> String {
    let Some(rest) = name.strip_prefix("firedrill_") else { return name.to_owned() };
    // Run ids end `-<seconds>-<counter>`; the fault index follows after `_`.
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let run_end = rest.match_indices('_').map(|(i, _)| i).find(|&i| {
        let mut tail = rest[..i].rsplitn(3, '-');
        digits(tail.next().unwrap_or("")) && tail.next().is_some_and(|s| s.len() >= 9 && digits(s))
    });
    let end = run_end.unwrap_or_else(|| panic!("toxic `{name}` does not carry its run id"));
    format!("firedrill_{}", &rest[end + 1..])
}

/// The proxy's toxic names once they are `expected` (a run applies its faults just after `run`
/// returns, then journals them under `dir`: each journal write is a moment to look), or what
/// they were after five seconds.
fn toxics_become(serve: &ServeProcess, dir: &Path, expected: &[&str]) -> Vec<String> {
    crate::harness::until(dir, Duration::from_secs(5), || toxics(serve) == expected);
    toxics(serve)
}

fn round_trip_ms(serve: &ServeProcess) -> u128 {
    use std::io::{Read, Write};
    let listen = serve.proxies()["partner"]["listen"].as_str().unwrap().to_owned();
    let mut stream = std::net::TcpStream::connect(listen).unwrap();
    let started = std::time::Instant::now();
    stream.write_all(b"ping").unwrap();
    let mut back = [0; 4];
    stream.read_exact(&mut back).unwrap();
    started.elapsed().as_millis()
}

fn start_run(serve: &ServeProcess) -> String {
    let (code, out, err) = serve.verb(&["run", "slow-partner", "--team", "payments", "--responder", "ana"]);
    assert_eq!(code, Some(0), "{out}{err}");
    out.lines().next().unwrap().trim_start_matches("started run ").to_owned()
}

#[test]
fn drills_are_named_never_read_from_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_in(dir.path());
    // A valid drill outside the drill directory, one `..` away.
    std::fs::write(dir.path().join("outside.toml"), DRILL).unwrap();
    for name in ["../outside", "drills/../outside", "/etc/passwd", ""] {
        let (code, _, err) = serve.verb(&["run", name, "--team", "payments"]);
        assert_eq!(code, Some(2), "{name}: {err}");
        assert!(err.contains(&format!("no drill `{name}` in the drill directory")), "{name}: {err}");
    }
    assert!(toxics(&serve).is_empty(), "nothing ran");
}

#[test]
fn names_and_texts_are_checked_before_anything_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_in(dir.path());
    // A team names a scorecard directory: never one outside `scorecards/`.
    for team in ["..", ".", "a/b", "payments eu", &"t".repeat(65)] {
        let (code, _, err) = serve.verb(&["run", "slow-partner", "--team", team]);
        assert_eq!(code, Some(2), "{team}: {err}");
        assert!(err.contains("it names the team's scorecard directory"), "{team}: {err}");
    }
    let (code, _, err) = serve.verb(&["run", "slow-partner", "--team", "payments", "--responder", "ana\nbo"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(toxics(&serve).is_empty(), "nothing ran");

    let run_id = start_run(&serve);
    let (code, _, err) = serve.verb(&["diagnose", "--as", "ana", &"partner ".repeat(300)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("a diagnosis is a sentence or two (1 to 2000 characters)"), "{err}");
    let (code, _, err) = serve.verb(&["ack", "--as", &"x".repeat(65)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("a responder's name is one line of at most 64 characters"), "{err}");
    serve.verb(&["abort", "--as", "ana"]);
    let journal = std::fs::read_to_string(dir.path().join(format!(".firedrill/runs/{run_id}.jsonl"))).unwrap();
    assert!(
        !journal.contains("\"ack\"") && !journal.contains("\"diagnosis\""),
        "nothing refused was recorded: {journal}"
    );
}

#[test]
fn a_scripted_responder_runs_a_drill_to_its_scorecard() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_in(dir.path());
    assert!(round_trip_ms(&serve) < 150, "no fault before the run");

    let (code, out, err) = serve.verb(&["run", "slow-partner", "--team", "payments", "--responder", "ana"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("briefing: Checkout is slow."), "responders are told the briefing: {out}");
    assert!(!out.contains("latency|slow"), "but never the answer key: {out}");
    let run_id = out.lines().next().unwrap().trim_start_matches("started run ").to_owned();
    assert_eq!(
        toxics_become(&serve, dir.path(), &["firedrill_0_latency_downstream"]),
        ["firedrill_0_latency_downstream"]
    );
    assert!(round_trip_ms(&serve) >= 195, "the fault is on the wire");

    let (code, out, _) = serve.verb(&["ack", "--as", "bo"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("acknowledged by bo at ") && out.contains(" into run "), "{out}");
    assert!(
        out.contains(" after the fault went in (target 1:00: met)"),
        "detection from t0, against its target: {out}"
    );
    let (_, out, _) = serve.verb(&["diagnose", "--as", "bo", "the database is down"]);
    assert!(out.starts_with("not the cause"), "{out}");
    let (_, out, _) = serve.verb(&["hint", "--as", "ana"]);
    assert_eq!(out.trim(), "hint: Time the calls to the partner.");
    let (_, out, _) = serve.verb(&["hint", "--as", "ana"]);
    assert_eq!(out.trim(), "no hints left");
    let (_, out, _) = serve.verb(&["diagnose", "--as", "ana", "the partner is slow"]);
    assert!(out.starts_with("correct"), "{out}");
    let (code, json, _) = serve.verb(&["status", "--json"]);
    assert_eq!(code, Some(0));
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(status[0]["run_id"], run_id.as_str());
    assert_eq!(status[0]["outcome"], serde_json::Value::Null, "still in progress");
    assert_eq!(status[0]["phases"][1]["verdict"], "met");
    let fault_in = status[0]["fault_in_ms"].as_u64().expect("the fault is in");
    assert!(fault_in <= status[0]["elapsed_ms"].as_u64().unwrap(), "{status}");
    let (_, out, _) = serve.verb(&["status"]);
    assert!(out.contains(" (fault in at 0:00; phases count from there)"), "{out}");

    let (code, out, err) = serve.verb(&["resolve", "--as", "ana"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("resolved"), "{out}");
    assert!(toxics(&serve).is_empty(), "resolving removes the fault");
    assert!(round_trip_ms(&serve) < 150);
    let (_, out, _) = serve.verb(&["status"]);
    // The status of a resolved run, word for word but for the date and the times.
    insta::with_settings!({ filters => vec![
        (r"-\d{9,}-", "-[wall]-"),
        (r"\d+:\d{2}", "[m:ss]"),
        (r"scorecard: .*/scorecards/", "scorecard: [dir]/scorecards/"),
    ]}, {
        insta::assert_snapshot!("status_of_a_resolved_run", out);
    });

    let path = dir.path().join(format!("scorecards/payments/{run_id}.json"));
    let card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(card["schema_version"], 2);
    assert_eq!(card["drill"], "slow-partner");
    assert_eq!(card["team"], "payments");
    assert_eq!(card["responder"], "ana");
    assert_eq!(card["outcome"], "resolved");
    assert_eq!(card["detection"]["human_by"], "bo");
    assert_eq!(card["detection"]["machine_ms"], serde_json::Value::Null);
    assert_eq!(card["diagnosed_by"], "ana");
    assert_eq!(card["wrong_diagnoses"][0]["text"], "the database is down");
    assert_eq!(card["hints"].as_array().unwrap().len(), 1);
    assert_eq!(card["hints"][0]["by"], "ana");
    assert_eq!((card["faults_applied"].as_u64(), card["faults_left"].as_u64()), (Some(1), Some(0)));
    let phases = card["phases"].as_array().unwrap();
    assert_eq!(
        phases.iter().map(|p| p["phase"].as_str().unwrap()).collect::<Vec<_>>(),
        ["detect", "diagnose", "mitigate", "resolve"]
    );
    assert_eq!(phases[0]["target_ms"], 60_000, "a third of 3 minutes");
    assert!(phases.iter().all(|p| p["verdict"] == "met"), "{phases:?}");
    let times: Vec<u64> = phases.iter().map(|p| p["actual_ms"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // The journal replays to the same scorecard.
    let journal = dir.path().join(format!(".firedrill/runs/{run_id}.jsonl"));
    let (code, replayed, _) = serve.verb(&["replay", journal.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&replayed).unwrap(), card);

    let (code, _, err) = serve.verb(&["ack", "--as", "bo"]);
    assert_eq!(code, Some(2), "no run in progress: {err}");
    assert!(err.contains("no run is in progress"), "{err}");
}

#[test]
fn the_kill_switch_removes_every_fault() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_in(dir.path());
    let run_id = start_run(&serve);
    assert_eq!(toxics(&serve).len(), 1);
    let (code, out, _) = serve.verb(&["abort", "--all", "--as", "facilitator"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), format!("aborted run {run_id}; its faults were removed"));
    assert!(toxics(&serve).is_empty());
    let card = std::fs::read_to_string(dir.path().join(format!("scorecards/payments/{run_id}.json"))).unwrap();
    assert!(card.contains("\"outcome\": \"aborted\""));
}

#[test]
fn sigterm_and_sighup_mid_run_interrupt_and_clean_up() {
    for signal in ["TERM", "HUP"] {
        let dir = tempfile::tempdir().unwrap();
        let mut serve = serve_in(dir.path());
        let run_id = start_run(&serve);
        serve.signal(signal);
        let (code, _) = serve.wait(Duration::from_secs(10));
        assert_eq!(code, Some(0), "SIG{signal}");
        let card = std::fs::read_to_string(dir.path().join(format!("scorecards/payments/{run_id}.json"))).unwrap();
        assert!(card.contains("\"outcome\": \"interrupted\""), "SIG{signal}: {card}");
        assert!(card.contains("\"faults_left\": 0"), "SIG{signal}: {card}");
    }
}

#[test]
fn closing_the_terminal_takes_the_fault_off_an_external_toxiproxy() {
    let env_dir = tempfile::tempdir().unwrap();
    let args = setup(env_dir.path());
    let external = ServeProcess::start_in(env_dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let run_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(run_dir.path().join("drills")).unwrap();
    std::fs::write(run_dir.path().join("drills/slow-partner.toml"), DRILL).unwrap();
    let mut runner = ServeProcess::start_in(run_dir.path(), &["--toxiproxy", &external.api.to_string()]);
    let (code, out, err) = runner.verb(&["run", "slow-partner", "--team", "payments"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(toxics_become(&external, run_dir.path(), &["latency_downstream"]), ["latency_downstream"]);
    runner.signal("HUP");
    let (code, _) = runner.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "SIGHUP is an orderly stop");
    assert!(toxics(&external).is_empty(), "the fault came off the external proxy before the daemon left");
}

#[test]
fn sigkill_mid_run_is_closed_by_the_next_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let args = setup(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut serve = ServeProcess::start_in(dir.path(), &args);
    let run_id = start_run(&serve);
    serve.signal("KILL");
    serve.wait(Duration::from_secs(10));
    let scorecard = dir.path().join(format!("scorecards/payments/{run_id}.json"));
    assert!(!scorecard.exists(), "a killed daemon writes nothing more");

    let restarted = ServeProcess::start_in(dir.path(), &args);
    let card: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&scorecard).unwrap()).unwrap();
    assert_eq!(card["outcome"], "interrupted");
    assert_eq!(card["faults_left"], 0);
    assert!(toxics(&restarted).is_empty());
    let journal = std::fs::read_to_string(dir.path().join(format!(".firedrill/runs/{run_id}.jsonl"))).unwrap();
    assert!(journal.contains(r#""type":"fault_removed""#) && journal.contains(r#""reason":"interrupted""#));
}

/// A minimal HTTP/1.1 service: answers every request with 200 `ok` and closes.
fn http_service() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut request = Vec::new();
                let mut buf = [0; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            });
        }
    });
    address
}

#[test]
fn taking_the_toxic_off_behind_the_runs_back_is_no_mitigation_and_resolve_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let service = http_service();
    // A fixed port for the proxy, so the drill's probe URL can name it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("env.json"),
        format!(r#"[{{"name":"partner","listen":"127.0.0.1:{port}","upstream":"{service}"}}]"#),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("drills")).unwrap();
    let drill = DRILL.replace("latency = 200", "latency = 400")
        + &format!(
            "\n[verify]\nhttp = {{ url = \"http://127.0.0.1:{port}/healthz\", within = \"200ms\" }}\nsuccess_ratio = 1.0\nwindow = \"2s\"\n"
        );
    std::fs::write(dir.path().join("drills/slow-partner.toml"), drill).unwrap();
    let serve = ServeProcess::start_in(dir.path(), &["env.json"]);
    let run_id = start_run(&serve);

    // Probes fail while the fault is in. The responder acknowledges, then "fixes" it by taking
    // firedrill's own toxic off through the admin API: the probes pass again, but the fault the
    // run put in is gone, so that is no mitigation with the fault still in.
    let journal = || std::fs::read_to_string(dir.path().join(format!(".firedrill/runs/{run_id}.jsonl"))).unwrap();
    assert!(
        crate::harness::until(dir.path(), Duration::from_secs(20), || journal()
            .contains(r#""type":"steady_state_lost""#)),
        "the probes saw the fault"
    );
    let (code, _, err) = serve.verb(&["ack", "--as", "ana"]);
    assert_eq!(code, Some(0), "{err}");
    let name = raw_toxics(&serve).pop().unwrap();
    let response = reqwest::blocking::Client::new()
        .delete(format!("http://{}/proxies/partner/toxics/{name}", serve.api))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    // That good probes with no fault in force record no mitigation, however long they last, is
    // seen on the paused clock (`runner::taking_the_runs_own_toxic_off_behind_its_back_…`).
    let journal = journal();
    assert!(journal.contains(r#""type":"ack""#) && !journal.contains(r#""type":"mitigated""#), "{journal}");
    let (code, out, err) = serve.verb(&["resolve", "--as", "ana"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("resolved"), "{out}");

    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(format!("scorecards/payments/{run_id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(card["outcome"], "resolved", "the resolve was verified: the steady state held");
    assert_eq!(card["mitigation"], "resolution", "{card}");
    let mitigate = card["phases"][2]["actual_ms"].as_u64().unwrap();
    let resolve = card["phases"][3]["actual_ms"].as_u64().unwrap();
    assert_eq!(mitigate, resolve, "mitigated only by the resolution");
}

#[test]
fn blind_mode_starts_an_unnamed_drill_at_an_unannounced_moment() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_in(dir.path());
    let (code, out, err) = serve.verb(&["run", "--blind", "--within", "1s", "--team", "solo", "--seed", "5"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains("slow-partner") && out.contains("acknowledge when you notice"), "{out}");
    let status = || -> serde_json::Value { serde_json::from_str(&serve.verb(&["status", "--json"]).1).unwrap() };
    let sealed = serde_json::json!([{ "sealed": true, "team": "solo" }]);
    // Armed or started, status says the same: neither what nor when.
    assert_eq!(status(), sealed);
    assert_eq!(
        toxics_become(&serve, dir.path(), &["firedrill_0_latency_downstream"]),
        ["firedrill_0_latency_downstream"]
    );
    assert_eq!(status(), sealed, "a started blind drill looks like an armed one until acknowledged");
    let (code, _, err) = serve.verb(&["watch"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("sealed until it ends"), "{err}");

    let (code, _, err) = serve.verb(&["ack", "--as", "solo"]);
    assert_eq!(code, Some(0), "the responder acknowledges without knowing the run id: {err}");
    let run = status()[0].clone();
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    assert!(run_id.starts_with("blind-") && !run_id.contains("slow-partner"), "{run}");
    assert_eq!(run["drill"], serde_json::Value::Null, "the drill's name would give the diagnosis away: {run}");
    assert!(!run["briefing"].as_str().unwrap().is_empty(), "acknowledged, the responder gets the briefing: {run}");
    assert!(run["phases"][0]["actual_ms"].is_u64(), "{run}");
    let (code, _, err) = serve.verb(&["watch", "--run", &run_id]);
    assert_eq!(code, Some(2), "{err}");

    serve.verb(&["abort", "--all", "--as", "solo"]);
    assert!(toxics(&serve).is_empty());
    let run = status()[0].clone();
    assert_eq!((run["drill"].as_str(), run["team"].as_str()), (Some("slow-partner"), Some("solo")), "{run}");
    assert_eq!(run["outcome"], "aborted", "{run}");
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(run["scorecard_path"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!((card["blind"].as_bool(), card["drill"].as_str()), (Some(true), Some("slow-partner")), "{card}");
}

#[test]
fn blind_mode_draws_only_drills_with_a_fault_this_environment_can_run() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_in(dir.path());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // Beside slow-partner: a tabletop exercise (nothing to notice) and a drill for proxies this
    // environment does not have.
    std::fs::copy(root.join("drills/card-data-tabletop.toml"), dir.path().join("drills/tabletop.toml")).unwrap();
    std::fs::write(dir.path().join("drills/elsewhere.toml"), DRILL.replace("\"partner\"", "\"ledger\"")).unwrap();
    for seed in ["1", "2", "3", "4", "5", "6"] {
        let (code, _, err) = serve.verb(&["run", "--blind", "--within", "1ms", "--team", "solo", "--seed", seed]);
        assert_eq!(code, Some(0), "{err}");
        toxics_become(&serve, dir.path(), &["firedrill_0_latency_downstream"]);
        let (_, out, _) = serve.verb(&["abort", "--all", "--as", "solo"]);
        assert!(out.contains("aborted run blind-"), "seed {seed}: {out}");
        let (_, json, _) = serve.verb(&["status", "--json"]);
        let runs: serde_json::Value = serde_json::from_str(&json).unwrap();
        let drills: Vec<&str> = runs.as_array().unwrap().iter().filter_map(|r| r["drill"].as_str()).collect();
        assert!(drills.iter().all(|d| *d == "slow-partner"), "seed {seed}: {drills:?}");
    }
    // With nothing it could start, blind mode says so at once.
    std::fs::remove_file(dir.path().join("drills/slow-partner.toml")).unwrap();
    let (code, _, err) = serve.verb(&["run", "--blind", "--within", "1ms", "--team", "solo"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no drill in the drill directory can run blind"), "{err}");
}

#[test]
fn a_blind_drill_that_cannot_start_says_so_in_status() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_in(dir.path());
    std::fs::remove_file(dir.path().join("drills/slow-partner.toml")).unwrap();
    // Valid, but at its moment there is no `wallet` process to kill.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("drills/wallet-crashloop.toml"), dir.path().join("drills/crashloop.toml")).unwrap();
    let (code, _, err) = serve.verb(&["run", "--blind", "--within", "1ms", "--team", "solo", "--seed", "1"]);
    assert_eq!(code, Some(0), "{err}");
    // The failed start is journaled and the arming removed: file changes to wait on.
    crate::harness::until(dir.path(), Duration::from_secs(10), || serve.verb(&["status"]).1.contains("not started"));
    let (_, out, _) = serve.verb(&["status"]);
    assert!(out.contains("the blind drill for team solo: not started: ") && out.contains("wallet"), "{out}");
    let (code, _, _) = serve.verb(&["ack", "--as", "solo"]);
    assert_eq!(code, Some(2), "nothing is armed any more");
    let (_, out, _) = serve.verb(&["abort", "--all", "--as", "solo"]);
    assert!(out.contains("disarmed"), "{out}");
    let (_, json, _) = serve.verb(&["status", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap(), serde_json::json!([]));
}

#[test]
fn the_kill_switch_disarms_a_blind_drill_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_in(dir.path());
    let (code, _, err) = serve.verb(&["run", "--blind", "--within", "1h", "--team", "solo", "--seed", "5"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = serve.verb(&["status"]);
    assert!(out.contains("a blind drill for team solo is armed or running"), "{out}");
    // Acknowledged as when the drill runs before its fault: a false alarm, and nothing said of when.
    let (code, out, err) = serve.verb(&["ack", "--as", "solo"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("acknowledged by solo (blind drill"), "{out}");
    let (code, out, err) = serve.verb(&["abort", "--all", "--as", "solo"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("disarmed a blind drill that had not started"), "{out}");
    let (_, json, _) = serve.verb(&["status", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap(), serde_json::json!([]));
    assert!(toxics(&serve).is_empty());
}

#[test]
fn a_blind_drill_stays_armed_across_a_restart_until_disarmed() {
    let dir = tempfile::tempdir().unwrap();
    let args = setup(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut serve = ServeProcess::start_in(dir.path(), &args);
    let (code, _, err) = serve.verb(&["run", "--blind", "--within", "1h", "--team", "solo", "--seed", "5"]);
    assert_eq!(code, Some(0), "{err}");
    serve.signal("TERM");
    assert_eq!(serve.wait(Duration::from_secs(10)).0, Some(0));

    let mut serve = ServeProcess::start_in(dir.path(), &args);
    let (_, json, _) = serve.verb(&["status", "--json"]);
    let sealed = serde_json::json!([{ "sealed": true, "team": "solo" }]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap(), sealed, "still armed after a restart");
    let (code, out, err) = serve.verb(&["resolve", "--as", "solo"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("nothing to act on yet: acknowledge"), "{err}");
    let (_, out, _) = serve.verb(&["abort", "--all", "--as", "solo"]);
    assert!(out.contains("disarmed a blind drill that had not started"), "{out}");
    serve.signal("TERM");
    serve.wait(Duration::from_secs(10));

    let serve = ServeProcess::start_in(dir.path(), &args);
    let (_, json, _) = serve.verb(&["status", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap(), serde_json::json!([]), "disarmed for good");
}

#[test]
fn a_blind_drill_due_while_the_daemon_was_down_gets_a_new_moment_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let args = setup(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let within = Duration::from_secs(3);
    // A seed whose moment is late enough to crash the daemon before it.
    let seed = (0..1000u64)
        .find(|&s| firedrill::run::manager::blind_pick(1, s, within).unwrap().1 > Duration::from_millis(1500))
        .unwrap();
    let mut serve = ServeProcess::start_in(dir.path(), &args);
    let armed_at = std::time::Instant::now();
    let (code, _, err) =
        serve.verb(&["run", "--blind", "--within", "3s", "--team", "solo", "--seed", &seed.to_string()]);
    assert_eq!(code, Some(0), "{err}");
    serve.signal("KILL");
    serve.wait(Duration::from_secs(10));
    assert!(armed_at.elapsed() < Duration::from_millis(1500), "the daemon died before the drill's moment");
    std::thread::sleep(within.saturating_sub(armed_at.elapsed()));

    // The moment passed while no daemon was up. Starting the instant the daemon is back would
    // tell the responder when: the new daemon draws a new moment within the same span instead.
    let armed_dir = dir.path().join(".firedrill/armed");
    let file = std::fs::read_dir(&armed_dir).unwrap().next().unwrap().unwrap().path();
    let before: firedrill::run::armed::Arming = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(before.within_ms, 3_000);
    let restarted = firedrill::clock::wall_ms();
    let serve = ServeProcess::start_in(dir.path(), &args);
    let bytes = std::fs::read(&file).expect("the drill is still armed, with its new moment kept");
    let after: firedrill::run::armed::Arming = serde_json::from_slice(&bytes).unwrap();
    let now = firedrill::clock::wall_ms();
    // The new moment is the documented draw, made at the restart.
    let drawn_at = after.at_wall_ms - before.redrawn(0);
    assert!((restarted..=now).contains(&drawn_at), "drawn at {drawn_at}, restarted at {restarted}, now {now}");
    if after.at_wall_ms > now + 300 {
        assert!(toxics(&serve).is_empty(), "nothing before the new moment");
    }
    let patience = Duration::from_millis(after.at_wall_ms.saturating_sub(now)) + Duration::from_secs(5);
    crate::harness::until(dir.path(), patience, || !toxics(&serve).is_empty());
    assert_eq!(toxics(&serve), ["firedrill_0_latency_downstream"]);
    let (code, _, err) = serve.verb(&["ack", "--as", "solo"]);
    assert_eq!(code, Some(0), "the drill is running: {err}");
    serve.verb(&["abort", "--all", "--as", "solo"]);
    assert!(toxics(&serve).is_empty());
    assert_eq!(std::fs::read_dir(&armed_dir).unwrap().count(), 0, "nothing left armed");
}

fn spawn_watch(serve: &ServeProcess, run_id: &str, terminal: bool) -> std::process::Child {
    let binary = env!("CARGO_BIN_EXE_firedrill");
    let mut command = if terminal {
        // `script` gives the watcher a pseudo-terminal, as a facilitator's shell would.
        let mut c = std::process::Command::new("script");
        c.args(["-qfec", &format!("{binary} watch --run {run_id}"), "/dev/null"]);
        c
    } else {
        let mut c = std::process::Command::new(binary);
        c.args(["watch", "--run", run_id]);
        c
    };
    command
        .env("FIREDRILL_ADDR", serve.control.to_string())
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn watch_follows_a_run_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let serve = serve_in(dir.path());
    let run_id = start_run(&serve);
    let plain = spawn_watch(&serve, &run_id, false);
    let mut live = spawn_watch(&serve, &run_id, true);
    // The live view's screen, read as it is drawn: each chunk is an event to look at.
    let (chunks, drawn) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut pty = live.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = pty.read(&mut buf) {
            if chunks.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut screen = Vec::new();
    let mut read_until = |wanted: &dyn Fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !wanted(&String::from_utf8_lossy(&screen)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match drawn.recv_timeout(left) {
                Ok(chunk) => screen.extend(chunk),
                Err(_) => return false,
            }
        }
        true
    };
    serve.verb(&["ack", "--as", "bo"]);
    // A redraw after the acknowledgement: the screen is cleared, then the ack is listed.
    let redrawn = |s: &str| s.rfind("\u{1b}[2J").is_some_and(|at| s[at..].contains(" ack"));
    assert!(read_until(&redrawn), "the live view redraws with the ack");
    serve.verb(&["resolve", "--as", "bo"]);

    let output = crate::verb::bounded(plain, "firedrill watch", crate::verb::LIMIT).unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    let types: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert_eq!(types, ["run_started", "fault_applied", "ack", "resolve_declared", "fault_removed", "ended"], "{text}");
    assert!(!text.contains('\u{1b}'), "plain lines when stdout is not a terminal");
    assert!(!text.contains("accept") && !text.contains("answer"), "the answer key never reaches responders: {text}");

    assert!(read_until(&|s: &str| s.contains("resolved")), "the live view shows the end");
    // The view exits at the end; its last screen is all there (the pty closes after it).
    while let Ok(chunk) = drawn.recv_timeout(Duration::from_secs(10)) {
        screen.extend(chunk);
    }
    assert_eq!(live.wait().unwrap().code(), Some(0));
    let screen = String::from_utf8_lossy(&screen);
    assert!(screen.contains("\u{1b}[2J"), "the live view redraws in place");
    assert!(screen.contains("detect") && screen.contains("target") && screen.contains("resolved"), "{screen}");
}

#[test]
fn faults_go_through_an_external_toxiproxy_api_and_come_out_after_a_crash() {
    // Daemon A plays the external Toxiproxy; daemon B runs the drills against A's admin API.
    let env_dir = tempfile::tempdir().unwrap();
    let args = setup(env_dir.path());
    let external = ServeProcess::start_in(env_dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let api = external.api.to_string();
    let run_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(run_dir.path().join("drills")).unwrap();
    std::fs::write(run_dir.path().join("drills/slow-partner.toml"), DRILL).unwrap();

    let mut runner = ServeProcess::start_in(run_dir.path(), &["--toxiproxy", &api]);
    let (code, out, err) = runner.verb(&["run", "slow-partner", "--team", "payments"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        toxics_become(&external, run_dir.path(), &["latency_downstream"]),
        ["latency_downstream"],
        "the fault is on the external proxy, named by toxiproxy_rust"
    );
    assert!(runner.proxies().as_object().unwrap().is_empty(), "the runner has no proxies of its own");

    runner.signal("KILL");
    runner.wait(Duration::from_secs(10));
    assert_eq!(toxics(&external).len(), 1, "a killed runner leaves its fault behind...");
    let restarted = ServeProcess::start_in(run_dir.path(), &["--toxiproxy", &api]);
    assert!(toxics(&external).is_empty(), "...until the restarted runner removes it");
    drop(restarted);

    // Bad input: a drill naming a proxy the external API does not have is refused.
    let bad = DRILL.replace("proxy = \"partner\"", "proxy = \"ghost\"");
    std::fs::write(run_dir.path().join("drills/ghost.toml"), bad.replace("slow-partner", "ghost")).unwrap();
    let runner = ServeProcess::start_in(run_dir.path(), &["--toxiproxy", &api]);
    let (code, _, err) = runner.verb(&["run", "ghost", "--team", "payments"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("proxy `ghost` is not in the environment (known: partner)"), "{err}");

    // Faults the external client cannot create are refused before the run, with their location.
    let reset = DRILL.replace("slow-partner", "reset").replace(
        r#"toxic = { type = "latency", attributes = { latency = 200 } }"#,
        r#"toxic = { type = "reset_peer", attributes = { timeout = 0 } }"#,
    );
    std::fs::write(run_dir.path().join("drills/reset.toml"), reset).unwrap();
    let (code, _, err) = runner.verb(&["run", "reset", "--team", "payments"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("reset.toml:14:9:"), "{err}");
    assert!(err.contains("cannot create a `reset_peer` toxic"), "{err}");
    let twice = DRILL.replace("slow-partner", "twice").replace(
        "[answer]",
        "[[faults]]\nat = \"1m\"\nproxy = \"partner\"\ntoxic = { type = \"latency\", attributes = { latency = 9 } }\n\n[answer]",
    );
    std::fs::write(run_dir.path().join("drills/twice.toml"), twice).unwrap();
    let (code, _, err) = runner.verb(&["run", "twice", "--team", "payments"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("another fault puts `latency_downstream` on proxy `partner` at the same time"), "{err}");

    // Removing our toxic leaves strangers' toxics alone, even of types the client cannot create.
    let http = reqwest::blocking::Client::new();
    let toxics_url = format!("http://{api}/proxies/partner/toxics");
    let stranger = r#"{"name":"bandwidth_upstream","type":"bandwidth","stream":"upstream","attributes":{"rate":77}}"#;
    assert!(http.post(&toxics_url).body(stranger).send().unwrap().status().is_success());
    let reset = r#"{"name":"stranger_reset","type":"reset_peer","toxicity":0,"attributes":{"timeout":5}}"#;
    assert!(http.post(&toxics_url).body(reset).send().unwrap().status().is_success());
    let theirs = external.proxies()["partner"]["toxics"].clone();
    let (code, out, err) = runner.verb(&["run", "slow-partner", "--team", "payments"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let all = ["bandwidth_upstream", "stranger_reset", "latency_downstream"];
    assert_eq!(toxics_become(&external, run_dir.path(), &all), all);
    let (code, out, err) = runner.verb(&["abort", "--all"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(external.proxies()["partner"]["toxics"], theirs, "the strangers' toxics are untouched");
    for toxic in ["bandwidth_upstream", "stranger_reset"] {
        assert_eq!(http.delete(format!("{toxics_url}/{toxic}")).send().unwrap().status(), 204);
    }

    // A toxic of the same name that is not ours is neither replaced nor removed: the fault fails.
    let squatter = r#"{"name":"latency_downstream","type":"latency","attributes":{"latency":5}}"#;
    assert!(http.post(&toxics_url).body(squatter).send().unwrap().status().is_success());
    let (code, out, err) = runner.verb(&["run", "slow-partner", "--team", "payments"]);
    assert_eq!(code, Some(0), "{out}{err}");
    runner.verb(&["abort", "--all"]);
    let journals: String = std::fs::read_dir(run_dir.path().join(".firedrill/runs"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert!(journals.contains("already has a toxic named `latency_downstream`; remove it first"), "{journals}");
    let left = external.proxies()["partner"]["toxics"].clone();
    let latency = left.as_array().unwrap().iter().find(|t| t["name"] == "latency_downstream").unwrap();
    assert_eq!(latency["attributes"]["latency"], 5, "{left}");
}
