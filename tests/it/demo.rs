//! `firedrill demo --auto`: the whole product end to end in one command — the shop, the
//! proxies, the daemon, synthetic traffic, a drill, a scripted responder, the scorecard — and
//! nothing left running afterwards.

use std::process::Command;
use std::time::Duration;

/// Pids of processes running `firedrill shop` listening on `port` (this demo's, not another
/// test's shop).
fn shop_processes(port: u16) -> Vec<String> {
    let out =
        Command::new("pgrep").args(["-f", &format!("firedrill shop .*--listen 127.0.0.1:{port}")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_auto_demo_plays_a_drill_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // The demo reads proxies/ and drills/ from its working directory and writes scorecards there.
    for sub in ["proxies", "drills"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    // On free ports: no collision with a demo someone is running, or with the shop's tests.
    let out = crate::verb::Verb::new(["demo", "--auto", "--seed", "5", "--free-ports"])
        .current_dir(dir.path())
        .limit(Duration::from_secs(120))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("the shop is healthy"), "{stdout}");
    // `starting the example shop: gateway :G -> wallet :W (gRPC, via proxy :WP) -> partner :P (via :PP), ledger :L (via :LP)`
    let line =
        stdout.lines().find(|l| l.starts_with("starting the example shop")).unwrap_or_else(|| panic!("{stdout}"));
    let ports: Vec<u16> =
        line.split(':').skip(2).filter_map(|p| p.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()).collect();
    assert_eq!(ports.len(), 7, "{line}");
    assert!(!ports.contains(&18080), "free ports, not the standard ones: {line}");
    // The drill is named only with the scorecard: its name would give the diagnosis away.
    let (_, after) = stdout.split_once("the drill was `partner-503-burst`").unwrap_or_else(|| panic!("{stdout}"));
    let (announced, _) = stdout.split_once("acknowledged by").unwrap_or_else(|| panic!("{stdout}"));
    assert!(announced.contains("a drill started") && !announced.contains("partner-503-burst"), "{stdout}");
    assert!(announced.contains("the fault goes in at 0:03 from now"), "{stdout}");
    assert!(after.contains("scorecard of partner-503-burst-"), "{stdout}");
    assert!(stdout.contains("acknowledged by demo-bot"), "{stdout}");
    assert!(stdout.contains("correct: the diagnosis matches"), "{stdout}");
    assert!(stdout.contains("outcome: resolved"), "{stdout}");
    assert!(stdout.contains("nothing is left running"), "{stdout}");
    let cards: Vec<_> = std::fs::read_dir(dir.path().join("scorecards/demo")).unwrap().collect();
    assert_eq!(cards.len(), 1, "one scorecard, where `firedrill report` looks");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cards[0].as_ref().unwrap().path()).unwrap()).unwrap();
    crate::harness::assert_scorecard_schema(&card);
    assert_eq!(card["outcome"], "resolved");
    assert_eq!(card["wrong_diagnoses"].as_array().unwrap().len(), 1);
    assert!(card["budget"]["bad"].as_u64().unwrap() > 0, "the synthetic traffic saw the 503s: {}", card["budget"]);
    // The run is over in seconds, well before the expected alert's deadline: it fired in time or
    // is not judged, never reported missed.
    let alert = &card["alerts"][0];
    assert!(alert["met"] == true || alert["due"] == false, "{alert}");
    assert!(stdout.contains("expected alert page-1h: ") && !stdout.contains("missed"), "{stdout}");
    for port in ports {
        assert!(
            shop_processes(port).is_empty(),
            "a shop process on {port} was left behind: {:?}",
            shop_processes(port)
        );
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still open");
    }
}
