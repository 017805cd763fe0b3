//! The example shop tells the truth about itself and offers levers that mitigate with the fault
//! still in: for every catalogue drill with a fault, run through the real daemon against the real
//! shop, the shop's own `/metrics` show the failure while the fault is in; and a responder who
//! pulls the wallet's levers gets a mitigation the steady state confirms.

use std::path::Path;
use std::time::Duration;

use firedrill::shop::Ports;

use crate::harness::ServeProcess;
use crate::kill::eventually;

/// The daemon with the shop's proxies and the catalogue, and the shop under its supervisor, on
/// ports the system has free (the drills and the proxy file moved to them), so shop tests run
/// beside each other and beside a demo someone is running.
struct Shop {
    dir: tempfile::TempDir,
    serve: ServeProcess,
    ports: Ports,
}

impl Shop {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let ports = Ports::free().unwrap();
        for sub in ["proxies", "drills"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            for entry in std::fs::read_dir(root.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                let text = ports.relocate(&std::fs::read_to_string(&path).unwrap());
                std::fs::write(dir.path().join(sub).join(path.file_name().unwrap()), text).unwrap();
            }
        }
        let exe = Path::new(env!("CARGO_BIN_EXE_firedrill"));
        std::fs::write(dir.path().join("shop.toml"), firedrill::shop::environment(exe, ports)).unwrap();
        let serve = ServeProcess::start_in(dir.path(), &["proxies/shop.json"]);
        let env = dir.path().join("shop.toml").display().to_string();
        let (code, out, err) = serve.verb(&["up", &env, "--wait", "30s"]);
        assert_eq!(code, Some(0), "the shop comes up: {out}{err}");
        Self { dir, serve, ports }
    }

    fn metrics(port: u16) -> String {
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
            .and_then(reqwest::blocking::Response::text)
            .unwrap_or_default()
    }

    /// The sum of a metric's samples whose labels contain every one of `labels`.
    fn sum(text: &str, name: &str, labels: &[&str]) -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Starts `drill`; returns its run id once its fault is in.
    fn run(&self, drill: &str) -> String {
        let (code, out, err) = self.serve.verb(&["run", drill, "--team", "shop"]);
        assert_eq!(code, Some(0), "{out}{err}");
        let run = out.lines().next().unwrap().trim_start_matches("started run ").to_owned();
        // Some drills put their fault in after a while (wallet-blackhole: 30 s).
        assert!(
            eventually(Duration::from_secs(45), || {
                let (_, out, _) = self.serve.verb(&["status", "--json"]);
                serde_json::from_str::<serde_json::Value>(&out).is_ok_and(|runs| {
                    runs.as_array()
                        .into_iter()
                        .flatten()
                        .any(|r| r["run_id"] == run.as_str() && r["fault_in_ms"].is_u64())
                })
            }),
            "{drill}: the fault never went in"
        );
        run
    }

    /// The team's only scorecard, checked against the schema.
    fn scorecard(&self) -> serde_json::Value {
        let dir = self.dir.path().join("scorecards/shop");
        let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
        let card = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        crate::harness::assert_scorecard_schema(&card);
        card
    }

    fn abort(&self) {
        let (code, _, err) = self.serve.verb(&["abort", "--all", "--as", "test"]);
        assert_eq!(code, Some(0), "{err}");
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.serve.verb(&["abort", "--all", "--as", "test"]);
        let _ = self.serve.verb(&["down"]);
    }
}

/// Failed calls (errors and timeouts) the shop's `service` counted to `upstream`.
fn failed_calls(port: u16, service: &str, upstream: &str) -> f64 {
    let text = Shop::metrics(port);
    let labels = [format!("service=\"{service}\""), format!("upstream=\"{upstream}\"")];
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let all = Shop::sum(&text, "shop_upstream_calls_total", &labels);
    all - Shop::sum(&text, "shop_upstream_calls_total", &[labels[0], labels[1], "outcome=\"ok\""])
}

/// Calls of `service` to `upstream` slower than `bound` (a bucket's `le`), from its histogram.
fn slow_calls(port: u16, service: &str, upstream: &str, bound: &str) -> f64 {
    let text = Shop::metrics(port);
    let labels = [format!("service=\"{service}\""), format!("upstream=\"{upstream}\"")];
    let all = Shop::sum(&text, "shop_upstream_call_duration_seconds_count", &[&labels[0], &labels[1]]);
    all - Shop::sum(
        &text,
        "shop_upstream_call_duration_seconds_bucket",
        &[&labels[0], &labels[1], &format!("le=\"{bound}\"")],
    )
}

/// What the shop's telemetry must show while a drill's fault is in.
type Shows = Box<dyn Fn() -> bool>;

#[test]
fn every_drill_shows_in_the_shops_own_metrics() {
    let shop = Shop::start();
    // (drill, what the shop's own telemetry must show while its fault is in)
    let (wallet, gateway) = (shop.ports.wallet, shop.ports.gateway);
    let cases: [(&str, Shows); 7] = [
        ("partner-latency", Box::new(move || slow_calls(wallet, "wallet", "partner", "0.25") > 0.0)),
        ("partner-503-burst", Box::new(move || failed_calls(wallet, "wallet", "partner") > 0.0)),
        ("partner-reset", Box::new(move || failed_calls(wallet, "wallet", "partner") > 0.0)),
        // Paced to 32 KB/s, a 12 KiB booking takes 0.1-0.25 s instead of a few ms: slower, not
        // failed; the histogram shows it.
        ("ledger-bandwidth", Box::new(move || slow_calls(wallet, "wallet", "ledger", "0.1") > 0.0)),
        ("wallet-blackhole", Box::new(move || failed_calls(gateway, "gateway", "wallet") > 0.0)),
        ("wallet-grpc-unavailable", Box::new(move || failed_calls(gateway, "gateway", "wallet") > 0.0)),
        ("wallet-crashloop", Box::new(move || failed_calls(gateway, "gateway", "wallet") > 0.0)),
    ];
    for (drill, shows) in &cases {
        // Each service restarts between drills (a crash loop kills the wallet): its counters with it.
        let (code, _, err) = shop.serve.verb(&["down"]);
        assert_eq!(code, Some(0), "{err}");
        let env = shop.dir.path().join("shop.toml").display().to_string();
        assert_eq!(shop.serve.verb(&["up", &env, "--wait", "30s"]).0, Some(0));
        assert!(!shows(), "{drill}: nothing shows before the fault");
        shop.run(drill);
        let seen = eventually(Duration::from_secs(20), shows);
        let gateway_text = Shop::metrics(gateway);
        shop.abort();
        assert!(seen, "{drill}: the shop's metrics never showed the fault:\n{gateway_text}\n{}", Shop::metrics(wallet));
    }
}

#[test]
fn the_wallets_levers_mitigate_with_the_fault_still_in() {
    let shop = Shop::start();
    shop.run("partner-latency");
    // The fault bites: payments time out at the gateway and the probe fails.
    assert!(eventually(Duration::from_secs(15), || slow_calls(shop.ports.wallet, "wallet", "partner", "0.25") > 0.0));
    assert_eq!(shop.serve.verb(&["ack", "--as", "ana"]).0, Some(0));
    let (code, out, err) = shop.serve.verb(&["diagnose", "--as", "ana", "the partner is slow"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let client = reqwest::blocking::Client::new();
    let bad = client
        .post(format!("http://127.0.0.1:{}/admin/levers", shop.ports.wallet))
        .body(r#"{"timeout_ms": 0}"#)
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400, "a lever out of range is refused");
    let typo = client
        .post(format!("http://127.0.0.1:{}/admin/levers", shop.ports.wallet))
        .body(r#"{"fallbak": true}"#)
        .send()
        .unwrap();
    assert_eq!(typo.status().as_u16(), 400, "a typo never silently leaves the lever as it was");
    assert!(typo.text().unwrap().contains("unknown field `fallbak`"));
    let pulled = client
        .post(format!("http://127.0.0.1:{}/admin/levers", shop.ports.wallet))
        .body(r#"{"timeout_ms": 300, "fallback": true}"#)
        .send()
        .unwrap();
    assert_eq!(pulled.status().as_u16(), 200, "{:?}", pulled.text());
    let (code, out, err) = shop.serve.verb(&["mitigate", "--as", "ana"]);
    assert_eq!(code, Some(0), "the steady state confirms it: {out}{err}");
    assert!(out.contains("mitigated with the fault still in"), "{out}");
    assert_eq!(shop.serve.proxies()["partner"]["toxics"].as_array().unwrap().len(), 1, "the fault is still in");
    let (code, _, err) = shop.serve.verb(&["resolve", "--as", "ana"]);
    assert_eq!(code, Some(0), "{err}");
    let card = shop.scorecard();
    assert_eq!(card["mitigation"], "fault_in", "{card}");
    let mitigate = card["phases"][2]["actual_ms"].as_u64().unwrap();
    let resolve = card["phases"][3]["actual_ms"].as_u64().unwrap();
    assert!(mitigate < resolve, "mitigated before the fault came out: {mitigate} < {resolve}");
    // The budget stops at the mitigation, not at the resolve.
    assert!(card["budget"]["impact_ms"].as_u64().unwrap() <= mitigate + 1, "{card}");
}

#[test]
fn each_drills_named_lever_mitigates_with_the_fault_still_in() {
    let shop = Shop::start();
    let (wallet, gateway) = (shop.ports.wallet, shop.ports.gateway);
    // (drill, where its facilitator notes say to pull, the lever, what shows the fault biting)
    let cases: [(&str, u16, &str, Shows); 4] = [
        (
            "partner-503-burst",
            wallet,
            r#"{"fallback":true}"#,
            Box::new(move || failed_calls(wallet, "wallet", "partner") > 0.0),
        ),
        (
            "partner-reset",
            wallet,
            r#"{"retries":2,"fallback":true}"#,
            Box::new(move || failed_calls(wallet, "wallet", "partner") > 0.0),
        ),
        (
            "wallet-grpc-unavailable",
            gateway,
            r#"{"retries":2,"fallback":true}"#,
            Box::new(move || failed_calls(gateway, "gateway", "wallet") > 0.0),
        ),
        (
            "wallet-blackhole",
            gateway,
            r#"{"timeout_ms":300,"fallback":true}"#,
            Box::new(move || failed_calls(gateway, "gateway", "wallet") > 0.0),
        ),
    ];
    let client = reqwest::blocking::Client::new();
    for (drill, port, lever, bites) in &cases {
        let notes = std::fs::read_to_string(shop.dir.path().join(format!("drills/{drill}.toml"))).unwrap();
        assert!(notes.contains(&format!("127.0.0.1:{port}/admin/levers")), "{drill}: the notes name the lever");
        let (code, _, err) = shop.serve.verb(&["down"]);
        assert_eq!(code, Some(0), "{err}");
        let env = shop.dir.path().join("shop.toml").display().to_string();
        assert_eq!(shop.serve.verb(&["up", &env, "--wait", "30s"]).0, Some(0), "{drill}");
        let run = shop.run(drill);
        assert!(eventually(Duration::from_secs(30), bites), "{drill}: the fault never bit");
        // Mitigation needs the steady-state probe to have seen the fault bite: the journal says when.
        let journal = shop.dir.path().join(format!(".firedrill/runs/{run}.jsonl"));
        let lost = || std::fs::read_to_string(&journal).is_ok_and(|j| j.contains(r#""type":"steady_state_lost""#));
        assert!(eventually(Duration::from_secs(30), lost), "{drill}: the probe never failed");
        assert_eq!(shop.serve.verb(&["ack", "--as", "ana"]).0, Some(0), "{drill}");
        let pulled = client.post(format!("http://127.0.0.1:{port}/admin/levers")).body(*lever).send().unwrap();
        assert_eq!(pulled.status().as_u16(), 200, "{drill}");
        let (code, out, err) = shop.serve.verb(&["mitigate", "--as", "ana"]);
        assert_eq!(code, Some(0), "{drill}: the lever mitigates with the fault in: {out}{err}");
        assert!(out.contains("mitigated with the fault still in"), "{drill}: {out}");
        shop.abort();
    }
}

/// The run's journal lines, as JSON values.
fn journal_events(shop: &Shop, run: &str) -> Vec<serde_json::Value> {
    let path = shop.dir.path().join(format!(".firedrill/runs/{run}.jsonl"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Whether the journal holds an event of `kind`.
fn journaled(shop: &Shop, run: &str, kind: &str) -> bool {
    journal_events(shop, run).iter().any(|e| e["type"] == kind)
}

#[test]
fn a_supervisor_restarting_the_wallet_is_not_mitigation_but_the_gateways_lever_is() {
    let shop = Shop::start();
    let run = shop.run("wallet-crashloop");
    let lost = || journaled(&shop, &run, "steady_state_lost");
    assert!(eventually(Duration::from_secs(30), lost), "the probe never saw the kill");
    assert_eq!(shop.serve.verb(&["ack", "--as", "ana"]).0, Some(0));
    // Declared with nothing done: the supervisor restarts the wallet within a second of each
    // kill, but the kill rounds inside the window are not weathered, so it is never confirmed.
    let declared = std::thread::scope(|scope| {
        let declared = scope.spawn(|| shop.serve.verb(&["mitigate", "--as", "ana"]));
        // Round 2 (60 s) kills the wallet and the supervisor brings it back: then the lever.
        let back = || journal_events(&shop, &run).iter().filter(|e| e["type"] == "target_recovered").count() >= 3;
        assert!(eventually(Duration::from_secs(90), back), "round 2 never recovered");
        let lever = reqwest::blocking::Client::new()
            .post(format!("http://127.0.0.1:{}/admin/levers", shop.ports.gateway))
            .body(r#"{"retries":1,"fallback":true}"#)
            .send()
            .unwrap();
        assert_eq!(lever.status().as_u16(), 200);
        declared.join().unwrap()
    });
    let (code, out, err) = declared;
    assert_eq!(code, Some(2), "restarts are not a mitigation: {out}{err}");
    assert!(err.contains("did not hold for 10s while the fault was still in"), "{err}");
    assert!(!journaled(&shop, &run, "mitigated"), "nothing was mitigated by restarts");
    // With the lever, the next kill round is weathered (payments are taken as pending while the
    // wallet restarts) and the declaration is confirmed.
    let (code, out, err) = shop.serve.verb(&["mitigate", "--as", "ana"]);
    assert_eq!(code, Some(0), "the lever mitigates with the fault in: {out}{err}");
    assert!(out.contains("mitigated with the fault still in"), "{out}");
    let events = journal_events(&shop, &run);
    let position = |kind: &str, round: Option<u64>| {
        events.iter().position(|e| e["type"] == kind && round.is_none_or(|r| e["round"] == r)).unwrap()
    };
    assert!(
        position("mitigated", None) > position("target_killed", Some(3)),
        "confirmed only once a kill round was weathered: {events:?}"
    );
    let (code, _, err) = shop.serve.verb(&["resolve", "--as", "ana"]);
    assert_eq!(code, Some(0), "{err}");
    let card = shop.scorecard();
    assert_eq!(card["mitigation"], "fault_in", "{card}");
}
