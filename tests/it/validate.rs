//! `firedrill validate`: the shipped drills are valid; bad ones exit 2 with located messages.

use std::process::Command;

fn validate(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_firedrill")).arg("validate").args(args).current_dir(dir).output().unwrap()
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

#[test]
fn a_bad_drill_exits_2_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("proxies")).unwrap();
    std::fs::write(
        dir.path().join("proxies/env.json"),
        r#"[{"name":"partner","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}]"#,
    )
    .unwrap();
    let drill = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/drills/partner-latency.toml")).unwrap();
    std::fs::write(dir.path().join("bad.toml"), drill.replace("proxy = \"partner\"", "proxy = \"parnter\"")).unwrap();
    let output = validate(&["bad.toml"], dir.path());
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml:13:9: proxy `parnter` is not in the environment (known: partner)"), "{stderr}");
    assert!(output.stdout.is_empty());
    assert_eq!(validate(&["missing.toml"], dir.path()).status.code(), Some(2));
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
            "warning  drills/loose.toml: alert page-6h is expected within 1m but fires after 3.6h at the earliest"
        ),
        "{stdout}"
    );
}
