//! The scoring rules end to end, against the real daemon and a responder who games them: acting
//! before the fault, a short impact counted request by request, two runs on one proxy, a crash
//! while a resolve is verified, pulses that pause, blind mode's answers, and a webhook with
//! more alerts than a run's queue.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::ServeProcess;
use crate::kill::{events_of, journal};

/// Wall-clock ms now.
fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Serves `app` on a thread of its own (the daemon under test is another process).
fn serve_app(app: axum::Router) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// The service behind the proxy: `/pay` and `/healthz` answer 200, `/broken` 500.
fn upstream() -> std::net::SocketAddr {
    use axum::routing::get;
    serve_app(
        axum::Router::new()
            .route("/pay", get(|| async { "paid" }))
            .route("/healthz", get(|| async { "ok" }))
            .route("/broken", get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no") })),
    )
}

/// Where the synthetic traffic goes: notes when each request arrived (the independent counter
/// the test keeps), then passes it on through the proxy at `api`.
fn counting_front(api: String) -> (std::net::SocketAddr, Arc<Mutex<Vec<u64>>>) {
    use axum::routing::get;
    use hyper_util::client::legacy::Client;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let noted = seen.clone();
    let client: Client<_, http_body_util::Empty<bytes::Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let front = serve_app(axum::Router::new().route(
        "/pay",
        get(move || {
            noted.lock().unwrap().push(wall_ms());
            let (client, api) = (client.clone(), api.clone());
            async move {
                let uri: hyper::Uri = format!("http://{api}/pay").parse().unwrap();
                match client.get(uri).await {
                    Ok(response) => response.status(),
                    Err(_) => axum::http::StatusCode::BAD_GATEWAY,
                }
            }
        }),
    ));
    (front, seen)
}

/// A daemon with an `http` proxy `api` in front of a counting upstream; `drills` are
/// (file stem, text with `{api}` standing for the proxy's address).
fn daemon(drills: &[(&str, String)]) -> (tempfile::TempDir, ServeProcess, String, Arc<Mutex<Vec<u64>>>) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = upstream();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let api = format!("127.0.0.1:{port}");
    let (front, seen) = counting_front(api.clone());
    let proxies = format!(r#"[{{"name":"api","listen":"{api}","upstream":"{upstream}","mode":"http"}}]"#);
    std::fs::write(dir.path().join("env.json"), proxies).unwrap();
    std::fs::create_dir_all(dir.path().join("drills")).unwrap();
    for (name, text) in drills {
        let text = text.replace("{api}", &api).replace("{front}", &front.to_string());
        std::fs::write(dir.path().join(format!("drills/{name}.toml")), text).unwrap();
    }
    let serve = ServeProcess::start_in(dir.path(), &["env.json"]);
    (dir, serve, api, seen)
}

/// A drill on proxy `api`: `fault` is its `[[faults]]` body, `extra` more sections.
fn drill(name: &str, warmup: &str, fault: &str, extra: &str) -> String {
    format!(
        r#"
[drill]
name = "{name}"
title = "The API misbehaves"
briefing = "Payments misbehave."
timebox = "2m"

[targets]
production = {{ detect = 1, diagnose = 2, mitigate = 3, resolve = 4 }}

[[faults]]
{fault}

[answer]
component = "api"
kind = "errors"
accept = ["api"]

[slo]
objective = 99.9
production_rps = 100
latency = "200ms"

[traffic]
url = "http://{{front}}/pay"
rps = 10
warmup = "{warmup}"
{extra}
"#
    )
}

const DELAY: &str = r#"at = "0s"
proxy = "api"
toxic = { type = "http_delay", attributes = { latency = 400 } }"#;

/// The run's scorecard, once written.
fn scorecard(dir: &std::path::Path, team: &str) -> serde_json::Value {
    let path = dir.join("scorecards").join(team);
    assert!(crate::harness::until(dir, Duration::from_secs(20), || std::fs::read_dir(&path)
        .is_ok_and(|mut d| d.next().is_some())));
    let file = std::fs::read_dir(&path).unwrap().next().unwrap().unwrap().path();
    let card = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    crate::harness::assert_scorecard_schema(&card);
    card
}

fn status(serve: &ServeProcess) -> serde_json::Value {
    let (code, out, err) = serve.verb(&["status", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn nothing_counts_before_the_fault_and_a_run_without_one_is_void() {
    let (dir, serve, _, _) = daemon(&[("slow-api", drill("slow-api", "30s", DELAY, ""))]);
    let (code, out, err) = serve.verb(&["run", "slow-api", "--team", "early"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("traffic warming up; the fault goes in at 0:30: nothing counts before it"), "{out}");
    assert_eq!(status(&serve)[0]["fault_due_ms"], 30_000);

    // The responder acts at once, before the fault: a false alarm, and the rest is refused.
    let (code, out, err) = serve.verb(&["ack", "--as", "eve"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("recorded as a false alarm"), "{out}");
    for verb in
        [&["diagnose", "--as", "eve", "api errors"][..], &["resolve", "--as", "eve"], &["mitigate", "--as", "eve"]]
    {
        let (code, out, err) = serve.verb(verb);
        assert_eq!(code, Some(2), "{verb:?} is refused before the fault: {out}{err}");
        assert!(err.contains("the fault has not gone in yet (traffic warming up; it goes in at 30s"), "{err}");
    }
    let (code, _, err) = serve.verb(&["hint", "--as", "eve"]);
    assert_eq!(code, Some(2), "{err}");

    // Ended before any fault went in: void, no phase, the false alarm kept.
    let (code, _, err) = serve.verb(&["abort", "--as", "eve"]);
    assert_eq!(code, Some(0), "{err}");
    let card = scorecard(dir.path(), "early");
    assert_eq!(card["void"], true, "{card}");
    assert_eq!(card["faults_applied"], 0);
    assert!(card["phases"].as_array().unwrap().iter().all(|p| p["verdict"] == "not_reached"), "{card}");
    assert_eq!(card["false_alarms"].as_array().unwrap().len(), 1, "{card}");
    assert_eq!(card["detection"]["human_ms"], serde_json::Value::Null);
    assert!(card.get("budget").is_none(), "a void run burned nothing it could be scored on: {card}");

    let (_, out, _) = serve.verb(&["report", "--scorecards", &dir.path().join("scorecards").display().to_string()]);
    assert!(out.contains("0 run(s), 1 void"), "{out}");
}

#[test]
fn the_budget_of_a_short_impact_counts_every_request() {
    let (dir, serve, _, seen) = daemon(&[("slow-api", drill("slow-api", "2s", DELAY, ""))]);
    let (code, _, err) = serve.verb(&["run", "slow-api", "--team", "quick"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(10), || status(&serve)[0]["fault_in_ms"].is_u64()));
    // A short impact: 1.5 s of requests slower than the SLO's 200 ms, then resolved.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(serve.verb(&["ack", "--as", "ana"]).0, Some(0));
    assert_eq!(serve.verb(&["diagnose", "--as", "ana", "the api is slow with errors"]).0, Some(0));
    let (code, out, err) = serve.verb(&["resolve", "--as", "ana"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let card = scorecard(dir.path(), "quick");
    let budget = &card["budget"];
    let records = journal(dir.path());
    let wall = |record: &serde_json::Value| record["wall_ms"].as_u64().unwrap();
    // The impact's counts are the differences of two SLI samples: the one read just before the
    // fault went in, and the one read at the resolve.
    let applied = records.iter().position(|r| r["type"] == "fault_applied").unwrap();
    let at_t0 = records[..applied].iter().rfind(|r| r["type"] == "sli").expect("an SLI sample at t0");
    let (t0, resolved) = (wall(at_t0), wall(&events_of(&records, "resolve_declared")[0]));
    // A request is counted when it answers, and a slow one 200 ms (the SLO's latency) after it
    // was sent: those of the impact arrived after the t0 sample, at most 200 ms before the
    // resolve. One sent before the t0 sample was fast and counted before it.
    let arrived: usize = seen.lock().unwrap().iter().filter(|&&at| at > t0 && at + 200 <= resolved).count();
    let valid = budget["valid"].as_u64().unwrap();
    eprintln!("impact {} ms: scorecard {valid} valid, upstream counted {arrived}", budget["impact_ms"]);
    assert!(valid >= 10, "1.5 s at 10 req/s is about 15 requests, not the 5-second samples' 0: {budget}");
    // At most one request at each bound lands between a sample's read and its journal record.
    assert!(valid.abs_diff(arrived as u64) <= 2, "{valid} vs {arrived}: {budget}");
    // Every request sent after t0 was slow; one sent just before it may finish fast just after.
    assert!(budget["bad"].as_u64().unwrap() + 1 >= valid, "the impact's requests were slow: {budget}");
}

#[test]
fn a_second_run_on_the_same_proxy_is_refused() {
    let (dir, serve, _, _) = daemon(&[
        ("slow-api", drill("slow-api", "1s", DELAY, "")),
        (
            "broken-api",
            drill(
                "broken-api",
                "1s",
                DELAY.replace("http_delay", "http_error").replace("latency = 400", "status = 503").as_str(),
                "",
            ),
        ),
    ]);
    let (code, out, err) = serve.verb(&["run", "slow-api", "--team", "team-a"]);
    assert_eq!(code, Some(0), "{err}");
    let run_a = out.lines().next().unwrap().trim_start_matches("started run ").to_owned();
    for other in ["slow-api", "broken-api"] {
        let (code, out, err) = serve.verb(&["run", other, "--team", "team-b"]);
        assert_eq!(code, Some(2), "{out}{err}");
        assert!(err.contains(&format!("run `{run_a}` is in progress on proxy `api`")), "{err}");
    }
    // team-a's run is untouched: its toxic is there under a name that carries its run.
    let toxics = serve.proxies()["api"]["toxics"].clone();
    assert!(
        crate::harness::until(dir.path(), Duration::from_secs(5), || {
            serve.proxies()["api"]["toxics"].as_array().is_some_and(|t| t.len() == 1)
        }),
        "{toxics}"
    );
    let name = serve.proxies()["api"]["toxics"][0]["name"].as_str().unwrap().to_owned();
    assert!(name.contains(&run_a), "{name}");
    assert_eq!(serve.verb(&["abort", "--all", "--as", "ops"]).0, Some(0));
    let (code, _, err) = serve.verb(&["run", "broken-api", "--team", "team-b"]);
    assert_eq!(code, Some(0), "once the first run ended: {err}");
    assert_eq!(serve.verb(&["abort", "--all", "--as", "ops"]).0, Some(0));
}

#[test]
fn a_crash_while_a_resolve_is_verified_keeps_every_phase() {
    // The steady state never holds (the probe's path answers 500): the resolve waits on it.
    let verify =
        "[verify]\nhttp = { url = \"http://{api}/broken\", within = \"1s\" }\nsuccess_ratio = 1.0\nwindow = \"5s\"\n";
    let (dir, mut serve, _, _) = daemon(&[("slow-api", drill("slow-api", "1s", DELAY, verify))]);
    let (code, _, err) = serve.verb(&["run", "slow-api", "--team", "crash"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(10), || status(&serve)[0]["fault_in_ms"].is_u64()));
    assert_eq!(serve.verb(&["ack", "--as", "ana"]).0, Some(0));
    assert_eq!(serve.verb(&["diagnose", "--as", "ana", "api errors"]).0, Some(0));
    let resolve = std::process::Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["resolve", "--as", "ana"])
        .env("FIREDRILL_ADDR", serve.control.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(crate::harness::until(dir.path(), Duration::from_secs(10), || !events_of(
        &journal(dir.path()),
        "resolve_declared"
    )
    .is_empty()));
    serve.signal("KILL");
    serve.wait(Duration::from_secs(10));
    // The verb ends with its daemon; bounded all the same.
    let _ = crate::verb::bounded(resolve, "firedrill resolve", crate::verb::LIMIT);

    let serve = ServeProcess::start_in(dir.path(), &["env.json"]);
    let card = scorecard(dir.path(), "crash");
    assert_eq!(card["outcome"], "interrupted", "{card}");
    let reached: Vec<bool> = card["phases"].as_array().unwrap().iter().map(|p| p["actual_ms"].is_u64()).collect();
    assert_eq!(reached, [true, true, true, true], "the resolve declaration survives the crash: {card}");
    assert_eq!(card["mitigation"], "resolution");
    assert!(serve.proxies()["api"]["toxics"].as_array().unwrap().is_empty(), "recovery removed the fault");
}

#[test]
fn pulses_and_pauses_are_never_a_mitigation() {
    // Pulses of 503 that pause: the probe is healthy in every pause, and nobody acts.
    let burst = "at = \"0s\"\nburst = { on = \"3s\", off = \"3s\", times = 3 }\nproxy = \"api\"\ntoxic = { type = \"http_error\", attributes = { status = 503 } }";
    let verify =
        "[verify]\nhttp = { url = \"http://{api}/healthz\", within = \"1s\" }\nsuccess_ratio = 1.0\nwindow = \"2s\"\n";
    let (dir, serve, _, _) = daemon(&[("pulsing", drill("pulsing", "1s", burst, verify))]);
    let (code, _, err) = serve.verb(&["run", "pulsing", "--team", "idle"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(10), || status(&serve)[0]["fault_in_ms"].is_u64()));
    // Someone acknowledges during the first pulse, then does nothing through every pause.
    assert_eq!(serve.verb(&["ack", "--as", "ana"]).0, Some(0));
    assert!(crate::harness::until(dir.path(), Duration::from_secs(30), || events_of(
        &journal(dir.path()),
        "fault_removed"
    )
    .len()
        >= 3));
    assert_eq!(serve.verb(&["abort", "--as", "ana"]).0, Some(0));
    let card = scorecard(dir.path(), "idle");
    assert!(events_of(&journal(dir.path()), "mitigated").is_empty(), "no mitigation recorded");
    assert_eq!(card["phases"][2]["verdict"], "not_reached", "{card}");
    assert!(card.get("mitigation").is_none(), "{card}");
}

#[test]
fn blind_mode_answers_the_same_armed_as_before_its_fault() {
    let (dir, serve, _, _) = daemon(&[("slow-api", drill("slow-api", "8s", DELAY, ""))]);
    let answers = |serve: &ServeProcess| -> Vec<(Option<i32>, String, String)> {
        let verbs: [&[&str]; 6] = [
            &["ack", "--as", "solo"],
            &["diagnose", "--as", "solo", "api errors"],
            &["hint", "--as", "solo"],
            &["mitigate", "--as", "solo"],
            &["resolve", "--as", "solo"],
            &["status", "--json"],
        ];
        verbs.iter().map(|v| serve.verb(v)).collect()
    };
    // Armed, an hour away.
    let (code, _, err) = serve.verb(&["run", "--blind", "--within", "1h", "--team", "solo", "--seed", "3"]);
    assert_eq!(code, Some(0), "{err}");
    let armed = answers(&serve);
    let (code, _, _) = serve.verb(&["abort", "--all", "--as", "solo"]);
    assert_eq!(code, Some(0));
    // Started at once, its fault 8 s away (the warm-up).
    let (code, _, err) = serve.verb(&["run", "--blind", "--within", "1ms", "--team", "solo", "--seed", "3"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(5), || !journal(dir.path()).is_empty()));
    let running = answers(&serve);
    assert!(events_of(&journal(dir.path()), "fault_applied").is_empty(), "still before the fault");
    assert_eq!(armed, running, "every answer the same, armed or running before the fault");
    assert_eq!(armed[0].0, Some(0), "acknowledgements are taken: {:?}", armed[0]);
    assert_eq!(armed[4].0, Some(2), "a resolve is refused: {:?}", armed[4]);
    assert_eq!(serve.verb(&["abort", "--as", "solo"]).0, Some(0));
    let card = scorecard(dir.path(), "solo");
    assert_eq!(card["void"], true);
    assert_eq!(card["false_alarms"].as_array().unwrap().len(), 1, "the running one's false alarm: {card}");
}

#[test]
fn every_alert_of_a_large_payload_is_recorded() {
    let alerts = (0..40).fold(String::new(), |mut out, i| {
        let _ = writeln!(out, "[[alerts]]\nname = \"Alert{i}\"\nwithin = \"60s\"");
        out
    });
    let (dir, serve, _, _) = daemon(&[("slow-api", drill("slow-api", "0s", DELAY, &alerts))]);
    let (code, _, err) = serve.verb(&["run", "slow-api", "--team", "pager"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(10), || status(&serve)[0]["fault_in_ms"].is_u64()));
    let now = jiff::Timestamp::now().to_string();
    let payload: Vec<serde_json::Value> = (0..40)
        .map(|i| {
            serde_json::json!({"status": "firing", "labels": {"alertname": format!("Alert{i}")},
                "startsAt": now, "fingerprint": format!("f{i}")})
        })
        .collect();
    let body = serde_json::json!({"version": "4", "status": "firing", "alerts": payload}).to_string();
    let client = reqwest::blocking::Client::new();
    let url = format!("http://{}/webhooks/alertmanager", serve.api);
    let response = client.post(&url).body(body).send().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: serde_json::Value = response.json().unwrap();
    assert_eq!(answer["delivered"], 40, "{answer}");
    assert_eq!(events_of(&journal(dir.path()), "alert").iter().filter(|a| a["source"] == "alertmanager").count(), 40);
    // Over the body limit: 413 in Toxiproxy's error shape, and nothing recorded.
    let response = client.post(&url).body(vec![b' '; 5 << 20]).send().unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let answer: serde_json::Value = response.json().unwrap();
    assert_eq!(answer["status"], 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("at most"), "{answer}");
    assert_eq!(serve.verb(&["abort", "--as", "ops"]).0, Some(0));
}
