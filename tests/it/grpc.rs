//! gRPC through an `http` proxy: a tonic client calling a tonic server (firedrill's own control
//! service) through firedrill, with `grpc_error` at rate 1, 0.3 and 0, and a server stream.

use std::path::Path;
use std::sync::Arc;

use firedrill::control::proto::control_client::ControlClient;
use firedrill::control::proto::{AbortRequest, StartRequest, StatusRequest, WatchRequest};
use firedrill::fault::Proxies;
use firedrill::fault::kill::Killers;
use firedrill::proxy::Registry;
use firedrill::proxy::config::{Mode, ProxyConfig};
use firedrill::run::manager::{Manager, RunDirs};
use firedrill::supervise::Supervisor;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::harness::Daemon;
use crate::http::upstream;

const DRILL: &str = r#"
[drill]
name = "side"
title = "A side proxy slows"
briefing = "Something is slow."
timebox = "10m"

[targets]
production = { detect = 3, diagnose = 6, mitigate = 9, resolve = 12 }

[[faults]]
at = "0s"
proxy = "side"
toxic = { type = "latency", attributes = { latency = 10 } }

[answer]
component = "side"
kind = "latency"
accept = ["side"]
"#;

/// A tonic server: the control service of a manager with one drill; returns its address.
async fn grpc_server(dir: &Path, stop: &CancellationToken) -> std::net::SocketAddr {
    let registry = Registry::new(Some(3));
    let side = ProxyConfig {
        name: "side".into(),
        listen: "127.0.0.1:0".into(),
        upstream: upstream().await.to_string(),
        enabled: true,
        mode: Mode::Tcp,
        http: firedrill::proxy::config::HttpOptions::default(),
    };
    registry.create(side).await.unwrap();
    std::fs::create_dir_all(dir.join("drills")).unwrap();
    std::fs::write(dir.join("drills/side.toml"), DRILL).unwrap();
    let dirs = RunDirs { drills: dir.join("drills"), data: dir.join("data"), scorecards: dir.join("cards") };
    let manager = Manager::new(Proxies::Local(registry), Killers::new(Supervisor::new()), dirs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let gamedays = firedrill::gameday::Gamedays::new(
        Arc::clone(&manager),
        dir.join("gamedays"),
        &dir.join("data"),
        firedrill::gameday::notify::Retry::default(),
    );
    tokio::spawn(firedrill::control::serve(listener, gamedays, None, stop.clone()));
    address
}

async fn client(address: std::net::SocketAddr) -> ControlClient<Channel> {
    ControlClient::connect(format!("http://{address}")).await.unwrap()
}

async fn status(client: &mut ControlClient<Channel>) -> Result<(), tonic::Code> {
    client.status(StatusRequest { run_id: String::new() }).await.map(|_| ()).map_err(|s| s.code())
}

/// A tonic server behind an `http` proxy `wallet`: its directory, its stop, the daemon, and a
/// client connected through the proxy.
async fn through_a_proxy() -> (tempfile::TempDir, CancellationToken, Daemon, ControlClient<Channel>) {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let server = grpc_server(dir.path(), &stop).await;
    let d = Daemon::start().await;
    let proxy = d.http_proxy("wallet", server).await;
    let wallet = client(proxy).await;
    (dir, stop, d, wallet)
}

#[tokio::test]
async fn grpc_error_fails_calls_at_its_rate_on_an_open_connection() {
    let (_dir, stop, d, mut wallet) = through_a_proxy().await;
    assert_eq!(status(&mut wallet).await, Ok(()), "through the proxy untouched");

    // Added after the HTTP/2 connection opened: every call fails with UNAVAILABLE.
    d.toxic("wallet", r#"{"name":"unavailable","type":"grpc_error","attributes":{"code":14,"message":"injected"}}"#)
        .await;
    for _ in 0..20 {
        let error = wallet.status(StatusRequest { run_id: String::new() }).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::Unavailable);
        assert_eq!(error.message(), "injected");
    }

    // At rate 0.3 over 2,000 calls the failure share is 0.3 within 5 standard deviations
    // (sd = sqrt(0.3 × 0.7 / 2000) ≈ 0.0102).
    let (code, _) = d.json("POST", "/proxies/wallet/toxics/unavailable", Some(r#"{"attributes":{"rate":0.3}}"#)).await;
    assert_eq!(code, 200);
    let mut failed = 0;
    for _ in 0..2000 {
        match status(&mut wallet).await {
            Ok(()) => {}
            Err(tonic::Code::Unavailable) => failed += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let share = f64::from(failed) / 2000.0;
    assert!((share - 0.3).abs() < 0.051, "failure share {share}");

    let metrics = d.call("GET", "/metrics", None).await.text;
    let route = "/firedrill.control.v1.Control/Status";
    assert!(
        metrics.contains(&format!(
            r#"firedrill_grpc_responses_total{{proxy="wallet",route="{route}",grpc_service="firedrill.control.v1.Control",grpc_method="Status",code="Unavailable"}}"#
        ))
    );
    assert!(
        metrics.contains(&format!(r#"firedrill_grpc_responses_total{{proxy="wallet",route="{route}",grpc_service="firedrill.control.v1.Control",grpc_method="Status",code="OK"}}"#))
    );

    assert_eq!(d.call("DELETE", "/proxies/wallet/toxics/unavailable", None).await.status, 204);
    assert_eq!(status(&mut wallet).await, Ok(()));
    stop.cancel();
}

#[tokio::test]
async fn a_server_stream_passes_untouched_at_rate_0() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let server = grpc_server(dir.path(), &stop).await;
    let d = Daemon::start().await;
    let proxy = d.http_proxy("wallet", server).await;
    d.toxic("wallet", r#"{"name":"never","type":"grpc_error","attributes":{"rate":0}}"#).await;
    let mut wallet = client(proxy).await;
    let run = wallet
        .start(StartRequest { drill: "side".into(), team: "t".into(), ..StartRequest::default() })
        .await
        .unwrap()
        .into_inner();
    let mut events = wallet.watch(WatchRequest { run_id: run.run_id.clone() }).await.unwrap().into_inner();
    let first = events.message().await.unwrap().unwrap();
    assert_eq!(first.r#type, "run_started");
    wallet.abort(AbortRequest { run_id: run.run_id, by: "t".into(), all: false }).await.unwrap();
    let mut types = vec![first.r#type];
    while let Some(event) = events.message().await.unwrap() {
        types.push(event.r#type);
    }
    assert_eq!(types.first().map(String::as_str), Some("run_started"));
    assert!(types.contains(&"fault_applied".to_owned()), "{types:?}");
    assert_eq!(types.last().map(String::as_str), Some("ended"), "the stream ends with the run: {types:?}");
    stop.cancel();
}

#[tokio::test]
async fn synthetic_grpc_traffic_counts_good_and_bad_calls() {
    use firedrill::drill::{TrafficPlan, TrafficTarget};
    use firedrill::run::sli::start_traffic;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let server = grpc_server(dir.path(), &stop).await;
    let d = Daemon::start().await;
    let proxy = d.http_proxy("wallet", server).await;
    let plan = |address: std::net::SocketAddr| TrafficPlan {
        target: TrafficTarget::Grpc {
            address: address.to_string(),
            path: "/firedrill.control.v1.Control/Status".into(),
        },
        rps: 100.0,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(1),
    };
    // An empty message is a valid StatusRequest: every call succeeds.
    let traffic = CancellationToken::new();
    let counts = start_traffic(&plan(proxy), None, &traffic);
    // Waits (bounded) until the counts reach `enough`.
    let reach = |enough: u64, base: (u64, u64)| {
        let counts = counts.clone();
        async move {
            let wait = async {
                while counts.get().0 < base.0 + enough {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(20), wait).await.expect("the traffic keeps calling");
            counts.get()
        }
    };
    let (valid, bad) = reach(20, (0, 0)).await;
    assert!(valid >= 20);
    assert_eq!(bad, 0, "every call succeeds");
    // UNAVAILABLE from the proxy: every call from now on is bad. Calls already in flight when
    // the toxic went in may still pass: count once failures are under way.
    d.toxic("wallet", r#"{"name":"down","type":"grpc_error","attributes":{"code":14}}"#).await;
    let failing = async {
        while counts.get().1 < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), failing).await.expect("the toxic bites");
    let before = counts.get();
    let after = reach(20, before).await;
    assert_eq!(after.1 - before.1, after.0 - before.0, "every call failed: {before:?} -> {after:?}");
    // That traffic stops when told is seen on the paused clock (`traffic_stops_when_told`).
    traffic.cancel();
    stop.cancel();
}

#[tokio::test]
async fn http_abort_resets_with_the_error_code_the_toxic_names() {
    let (_dir, stop, d, mut wallet) = through_a_proxy().await;
    // (error_code, what a gRPC client sees): `refused_stream` is "the connection died", which
    // gRPC maps to UNAVAILABLE (retryable); the default stays INTERNAL_ERROR.
    for (code, seen) in [
        ("", tonic::Code::Internal),
        (r#","error_code":"internal_error""#, tonic::Code::Internal),
        (r#","error_code":"refused_stream""#, tonic::Code::Unavailable),
        (r#","error_code":"cancel""#, tonic::Code::Cancelled),
    ] {
        let body = format!(r#"{{"name":"cut","type":"http_abort","attributes":{{"grpc_method":"Status"{code}}}}}"#);
        let (status_code, toxic) = d.json("POST", "/proxies/wallet/toxics", Some(&body)).await;
        assert_eq!(status_code, 200, "{toxic}");
        assert_eq!(status(&mut wallet).await, Err(seen), "error_code {code:?}");
        assert_eq!(d.call("DELETE", "/proxies/wallet/toxics/cut", None).await.status, 204);
        assert_eq!(status(&mut wallet).await, Ok(()), "the connection survives the reset");
    }
    let (status_code, error) = d
        .json("POST", "/proxies/wallet/toxics", Some(r#"{"type":"http_abort","attributes":{"error_code":"nope"}}"#))
        .await;
    assert_eq!(status_code, 400);
    assert!(error["error"].as_str().unwrap().contains("internal_error, refused_stream, cancel"), "{error}");
    stop.cancel();
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_is_deadline_exceeded_for_a_grpc_client() {
    // An upstream that accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let d = Daemon::start().await;
    let body = format!(
        r#"{{"name":"wallet","listen":"127.0.0.1:0","upstream":"{silent}","mode":"http","upstream_timeout_ms":300}}"#
    );
    let (code, view) = d.json("POST", "/proxies", Some(&body)).await;
    assert_eq!(code, 201, "{view}");
    let mut wallet = client(view["listen"].as_str().unwrap().parse().unwrap()).await;
    let error = wallet.status(StatusRequest { run_id: String::new() }).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::DeadlineExceeded, "{error:?}");
    assert!(error.message().contains("did not answer in time"), "{error:?}");
    let metrics = d.call("GET", "/metrics", None).await.text;
    let route = "/firedrill.control.v1.Control/Status";
    assert!(
        metrics.contains(&format!(r#"firedrill_http_upstream_timeouts_total{{proxy="wallet",route="{route}"}} 1"#)),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        r#"firedrill_grpc_responses_total{{proxy="wallet",route="{route}",grpc_service="firedrill.control.v1.Control",grpc_method="Status",code="DeadlineExceeded"}} 1"#
    )));
}

/// One call of `Control/Status` by grpcio, the Python client (Debian's `python3-grpcio`): `OK`,
/// or the status code's name and details.
fn grpcio_status(address: &str) -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/py/grpc_call.py");
    // Debian's interpreter, the one its python3-grpcio is for (a pyenv one may come first on PATH).
    let output = std::process::Command::new("/usr/bin/python3")
        .args([script, address, "/firedrill.control.v1.Control/Status", ""])
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!("grpcio: {}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[tokio::test]
#[ignore = "needs grpcio for Debian's python3 (.ci/install installs python3-grpcio)"]
async fn grpcio_sees_the_codes_the_toxics_name() {
    let (_dir, stop, d, _) = through_a_proxy().await;
    let (_, view) = d.json("GET", "/proxies/wallet", None).await;
    let address = view["listen"].as_str().unwrap().to_owned();
    let call = |address: String| tokio::task::spawn_blocking(move || grpcio_status(&address));
    let untouched = call(address.clone())
        .await
        .unwrap()
        .expect("grpcio runs (apt-get install python3-grpcio; .ci/install installs it)");
    assert_eq!(untouched, "OK");
    for (toxic, seen) in [
        (r#""type":"grpc_error","attributes":{"code":14,"message":"injected"}"#, "UNAVAILABLE injected"),
        (r#""type":"grpc_error","attributes":{"code":8}"#, "RESOURCE_EXHAUSTED"),
        (r#""type":"http_abort","attributes":{"error_code":"refused_stream"}"#, "UNAVAILABLE"),
        (r#""type":"http_abort","attributes":{}"#, "INTERNAL"),
        (r#""type":"http_abort","attributes":{"error_code":"cancel"}"#, "CANCELLED"),
    ] {
        d.toxic("wallet", &format!(r#"{{"name":"t",{toxic}}}"#)).await;
        let answer = call(address.clone()).await.unwrap().unwrap();
        assert!(answer.starts_with(seen), "{toxic}: grpcio saw {answer}");
        assert_eq!(d.call("DELETE", "/proxies/wallet/toxics/t", None).await.status, 204);
    }
    assert_eq!(call(address).await.unwrap().unwrap(), "OK");
    stop.cancel();
}

/// A plain HTTP endpoint in this runtime (on the paused clock when the test's is) that counts
/// the requests it answers.
async fn counting_endpoint() -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = answered.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = [0; 1024];
                // Keep-alive: one answer per request read.
                while stream.read(&mut request).await.is_ok_and(|n| n > 0) {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, answered)
}

#[tokio::test(start_paused = true)]
async fn traffic_stops_when_told() {
    use firedrill::drill::plan::{TrafficPlan, TrafficTarget};
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let (url, answered) = counting_endpoint().await;
    let plan = TrafficPlan {
        target: TrafficTarget::Http(url),
        rps: 100.0,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(1),
    };
    let traffic = CancellationToken::new();
    let counts = firedrill::run::sli::start_traffic(&plan, None, &traffic);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (valid, bad) = counts.get();
    assert!(valid >= 150 && bad == 0, "100 requests a second, all good: {valid} {bad}");
    traffic.cancel();
    // A request in flight may still finish within its timeout; then nothing, for ten minutes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (stopped, sent) = (counts.get(), answered.load(Ordering::SeqCst));
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(counts.get(), stopped, "traffic stops when told");
    assert_eq!(answered.load(Ordering::SeqCst), sent, "nothing more reached the endpoint");
}
