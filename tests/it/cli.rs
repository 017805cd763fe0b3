//! The real binary: exit codes, bad proxy files, and a clean, bounded shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use crate::harness::ServeProcess;

fn firedrill(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_firedrill")).args(args).output().unwrap()
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn help_and_usage_errors() {
    let help = firedrill(&["serve", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("PROXY_FILE"));
    assert_eq!(firedrill(&["serve", "--api", "not-an-address"]).status.code(), Some(2));
    assert_eq!(firedrill(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn a_bad_proxy_file_exits_2_and_nothing_listens() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let good = write_file(
        &dir,
        "good.json",
        &format!(r#"[{{"name":"ok","listen":"127.0.0.1:{port}","upstream":"127.0.0.1:1"}}]"#),
    );
    let bad = write_file(&dir, "bad.json", r#"[{"name":"db","listen":"127.0.0.1:0"}]"#);
    let output = firedrill(&["serve", "--api", "127.0.0.1:0", &good, &bad]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("{bad}: proxy #1 (`db`): missing required field: upstream")), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));

    let broken = write_file(&dir, "broken.json", "[\n  {\"name\": \"x\",\n]");
    let output = firedrill(&["serve", "--api", "127.0.0.1:0", &broken]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("{broken}: line 3 column 1")));
}

#[test]
fn an_api_beyond_loopback_needs_a_token() {
    let output = firedrill(&["serve", "--api", "0.0.0.0:0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--token"));
}

#[test]
fn sample_proxy_files_are_valid_and_served() {
    let files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/proxies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    assert!(!files.is_empty());
    // The samples use fixed ports; serve them with the listen ports moved to port 0.
    let dir = tempfile::tempdir().unwrap();
    let mut moved = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let mut proxies: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for proxy in proxies.as_array_mut().unwrap() {
            proxy["listen"] = "127.0.0.1:0".into();
        }
        moved.push(write_file(&dir, &format!("{i}.json"), &proxies.to_string()));
    }
    let args: Vec<&str> = moved.iter().map(String::as_str).collect();
    let serve = ServeProcess::start(&args);
    let list: serde_json::Value =
        reqwest::blocking::get(format!("http://{}/proxies", serve.api)).unwrap().json().unwrap();
    assert!(!list.as_object().unwrap().is_empty());
}

/// A daemon with one proxy and one connection open through it: (daemon, proxy address,
/// client side, server side).
fn one_open_connection() -> (ServeProcess, String, TcpStream, TcpStream) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let file = write_file(
        &dir,
        "p.json",
        &format!(r#"[{{"name":"p","listen":"127.0.0.1:0","upstream":"{}"}}]"#, upstream.local_addr().unwrap()),
    );
    let serve = ServeProcess::start(&[&file]);
    let listen = serve.proxies()["p"]["listen"].as_str().unwrap().to_owned();
    let client = TcpStream::connect(&listen).unwrap();
    let (server, _) = upstream.accept().unwrap();
    (serve, listen, client, server)
}

#[test]
fn sigterm_stops_accepting_and_drains_open_connections() {
    let (mut serve, listen, mut client, mut server) = one_open_connection();
    serve.signal("TERM");
    // Draining: the open connection still carries bytes both ways...
    client.write_all(b"last words").unwrap();
    let mut buf = [0; 10];
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"last words");
    // ...while new connections are refused once the listener is closed.
    let refused = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        TcpStream::connect(&listen).is_err()
    });
    assert!(refused, "the listener must close on SIGTERM");
    // When the client leaves, the daemon exits at once, with 0.
    drop(client);
    drop(server);
    let (code, took) = serve.wait(Duration::from_secs(4));
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(4));
}

#[test]
fn a_connection_that_never_ends_is_closed_after_the_drain_time() {
    let (mut serve, _listen, mut client, _server) = one_open_connection();
    serve.signal("INT");
    let (code, took) = serve.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    assert!(took >= Duration::from_secs(4), "the drain time is honoured: {took:?}");
    client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(client.read(&mut [0; 1]), Ok(0) | Err(_)), "the connection was closed");
}

#[test]
fn slo_budget_prints_the_worked_example_and_refuses_bad_input() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_firedrill")).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["slo", "budget", "--objective", "99.9", "--period", "30d", "--rps", "100", "--json"]);
    assert_eq!(code, Some(0));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((report["budget_events"].as_f64().unwrap() - 259_200.0).abs() < 1e-3);
    assert_eq!(report["error_ratios"].as_array().unwrap().len(), 2, "1.0 and 0.01 by default");
    let page = &report["error_ratios"][0]["rules"][0];
    assert!((page["fires_after_seconds"].as_f64().unwrap() - 51.84).abs() < 1e-6, "{page}");
    let (code, out, _) = run(&["slo", "budget", "--objective", "99.9", "--rps", "100", "--error-ratio", "0.1"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("page-1h    page   60.0m/5.0m burn  14.4 (2% of budget): fires after 8.6m"), "{out}");
    let (code, _, err) = run(&["slo", "budget", "--objective", "99.9", "--rps", "100", "--error-ratio", "2"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--error-ratio must be between 0 and 1, got 2"), "{err}");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    // Enough output (about 300 KB) to overflow the pipe once its reader has gone.
    let ratios: Vec<String> = (1..=300).map(|i| format!("--error-ratio={}", f64::from(i) / 300.0)).collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["slo", "budget", "--objective", "99.9", "--rps", "100", "--json"])
        .args(&ratios)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    // The reader is gone (like `| head -1`): the rest of the output hits a closed pipe.
    let out = child.wait_with_output().unwrap();
    assert_eq!(first.trim(), "{");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn logs_on_a_pipe_carry_no_colour_codes() {
    // A daemon that is not there: the client logs its connection attempts at debug level.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["status", "--addr", "127.0.0.1:1"])
        .env("FIREDRILL_LOG", "debug")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.lines().count() > 1, "there were logs to check: {err}");
    assert!(!err.contains('\u{1b}'), "no ANSI escapes on a pipe: {err:?}");
}
