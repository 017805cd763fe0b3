//! The real binary: exit codes, bad proxy files, and a clean, bounded shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::ServeProcess;
use crate::verb::{Ran, Verb};

fn firedrill(args: &[&str]) -> Ran {
    Verb::new(args).run()
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn help_and_usage_errors() {
    let help = firedrill(&["serve", "--help"]);
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("PROXY_FILE"));
    assert_eq!(firedrill(&["serve", "--api", "not-an-address"]).code, Some(2));
    assert_eq!(firedrill(&["frobnicate"]).code, Some(2));
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
    assert_eq!(output.code, Some(2));
    let stderr = output.stderr;
    assert!(stderr.contains(&format!("{bad}: proxy #1 (`db`): missing required field: upstream")), "{stderr}");
    assert!(!output.stdout.contains("listening"));
    // The good file's proxy was never bound: its port refuses a connection.
    let refused = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "nothing listens on {port}");

    let broken = write_file(&dir, "broken.json", "[\n  {\"name\": \"x\",\n]");
    let output = firedrill(&["serve", "--api", "127.0.0.1:0", &broken]);
    assert_eq!(output.code, Some(2));
    assert!(output.stderr.contains(&format!("{broken}: line 3 column 1")));
}

#[test]
fn an_api_beyond_loopback_needs_a_token() {
    let output = firedrill(&["serve", "--api", "0.0.0.0:0"]);
    assert_eq!(output.code, Some(2));
    assert!(output.stderr.contains("--token"));
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
        let ran = Verb::new(args).run();
        (ran.code, ran.stdout, ran.stderr)
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
    let out = crate::verb::bounded(child, "firedrill slo budget … --json", crate::verb::LIMIT).unwrap();
    assert_eq!(first.trim(), "{");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn logs_on_a_pipe_carry_no_colour_codes() {
    // A daemon that is not there: the client logs its connection attempts at debug level.
    let output = Verb::new(["status", "--addr", "127.0.0.1:1"]).env("FIREDRILL_LOG", "debug").run();
    let err = output.stderr;
    assert!(err.lines().count() > 1, "there were logs to check: {err}");
    assert!(!err.contains('\u{1b}'), "no ANSI escapes on a pipe: {err:?}");
}

/// The backlog of the socket listening on `port`, as `ss` shows it (Send-Q of a listener).
fn backlog_of(port: u16) -> u32 {
    let out = std::process::Command::new("ss").args(["-Hltn", &format!("sport = :{port}")]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listener on {port}: {text}"))
}

#[test]
fn listeners_get_the_systems_backlog_or_the_one_given() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    for (args, expected) in [(&[][..], somaxconn), (&["--backlog", "777"][..], 777)] {
        let dir = tempfile::tempdir().unwrap();
        let serve = ServeProcess::start_in(dir.path(), args);
        let created: serde_json::Value = reqwest::blocking::Client::new()
            .post(format!("http://{}/proxies", serve.api))
            .body(r#"{"name":"p","listen":"127.0.0.1:0","upstream":"127.0.0.1:9"}"#)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let port: u16 = created["listen"].as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(backlog_of(port), expected, "the proxy's listener");
        assert_eq!(backlog_of(serve.api.port()), expected, "the admin API's");
        assert_eq!(backlog_of(serve.control.port()), expected, "the control API's");
    }
}

/// Opens `n` connections to `proxy` and waits until the proxy has admitted or refused them all
/// (before any byte, so no pipe is made yet); returns those that echo a byte back, and how many
/// were cut.
fn echoed_and_cut(serve: &ServeProcess, proxy: &str, n: usize) -> (Vec<std::net::TcpStream>, usize) {
    use std::io::{Read, Write};
    let seen = |serve: &ServeProcess| {
        let text = reqwest::blocking::get(format!("http://{}/metrics", serve.api)).unwrap().text().unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with("firedrill_proxy_connections_total{")
                    || l.starts_with("firedrill_proxy_connections_refused_total{")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let before = seen(serve);
    let streams: Vec<std::net::TcpStream> = (0..n).map(|_| std::net::TcpStream::connect(proxy).unwrap()).collect();
    assert!(crate::kill::eventually(std::time::Duration::from_secs(10), || seen(serve) >= before + n as u64));
    let (mut alive, mut cut) = (Vec::new(), 0);
    for mut stream in streams {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut byte = [0_u8; 1];
        match stream.write_all(b"x").and_then(|()| stream.read(&mut byte)) {
            Ok(1) => alive.push(stream),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("a connection neither answered nor was refused")
            }
            // Closed (0 bytes) or reset: refused.
            Ok(_) | Err(_) => cut += 1,
        }
    }
    (alive, cut)
}

fn metric(serve: &ServeProcess, line: &str) -> u64 {
    let text = reqwest::blocking::get(format!("http://{}/metrics", serve.api)).unwrap().text().unwrap();
    text.lines().find_map(|l| l.strip_prefix(line)?.trim().parse().ok()).unwrap_or_else(|| panic!("no {line}:\n{text}"))
}

fn proxy_to(serve: &ServeProcess, upstream: std::net::SocketAddr) -> String {
    let body = format!(r#"{{"name":"p","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#);
    let created: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("http://{}/proxies", serve.api))
        .body(body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    created["listen"].as_str().unwrap().to_owned()
}

#[test]
fn past_the_descriptor_budget_clients_are_refused_at_once_and_the_apis_still_answer() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(crate::harness::echo_server());
    let dir = tempfile::tempdir().unwrap();
    // 400 descriptors: 100 kept for the APIs, 300 for connections, 2 each when idle: 150.
    let serve = ServeProcess::start_limited(dir.path(), &[], 400);
    let proxy = proxy_to(&serve, upstream);
    let (alive, cut) = echoed_and_cut(&serve, &proxy, 200);
    assert_eq!((alive.len(), cut), (150, 50), "the cap is what the budget fits");
    assert_eq!(
        metric(&serve, "firedrill_proxy_connections_refused_total{proxy=\"p\",reason=\"global_cap\"}"),
        50,
        "{}",
        reqwest::blocking::get(format!("http://{}/metrics", serve.api)).unwrap().text().unwrap()
    );
    // Every byte goes through, and the admin and control APIs answer.
    assert_eq!(metric(&serve, "firedrill_proxy_connections_open{proxy=\"p\"}"), 150);
    let (code, _, err) = serve.verb(&["status"]);
    assert_eq!(code, Some(0), "the control API answers: {err}");
    drop(alive);
    let open = || metric(&serve, "firedrill_proxy_connections_open{proxy=\"p\"}");
    assert!(crate::kill::eventually(std::time::Duration::from_secs(10), || open() == 0), "{}", open());
    let (alive, cut) = echoed_and_cut(&serve, &proxy, 10);
    assert_eq!((alive.len(), cut), (10, 0), "closed connections free their places");
}

#[test]
fn a_proxy_over_its_own_cap_refuses_at_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(crate::harness::echo_server());
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start_in(dir.path(), &["--max-proxy-connections", "5"]);
    let proxy = proxy_to(&serve, upstream);
    let (alive, cut) = echoed_and_cut(&serve, &proxy, 8);
    assert_eq!((alive.len(), cut), (5, 3));
    assert_eq!(metric(&serve, "firedrill_proxy_connections_refused_total{proxy=\"p\",reason=\"proxy_cap\"}"), 3);
}

/// The daemon's open descriptors by kind: (sockets, pipe ends).
fn descriptor_kinds(pid: u32) -> (usize, usize) {
    let links: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .collect();
    (links.iter().filter(|l| l.starts_with("socket:")).count(), links.iter().filter(|l| l.starts_with("pipe:")).count())
}

#[test]
fn a_connection_holds_two_descriptors_idle_or_busy() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(crate::harness::echo_server());
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start_in(dir.path(), &[]);
    let proxy = proxy_to(&serve, upstream);
    let open = || metric(&serve, "firedrill_proxy_connections_open{proxy=\"p\"}");
    let (sockets, pipes) = descriptor_kinds(serve.pid());
    let streams: Vec<std::net::TcpStream> = (0..100).map(|_| std::net::TcpStream::connect(&proxy).unwrap()).collect();
    assert!(crate::kill::eventually(std::time::Duration::from_secs(10), || open() == 100));
    // Idle: the client's socket and the upstream's, and no pipe. (A socket or two
    // of the admin API's own connections may come and go meanwhile.)
    let (idle_sockets, idle_pipes) = descriptor_kinds(serve.pid());
    assert!((200..=203).contains(&(idle_sockets - sockets)), "{} sockets for 100 connections", idle_sockets - sockets);
    assert_eq!(idle_pipes - pipes, 0, "no pipe while idle");
    for mut stream in &streams {
        use std::io::{Read, Write};
        let mut byte = [0_u8; 1];
        stream.write_all(b"x").unwrap();
        stream.read_exact(&mut byte).unwrap();
    }
    // Busy both ways: still the two sockets (the fast path copies through the data plane's one
    // scratch buffer, no pipe per direction).
    let (busy_sockets, busy_pipes) = descriptor_kinds(serve.pid());
    assert!((200..=203).contains(&(busy_sockets - sockets)), "{}", busy_sockets - sockets);
    assert_eq!(busy_pipes - pipes, 0, "no pipe once bytes have flowed");
}
