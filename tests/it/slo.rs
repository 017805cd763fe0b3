//! Error budgets end to end: synthetic traffic through an `http` proxy, an error burst, the
//! built-in page rule firing within its predicted time, Alertmanager's webhook, and the
//! scorecard's budget figures checked against a hand computation from the journal.

use std::time::Duration;

use crate::harness::ServeProcess;
use crate::kill::{events_of, eventually, journal};

/// An HTTP upstream on a thread of its own (the daemon under test is another process).
fn upstream() -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            tx.send(crate::http::upstream().await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

fn drill(api: &str) -> String {
    format!(
        r#"
[drill]
name = "api-burst"
title = "The API answers 503"
briefing = "Payments fail."
timebox = "2m"

[targets]
production = {{ detect = 1, diagnose = 2, mitigate = 3, resolve = 4 }}

[[faults]]
at = "0s"
duration = "8s"
proxy = "api"
toxic = {{ type = "http_error", attributes = {{ status = 503 }} }}

[answer]
component = "api"
kind = "errors"
accept = ["api"]

[slo]
objective = 99.99
period = "30d"
production_rps = 100

[traffic]
url = "http://{api}/pay"
rps = 50
warmup = "3s"

[[alerts]]
name = "page-1h"
within = "20s"

[[alerts]]
name = "WalletErrorBudgetBurn"
within = "60s"
labels = {{ service = "wallet" }}

[[alerts]]
name = "NeverFires"
within = "60s"
"#
    )
}

/// A daemon with an `http` proxy `api` in front of an upstream, and the drill `drill(api)`
/// written as `drills/api-burst.toml` (the proxy's port is fixed up front so the drill can name it).
pub fn daemon_with(drill: impl FnOnce(&str) -> String) -> (tempfile::TempDir, ServeProcess) {
    daemon_with_args(drill, &[])
}

/// [`daemon_with`], with more arguments to `serve`.
pub fn daemon_with_args(drill: impl FnOnce(&str) -> String, args: &[&str]) -> (tempfile::TempDir, ServeProcess) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = upstream();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let api = format!("127.0.0.1:{port}");
    let proxies = format!(r#"[{{"name":"api","listen":"{api}","upstream":"{upstream}","mode":"http"}}]"#);
    std::fs::write(dir.path().join("env.json"), proxies).unwrap();
    std::fs::create_dir_all(dir.path().join("drills")).unwrap();
    std::fs::write(dir.path().join("drills/api-burst.toml"), drill(&api)).unwrap();
    let serve = ServeProcess::start_in(dir.path(), &[args, &["env.json"]].concat());
    (dir, serve)
}

fn post(serve: &ServeProcess, body: &str) -> (u16, String) {
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{}/webhooks/alertmanager", serve.api))
        .body(body.to_owned())
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

#[test]
fn an_error_burst_pages_in_time_and_the_budget_adds_up() {
    let (dir, serve) = daemon_with(drill);

    let (code, out, err) = serve.verb(&["run", "api-burst", "--team", "payments"]);
    assert_eq!(code, Some(0), "{out}{err}");
    // The built-in page: 2 % of a 99.99 % budget at 100 % errors is 0.02 × 30 d × 0.0001 = 5.18 s.
    assert!(crate::harness::until(dir.path(), Duration::from_secs(30), || !events_of(&journal(dir.path()), "alert")
        .is_empty()));

    // Alertmanager: a matching alert counts once however often it is sent; a stranger's does not.
    // The fixture's alert started days ago: already firing when the fault went in, it proves
    // nothing. The same alert starting now counts.
    let stale = include_str!("../fixtures/alertmanager/firing.json");
    let (status, body) = post(&serve, stale);
    assert_eq!(status, 200);
    assert!(body.contains("\"delivered\":1"), "recorded, to be reported as already firing: {body}");
    let now = jiff::Timestamp::now().to_string();
    let firing = &stale.replace("2026-11-22T01:00:00.000Z", &now);
    let (status, body) = post(&serve, firing);
    assert_eq!(status, 200);
    assert!(body.contains("\"delivered\":1"), "{body}");
    // `delivered` counts alerts recorded: a repeat is not.
    let (status, body) = post(&serve, firing);
    assert_eq!(status, 200);
    assert!(body.contains("\"delivered\":0"), "{body}");
    let other = firing.replace("\"service\": \"wallet\"", "\"service\": \"ledger\"").replace("a1b2c3d4", "ffffffff");
    assert_eq!(post(&serve, &other).0, 200);
    let (status, body) = post(&serve, "{\"version\": \"4\"");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad Alertmanager payload"), "{body}");

    // The person acknowledges after the page: `ack` says the alert detected it first.
    let (code, out, err) = serve.verb(&["ack", "--as", "ana"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("; the alert page-1h detected it first, at 0:0"), "{out}");
    // After the burst (8 s) the errors stop: its fault comes out by itself; then the team resolves.
    let removed = || events_of(&journal(dir.path()), "fault_removed");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(30), || !removed().is_empty()), "the burst ended");
    assert_eq!(removed()[0]["reason"], "duration");
    let (code, out, err) = serve.verb(&["resolve", "--as", "ana"]);
    assert_eq!(code, Some(0), "{out}{err}");

    let records = journal(dir.path());
    let alerts = events_of(&records, "alert");
    let from_alertmanager: Vec<_> = alerts.iter().filter(|a| a["source"] == "alertmanager").collect();
    assert_eq!(from_alertmanager.len(), 2, "{alerts:#?}");
    assert_eq!(from_alertmanager[0]["starts_at"], "2026-11-22T01:00:00.000Z");
    assert!(alerts.iter().any(|a| a["source"] == "burn-rate" && a["name"] == "page-1h"), "{alerts:#?}");

    let card: serde_json::Value = {
        let dir = dir.path().join("scorecards/payments");
        let file = std::fs::read_dir(dir).unwrap().next().unwrap().unwrap().path();
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    };
    let page = card["alerts"].as_array().unwrap().iter().find(|a| a["name"] == "page-1h").unwrap();
    let fired = page["fired_after_ms"].as_u64().unwrap();
    assert!((4_000..=9_000).contains(&fired), "predicted 5.18 s (+ the 1 s evaluation tick), fired after {fired} ms");
    eprintln!("page-1h fired after {fired} ms; budget {}", card["budget"]);
    assert_eq!(page["met"], true);
    assert_eq!(card["alerts"][1]["met"], true, "{}", card["alerts"]);
    assert_eq!(card["alerts"][1]["already_firing"], true, "the stale one is reported: {}", card["alerts"]);
    assert_eq!(card["alerts"][2]["fired_after_ms"], serde_json::Value::Null, "never fired");
    assert_eq!(card["detection"]["machine_alert"], "page-1h");

    // The budget, by hand from the journal: t0 is the first fault; the impact lasts until the
    // resolve (no steady-state check); counts are the SLI samples at or before each end.
    let t0 = events_of(&records, "fault_applied")[0]["t_ms"].as_u64().unwrap();
    let end = t0 + card["phases"][2]["actual_ms"].as_u64().unwrap();
    let samples: Vec<(u64, u64, u64)> = events_of(&records, "sli")
        .iter()
        .map(|s| (s["t_ms"].as_u64().unwrap(), s["valid"].as_u64().unwrap(), s["bad"].as_u64().unwrap()))
        .collect();
    let at = |t: u64| samples.iter().rev().find(|s| s.0 <= t).copied().unwrap();
    let ((_, v0, b0), (_, v1, b1)) = (at(t0), at(end));
    let budget = &card["budget"];
    assert_eq!(budget["valid"].as_u64().unwrap(), v1 - v0);
    assert_eq!(budget["bad"].as_u64().unwrap(), b1 - b0);
    let fraction = (b1 - b0) as f64 / (v1 - v0) as f64;
    assert!(fraction > 0.3 && fraction < 1.0, "about 8 s of errors in the impact: {fraction}");
    let budget_events = 0.0001 * 100.0 * 2_592_000.0;
    let share = |ms: f64| fraction * 100.0 * ms / 1000.0 / budget_events;
    let close = |a: &serde_json::Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-9 * b.max(1.0);
    assert!(close(&budget["bad_fraction"], fraction));
    assert!(close(&budget["burn_rate"], fraction / 0.0001));
    assert!(close(&budget["production_share"], share((end - t0) as f64)), "{budget}");
    assert!(close(&budget["at_dev_target_share"], share(card["phases"][2]["target_ms"].as_f64().unwrap())));
    assert!(close(&budget["at_production_target_share"], share(180_000.0)), "3 min in production");
}

#[test]
fn a_guardrail_stops_the_run_and_removes_the_fault() {
    let (dir, serve) = daemon_with(|api| {
        drill(api).replace("duration = \"8s\"\n", "") + "\n[guardrails]\nsli_floor = 0.5\nfloor_for = \"2s\"\n"
    });
    let (code, out, err) = serve.verb(&["run", "api-burst", "--team", "payments"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(30), || !events_of(&journal(dir.path()), "ended")
        .is_empty()));
    let ended = &events_of(&journal(dir.path()), "ended")[0];
    assert_eq!(ended["outcome"], "guardrail");
    assert_eq!(ended["reason"], "guardrail: the SLI stayed below 50.0% for 2s");
    let proxies: serde_json::Value = serve.proxies();
    assert!(proxies["api"]["toxics"].as_array().unwrap().is_empty(), "the fault came out: {proxies}");
}

/// Alertmanager from Debian's package (the tests that need it are ignored unless asked for).
fn alertmanager_binary() -> &'static str {
    let path = "/usr/bin/prometheus-alertmanager";
    assert!(
        std::path::Path::new(path).exists(),
        "this test needs {path}: .ci/install installs it (apt-get install prometheus-alertmanager)"
    );
    path
}

/// A real Alertmanager, stopped when dropped.
pub struct Alertmanager {
    child: std::process::Child,
    /// Its base URL.
    pub url: String,
}

impl Alertmanager {
    /// Starts one in `dir` with `config` on a free port and waits until it is ready.
    pub fn start(dir: &std::path::Path, config: &str) -> Self {
        std::fs::write(dir.join("alertmanager.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(alertmanager_binary())
            .arg(format!("--config.file={}", dir.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let alertmanager = Self { child, url: format!("http://127.0.0.1:{port}") };
        let http = reqwest::blocking::Client::new();
        let ready = eventually(Duration::from_secs(20), || {
            http.get(format!("{}/-/ready", alertmanager.url)).send().is_ok_and(|r| r.status().is_success())
        });
        assert!(ready, "alertmanager did not come up");
        alertmanager
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs Prometheus Alertmanager (.ci/install installs it)"]
fn a_real_alertmanager_delivers_an_expected_alert_to_the_run() {
    let (dir, serve) = daemon_with(drill);

    let config = format!(
        "route:\n  receiver: firedrill\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: firedrill\n    webhook_configs:\n      - url: http://{}/webhooks/alertmanager\n",
        serve.api
    );
    let alertmanager = Alertmanager::start(dir.path(), &config);
    let am = alertmanager.url.clone();
    let http = reqwest::blocking::Client::new();

    let (code, out, err) = serve.verb(&["run", "api-burst", "--team", "payments"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let starts_at = "2026-11-22T01:00:00Z";
    let alert = serde_json::json!([{
        "labels": {"alertname": "WalletErrorBudgetBurn", "service": "wallet", "severity": "page"},
        "annotations": {"summary": "wallet burns its budget"},
        "startsAt": starts_at,
    }]);
    let posted = http.post(format!("{am}/api/v2/alerts")).json(&alert).send().unwrap();
    assert!(posted.status().is_success(), "{}", posted.status());
    let delivered = crate::harness::until(dir.path(), Duration::from_secs(20), || {
        events_of(&journal(dir.path()), "alert").iter().any(|a| a["source"] == "alertmanager")
    });
    assert!(delivered, "Alertmanager's webhook never reached the run");
    let records = journal(dir.path());
    let alert = events_of(&records, "alert").into_iter().find(|a| a["source"] == "alertmanager").unwrap();
    assert_eq!(alert["name"], "WalletErrorBudgetBurn");
    assert!(alert["starts_at"].as_str().unwrap().starts_with("2026-11-22T01:00:00"), "{alert}");
    assert!(alert["fingerprint"].as_str().is_some_and(|f| !f.is_empty()), "{alert}");
    serve.verb(&["abort", "--all"]);
}

pub fn spike_drill(api: &str) -> String {
    format!(
        r#"
[drill]
name = "api-burst"
title = "A rush on the API"
briefing = "Checkout is busier than ever."
timebox = "1m"

[targets]
production = {{ detect = 1, diagnose = 2, mitigate = 3, resolve = 4 }}

[[faults]]
at = "2s"
duration = "3s"
spike = {{ rps = 80 }}

[answer]
component = "api"
kind = "load"
accept = ["load|traffic"]

[traffic]
url = "http://{api}/pay"
rps = 20
warmup = "1s"
"#
    )
}

/// Requests the `api` proxy has seen so far, from the daemon's `/metrics`.
fn requests(serve: &ServeProcess) -> u64 {
    let metrics = reqwest::blocking::get(format!("http://{}/metrics", serve.api)).unwrap().text().unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with(r#"firedrill_http_requests_total{proxy="api""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Requests per second through the proxy over `span`.
fn rate(serve: &ServeProcess, span: Duration) -> f64 {
    let before = requests(serve);
    std::thread::sleep(span);
    (requests(serve) - before) as f64 / span.as_secs_f64()
}

#[test]
fn a_traffic_spike_adds_to_the_drills_traffic_while_it_lasts() {
    let (dir, serve) = daemon_with(spike_drill);
    let (code, out, err) = serve.verb(&["run", "api-burst", "--team", "payments", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("fault 0: at 2s for 3s, traffic spike: 80 more requests/s to GET http://"), "{out}");
    assert_eq!(requests(&serve), 0, "a dry run sends nothing");
    let (code, out, err) = serve.verb(&["run", "api-burst", "--team", "payments"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let applied = || events_of(&journal(dir.path()), "fault_applied");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(10), || !applied().is_empty()), "the spike went in");
    assert_eq!(applied()[0]["kind"], "spike");
    // The spike went in 2 s after a 1 s warm-up: phases count from there, and status says so.
    let (_, json, _) = serve.verb(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(status[0]["fault_in_ms"].as_u64().is_some_and(|t| t >= 2_900), "{status}");
    std::thread::sleep(Duration::from_millis(300));
    let during = rate(&serve, Duration::from_secs(2));
    let removed = || events_of(&journal(dir.path()), "fault_removed");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(10), || !removed().is_empty()), "the spike ended");
    assert_eq!(removed()[0]["reason"], "duration");
    std::thread::sleep(Duration::from_millis(300));
    let after = rate(&serve, Duration::from_secs(2));
    // 20/s of traffic, plus 80/s during the spike (bounds wide for a noisy 2-core machine).
    assert!(during > 60.0 && during < 140.0, "during the spike: {during}/s");
    assert!(after > 5.0 && after < 40.0, "after it: {after}/s");
    let (code, _, err) = serve.verb(&["abort", "--as", "ana"]);
    assert_eq!(code, Some(0), "{err}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(rate(&serve, Duration::from_secs(1)) < 0.5, "all traffic stops with the run");
}

/// A webhook payload of one firing alert with `labels`, starting now.
fn firing(name: &str, labels: &str, fingerprint: &str) -> String {
    let now = jiff::Timestamp::now().to_string();
    format!(
        r#"{{"version":"4","status":"firing","receiver":"firedrill","alerts":[{{"status":"firing",
        "labels":{{"alertname":"{name}"{labels}}},"startsAt":"{now}","fingerprint":"{fingerprint}"}}]}}"#
    )
}

#[test]
fn alerts_are_taken_by_the_run_they_are_meant_for_and_the_unexpected_are_noise() {
    let (dir, serve) = daemon_with(drill);
    let (code, out, err) = serve.verb(&["run", "api-burst", "--team", "payments"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let run = out.lines().next().unwrap().trim_start_matches("started run ").to_owned();
    let fault_in = || events_of(&journal(dir.path()), "fault_applied").len() == 1;
    assert!(crate::harness::until(dir.path(), Duration::from_secs(30), fault_in));
    // Another run's alert, though the drill expects its name: not this run's.
    let theirs = firing("WalletErrorBudgetBurn", r#","service":"wallet","firedrill_run":"someone-else-1""#, "f1");
    assert!(post(&serve, &theirs).1.contains("\"delivered\":0"));
    // An alert for nobody in particular that the drill does not expect: not recorded.
    assert!(post(&serve, &firing("DiskFull", r#","host":"db1""#, "f2")).1.contains("\"delivered\":0"));
    // Meant for this run (by run, or by drill) but not expected: noise, journaled.
    let by_run = firing("FiredrillBurnPage6h", &format!(r#","firedrill_run":"{run}""#), "f3");
    assert!(post(&serve, &by_run).1.contains("\"delivered\":1"));
    assert!(post(&serve, &firing("LatencyHigh", r#","drill":"api-burst""#, "f4")).1.contains("\"delivered\":1"));
    // Expected and meant for this run: an alert.
    let ours = firing("WalletErrorBudgetBurn", &format!(r#","service":"wallet","firedrill_run":"{run}""#), "f5");
    assert!(post(&serve, &ours).1.contains("\"delivered\":1"));
    let records = journal(dir.path());
    let noise: Vec<_> =
        events_of(&records, "alert_noise").iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(noise, ["FiredrillBurnPage6h", "LatencyHigh"]);
    assert!(
        events_of(&records, "alert").iter().any(|a| a["name"] == "WalletErrorBudgetBurn" && a["fingerprint"] == "f5")
    );
    let (code, _, err) = serve.verb(&["abort", "--as", "ana"]);
    assert_eq!(code, Some(0), "{err}");
    let card: serde_json::Value = {
        let dir = dir.path().join("scorecards/payments");
        let file = std::fs::read_dir(dir).unwrap().next().unwrap().unwrap().path();
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    };
    crate::harness::assert_scorecard_schema(&card);
    let names: Vec<&str> = card["noise"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["FiredrillBurnPage6h", "LatencyHigh"], "{card}");
    assert!(card["noise"][0]["after_ms"].is_u64(), "{card}");
    let report = crate::verb::Verb::new(["report", "--format", "text"]).current_dir(dir.path()).run().code(0);
    assert!(report.stdout.contains("unexpected alerts (noise) 2"), "{}", report.stdout);
}

#[test]
fn the_webhook_token_posts_alerts_and_opens_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start_in(dir.path(), &["--token", "admin-secret", "--webhook-token", "hook-secret"]);
    let http = reqwest::blocking::Client::new();
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: &str| {
        let mut request = http.request(method, format!("http://{}{path}", serve.api)).body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap().status().as_u16()
    };
    let payload = r#"{"version":"4","status":"firing","alerts":[]}"#;
    let webhook = "/webhooks/alertmanager";
    assert_eq!(call(reqwest::Method::POST, webhook, Some("hook-secret"), payload), 200);
    assert_eq!(
        call(reqwest::Method::POST, webhook, Some("admin-secret"), payload),
        200,
        "the admin token opens everything"
    );
    assert_eq!(call(reqwest::Method::POST, webhook, None, payload), 401);
    assert_eq!(call(reqwest::Method::POST, webhook, Some("wrong"), payload), 401);
    // The webhook token can do nothing else.
    assert_eq!(call(reqwest::Method::POST, "/reset", Some("hook-secret"), ""), 401);
    assert_eq!(call(reqwest::Method::GET, "/proxies", Some("hook-secret"), ""), 401);
    assert_eq!(call(reqwest::Method::GET, "/proxies", Some("admin-secret"), ""), 200);
    // An empty one would match an empty bearer: refused at start.
    let ran =
        crate::verb::Verb::new(["serve", "--api", "127.0.0.1:0", "--control", "127.0.0.1:0", "--webhook-token", ""])
            .run();
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(ran.stderr.contains("--webhook-token is empty"), "{}", ran.stderr);
}
