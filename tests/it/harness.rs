//! Shared test helpers: an in-process daemon, upstream servers, an HTTP helper, the real binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firedrill::proxy::{Registry, api};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Milliseconds, shorter to read in timing assertions.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Upper bound on any single wait in these tests: nothing may hang.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A daemon in this process: a registry and its admin API on a port-0 listener.
pub struct Daemon {
    pub base: String,
    _registry: Arc<Registry>,
    stop: CancellationToken,
    http: reqwest::Client,
}

impl Daemon {
    pub async fn start() -> Self {
        Self::with_token(None).await
    }

    pub async fn with_token(token: Option<&str>) -> Self {
        let registry = Registry::new(Some(42));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        tokio::spawn(api::serve(listener, registry.clone(), token.map(str::to_owned), stop.clone()));
        Self { base, _registry: registry, stop, http: reqwest::Client::new() }
    }

    /// Sends a request; returns status, the request-id header, and the body.
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        let mut request =
            self.http.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = tokio::time::timeout(PATIENCE, request.send()).await.expect("API answered in time").unwrap();
        let status = response.status().as_u16();
        let request_id = response.headers().get("x-toxiproxy-request-id").map(|v| v.to_str().unwrap().to_owned());
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        Response { status, request_id, content_type, text }
    }

    pub async fn json(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let response = self.call(method, path, body).await;
        let value = if response.text.is_empty() { Value::Null } else { serde_json::from_str(&response.text).unwrap() };
        (response.status, value)
    }

    /// Creates a proxy on a free loopback port in front of `upstream`; returns its address.
    pub async fn proxy(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        let body = format!(r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#);
        let (status, proxy) = self.json("POST", "/proxies", Some(&body)).await;
        assert_eq!(status, 201, "{proxy}");
        proxy["listen"].as_str().unwrap().parse().unwrap()
    }

    pub async fn toxic(&self, proxy: &str, body: &str) -> Value {
        let (status, toxic) = self.json("POST", &format!("/proxies/{proxy}/toxics"), Some(body)).await;
        assert_eq!(status, 200, "{toxic}");
        toxic
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub struct Response {
    pub status: u16,
    pub request_id: Option<String>,
    pub content_type: Option<String>,
    pub text: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap()
    }
}

/// An echo server: every byte comes back; end of stream is passed back as end of stream.
pub async fn echo_server() -> SocketAddr {
    serve_each(|mut stream| async move {
        let (mut read, mut write) = stream.split();
        let _ = tokio::io::copy(&mut read, &mut write).await;
        let _ = write.shutdown().await;
    })
    .await
}

/// A server that writes `bytes` on every connection and then closes it.
pub async fn source_server(bytes: usize) -> SocketAddr {
    serve_each(move |mut stream| async move {
        let _ = stream.write_all(&pattern(bytes)).await;
        let _ = stream.shutdown().await;
        // Wait for the client to finish so the close is a clean FIN.
        let _ = stream.read(&mut [0; 1]).await;
    })
    .await
}

/// Runs `handler` for every connection accepted on a fresh port-0 listener.
pub async fn serve_each<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handler(stream));
        }
    });
    address
}

/// Deterministic, non-repeating-looking test bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Sends `message` and reads the same number of bytes back; returns them and the time taken.
pub async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    stream.write_all(message).await.unwrap();
    let mut back = vec![0; message.len()];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut back)).await.expect("echo in time").unwrap();
    (back, started.elapsed())
}

/// Reads until end of stream; returns the bytes and the time it took.
pub async fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out)).await.expect("end of stream in time").unwrap();
    (out, started.elapsed())
}

pub async fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// The real `firedrill serve`, with its admin address read from its announcement.
pub struct ServeProcess {
    pub child: Child,
    pub api: SocketAddr,
    pub control: SocketAddr,
    /// The console's announcement (`firedrill: console on … join at …`).
    pub console: String,
    /// The working directory, when the test did not give one.
    #[allow(dead_code)] // held so the directory lives as long as the daemon
    home: Option<tempfile::TempDir>,
    /// Closed when the daemon's standard output does: when it has exited.
    exited: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl ServeProcess {
    /// Starts `firedrill serve` in a fresh temporary working directory.
    pub fn start(args: &[&str]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let mut serve = Self::start_in(home.path(), args);
        serve.home = Some(home);
        serve
    }

    /// Starts `firedrill serve` in `dir` (journals and scorecards go there).
    pub fn start_in(dir: &std::path::Path, args: &[&str]) -> Self {
        Self::start_env(dir, args, &[])
    }

    /// The same, with extra environment variables for the daemon.
    pub fn start_env(dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_command(Command::new(env!("CARGO_BIN_EXE_firedrill")), dir, args, envs)
    }

    /// The same, under an open-files limit of `nofile` (soft and hard), set with `prlimit`.
    pub fn start_limited(dir: &std::path::Path, args: &[&str], nofile: u32) -> Self {
        let mut command = Command::new("prlimit");
        command.args([format!("--nofile={nofile}:{nofile}"), "--".into(), env!("CARGO_BIN_EXE_firedrill").into()]);
        Self::start_command(command, dir, args, &[])
    }

    fn start_command(mut command: Command, dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut child = command
            .current_dir(dir)
            .envs(envs.iter().copied())
            .arg("serve")
            .args(["--api", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        let address = |marker: &str| -> Option<SocketAddr> {
            first.split(marker).nth(1)?.split_whitespace().next()?.parse().ok()
        };
        let (Some(api), Some(control)) = (address("http://"), address("control API on ")) else {
            // Never leave a daemon behind when the test fails here.
            let _ = child.kill();
            let _ = child.wait();
            panic!("no announcement from firedrill serve, got {first:?}");
        };
        // The second line announces the console and its join links.
        let mut console = String::new();
        reader.read_line(&mut console).unwrap();
        // Keep draining stdout so the daemon never blocks on a full pipe; its end is the exit.
        let (closed, exited) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for _ in reader.lines().map_while(Result::ok) {}
            drop(closed);
        });
        Self { child, api, control, console, home: None, exited: std::sync::Mutex::new(exited) }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs a CLI verb against this daemon (bounded in time); returns exit code, stdout and stderr.
    pub fn verb(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let ran = crate::verb::Verb::new(args).env("FIREDRILL_ADDR", self.control.to_string()).run();
        (ran.code, ran.stdout, ran.stderr)
    }

    /// The daemon's proxies, through the admin API.
    pub fn proxies(&self) -> serde_json::Value {
        reqwest::blocking::get(format!("http://{}/proxies", self.api)).unwrap().json().unwrap()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the exit, at most `limit`; returns the exit code and how long it took.
    pub fn wait(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        // Waits on the event: the daemon's standard output closing (its services log to files).
        match self.exited.lock().unwrap().recv_timeout(limit) {
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                (self.child.wait().unwrap().code(), started.elapsed())
            }
            _ => panic!("firedrill serve did not exit within {limit:?}"),
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `check` holds, re-checking it each time a file under `dir` changes (inotify), for
/// at most `limit`: journals, scorecards and armed drills are files, so their changes are the
/// events a test waits on. Returns whether `check` held.
pub fn until(dir: &std::path::Path, limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    use notify::Watcher;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .unwrap();
    // Watching starts before the first check: a change between the two is never missed.
    watcher.watch(dir, notify::RecursiveMode::Recursive).unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || rx.recv_timeout(left).is_err() {
            return check();
        }
    }
}

/// What is wrong with a scorecard's JSON against `scorecards/schema.json`, the published format.
pub fn scorecard_schema_errors(card: &serde_json::Value) -> Vec<String> {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scorecards/schema.json");
        let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    });
    validator.iter_errors(card).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// Checks a scorecard's JSON against `scorecards/schema.json`.
pub fn assert_scorecard_schema(card: &serde_json::Value) {
    let errors = scorecard_schema_errors(card);
    assert!(errors.is_empty(), "the scorecard does not follow scorecards/schema.json: {errors:#?}\n{card:#}");
}
