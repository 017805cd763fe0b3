//! `cargo bench --bench proxy`: firedrill against the proxies people would run instead, in one run.
//!
//! Measures, on loopback, with every proxy in its own process — the real `firedrill serve`, the
//! real Toxiproxy 2.12 and noxious 1.0.4 (`../shared/anchors/`), socat — and a direct connection:
//! bulk throughput both ways with no toxic and with a zero `latency` toxic each way, 64-byte round
//! trips (p50/p99 and the microseconds added), the cost of adding and removing a toxic with 1,000
//! connections open, and the memory per idle connection at 10,000 connections. Then what only
//! firedrill has: the accuracy of a 100 ms latency toxic, the window under latency, connection
//! churn. Every timed figure is the median of interleaved rounds (every peer in every round);
//! ratios are inside this one run. A peer whose binary is missing is left out, and said so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

mod common;
#[path = "proxy/peers.rs"]
mod peers;

use common::Daemon;
use peers::{HoldServer, Peer, zero_latency};

const BULK_BYTES: usize = 1 << 30;
/// A transfer stops at `BULK_BYTES` or after this long, whichever comes first (a peer whose
/// latency toxic collapses bulk transfer would otherwise take minutes).
const BULK_TIME: Duration = Duration::from_secs(2);
const ROUNDS: usize = 5;
const ROUND_TRIPS: usize = 20_000;
const LATENCY_SAMPLES: usize = 500;
const IDLE_CONNECTIONS: usize = 10_000;
/// This machine's hard limit on descriptors (20,000) is below the 2 per connection a proxy
/// needs for 10,000 connections, so the idle connections are spread over two instances of each.
const INSTANCES_FOR_IDLE: usize = 2;
const TOXIC_CONNECTIONS: usize = 1_000;
const TOXIC_CHANGES: usize = 20;

fn main() {
    if std::env::args().any(|a| a == "--hold-server") {
        HoldServer::serve();
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and libtest-style probes: nothing to list.
    }
    let sink = spawn_server(sink_connection);
    let source = spawn_server(source_connection);
    let echo = spawn_server(echo_connection);

    println!("firedrill proxy benchmark — medians of {ROUNDS} interleaved rounds, loopback, one run\n");
    let mut peers = vec![Peer::direct(), Peer::firedrill()];
    for started in [Peer::toxiproxy(), Peer::noxious(), Peer::socat()] {
        match started {
            Ok(peer) => peers.push(peer),
            Err(why) => println!("left out: {why}"),
        }
    }
    println!("measured: {}\n", peers.iter().map(|p| p.name).collect::<Vec<_>>().join(", "));
    let daemon = peers[1].daemon().unwrap();
    if std::env::var_os("FIREDRILL_BENCH_ONLY_CHURN").is_some() {
        churn(daemon, echo);
        return;
    }
    let mut targets = Targets::default();
    throughput(&peers, sink, source, &mut targets);
    round_trips(&peers, echo, &mut targets);
    toxic_cost(&peers, echo);
    if std::env::var_os("FIREDRILL_BENCH_SKIP_IDLE").is_none() {
        idle_memory(&peers, &mut targets);
    }
    targets.print();
    latency_accuracy(daemon, echo);
    latency_window(daemon, sink);
    churn(daemon, echo);
}

/// The issue's targets, each a ratio inside this run: (what, firedrill's figure, the bar, met).
#[derive(Default)]
struct Targets(Vec<(String, String, bool)>);

impl Targets {
    fn check(&mut self, what: String, detail: String, met: bool) {
        self.0.push((what, detail, met));
    }

    fn print(&self) {
        println!("\ntargets");
        for (what, detail, met) in &self.0 {
            println!("  {:7} {what}: {detail}", if *met { "met" } else { "NOT MET" });
        }
    }
}

/// The best figure among the peers other than direct and firedrill: (name, value).
fn best_peer(figures: &[(&'static str, f64)], higher_is_better: bool) -> Option<(&'static str, f64)> {
    figures
        .iter()
        .filter(|(name, _)| !matches!(*name, "direct" | "firedrill"))
        .copied()
        .reduce(|a, b| if (b.1 > a.1) == higher_is_better { b } else { a })
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

/// Reads a length (8 bytes, big-endian), then that many bytes, then acknowledges with one byte:
/// no half-close, which Toxiproxy does not forward.
fn sink_connection(mut stream: TcpStream) {
    let mut buf = PageBuf::new(256 * 1024, 0);
    let mut length = [0; 8];
    if stream.read_exact(&mut length).is_err() {
        return;
    }
    let mut left = u64::from_be_bytes(length);
    while left > 0 {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => left = left.saturating_sub(n as u64),
            _ => return,
        }
    }
    let _ = stream.write_all(b"k");
}

/// Writes until the reader goes away.
fn source_connection(mut stream: TcpStream) {
    let chunk = PageBuf::new(256 * 1024, 0x5A);
    while stream.write_all(&chunk).is_ok() {}
}

/// A buffer starting on a page, as iperf3's (an `mmap`) and socat's are. The allocator puts a
/// 256 KiB `Vec` 16 bytes past a page, and the kernel's copy between its pages and such a buffer
/// runs about a quarter slower (4K aliasing; see `Scratch` in `src/proxy/link.rs`): the bench's own
/// client and servers, not the proxy under test, would set the pace.
struct PageBuf {
    memory: Vec<u8>,
    start: usize,
    len: usize,
}

impl PageBuf {
    fn new(len: usize, fill: u8) -> Self {
        const PAGE: usize = 4096;
        let memory = vec![fill; len + PAGE];
        let start = memory.as_ptr().addr().wrapping_neg() % PAGE;
        Self { memory, start, len }
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.memory[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.memory[self.start..self.start + self.len]
    }
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

// ----- measurements ----------------------------------------------------------------------------

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Sends `chunks` chunks, announced by their length first, and waits for the sink's
/// acknowledgement of all of them; how long that took.
fn send_chunks(address: SocketAddr, chunks: usize, chunk: &[u8]) -> std::io::Result<Duration> {
    let mut stream = TcpStream::connect(address)?;
    let started = Instant::now();
    stream.write_all(&((chunks * chunk.len()) as u64).to_be_bytes())?;
    for _ in 0..chunks {
        stream.write_all(chunk)?;
    }
    let mut ack = [0; 1];
    stream.read_exact(&mut ack)?;
    Ok(started.elapsed())
}

/// Sends up to `bytes`, as much as fits in `limit`, and waits for the sink's acknowledgement of
/// all of it; returns GB/s. A probe of a sixteenth of it measures the rate first.
fn bulk_of(address: SocketAddr, bytes: usize, limit: Duration) -> std::io::Result<f64> {
    let chunk = PageBuf::new(256 * 1024, 0xA5);
    let chunks = bytes / chunk.len();
    let probe = (chunks / 16).max(1);
    let took = send_chunks(address, probe, &chunk)?;
    let fit = ((limit.as_secs_f64() * probe as f64 / took.as_secs_f64()) as usize).clamp(probe, chunks);
    let (n, took) = if fit == probe { (probe, took) } else { (fit, send_chunks(address, fit, &chunk)?) };
    Ok((n * chunk.len()) as f64 / took.as_secs_f64() / 1e9)
}

/// Reads `BULK_BYTES` (or for `BULK_TIME`) from a source; returns GB/s.
fn bulk_down(address: SocketAddr) -> std::io::Result<f64> {
    let mut buf = PageBuf::new(256 * 1024, 0);
    let mut stream = TcpStream::connect(address)?;
    let started = Instant::now();
    let mut got = 0;
    while got < BULK_BYTES && started.elapsed() < BULK_TIME {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    Ok(got as f64 / started.elapsed().as_secs_f64() / 1e9)
}

/// Bulk throughput both ways through every peer, with no toxic and (where it takes toxics) with
/// a zero `latency` toxic each way.
fn throughput(peers: &[Peer], sink: SocketAddr, source: SocketAddr, targets: &mut Targets) {
    // (peer, case) -> the rounds' figures; the cases in a fixed order.
    let cases = ["up, no toxic", "down, no toxic", "up, latency 0", "down, latency 0"];
    let mut fronts = Vec::new();
    for peer in peers {
        let plain = (peer.front("bulk_up", sink), peer.front("bulk_down", source));
        let toxic = peer.has_toxics().then(|| {
            let up = peer.front("bulk_up_t", sink);
            let down = peer.front("bulk_down_t", source);
            for (proxy, stream) in [("bulk_up_t", "upstream"), ("bulk_up_t", "downstream")]
                .into_iter()
                .chain([("bulk_down_t", "upstream"), ("bulk_down_t", "downstream")])
            {
                peer.add_toxic(proxy, &zero_latency(&format!("zero_{stream}"), stream));
            }
            (up, down)
        });
        fronts.push((plain, toxic));
    }
    let mut figures = vec![[(); 4].map(|()| Vec::new()); peers.len()];
    // A transfer a peer breaks (closes before all bytes are through) is reported, not measured.
    let mut failed = Vec::new();
    for _ in 0..ROUNDS {
        for (i, ((up, down), toxic)) in fronts.iter().enumerate() {
            let mut transfers = vec![(0, bulk_of(*up, BULK_BYTES, BULK_TIME)), (1, bulk_down(*down))];
            if let Some((up, down)) = toxic {
                transfers.push((2, bulk_of(*up, BULK_BYTES, BULK_TIME)));
                transfers.push((3, bulk_down(*down)));
            }
            for (c, result) in transfers {
                match result {
                    Ok(rate) => figures[i][c].push(rate),
                    Err(err) => failed.push(format!("{} {}: {err}", peers[i].name, cases[c])),
                }
            }
        }
    }
    let medians: Vec<[Option<f64>; 4]> =
        figures.into_iter().map(|f| f.map(|mut v| (!v.is_empty()).then(|| median(&mut v)))).collect();
    println!("bulk throughput, up to 1 GiB or {} s per transfer, GB/s (x direct)", BULK_TIME.as_secs());
    print!("  {:12}", "");
    for case in cases {
        print!("  {case:>22}");
    }
    println!();
    let direct = medians[0];
    for (peer, row) in peers.iter().zip(&medians) {
        print!("  {:12}", peer.name);
        for (c, figure) in row.iter().enumerate() {
            // The zero-latency cases have no direct figure: their ratio is to the direct one
            // with no toxic (the toxic's whole cost, proxy included).
            let base = direct[c % 2].unwrap();
            match figure {
                Some(v) => print!("  {:>22}", format!("{v:6.3} ({:.2}x)", v / base)),
                None => print!("  {:>22}", "—"),
            }
        }
        println!();
    }
    for failure in &failed {
        println!("  a transfer failed: {failure}");
    }
    for (c, case) in cases.iter().enumerate() {
        let row: Vec<(&'static str, f64)> =
            peers.iter().zip(&medians).filter_map(|(p, m)| m[c].map(|v| (p.name, v))).collect();
        let ours = row.iter().find(|(n, _)| *n == "firedrill").unwrap().1;
        if c < 2 {
            if let Some((best, theirs)) = best_peer(&row, true) {
                let detail = format!("firedrill {ours:.2} GB/s, best peer {best} {theirs:.2} ({:.2}x)", ours / theirs);
                targets.check(format!("throughput {case} >= the best peer's"), detail, ours >= theirs);
            }
        } else if let Some(&(_, theirs)) = row.iter().find(|(n, _)| *n == "Toxiproxy") {
            let detail = format!("firedrill {ours:.2} GB/s, Toxiproxy {theirs:.2} ({:.2}x)", ours / theirs);
            targets.check(format!("throughput {case} >= 1.5x Toxiproxy's"), detail, ours >= 1.5 * theirs);
        }
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

/// Round trips through every peer, interleaved: with this bench's own client against its echo
/// server, and with `sockperf ping-pong` against `sockperf server` when sockperf is installed
/// (Debian's `sockperf`). The targets are checked on sockperf's figures when there are any, so
/// the two clients can be compared in the same run.
fn round_trips(peers: &[Peer], echo: SocketAddr, targets: &mut Targets) {
    let sockperf = Sockperf::start();
    if let Err(why) = &sockperf {
        println!("\nleft out: sockperf ({why}); round trips with this bench's client only");
    }
    let ours: Vec<SocketAddr> = peers.iter().map(|p| p.front("rtt", echo)).collect();
    let theirs: Option<Vec<SocketAddr>> =
        sockperf.as_ref().ok().map(|s| peers.iter().map(|p| p.front("rtt_sockperf", s.address)).collect());
    let mut own = vec![(Vec::new(), Vec::new()); peers.len()];
    let mut tool = vec![(Vec::new(), Vec::new()); peers.len()];
    for _ in 0..ROUNDS {
        for i in 0..peers.len() {
            let (p50, p99) = rtt(ours[i]);
            own[i].0.push(p50);
            own[i].1.push(p99);
            if let Some(fronts) = &theirs {
                let (p50, p99) = Sockperf::ping_pong(fronts[i]);
                tool[i].0.push(p50);
                tool[i].1.push(p99);
            }
        }
    }
    let medians = |figures: Vec<(Vec<f64>, Vec<f64>)>| -> Vec<(f64, f64)> {
        figures.into_iter().map(|(mut a, mut b)| (median(&mut a), median(&mut b))).collect()
    };
    let own = medians(own);
    print_round_trips(&format!("this bench's client, {ROUND_TRIPS} per round"), peers, &own);
    let checked = if theirs.is_some() {
        let tool = medians(tool);
        print_round_trips(&format!("sockperf ping-pong --full-rtt, {SOCKPERF_SECONDS} s per round"), peers, &tool);
        tool
    } else {
        own
    };
    let (d50, d99) = checked[0];
    for (what, pick) in [("p50", 0), ("p99", 1)] {
        let added: Vec<(&'static str, f64)> =
            peers.iter().zip(&checked).map(|(p, m)| (p.name, if pick == 0 { m.0 - d50 } else { m.1 - d99 })).collect();
        let ours = added[1].1;
        if let Some((best, theirs)) = best_peer(&added, false) {
            let detail = format!("firedrill {ours:+.1} us, best peer {best} {theirs:+.1} us");
            targets.check(format!("added round trip {what} <= the best peer's"), detail, ours <= theirs);
        }
    }
}

fn print_round_trips(client: &str, peers: &[Peer], medians: &[(f64, f64)]) {
    let (d50, d99) = medians[0];
    println!("\nround trips, 64 bytes, {client}, microseconds");
    println!("  {:12}  {:>8}  {:>8}  {:>10}  {:>10}", "", "p50", "p99", "added p50", "added p99");
    for (peer, (p50, p99)) in peers.iter().zip(medians) {
        println!("  {:12}  {p50:8.1}  {p99:8.1}  {:+10.1}  {:+10.1}", peer.name, p50 - d50, p99 - d99);
    }
}

const SOCKPERF_SECONDS: u32 = 2;

/// `sockperf server` on a free loopback port, stopped when dropped.
struct Sockperf {
    address: SocketAddr,
    _server: peers::Killed,
}

impl Sockperf {
    fn start() -> Result<Self, String> {
        let port = peers::free_port();
        let child = common::dies_with_bench(&mut std::process::Command::new("sockperf"))
            .args(["server", "--tcp", "-i", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("not installed (`apt-get install sockperf`): {e}"))?;
        let server = peers::Killed(child);
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        peers::wait_listening(address);
        Ok(Self { address, _server: server })
    }

    /// 64-byte TCP round trips for `SOCKPERF_SECONDS`: (p50, p99) in microseconds, as sockperf
    /// prints them.
    fn ping_pong(address: SocketAddr) -> (f64, f64) {
        let output = std::process::Command::new("sockperf")
            .args(["ping-pong", "--tcp", "-i", "127.0.0.1", "-p", &address.port().to_string()])
            .args(["-m", "64", "-t", &SOCKPERF_SECONDS.to_string(), "--full-rtt"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        let percentile = |which: &str| -> f64 {
            let line = text
                .lines()
                .find(|l| l.contains(&format!("percentile {which} =")))
                .unwrap_or_else(|| panic!("sockperf printed no {which} percentile through {address}:\n{text}"));
            line.rsplit('=').next().unwrap().trim().parse().unwrap()
        };
        (percentile("50.000"), percentile("99.000"))
    }
}

/// What adding and removing a toxic costs with `TOXIC_CONNECTIONS` connections open through the
/// proxy (each has carried a byte each way, so each is fully set up on both sides).
fn toxic_cost(peers: &[Peer], echo: SocketAddr) {
    println!("\nadding and removing a toxic with {TOXIC_CONNECTIONS} connections open, {TOXIC_CHANGES} times, ms");
    println!("  {:12}  {:>9}  {:>9}  {:>12}  {:>12}", "", "add p50", "add max", "remove p50", "remove max");
    for peer in peers.iter().filter(|p| p.has_toxics()) {
        let front = peer.front("toxic_cost", echo);
        let mut streams: Vec<TcpStream> = (0..TOXIC_CONNECTIONS).map(|_| TcpStream::connect(front).unwrap()).collect();
        let round_trip_all = |streams: &mut [TcpStream]| {
            for stream in streams {
                let mut byte = [0_u8; 1];
                stream.write_all(b"x").unwrap();
                stream.read_exact(&mut byte).unwrap();
            }
        };
        round_trip_all(&mut streams);
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        for _ in 0..TOXIC_CHANGES {
            add.push(peer.add_toxic("toxic_cost", &zero_latency("zero", "downstream")).as_secs_f64() * 1e3);
            remove.push(peer.remove_toxic("toxic_cost", "zero").as_secs_f64() * 1e3);
        }
        // Every connection still carries bytes both ways afterwards.
        round_trip_all(&mut streams);
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let (add_max, remove_max) = (max(&add), max(&remove));
        println!(
            "  {:12}  {:9.2}  {add_max:9.2}  {:12.2}  {remove_max:12.2}",
            peer.name,
            median(&mut add),
            median(&mut remove)
        );
    }
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
    let mut rates: Vec<f64> =
        (0..ROUNDS).map(|_| bulk_of(proxied, BYTES, Duration::from_secs(60)).unwrap() * 1e3).collect();
    let rate = median(&mut rates);
    let window = 4.0 * 1.048_576 / 0.050; // MB per second: 4 MiB per 50 ms
    println!("\nbulk under a 50 ms latency toxic, 64 MiB per round");
    println!(
        "  observed    {rate:7.1} MB/s   ({:.2}x of one 4 MiB window per period, {window:.1} MB/s)",
        rate / window
    );
}

/// RSS per idle connection: `IDLE_CONNECTIONS` connections that never carry a byte, spread over
/// `INSTANCES_FOR_IDLE` fresh instances of each peer, each in front of an upstream that accepts
/// and holds them.
fn idle_memory(peers: &[Peer], targets: &mut Targets) {
    println!("\nidle connections: {IDLE_CONNECTIONS} open across {INSTANCES_FOR_IDLE} instances of each proxy");
    let mut figures = Vec::new();
    for peer in peers.iter().filter(|p| p.pid().is_some()) {
        let mut upstream = HoldServer::start();
        let instances: Vec<Peer> = (0..INSTANCES_FOR_IDLE)
            .map(|_| match peer.name {
                "firedrill" => Peer::firedrill(),
                "Toxiproxy" => Peer::toxiproxy().unwrap(),
                _ => Peer::noxious().unwrap(),
            })
            .collect();
        let fronts: Vec<SocketAddr> = instances.iter().map(|p| p.front("idle", upstream.address)).collect();
        // Warm each up so the baseline includes its steady-state allocations.
        for &front in &fronts {
            drop(TcpStream::connect(front).unwrap());
        }
        std::thread::sleep(Duration::from_millis(300));
        let rss = || instances.iter().map(|p| rss_kib(p.pid().unwrap())).sum::<u64>();
        let before = rss();
        let mut clients = Vec::with_capacity(IDLE_CONNECTIONS);
        for &front in &fronts {
            for _ in 0..IDLE_CONNECTIONS / INSTANCES_FOR_IDLE {
                clients.push(TcpStream::connect(front).unwrap());
            }
        }
        // The warm-up connections may or may not have reached the upstream before they closed.
        upstream.wait_accepted(IDLE_CONNECTIONS);
        std::thread::sleep(Duration::from_millis(300));
        let after = rss();
        let per = (after.saturating_sub(before)) as f64 / IDLE_CONNECTIONS as f64;
        println!("  {:12}  RSS before {before:7} KiB, after {after:7} KiB: {per:5.1} KiB per connection", peer.name);
        figures.push((peer.name, per));
        drop(clients);
    }
    println!("  (socat forks a process per connection: not measured at 10,000)");
    let ours = figures.iter().find(|(n, _)| *n == "firedrill").unwrap().1;
    if let Some((best, theirs)) = best_peer(&figures, false) {
        let detail = format!("firedrill {ours:.1} KiB, best peer {best} {theirs:.1} KiB");
        targets.check("idle memory per connection <= the best peer's".into(), detail, ours <= theirs);
    }
}
