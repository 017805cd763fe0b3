//! Kill faults on Docker containers, against this machine's Docker engine and an image built
//! locally from the project's own example binary (`.ci/install` builds it; no registry needed).
//! They are `#[ignore]`d, so a machine without Docker reports them as ignored, never as passed;
//! `.ci/test` runs them (`--include-ignored`), and then a missing engine or image fails them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::ServeProcess;
use crate::kill::{events_of, eventually, journal};

const IMAGE: &str = "firedrill-test/healthd:dev";

/// Panics, saying what to do, unless the engine and the image are here.
fn docker_ready() {
    let engine = Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output();
    let reason = match engine {
        Ok(out) if out.status.success() => {
            let image = Command::new("docker").args(["image", "inspect", IMAGE]).output();
            if image.is_ok_and(|o| o.status.success()) {
                return;
            }
            format!("the image {IMAGE} is missing (`.ci/install` builds it)")
        }
        Ok(out) => format!("the Docker engine is not reachable: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("no docker command: {e}"),
    };
    panic!("this test needs Docker: {reason}");
}

/// Containers labelled with one tag, removed when dropped (by label, so nothing is left).
struct Containers {
    tag: String,
}

impl Containers {
    fn new() -> Self {
        // Tests run in parallel: the counter keeps two started in the same millisecond apart.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("t{}-{}-{n}", std::process::id(), firedrill::clock::wall_ms());
        Self { tag }
    }

    fn run(&self, name: &str, scope: &str) -> String {
        self.run_with(name, scope, &[])
    }

    fn run_with(&self, name: &str, scope: &str, options: &[&str]) -> String {
        let out = Command::new("docker")
            .args(["run", "-d", "--name", &format!("fd-{}-{name}", self.tag)])
            .args(options)
            .args(["--label", &format!("firedrill.test={scope}"), "--label", "app=wallet"])
            .args(["--label", &format!("firedrill.cleanup={}", self.tag)])
            .args([IMAGE, "--listen", "0.0.0.0:8080"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// A container's `State`, as `docker inspect` shows it.
fn state(id: &str) -> serde_json::Value {
    let out = Command::new("docker").args(["inspect", "--format", "{{json .State}}", id]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

impl Drop for Containers {
    fn drop(&mut self) {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=firedrill.cleanup={}", self.tag)])
            .output()
            .unwrap();
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect();
        if !ids.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f"]).args(&ids).output();
        }
    }
}

fn drill(scope: &str, fault: &str) -> String {
    format!(
        r#"
[drill]
name = "wallet-containers"
title = "Wallet containers misbehave"
briefing = "Payments hang."
timebox = "10m"

[targets]
production = {{ detect = 3, diagnose = 6, mitigate = 9, resolve = 12 }}

[blast_radius]
max_targets = 2
docker_scope = {{ "firedrill.test" = "{scope}" }}

[[faults]]
at = "0s"
{fault}

[answer]
component = "wallet"
kind = "pause"
accept = ["wallet"]
"#
    )
}

fn write_drill(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir.join("drills")).unwrap();
    std::fs::write(dir.join("drills/wallet-containers.toml"), text).unwrap();
}

#[test]
#[ignore = "needs the Docker engine and the test image (.ci/install builds it)"]
fn containers_in_scope_are_paused_and_unpaused_and_outsiders_never_touched() {
    docker_ready();
    let containers = Containers::new();
    let scope = containers.tag.clone();
    let a = containers.run("a", &scope);
    let b = containers.run("b", &scope);
    let outside = containers.run("outside", &format!("other-{scope}"));
    let dir = tempfile::tempdir().unwrap();
    let pause = r#"duration = "3s"
kill = { docker = { labels = { app = "wallet" } }, action = "pause", all = true }"#;
    write_drill(dir.path(), &drill(&scope, pause));
    let serve = ServeProcess::start_in(dir.path(), &[]);

    let (code, out, err) = serve.verb(&["run", "wallet-containers", "--team", "ops", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("matching now (2)"), "only the scope's containers match: {out}");
    assert!(!out.contains("-outside"), "{out}");

    let (code, out, err) = serve.verb(&["run", "wallet-containers", "--team", "ops"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(eventually(Duration::from_secs(10), || state(&a)["Paused"] == true && state(&b)["Paused"] == true));
    assert_eq!(state(&outside)["Paused"], false, "outside the label scope");
    // The fault's duration ends: both are unpaused, journaled, and seen back.
    assert!(crate::harness::until(dir.path(), Duration::from_secs(15), || events_of(
        &journal(dir.path()),
        "target_recovered"
    )
    .len()
        == 2));
    assert_eq!(state(&a)["Paused"], false);
    assert_eq!(state(&b)["Paused"], false);
    let records = journal(dir.path());
    assert_eq!(events_of(&records, "target_restored").len(), 2, "{records:#?}");
    let killed = events_of(&records, "target_killed");
    assert!(killed.iter().all(|k| k["backend"] == "docker" && k["action"] == "pause"), "{killed:?}");
    serve.verb(&["abort", "--all"]);

    // Restart one: it comes back by itself, with a new start time.
    let restart = r#"kill = { docker = { labels = { app = "wallet" } }, action = "restart", grace = "0s" }"#;
    write_drill(dir.path(), &drill(&scope, restart));
    let started: Vec<String> = [&a, &b].iter().map(|c| state(c)["StartedAt"].to_string()).collect();
    let (code, out, err) = serve.verb(&["run", "wallet-containers", "--team", "ops"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(20), || events_of(
        &journal(dir.path()),
        "target_recovered"
    )
    .len()
        == 3));
    let now: Vec<String> = [&a, &b].iter().map(|c| state(c)["StartedAt"].to_string()).collect();
    assert_eq!(started.iter().zip(&now).filter(|(x, y)| x != y).count(), 1, "exactly one was restarted");
    serve.verb(&["abort", "--all"]);

    // Kill one: Docker does not restart a container killed through its API; it stays down.
    let kill = r#"kill = { docker = { labels = { app = "wallet" }, name = "*-a" } }"#;
    write_drill(dir.path(), &drill(&scope, kill));
    let (code, out, err) = serve.verb(&["run", "wallet-containers", "--team", "ops"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(eventually(Duration::from_secs(10), || state(&a)["Running"] == false));
    assert_eq!(state(&b)["Running"], true, "the name pattern chose `*-a` only");
    assert_eq!(state(&outside)["Running"], true);
    serve.verb(&["abort", "--all"]);
}

#[test]
#[ignore = "needs the Docker engine and the test image (.ci/install builds it)"]
fn a_crashed_daemon_unpauses_on_restart() {
    docker_ready();
    let containers = Containers::new();
    let scope = containers.tag.clone();
    let a = containers.run("a", &scope);
    let dir = tempfile::tempdir().unwrap();
    let pause = r#"kill = { docker = { labels = { app = "wallet" } }, action = "pause" }"#;
    write_drill(dir.path(), &drill(&scope, pause));
    let mut serve = ServeProcess::start_in(dir.path(), &[]);
    let (code, out, err) = serve.verb(&["run", "wallet-containers", "--team", "ops"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(eventually(Duration::from_secs(10), || state(&a)["Paused"] == true));
    serve.signal("KILL");
    serve.wait(Duration::from_secs(10));
    assert_eq!(state(&a)["Paused"], true, "a killed daemon undoes nothing...");
    let restarted = ServeProcess::start_in(dir.path(), &[]);
    assert_eq!(state(&a)["Paused"], false, "...until it starts again");
    assert_eq!(events_of(&journal(dir.path()), "target_restored").len(), 1);
    drop(restarted);

    // A Docker kill without a label scope is refused when the drill is read.
    let unscoped = drill(&scope, pause).replace(&format!("docker_scope = {{ \"firedrill.test\" = \"{scope}\" }}"), "");
    write_drill(dir.path(), &unscoped);
    let serve = ServeProcess::start_in(dir.path(), &[]);
    let (code, _, err) = serve.verb(&["run", "wallet-containers", "--team", "ops"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("Docker kills need a label scope"), "{err}");
}

#[test]
#[ignore = "needs the Docker engine and the test image (.ci/install builds it)"]
fn a_crash_brings_the_restart_policy_into_play() {
    docker_ready();
    let containers = Containers::new();
    let scope = containers.tag.clone();
    let a = containers.run_with("a", &scope, &["--restart", "always"]);
    let dir = tempfile::tempdir().unwrap();
    let crash = r#"kill = { docker = { labels = { app = "wallet" } }, action = "crash" }"#;
    write_drill(dir.path(), &drill(&scope, crash));
    let serve = ServeProcess::start_in(dir.path(), &[]);
    let before = state(&a);
    let (code, out, err) = serve.verb(&["run", "wallet-containers", "--team", "ops"]);
    assert_eq!(code, Some(0), "{out}{err}");
    // Docker saw its process die and restarted it by policy: nobody started it.
    assert!(crate::harness::until(dir.path(), Duration::from_secs(20), || events_of(
        &journal(dir.path()),
        "target_recovered"
    )
    .len()
        == 1));
    let after = state(&a);
    assert_eq!(after["Running"], true);
    assert_ne!(after["StartedAt"], before["StartedAt"]);
    assert_ne!(after["Pid"], before["Pid"]);
    let inspect = Command::new("docker").args(["inspect", "--format", "{{.RestartCount}}", &a]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), "1", "restarted by its policy");
    let killed = events_of(&journal(dir.path()), "target_killed");
    assert!(killed.iter().all(|k| k["backend"] == "docker" && k["action"] == "crash"), "{killed:?}");
    serve.verb(&["abort", "--all"]);
}

/// Forwards TCP connections on loopback to the local engine's socket: the real engine, reached
/// as `DOCKER_HOST=tcp://…`.
fn engine_over_tcp() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let Ok(engine) = std::os::unix::net::UnixStream::connect("/var/run/docker.sock") else { return };
            let (mut client_in, mut engine_out) = (client.try_clone().unwrap(), engine.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut client_in, &mut engine_out));
            let (mut engine_in, mut client_out) = (engine, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut engine_in, &mut client_out);
                let _ = client_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    format!("tcp://{address}")
}

#[test]
#[ignore = "needs the Docker engine and the test image (.ci/install builds it)"]
fn rounds_never_take_more_containers_down_than_the_blast_radius_through_docker_host() {
    docker_ready();
    let containers = Containers::new();
    let scope = containers.tag.clone();
    let ids: Vec<String> = ["a", "b", "c"].iter().map(|n| containers.run(n, &scope)).collect();
    let dir = tempfile::tempdir().unwrap();
    // A killed container stays down (Docker applies no policy to a kill through its API): with
    // a radius of one, every later round is skipped, never a second container taken.
    let every = r#"duration = "5s"
kill = { docker = { labels = { app = "wallet" } }, count = 1, every = "1s" }"#;
    write_drill(dir.path(), &drill(&scope, every).replace("max_targets = 2", "max_targets = 1"));
    let host = engine_over_tcp();
    let serve = ServeProcess::start_env(dir.path(), &[], &[("DOCKER_HOST", &host)]);
    let (code, out, err) = serve.verb(&["run", "wallet-containers", "--team", "ops"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let skipped = || events_of(&journal(dir.path()), "kill_skipped").len();
    let mut worst = 0;
    let done = eventually(Duration::from_secs(20), || {
        worst = worst.max(ids.iter().filter(|id| state(id)["Running"] != true).count());
        skipped() >= 3
    });
    let records = journal(dir.path());
    assert!(done, "{records:#?}");
    assert_eq!(events_of(&records, "target_killed").len(), 1, "{records:#?}");
    assert!(worst <= 1, "{worst} containers were down at once");
    assert_eq!(ids.iter().filter(|id| state(id)["Running"] != true).count(), 1);
    serve.verb(&["abort", "--all"]);
}

#[test]
#[ignore = "needs the Docker engine and the test image (.ci/install builds it)"]
fn a_name_is_exact_unless_it_is_a_pattern() {
    docker_ready();
    let containers = Containers::new();
    let scope = containers.tag.clone();
    containers.run("shop-1", &scope);
    containers.run("shop-10", &scope);
    let dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::start_in(dir.path(), &[]);
    for (name, matching) in
        [(format!("fd-{scope}-shop-1"), 1), (format!("fd-{scope}-shop-*"), 2), ("shop-1".to_owned(), 0)]
    {
        let fault = format!("kill = {{ docker = {{ labels = {{ app = \"wallet\" }}, name = \"{name}\" }} }}");
        write_drill(dir.path(), &drill(&scope, &fault));
        let (code, out, err) = serve.verb(&["run", "wallet-containers", "--team", "ops", "--dry-run"]);
        if matching == 0 {
            assert_eq!(code, Some(2), "{out}{err}");
            assert!(err.contains("match nothing"), "{err}");
        } else {
            assert_eq!(code, Some(0), "{out}{err}");
            assert!(out.contains(&format!("matching now ({matching})")), "{name}: {out}");
        }
    }
}

#[test]
fn an_unreachable_docker_host_is_named_and_nothing_local_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let fault = r#"kill = { docker = { labels = { app = "wallet" } } }"#;
    write_drill(dir.path(), &drill("anything", fault));
    let serve = ServeProcess::start_env(dir.path(), &[], &[("DOCKER_HOST", "tcp://127.0.0.1:1")]);
    for extra in [&["--dry-run"][..], &[]] {
        let mut args = vec!["run", "wallet-containers", "--team", "ops"];
        args.extend_from_slice(extra);
        let (code, out, err) = serve.verb(&args);
        assert_eq!(code, Some(2), "{out}{err}");
        assert!(err.contains("cannot reach the Docker engine at tcp://127.0.0.1:1"), "{err}");
    }
    let ssh = ServeProcess::start_env(dir.path(), &[], &[("DOCKER_HOST", "ssh://user@host")]);
    let (code, _, err) = ssh.verb(&["run", "wallet-containers", "--team", "ops", "--dry-run"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("does not speak ssh to the Docker engine; forward its socket"), "{err}");
}

/// A Docker engine API that lists one container whose `State.Pid` is `pid`: an engine in another
/// PID namespace, where that number is some other process here.
fn engine_reporting_pid(pid: u32) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let id = "f".repeat(64);
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let id = id.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    // Headers, then no body (every call here is a GET or a body-less POST).
                    loop {
                        let mut header = String::new();
                        if std::io::BufRead::read_line(&mut reader, &mut header).unwrap_or(0) == 0 || header == "\r\n" {
                            break;
                        }
                    }
                    let path = path.split('?').next().unwrap_or_default();
                    let labels = serde_json::json!({"firedrill.test": "anything", "app": "wallet"});
                    let (status, body) = if path.ends_with("/version") {
                        (
                            "200 OK",
                            serde_json::json!({"ApiVersion": "1.43", "MinAPIVersion": "1.24", "Version": "24.0.0"}),
                        )
                    } else if path.ends_with("/containers/json") {
                        (
                            "200 OK",
                            serde_json::json!([{"Id": id, "Names": ["/elsewhere"], "Labels": labels, "State": "running"}]),
                        )
                    } else if path.ends_with(&format!("/containers/{id}/json")) {
                        let state =
                            serde_json::json!({"Running": true, "Pid": pid, "StartedAt": "2026-11-30T00:00:00Z"});
                        ("200 OK", serde_json::json!({"Id": id, "State": state}))
                    } else {
                        ("404 Not Found", serde_json::json!({"message": "not in this fake"}))
                    };
                    let body = body.to_string();
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if std::io::Write::write_all(&mut stream, format!("{head}{body}").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("tcp://{address}")
}

#[test]
fn a_crash_never_signals_a_pid_outside_the_containers_cgroup() {
    let mut bystander = Command::new("sleep").arg("600").spawn().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let crash = r#"kill = { docker = { labels = { app = "wallet" } }, action = "crash" }"#;
    write_drill(dir.path(), &drill("anything", crash));
    let host = engine_reporting_pid(bystander.id());
    let serve = ServeProcess::start_env(dir.path(), &[], &[("DOCKER_HOST", &host)]);
    let (code, out, err) = serve.verb(&["run", "wallet-containers", "--team", "ops"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let failed = || events_of(&journal(dir.path()), "fault_failed");
    assert!(
        crate::harness::until(dir.path(), Duration::from_secs(10), || !failed().is_empty()),
        "{:#?}",
        journal(dir.path())
    );
    let error = failed()[0]["error"].as_str().unwrap().to_owned();
    assert!(error.contains("is not in the container's cgroup here"), "{error}");
    assert!(error.contains(&host), "the message names the engine: {error}");
    assert!(bystander.try_wait().unwrap().is_none(), "the bystander was not signalled");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out =
        Command::new("openssl").current_dir(dir).args(args).output().expect("openssl (`.ci/install` installs it)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA in `dir` (`ca.pem`) and a certificate for 127.0.0.1 it signed (`server-cert.pem`,
/// `server-key.pem`), and a client's (`cert.pem`, `key.pem`): the files `DOCKER_CERT_PATH` holds.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(dir.join("server.cnf"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    std::fs::write(dir.join("client.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, key, cert, ext) in [
        ("127.0.0.1", "server-key.pem", "server-cert.pem", "server.cnf"),
        ("client", "key.pem", "cert.pem", "client.cnf"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                key,
                "-out",
                "request.csr",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "request.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                ext,
                "-out",
                cert,
            ],
        );
    }
}

#[test]
#[ignore = "needs the Docker engine and the test image (.ci/install builds it)"]
fn docker_tls_variables_are_honoured_as_the_docker_cli_does() {
    docker_ready();
    let containers = Containers::new();
    let scope = containers.tag.clone();
    containers.run("a", &scope);
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    // The engine behind TLS: socat terminates it in front of the local socket.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("openssl-listen:{port},reuseaddr,fork,cert=server-cert.pem,key=server-key.pem,verify=0");
    let mut socat = Command::new("socat")
        .current_dir(certs.path())
        .args([listen.as_str(), "unix-connect:/var/run/docker.sock"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("socat (`.ci/install` installs it)");
    assert!(eventually(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()));
    let dir = tempfile::tempdir().unwrap();
    write_drill(dir.path(), &drill(&scope, r#"kill = { docker = { labels = { app = "wallet" } } }"#));
    let host = format!("tcp://127.0.0.1:{port}");
    let cert_path = certs.path().to_str().unwrap();
    let serve = ServeProcess::start_env(
        dir.path(),
        &[],
        &[("DOCKER_HOST", &host), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", cert_path)],
    );
    let (code, out, err) = serve.verb(&["run", "wallet-containers", "--team", "ops", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("matching now (1)"), "{out}");
    // Another CA: the engine's certificate is not trusted, and nothing is listed.
    let other = tempfile::tempdir().unwrap();
    certificates(other.path());
    let wrong = other.path().to_str().unwrap();
    let distrust = ServeProcess::start_env(
        dir.path(),
        &[],
        &[("DOCKER_HOST", &host), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", wrong)],
    );
    let (code, out, err) = distrust.verb(&["run", "wallet-containers", "--team", "ops", "--dry-run"]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains(&host) && err.to_lowercase().contains("certificate"), "{err}");
    socat.kill().unwrap();
    socat.wait().unwrap();
}
