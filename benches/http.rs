//! `cargo bench --bench http`: the `http` proxy mode against a direct connection, `tcp` mode and
//! nginx as a reverse proxy (when installed), in one run.
//!
//! The real `firedrill serve` binary runs in its own process with proxies in front of one
//! upstream (an HTTP/1.1 + HTTP/2 server in this process): one in `tcp` mode, one in `http` mode,
//! one in `http` mode with a zero `http_delay` toxic, and one in `http` mode speaking HTTP/1.1 to
//! the upstream (`upstream_protocol: http1`). nginx runs both translations in its own processes:
//! HTTP/2 to HTTP/1.1 (`proxy_pass`) and HTTP/2 to HTTP/2 (`grpc_pass`); each `http` row is
//! compared with nginx's row of the same pair. Measures added per-request latency (p50, p99; one
//! HTTP/2 stream at a time), requests per second with 64 concurrent HTTP/2 streams on one
//! connection, and the proxy process's CPU (user + system, from `/proc`) per request under that
//! load. Every figure is the median of interleaved rounds; ratios are against the direct figures
//! of the same run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

mod common;

use common::Daemon;

const ROUNDS: usize = 5;
const SEQUENTIAL: usize = 3_000;
const STREAMS: usize = 64;
const LOAD_TIME: Duration = Duration::from_secs(2);

/// The upstream, on a runtime thread of its own: 200 "ok" for every request.
fn upstream() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
            axum::serve(tokio::net::TcpListener::from_std(listener).unwrap(), app).await.unwrap();
        });
    });
    address
}

type H2 = Client<HttpConnector, Empty<Bytes>>;

fn h2() -> H2 {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).http2_only(true).build(connector)
}

async fn call(client: &H2, uri: &hyper::Uri) {
    let response = client.get(uri.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
}

/// p50 and p99 of one stream at a time, in microseconds.
async fn latency(address: SocketAddr) -> (f64, f64) {
    let client = h2();
    let uri: hyper::Uri = format!("http://{address}/").parse().unwrap();
    for _ in 0..100 {
        call(&client, &uri).await;
    }
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        call(&client, &uri).await;
        samples.push(started.elapsed());
    }
    percentiles(&mut samples)
}

/// Under `STREAMS` concurrent streams on one HTTP/2 connection: requests per second, how many
/// requests that was, and the p50 and p99 of each request's time (microseconds).
struct Load {
    per_second: f64,
    requests: u64,
    p50: f64,
    p99: f64,
}

async fn throughput(address: SocketAddr) -> Load {
    let client = h2();
    let uri: hyper::Uri = format!("http://{address}/").parse().unwrap();
    call(&client, &uri).await;
    let deadline = Instant::now() + LOAD_TIME;
    let tasks: Vec<_> = (0..STREAMS)
        .map(|_| {
            let (client, uri) = (client.clone(), uri.clone());
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(4_096);
                while Instant::now() < deadline {
                    let started = Instant::now();
                    call(&client, &uri).await;
                    samples.push(started.elapsed());
                }
                samples
            })
        })
        .collect();
    let started = Instant::now();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (p50, p99) = percentiles(&mut samples);
    Load { per_second: samples.len() as f64 / elapsed, requests: samples.len() as u64, p50, p99 }
}

/// p50 and p99 of `samples`, in microseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

/// CPU seconds (user + system) used so far by `pid` and its child processes (nginx's workers).
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = |stat: &str| -> Option<(u32, f64)> {
        // Fields after the command's closing parenthesis: state, ppid, …, utime (14), stime (15).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ppid = fields.get(1)?.parse().ok()?;
        let used = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some((ppid, used))
    };
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if let Some((ppid, used)) = ticks(&stat)
            && (id == pid || ppid == pid)
        {
            total += used;
        }
    }
    total / hz
}

/// A reference HTTP proxy in its own processes, if the machine has it: nginx (C), HTTP/2 with
/// prior knowledge in front, on two ports: one with pooled HTTP/1.1 keep-alive connections behind
/// (`proxy_pass`), one with pooled HTTP/2 connections behind (`grpc_pass`, nginx's only way to
/// speak HTTP/2 to an upstream; it forwards any request, not only gRPC). Each has its own pool:
/// nginx keeps idle connections per `upstream` block, and a shared block would hand an HTTP/1.1
/// connection to `grpc_pass`.
struct Nginx {
    child: Child,
    address: SocketAddr,
    /// The port that forwards in HTTP/2.
    to_h2: SocketAddr,
    /// Its configuration and logs; removed with it.
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: SocketAddr) -> Option<Self> {
        if !std::path::Path::new("/usr/sbin/nginx").exists() {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let free = || std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok().map(|a| a.port());
        let (port, h2_port) = (free()?, free()?);
        let conf = format!(
            "worker_processes auto;\nerror_log {0}/error.log;\npid {0}/nginx.pid;\nevents {{ worker_connections 1024; }}\n\
             http {{\n access_log off;\n keepalive_requests 100000000;\n http2_max_requests 100000000;\n client_body_temp_path {0};\n proxy_temp_path {0};\n\
             upstream up {{ server {upstream}; keepalive 64; }}\n upstream up2 {{ server {upstream}; keepalive 64; }}\n\
             server {{ listen 127.0.0.1:{port} http2; location / {{ proxy_pass http://up; proxy_http_version 1.1; \
             proxy_set_header Connection \"\"; }} }}\n\
             server {{ listen 127.0.0.1:{h2_port} http2; location / {{ grpc_pass grpc://up2; }} }}\n}}\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).ok()?;
        let child = common::dies_with_bench(&mut Command::new("/usr/sbin/nginx"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(dir.path())
            .args(["-g", "daemon off;"])
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let to_h2 = SocketAddr::from(([127, 0, 0, 1], h2_port));
        let ready = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            std::net::TcpStream::connect(address).is_ok() && std::net::TcpStream::connect(to_h2).is_ok()
        });
        ready.then_some(Self { child, address, to_h2, _dir: dir })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too (SIGKILL would orphan them).
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let daemon = Daemon::start();
    let upstream = upstream();
    let tcp = daemon.proxy_in("tcp", upstream, "tcp");
    let http = daemon.proxy_in("http", upstream, "http");
    let delayed = daemon.proxy_in("delay0", upstream, "http");
    daemon.post("/proxies/delay0/toxics", r#"{"name":"zero","type":"http_delay","attributes":{"latency":0}}"#);
    let body = format!(
        r#"{{"name":"h1","listen":"127.0.0.1:0","upstream":"{upstream}","mode":"http","upstream_protocol":"http1"}}"#
    );
    let to_http1: SocketAddr = daemon.post("/proxies", &body)["listen"].as_str().unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let nginx = Nginx::start(upstream);
    let me = daemon.pid();
    let mut targets = vec![
        ("direct", upstream, None),
        ("tcp mode", tcp, Some(me)),
        ("http mode", http, Some(me)),
        ("http, delay 0", delayed, Some(me)),
        ("http h2->h1", to_http1, Some(me)),
    ];
    match &nginx {
        Some(n) => {
            targets.push(("nginx h2->h2", n.to_h2, Some(n.child.id())));
            targets.push(("nginx h2->h1", n.address, Some(n.child.id())));
        }
        None => println!("(nginx not found: no reference HTTP proxy; `apt-get install nginx` adds one)"),
    }
    let n = targets.len();
    let (mut p50, mut p99, mut rps, mut cpu) =
        (vec![Vec::new(); n], vec![Vec::new(); n], vec![Vec::new(); n], vec![Vec::new(); n]);
    let (mut load_p50, mut load_p99) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    for _ in 0..ROUNDS {
        for (i, (_, address, pid)) in targets.iter().enumerate() {
            let (a, b) = runtime.block_on(latency(*address));
            p50[i].push(a);
            p99[i].push(b);
            let before = pid.map_or(0.0, cpu_seconds);
            let load = runtime.block_on(throughput(*address));
            let used = pid.map_or(0.0, |pid| cpu_seconds(pid) - before);
            rps[i].push(load.per_second);
            load_p50[i].push(load.p50);
            load_p99[i].push(load.p99);
            cpu[i].push(used / load.requests as f64 * 1e6);
        }
    }
    let [p50, p99, rps, cpu, load_p50, load_p99] = [p50, p99, rps, cpu, load_p50, load_p99]
        .map(|mut rows| rows.iter_mut().map(|v| median(v)).collect::<Vec<f64>>());
    println!("firedrill http benchmark — medians of {ROUNDS} interleaved rounds, loopback, one run\n");
    println!("one HTTP/2 stream at a time, {SEQUENTIAL} requests per round");
    for (i, (name, _, _)) in targets.iter().enumerate() {
        println!(
            "  {name:<14} p50 {:7.1} us  p99 {:7.1} us   added p50 {:+7.1} us  p99 {:+7.1} us",
            p50[i],
            p99[i],
            p50[i] - p50[0],
            p99[i] - p99[0]
        );
    }
    println!("\n{STREAMS} concurrent HTTP/2 streams on one connection, {}s per round", LOAD_TIME.as_secs());
    for (i, (name, _, pid)) in targets.iter().enumerate() {
        let cpu = if pid.is_some() { format!("   proxy CPU {:5.1} us/request", cpu[i]) } else { String::new() };
        println!(
            "  {name:<14} {:7.0} requests/s {:.2}x direct   p50 {:7.1} us (added {:+7.1})  p99 {:7.1} us (added {:+7.1}){cpu}",
            rps[i],
            rps[i] / rps[0],
            load_p50[i],
            load_p50[i] - load_p50[0],
            load_p99[i],
            load_p99[i] - load_p99[0]
        );
    }
    // Each http row against nginx doing the same translation: HTTP/2 to an HTTP/1.1 upstream,
    // or HTTP/2 to an HTTP/2 upstream (the other http rows).
    let position = |wanted: &str| targets.iter().position(|(name, _, _)| *name == wanted);
    if let (Some(to_h2), Some(to_h1)) = (position("nginx h2->h2"), position("nginx h2->h1")) {
        println!("\nagainst nginx doing the same (targets: http mode's CPU per request and added p50 <= nginx's)");
        for (i, (name, _, _)) in targets.iter().enumerate().filter(|(_, (name, _, _))| name.starts_with("http")) {
            let (reference, pair) = if name.ends_with("h2->h1") { (to_h1, "h2->h1") } else { (to_h2, "h2->h2") };
            println!(
                "  {name:<14} CPU per request {:.2}x nginx {pair}'s   added p50 {:+6.1} us vs nginx's {:+6.1} (one at a time), {:+6.1} vs {:+6.1} ({STREAMS} streams)",
                cpu[i] / cpu[reference],
                p50[i] - p50[0],
                p50[reference] - p50[0],
                load_p50[i] - load_p50[0],
                load_p50[reference] - load_p50[0]
            );
        }
    }
}
