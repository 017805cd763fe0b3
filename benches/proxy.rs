//! `cargo bench --bench proxy`: the fault proxy against a direct connection, in one run.
//!
//! Measures, on loopback, with the real `firedrill serve` binary in its own process:
//! bulk throughput (direct, through the proxy, through a `noop` toxic), small round trips
//! (p50/p99 and the microseconds added), the accuracy of a 100 ms latency toxic, and the memory
//! per idle proxied connection with 10,000 connections open. Every figure is the median of
//! several interleaved rounds; ratios are against the direct baseline measured in the same run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::Daemon;

const BULK_BYTES: usize = 1 << 30;
const ROUNDS: usize = 5;
const ROUND_TRIPS: usize = 20_000;
const LATENCY_SAMPLES: usize = 500;
const IDLE_CONNECTIONS: usize = 10_000;
/// This machine's hard limit on descriptors (20,000) is below the 2 per connection a single
/// daemon needs for 10,000 connections, so the idle connections are spread over two daemons.
const DAEMONS_FOR_IDLE: usize = 2;

fn main() {
    if std::env::args().any(|a| a == "--hold-server") {
        hold_server();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and libtest-style probes: nothing to list.
    }
    let daemon = Daemon::start();
    let sink = spawn_server(sink_connection);
    let echo = spawn_server(echo_connection);

    println!("firedrill proxy benchmark — medians of {ROUNDS} interleaved rounds, loopback, one run\n");
    if std::env::var_os("FIREDRILL_BENCH_ONLY_CHURN").is_some() {
        churn(&daemon, echo);
        return;
    }
    throughput(&daemon, sink);
    round_trips(&daemon, echo);
    latency_accuracy(&daemon, echo);
    latency_window(&daemon, sink);
    churn(&daemon, echo);
    if std::env::var_os("FIREDRILL_BENCH_SKIP_IDLE").is_none() {
        idle_memory();
    }
}

// ----- churn: short connections, toxic changes, the admin API meanwhile ------------------------

const CHURN_CONNECTIONS: usize = 4_000;
const CHURN_THREADS: usize = 4;

/// Short connections per second through `address`: each connects, sends a byte, reads the
/// echo, closes; `CHURN_THREADS` threads at once.
fn connections_per_second(address: SocketAddr) -> f64 {
    let started = Instant::now();
    let threads: Vec<_> = (0..CHURN_THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..CHURN_CONNECTIONS / CHURN_THREADS {
                    let mut stream = TcpStream::connect(address).unwrap();
                    stream.set_nodelay(true).unwrap();
                    let mut byte = [0_u8; 1];
                    stream.write_all(b"x").unwrap();
                    stream.read_exact(&mut byte).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    CHURN_CONNECTIONS as f64 / started.elapsed().as_secs_f64()
}

/// Connection churn direct and through the proxy (with two toxics changing all the while), the
/// admin API's latency meanwhile, and the descriptors a connection holds idle and busy.
fn churn(daemon: &Daemon, echo: SocketAddr) {
    let proxied = daemon.proxy("churn", echo);
    let (mut direct, mut through, mut admin) = (Vec::new(), Vec::new(), Vec::new());
    let mut changes = 0_u64;
    for _ in 0..ROUNDS {
        direct.push(connections_per_second(echo));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Toxics come and go on the proxy while its connections churn, and the admin API is
        // timed from another client.
        let toxics = {
            let (stop, api) = (stop.clone(), daemon.api);
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let (mut n, mut samples) = (0_u64, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = r#"{"name":"n","type":"noop","toxicity":0.5}"#;
                    let started = Instant::now();
                    http.post(format!("http://{api}/proxies/churn/toxics")).body(body).send().unwrap();
                    samples.push(started.elapsed());
                    let started = Instant::now();
                    http.delete(format!("http://{api}/proxies/churn/toxics/n")).send().unwrap();
                    samples.push(started.elapsed());
                    n += 2;
                }
                (n, samples)
            })
        };
        through.push(connections_per_second(proxied));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (n, samples) = toxics.join().unwrap();
        changes += n;
        admin.extend(samples);
    }
    admin.sort_unstable();
    let (d, t) = (median(&mut direct), median(&mut through));
    println!("\nconnection churn, {CHURN_CONNECTIONS} short connections per round, {CHURN_THREADS} clients at once");
    println!("  direct                 {d:8.0} connections/s");
    println!("  firedrill              {t:8.0} connections/s   {:.2}x direct", t / d);
    println!(
        "  admin API meanwhile    p50 {:6.2} ms   p99 {:6.2} ms   ({changes} toxic changes over the rounds)",
        percentile(&admin, 0.50).as_secs_f64() * 1e3,
        percentile(&admin, 0.99).as_secs_f64() * 1e3
    );
    descriptors(daemon, echo);
}

/// Descriptors the daemon holds per proxied connection, idle and busy.
fn descriptors(daemon: &Daemon, echo: SocketAddr) {
    const N: usize = 1_000;
    let proxied = daemon.proxy("fds", echo);
    let count = || std::fs::read_dir(format!("/proc/{}/fd", daemon.child.id())).unwrap().count();
    let before = count();
    let mut streams: Vec<TcpStream> = (0..N).map(|_| TcpStream::connect(proxied).unwrap()).collect();
    while daemon.open_connections() < N {
        std::thread::sleep(Duration::from_millis(20));
    }
    let idle = count() - before;
    for stream in &mut streams {
        let mut byte = [0_u8; 1];
        stream.write_all(b"x").unwrap();
        stream.read_exact(&mut byte).unwrap();
    }
    let busy = count() - before;
    println!(
        "  descriptors, {N} connections: {:.1} each idle, {:.1} each busy both ways",
        idle as f64 / N as f64,
        busy as f64 / N as f64
    );
}

// ----- the daemon under test -------------------------------------------------------------------

impl Daemon {
    fn proxy(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        self.proxy_in(name, upstream, "tcp")
    }

    fn open_connections(&self) -> usize {
        let text = self.http.get(format!("http://{}/metrics", self.api)).send().unwrap().text().unwrap();
        text.lines()
            .filter(|l| l.starts_with("firedrill_proxy_connections_open"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<usize>().ok())
            .sum()
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// ----- upstream servers ------------------------------------------------------------------------

fn spawn_server(handler: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || handler(stream));
        }
    });
    address
}

/// Reads to end of stream, then acknowledges with one byte.
fn sink_connection(mut stream: TcpStream) {
    let mut buf = vec![0; 256 * 1024];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    let _ = stream.write_all(b"k");
}

fn echo_connection(mut stream: TcpStream) {
    stream.set_nodelay(true).unwrap();
    let mut buf = [0; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Child-process mode: accept connections and hold them open, reading nothing.
fn hold_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    let mut held = Vec::new();
    for stream in listener.incoming().map_while(Result::ok) {
        held.push(stream);
    }
}

// ----- measurements ----------------------------------------------------------------------------

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Sends `BULK_BYTES` and waits for the sink's acknowledgement; returns GB/s.
fn bulk(address: SocketAddr) -> f64 {
    bulk_of(address, BULK_BYTES)
}

/// Sends `bytes` and waits for the sink's acknowledgement; returns GB/s.
fn bulk_of(address: SocketAddr, bytes: usize) -> f64 {
    let chunk = vec![0xA5_u8; 256 * 1024];
    let mut stream = TcpStream::connect(address).unwrap();
    let started = Instant::now();
    for _ in 0..bytes / chunk.len() {
        stream.write_all(&chunk).unwrap();
    }
    stream.shutdown(Shutdown::Write).unwrap();
    let mut ack = [0; 1];
    stream.read_exact(&mut ack).unwrap();
    bytes as f64 / started.elapsed().as_secs_f64() / 1e9
}

fn throughput(daemon: &Daemon, sink: SocketAddr) {
    let plain = daemon.proxy("bulk", sink);
    let toxic = daemon.proxy("bulk_noop", sink);
    daemon.post("/proxies/bulk_noop/toxics", r#"{"type":"noop","stream":"upstream"}"#);
    // The C floor copies with a buffer as large as firedrill's splice pipe.
    let socat = Socat::start(sink, &["-b", "1048576"]);
    let (mut direct, mut fast, mut noop, mut floor) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        direct.push(bulk(sink));
        fast.push(bulk(plain));
        noop.push(bulk(toxic));
        if let Some(socat) = &socat {
            floor.push(bulk(socat.1));
        }
    }
    let (d, f, n) = (median(&mut direct), median(&mut fast), median(&mut noop));
    println!("bulk throughput, 1 GiB per round");
    println!("  direct                  {d:6.2} GB/s");
    println!("  firedrill, no toxic     {f:6.2} GB/s   {:.2}x direct   (target >= 0.80x)", f / d);
    println!("  firedrill, noop toxic   {n:6.2} GB/s   {:.2}x direct", n / d);
    if floor.is_empty() {
        println!("  (socat not found: no C floor; `apt-get install socat` adds one)");
    } else {
        let c = median(&mut floor);
        println!("  socat (C, own process)  {c:6.2} GB/s   {:.2}x direct   (1 MiB buffer)", c / d);
    }
}

/// `ROUND_TRIPS` sequential 64-byte round trips; returns (p50, p99) in microseconds.
fn rtt(address: SocketAddr) -> (f64, f64) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_nodelay(true).unwrap();
    let message = [7_u8; 64];
    let mut back = [0_u8; 64];
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let started = Instant::now();
        stream.write_all(&message).unwrap();
        stream.read_exact(&mut back).unwrap();
        samples.push(started.elapsed());
    }
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (us(percentile(&samples, 0.5)), us(percentile(&samples, 0.99)))
}

/// The floor to compare against: the smallest tokio proxy there is (`copy_bidirectional` per
/// connection, its own process-less runtime thread), in front of the same upstream.
fn minimal_tokio_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((mut client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    client.set_nodelay(true).unwrap();
                    server.set_nodelay(true).unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
    });
    address
}

/// A second floor, outside tokio and in its own process like firedrill: `socat` (C, a `select`
/// loop, plain read/write, a forked process per connection), if the machine has it.
struct Socat(Child, SocketAddr);

impl Socat {
    fn start(upstream: SocketAddr, options: &[&str]) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let child = Command::new("socat")
            .args(options)
            .args([
                format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay"),
                format!("TCP:{upstream},nodelay"),
            ])
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let socat = Self(child, SocketAddr::from(([127, 0, 0, 1], port)));
        let ready = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            TcpStream::connect(socat.1).is_ok()
        });
        ready.then_some(socat)
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn round_trips(daemon: &Daemon, echo: SocketAddr) {
    let proxied = daemon.proxy("rtt", echo);
    let minimal = minimal_tokio_proxy(echo);
    let mut figures = [(); 6].map(|()| Vec::new());
    let socat = Socat::start(echo, &[]);
    let mut socat_figures = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for (i, address) in [echo, proxied, minimal].into_iter().enumerate() {
            let (p50, p99) = rtt(address);
            figures[2 * i].push(p50);
            figures[2 * i + 1].push(p99);
        }
        if let Some(socat) = &socat {
            let (p50, p99) = rtt(socat.1);
            socat_figures.0.push(p50);
            socat_figures.1.push(p99);
        }
    }
    let [d50, d99, p50, p99, m50, m99] = figures.map(|mut f| median(&mut f));
    if socat_figures.0.is_empty() {
        println!("\n(socat not found: no C floor; `apt-get install socat` adds one)");
    } else {
        let (s50, s99) = (median(&mut socat_figures.0), median(&mut socat_figures.1));
        println!("\nsocat (C, own process)   p50 {s50:7.1} us   p99 {s99:7.1} us   added p50 {:7.1} us", s50 - d50);
    }
    println!("\nround trips, 64 bytes, {ROUND_TRIPS} per round");
    println!("  direct                 p50 {d50:7.1} us   p99 {d99:7.1} us");
    println!("  firedrill              p50 {p50:7.1} us   p99 {p99:7.1} us");
    println!("  minimal tokio proxy    p50 {m50:7.1} us   p99 {m99:7.1} us   (copy_bidirectional, for the floor)");
    println!("  added by firedrill     p50 {:7.1} us   p99 {:7.1} us   (target p50 <= 15 us)", p50 - d50, p99 - d99);
    println!("  added by the minimal   p50 {:7.1} us   p99 {:7.1} us", m50 - d50, m99 - d99);
}

fn latency_accuracy(daemon: &Daemon, echo: SocketAddr) {
    let proxied = daemon.proxy("latency", echo);
    daemon.post("/proxies/latency/toxics", r#"{"type":"latency","attributes":{"latency":100}}"#);
    let mut stream = TcpStream::connect(proxied).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut samples = Vec::with_capacity(LATENCY_SAMPLES);
    let mut back = [0_u8; 16];
    for _ in 0..LATENCY_SAMPLES {
        let started = Instant::now();
        stream.write_all(&[1; 16]).unwrap();
        stream.read_exact(&mut back).unwrap();
        samples.push(started.elapsed());
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (p50, p99) = (ms(percentile(&samples, 0.5)), ms(percentile(&samples, 0.99)));
    println!("\nlatency toxic, configured 100 ms, {LATENCY_SAMPLES} round trips");
    println!("  observed    p50 {p50:7.2} ms   p99 {p99:7.2} ms   (target p99 within 2 ms of 100)");
}

/// A bulk transfer under a latency toxic moves about one in-flight window (4 MiB) per latency
/// period, as TCP over a long path moves a window per round trip.
fn latency_window(daemon: &Daemon, sink: SocketAddr) {
    const BYTES: usize = 64 << 20;
    let proxied = daemon.proxy("bulk_latency", sink);
    daemon
        .post("/proxies/bulk_latency/toxics", r#"{"type":"latency","stream":"upstream","attributes":{"latency":50}}"#);
    let mut rates: Vec<f64> = (0..ROUNDS).map(|_| bulk_of(proxied, BYTES) * 1e3).collect();
    let rate = median(&mut rates);
    let window = 4.0 * 1.048_576 / 0.050; // MB per second: 4 MiB per 50 ms
    println!("\nbulk under a 50 ms latency toxic, 64 MiB per round");
    println!(
        "  observed    {rate:7.1} MB/s   ({:.2}x of one 4 MiB window per period, {window:.1} MB/s)",
        rate / window
    );
}

fn idle_memory() {
    let mut holder = Killed(
        Command::new(std::env::current_exe().unwrap()).arg("--hold-server").stdout(Stdio::piped()).spawn().unwrap(),
    );
    let mut line = String::new();
    BufReader::new(holder.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let upstream: SocketAddr = line.trim().parse().unwrap();

    let daemons: Vec<Daemon> = (0..DAEMONS_FOR_IDLE).map(|_| Daemon::start()).collect();
    let proxies: Vec<SocketAddr> = daemons.iter().map(|d| d.proxy("idle", upstream)).collect();
    // Warm up each daemon's runtime so the baseline includes its steady-state allocations.
    for &proxy in &proxies {
        drop(TcpStream::connect(proxy).unwrap());
    }
    std::thread::sleep(Duration::from_millis(300));
    let before: u64 = daemons.iter().map(Daemon::rss_kib).sum();

    let per_daemon = IDLE_CONNECTIONS / DAEMONS_FOR_IDLE;
    let mut clients = Vec::with_capacity(IDLE_CONNECTIONS);
    for (daemon, &proxy) in daemons.iter().zip(&proxies) {
        for batch in 0..per_daemon / 500 {
            for _ in 0..500 {
                clients.push(TcpStream::connect(proxy).unwrap());
            }
            let want = (batch + 1) * 500;
            let deadline = Instant::now() + Duration::from_secs(30);
            while daemon.open_connections() < want {
                assert!(Instant::now() < deadline, "connections did not open");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let after: u64 = daemons.iter().map(Daemon::rss_kib).sum();
    let per_connection = (after - before) as f64 * 1024.0 / IDLE_CONNECTIONS as f64;
    println!("\nidle connections: {IDLE_CONNECTIONS} open across {DAEMONS_FOR_IDLE} daemons (descriptor limit 20,000)");
    println!(
        "  RSS before {before} KiB, after {after} KiB: {:.1} KiB per connection   (target <= 20 KiB)",
        per_connection / 1024.0
    );
    drop(clients);
}

/// A child process that is killed and reaped when dropped, even when the benchmark panics.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
