//! The proxies measured side by side: firedrill, the real Toxiproxy and noxious (the ready
//! binaries of `../shared/anchors/`, both on the Toxiproxy admin API), socat (a C forwarder, a
//! process per connection), and no proxy at all. A peer whose binary is missing is left out, and
//! the bench says so.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common::Daemon;

/// What a peer is and how it is driven.
enum Kind {
    /// The upstream itself: the baseline.
    Direct,
    /// A proxy with the Toxiproxy admin API.
    Api { process: Process, api: SocketAddr, http: reqwest::blocking::Client },
    /// `socat`: one process per forward, no toxics.
    Socat { children: Mutex<Vec<Killed>> },
}

enum Process {
    Firedrill(Daemon),
    Other(Killed),
}

/// One proxy under test (or none, for the baseline).
pub struct Peer {
    pub name: &'static str,
    kind: Kind,
}

impl Peer {
    pub fn direct() -> Self {
        Self { name: "direct", kind: Kind::Direct }
    }

    pub fn firedrill() -> Self {
        let daemon = Daemon::start();
        let api = daemon.api;
        Self { name: "firedrill", kind: Kind::Api { process: Process::Firedrill(daemon), api, http: client() } }
    }

    /// The real Toxiproxy 2.12 (Go), if its binary is there.
    pub fn toxiproxy() -> Result<Self, String> {
        Self::anchored("Toxiproxy", "toxiproxy-server", ["-host", "-port"], ("LOG_LEVEL", "error"))
    }

    /// noxious 1.0.4 (Rust, tokio), if its binary is there.
    pub fn noxious() -> Result<Self, String> {
        Self::anchored("noxious", "noxious-server", ["--host", "--port"], ("RUST_LOG", "error"))
    }

    /// socat, if it is installed; `-b 1048576` copies with a buffer as large as firedrill's
    /// scratch buffer (1 MiB).
    pub fn socat() -> Result<Self, String> {
        let found = Command::new("socat").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !found.is_ok_and(|s| s.success()) {
            return Err("socat not installed (`apt-get install socat`)".into());
        }
        Ok(Self { name: "socat", kind: Kind::Socat { children: Mutex::new(Vec::new()) } })
    }

    /// A peer of `../shared/anchors/` on the Toxiproxy admin API: started with its host and port
    /// flags on a free loopback port, quiet logging (`env`), and answering `/version`.
    fn anchored(
        name: &'static str,
        binary: &str,
        [host, port_flag]: [&str; 2],
        env: (&str, &str),
    ) -> Result<Self, String> {
        let port = free_port();
        let child = crate::common::dies_with_bench(&mut Command::new(anchor(binary)?))
            .args([host, "127.0.0.1", port_flag, &port.to_string()])
            .env(env.0, env.1)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{e}"))?;
        let child = Killed(child);
        let api = SocketAddr::from(([127, 0, 0, 1], port));
        let http = client();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !http.get(format!("http://{api}/version")).send().is_ok_and(|r| r.status().is_success()) {
            if Instant::now() > deadline {
                return Err(format!("{name} did not answer on {api}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { name, kind: Kind::Api { process: Process::Other(child), api, http } })
    }

    /// The firedrill daemon, for the measurements only it has.
    pub fn daemon(&self) -> Option<&Daemon> {
        match &self.kind {
            Kind::Api { process: Process::Firedrill(daemon), .. } => Some(daemon),
            _ => None,
        }
    }

    /// Whether it takes toxics.
    pub fn has_toxics(&self) -> bool {
        matches!(self.kind, Kind::Api { .. })
    }

    /// The process whose memory counts, if one.
    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Api { process: Process::Firedrill(d), .. } => Some(d.child.id()),
            Kind::Api { process: Process::Other(k), .. } => Some(k.0.id()),
            _ => None,
        }
    }

    /// A proxy named `name` in front of `upstream`: the address clients connect to.
    pub fn front(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        match &self.kind {
            Kind::Direct => upstream,
            Kind::Api { api, http, .. } => {
                let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
                let body =
                    serde_json::json!({ "name": name, "listen": listen.to_string(), "upstream": upstream.to_string() });
                let response = http.post(format!("http://{api}/proxies")).json(&body).send().unwrap();
                assert!(response.status().is_success(), "{}: creating {name}: {}", self.name, response.status());
                wait_listening(listen);
                listen
            }
            Kind::Socat { children } => {
                let port = free_port();
                let child = crate::common::dies_with_bench(&mut Command::new("socat"))
                    .args([
                        "-b".to_owned(),
                        "1048576".to_owned(),
                        format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay,backlog=4096"),
                        format!("TCP:{upstream},nodelay"),
                    ])
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                children.lock().unwrap().push(Killed(child));
                let listen = SocketAddr::from(([127, 0, 0, 1], port));
                wait_listening(listen);
                listen
            }
        }
    }

    /// Adds a toxic (the admin API's JSON) to proxy `proxy`; how long the API took.
    pub fn add_toxic(&self, proxy: &str, toxic: &serde_json::Value) -> Duration {
        let Kind::Api { api, http, .. } = &self.kind else { panic!("{} takes no toxics", self.name) };
        let started = Instant::now();
        let response = http.post(format!("http://{api}/proxies/{proxy}/toxics")).json(toxic).send().unwrap();
        let took = started.elapsed();
        assert!(response.status().is_success(), "{}: adding a toxic: {}", self.name, response.status());
        took
    }

    /// Removes toxic `toxic` from proxy `proxy`; how long the API took.
    pub fn remove_toxic(&self, proxy: &str, toxic: &str) -> Duration {
        let Kind::Api { api, http, .. } = &self.kind else { panic!("{} takes no toxics", self.name) };
        let started = Instant::now();
        let response = http.delete(format!("http://{api}/proxies/{proxy}/toxics/{toxic}")).send().unwrap();
        let took = started.elapsed();
        assert!(response.status().is_success(), "{}: removing a toxic: {}", self.name, response.status());
        took
    }
}

/// A zero `latency` toxic on `stream`, as every peer's API takes it.
pub fn zero_latency(name: &str, stream: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name, "type": "latency", "stream": stream, "toxicity": 1.0,
        "attributes": { "latency": 0, "jitter": 0 }
    })
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// `../shared/anchors/NAME` (or under `$FIREDRILL_ANCHORS`), if it is there.
fn anchor(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::var_os("FIREDRILL_ANCHORS")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/anchors"), PathBuf::from);
    let path = dir.join(name);
    if path.is_file() { Ok(path) } else { Err(format!("{} not found", path.display())) }
}

/// A port free a moment ago (noxious cannot bind port 0 and report the port it got).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_listening(address: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child process that is killed and reaped when dropped, even when the benchmark panics.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child process (this bench in `--hold-server` mode) that accepts connections and holds
/// them, reading nothing, and reports every 500th it accepted: the upstream for idle connections,
/// in its own process so its descriptors do not count against the bench's.
pub struct HoldServer {
    _child: Killed,
    pub address: SocketAddr,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    accepted: usize,
}

impl HoldServer {
    pub fn start() -> Self {
        let mut child = crate::common::dies_with_bench(&mut Command::new(std::env::current_exe().unwrap()))
            .arg("--hold-server")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = lines.next().unwrap().unwrap().trim().parse().unwrap();
        Self { _child: Killed(child), address, lines, accepted: 0 }
    }

    /// Waits until it has accepted at least `n` connections (a multiple of 500).
    pub fn wait_accepted(&mut self, n: usize) {
        while self.accepted < n {
            self.accepted = self.lines.next().expect("the hold server ended").unwrap().trim().parse().unwrap();
        }
    }

    /// Child-process mode.
    pub fn serve() {
        use std::io::Write;
        // A backlog of 4,096, not std's 128: 10,000 connections arrive in a burst, and a SYN
        // dropped on a full backlog is retried a second later, past a proxy's connect timeout.
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        socket.listen(4096).unwrap();
        let listener = TcpListener::from(socket);
        let mut out = std::io::stdout();
        writeln!(out, "{}", listener.local_addr().unwrap()).unwrap();
        out.flush().unwrap();
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
            if held.len() % 500 == 0 {
                writeln!(out, "{}", held.len()).unwrap();
                out.flush().unwrap();
            }
        }
    }
}
