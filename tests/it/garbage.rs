//! Mangled input never panics and never takes anything down: seeded mutations of every shipped
//! drill, the shop's proxy and environment files, a readiness policy, a scorecard and a journal,
//! and bodies sent to a live admin API. Each ends in a parse or a clear error (located, for the
//! TOML files), never a panic or a server error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use firedrill::drill::Environment;
use firedrill::located::LocatedError;

use crate::harness::Daemon;

/// Mutations per input file.
const ROUNDS: usize = 2000;

/// Pieces a mutation splices in: syntax, edge numbers, durations that overflow, odd characters.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    "=",
    ",",
    "\n",
    "#",
    ":",
    "\\",
    "-",
    ".",
    "-1",
    "0",
    "1e400",
    "NaN",
    "18446744073709551616",
    "99999999999999999999",
    "99999999999999999d",
    "999999999999999h",
    "0ms",
    "-5s",
    "é",
    "\u{0}",
    "\u{202e}",
    "true",
    "null",
    "[[faults]]",
    "[drill]",
    "\"\"\"",
    "{}",
    "[]",
    "1.5",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One to three random edits of `text`, always valid UTF-8.
fn mutate(text: &str, rng: &mut SmallRng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..rng.random_range(1..=3) {
        let at = rng.random_range(0..=chars.len());
        let token: Vec<char> = TOKENS[rng.random_range(0..TOKENS.len())].chars().collect();
        match rng.random_range(0..7) {
            // A value replaced whole: what gets past the syntax into validation.
            5 | 6 => {
                let values = values(&chars);
                if !values.is_empty() {
                    let (start, end) = values[rng.random_range(0..values.len())];
                    chars.splice(start..end, token);
                }
            }
            0 if at < chars.len() => {
                chars.splice(at..=at, token);
            }
            1 => {
                let end = (at + rng.random_range(1..20)).min(chars.len());
                chars.drain(at..end);
            }
            2 => {
                let end = (at + rng.random_range(1..40)).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, copy);
            }
            3 => chars.truncate(at),
            _ => {
                chars.splice(at..at, token);
            }
        }
    }
    chars.into_iter().collect()
}

/// The spans of numbers and of quoted strings' contents (on one line).
fn values(chars: &[char]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            spans.push((start, i));
        } else if chars[i] == '"' {
            let start = i + 1;
            i = start;
            while i < chars.len() && chars[i] != '"' && chars[i] != '\n' {
                i += 1;
            }
            spans.push((start, i));
            i += 1;
        } else {
            i += 1;
        }
    }
    spans
}

/// Runs `check` on `ROUNDS` mutations of `text`; a panic fails with the input that caused it.
fn each_mutation(seed: u64, text: &str, mut check: impl FnMut(&str)) {
    let mut rng = SmallRng::seed_from_u64(seed);
    for round in 0..ROUNDS {
        let mangled = mutate(text, &mut rng);
        let result = catch_unwind(AssertUnwindSafe(|| check(&mangled)));
        assert!(result.is_ok(), "seed {seed}, round {round}: panicked on this input:\n{mangled}");
    }
}

/// A located error points inside the text and says something.
fn assert_located(errors: &[LocatedError], path: &Path, text: &str) {
    assert!(!errors.is_empty());
    let lines = text.lines().count() + 1;
    for error in errors {
        assert!(error.line >= 1 && error.line <= lines, "line {} of {lines}: {error}", error.line);
        assert!(error.column >= 1, "{error}");
        assert!(!error.message.trim().is_empty(), "{error}");
        assert!(error.to_string().starts_with(&format!("{}:{}:{}: ", path.display(), error.line, error.column)));
    }
}

fn shop_environment() -> Environment {
    let proxies = firedrill::proxy::config::load_files(&[root().join("proxies/shop.json")]).unwrap();
    Environment {
        proxies: proxies.iter().map(|p| p.name.clone()).collect(),
        http: proxies.iter().filter(|p| !p.mode.is_tcp()).map(|p| p.name.clone()).collect(),
        external: false,
    }
}

#[test]
fn mangled_drills_get_located_errors() {
    let environment = shop_environment();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("drills"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    let mut drills: Vec<(&PathBuf, String)> = files.iter().map(|p| (p, std::fs::read_to_string(p).unwrap())).collect();
    // No catalogue drill has a traffic spike yet: one with a spike and a burst of them.
    let spiked =
        "\n[[faults]]\nat = \"1m\"\nspike = { rps = 200 }\nburst = { on = \"20s\", off = \"40s\", times = 3 }\n";
    let latency = files.iter().find(|p| p.ends_with("partner-latency.toml")).unwrap();
    drills.push((latency, format!("{}{spiked}", std::fs::read_to_string(latency).unwrap())));
    let unmangled = firedrill::drill::parse(latency, &drills[drills.len() - 1].1, &environment).unwrap();
    assert_eq!(unmangled.faults.iter().filter(|f| f.kind() == "spike").count(), 3, "three pulses of traffic");
    let (mut accepted, mut rejected) = (0, 0);
    for (seed, (path, text)) in (1..).zip(&drills) {
        each_mutation(seed, text, |mangled| match firedrill::drill::parse(path, mangled, &environment) {
            Ok(_) => accepted += 1,
            Err(errors) => {
                rejected += 1;
                assert_located(&errors, path, mangled);
            }
        });
    }
    // The mutations reach past the syntax into validation, and some leave a valid drill.
    assert!(rejected > accepted && accepted > 0, "accepted {accepted}, rejected {rejected}");
}

#[test]
fn mangled_environment_files_and_policies_get_located_errors() {
    let path = root().join("examples/shop/shop.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    each_mutation(11, &text, |mangled| {
        if let Err(errors) = firedrill::supervise::envfile::parse(&path, mangled) {
            assert_located(&errors, &path, mangled);
        }
    });
    let path = Path::new("policy.toml");
    let text = "required_drills = [\"partner-latency\", \"wallet-blackhole\"]\nmin_runs = 2\nwindow = \"60d\"\n\
                last_runs_meet_targets = 2\n";
    each_mutation(12, text, |mangled| {
        if let Err(errors) = firedrill::scorecard::readiness::Policy::parse(path, mangled) {
            assert_located(&errors, path, mangled);
        }
    });
}

#[test]
fn mangled_proxy_files_are_refused_with_the_file_named() {
    let text = std::fs::read_to_string(root().join("proxies/shop.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.json");
    each_mutation(21, &text, |mangled| {
        std::fs::write(&path, mangled).unwrap();
        if let Err(errors) = firedrill::proxy::config::load_files(std::slice::from_ref(&path)) {
            assert!(!errors.is_empty());
            for error in errors {
                assert!(error.path == path && !error.problem.trim().is_empty(), "{error}");
            }
        }
    });
}

#[test]
fn mangled_journals_and_scorecards_are_errors_not_panics() {
    use firedrill::scorecard::{Scorecard, store};
    let path = Path::new("run.jsonl");
    let text = include_str!("../fixtures/partner-latency.jsonl");
    let records = firedrill::journal::parse(path, text).unwrap();
    each_mutation(31, text, |mangled| {
        // A journal that still parses must still score (or say why it cannot).
        if let Ok(records) = firedrill::journal::parse(path, mangled) {
            let _ = Scorecard::from_journal(&records);
        }
    });

    let card = serde_json::to_string_pretty(&Scorecard::from_journal(&records).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("payments")).unwrap();
    let mut written = 0;
    each_mutation(32, &card, |mangled| {
        written += 1;
        std::fs::write(dir.path().join(format!("payments/run-{written}.json")), mangled).unwrap();
    });
    let (cards, skipped) = store::read_all(dir.path());
    assert_eq!(cards.len() + skipped.len(), written, "every file is read or listed as skipped");
    assert!(!skipped.is_empty() && skipped.iter().all(|s| !s.reason.is_empty()));
    // The report over them works, whatever the cards say.
    let report =
        firedrill::scorecard::report::build(&cards, &skipped, &firedrill::scorecard::report::Filter::default());
    assert!(firedrill::scorecard::report::text(&report).contains("skipped"));
    let _ = firedrill::scorecard::html::html(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mangled_admin_api_bodies_get_toxiproxy_errors_and_the_daemon_survives() {
    let daemon = Daemon::start().await;
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = upstream.local_addr().unwrap();
    let proxy = format!(r#"{{"name":"p","listen":"127.0.0.1:0","upstream":"{upstream}","enabled":true}}"#);
    let requests: Vec<(&str, &str, String)> = vec![
        ("POST", "/proxies", proxy.clone()),
        ("POST", "/proxies/p", r#"{"enabled":false,"upstream":"127.0.0.1:9"}"#.to_owned()),
        ("POST", "/proxies/p/toxics", r#"{"name":"slow","type":"latency","stream":"downstream","toxicity":0.5,"attributes":{"latency":100,"jitter":10}}"#.to_owned()),
        ("POST", "/proxies/p/toxics", r#"{"type":"http_error","attributes":{"status":503,"rate":0.3,"path_prefix":"/pay"}}"#.to_owned()),
        ("POST", "/proxies/p/toxics/slow", r#"{"toxicity":1,"attributes":{"latency":5}}"#.to_owned()),
        ("POST", "/populate", format!("[{proxy}]")),
    ];
    let mut rng = SmallRng::seed_from_u64(41);
    let mut server_errors = Vec::new();
    for round in 0..ROUNDS * 2 {
        let (method, path, body) = &requests[round % requests.len()];
        let mangled = mutate(body, &mut rng);
        let response = daemon.call(method, path, Some(&mangled)).await;
        if response.status >= 400 {
            let json: serde_json::Value = serde_json::from_str(&response.text).unwrap_or_else(|e| {
                panic!("{method} {path} {mangled}: not Toxiproxy's error shape ({e}): {}", response.text)
            });
            assert_eq!(json["status"], response.status, "{method} {path} {mangled}: {json}");
            assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()), "{json}");
        }
        // Toxiproxy answers 500 only when a listener cannot be opened (the address mangled
        // into one this machine cannot bind); anything else would be a bug.
        if response.status >= 500 && !response.text.contains("listen") {
            server_errors.push(format!("{method} {path} {mangled}: {}", response.text));
        }
        if round % 25 == 24 {
            let (status, proxies) = daemon.json("GET", "/proxies", None).await;
            assert_eq!(status, 200, "the daemon still answers");
            for name in proxies.as_object().unwrap().keys() {
                daemon.call("DELETE", &format!("/proxies/{name}"), None).await;
            }
        }
    }
    assert!(server_errors.is_empty(), "{server_errors:#?}");
    assert_eq!(daemon.call("GET", "/version", None).await.status, 200);
}
