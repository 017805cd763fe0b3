//! `firedrill validate`: the shipped drills are valid; bad ones exit 2 with located messages.

use crate::verb::Verb;

fn validate(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Verb::new(["validate"]).args(args).current_dir(dir).output().unwrap()
}

#[test]
fn every_shipped_drill_and_proxy_file_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = validate(&["drills", "proxies"], root);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let drills = std::fs::read_dir(root.join("drills"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml"))
        .count();
    assert!(drills >= 4);
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok  drills/")).count(), drills, "{stdout}");
}

/// A directory with a proxy file naming `partner`; returns it and the shipped `partner-latency`.
fn with_partner() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("proxies")).unwrap();
    std::fs::write(
        dir.path().join("proxies/env.json"),
        r#"[{"name":"partner","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}]"#,
    )
    .unwrap();
    let drill = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/drills/partner-latency.toml")).unwrap();
    (dir, drill)
}

#[test]
fn a_bad_drill_exits_2_naming_file_line_and_column() {
    let (dir, drill) = with_partner();
    std::fs::write(dir.path().join("bad.toml"), drill.replace("proxy = \"partner\"", "proxy = \"parnter\"")).unwrap();
    let output = validate(&["bad.toml"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml:14:9: proxy `parnter` is not in the environment (known: partner)"), "{stderr}");
    assert!(output.stdout.is_empty());
    assert_eq!(validate(&["missing.toml"], dir.path()).status.code(), Some(2));
}

#[test]
fn validate_names_every_problem_as_approved() {
    let (dir, drill) = with_partner();
    // A typo in a value (every such problem is named), and an unknown key (the file's shape).
    let bad =
        drill.replace("proxy = \"partner\"", "proxy = \"parnter\"").replace("timebox = \"45m\"", "timebox = \"soon\"");
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    std::fs::write(dir.path().join("odd.toml"), drill.replace("[drill]", "[drill]\ncolour = \"red\"")).unwrap();
    std::fs::write(dir.path().join("good.toml"), drill).unwrap();
    let ran = Verb::new(["validate", "good.toml", "bad.toml", "odd.toml"]).current_dir(dir.path()).run().code(2);
    insta::assert_snapshot!("validate_stdout", ran.stdout);
    insta::assert_snapshot!("validate_stderr", ran.stderr);
}

#[test]
fn slo_rules_that_cannot_fire_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("proxies")).unwrap();
    std::fs::write(
        dir.path().join("proxies/env.json"),
        r#"[{"name":"api","listen":"127.0.0.1:0","upstream":"127.0.0.1:1","mode":"http"}]"#,
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("drills")).unwrap();
    let drill = r#"
[drill]
name = "loose"
title = "A loose objective"
briefing = "b"
timebox = "10m"

[targets]
production = { detect = 1, diagnose = 2, mitigate = 3, resolve = 4 }

[answer]
component = "api"
kind = "errors"
accept = ["api"]

[slo]
objective = 90
production_rps = 10
proxy = "api"

[[alerts]]
name = "page-6h"
within = "1m"
"#;
    std::fs::write(dir.path().join("drills/loose.toml"), drill).unwrap();
    let output = validate(&["drills", "proxies"], dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "warnings are not errors: {stdout}");
    assert!(
        stdout.contains(
            "warning  drills/loose.toml: rule page-1h can never fire at 90%: its threshold is an error ratio of 144%"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "warning  drills/loose.toml: alert page-6h is expected within 1m but needs 3.6h of errors at the earliest and does not fire within the timebox"
        ),
        "{stdout}"
    );
}

#[test]
fn validate_checks_expected_alerts_against_the_fault_timeline() {
    // The catalogue's partner-503-burst: bursts of 20 s every minute reach the 1 h page's
    // 51.84 s of errors in second 132. It expects the page within 3m (no warning); 2m would
    // be unreachable.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("drills")).unwrap();
    std::fs::create_dir_all(dir.path().join("proxies")).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("proxies/shop.json"), dir.path().join("proxies/shop.json")).unwrap();
    let drill = std::fs::read_to_string(root.join("drills/partner-503-burst.toml")).unwrap();
    assert!(drill.contains("within = \"3m\""));
    let check = |text: &str| {
        std::fs::write(dir.path().join("drills/burst.toml"), text).unwrap();
        let output = validate(&["drills", "proxies"], dir.path());
        assert_eq!(output.status.code(), Some(0), "warnings are not errors");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let stdout = check(&drill);
    assert!(!stdout.contains("warning"), "{stdout}");
    let stdout = check(&drill.replace("within = \"3m\"", "within = \"2m\""));
    assert!(
        stdout.contains(
            "warning  drills/burst.toml: alert page-1h is expected within 2m but fires after 2m12s at the earliest"
        ),
        "{stdout}"
    );
}
