//! `cargo bench --bench console`: the game-day console under a room of viewers. The real
//! `firedrill serve` runs a drill in its own process; 50 observers follow the Now page's
//! Server-Sent Events while a responder acts (a diagnosis every 200 ms, each naming a marker).
//! Measured: for every act and every viewer, the time from just before the act's request to the
//! arrival of the first event whose page shows it (p50, p99, max), and the daemon's CPU (user +
//! system, from `/proc`) per act and as a share of one core, against the same viewers idle.
//! Every figure is the median of interleaved rounds; the act's own request time is printed
//! beside, since each act is written to the journal and synced to disk before it is answered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const VIEWERS: usize = 50;
const ROUNDS: usize = 3;
const ACTS: usize = 40;
const PACE: Duration = Duration::from_millis(200);

const DRILL: &str = r#"
[drill]
name = "slow-partner"
title = "The partner slows down"
briefing = "Checkout is slow."
timebox = "1h"

[targets]
production = { detect = 3, diagnose = 6, mitigate = 9, resolve = 12 }

[[faults]]
at = "0s"
proxy = "partner"
toxic = { type = "latency", attributes = { latency = 200 } }

[answer]
component = "partner"
kind = "latency"
accept = ["partner", "latency|slow"]
"#;

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

struct Serve {
    child: Child,
    api: String,
    responder_link: String,
    observer_link: String,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("drills")).unwrap();
        std::fs::write(dir.path().join("drills/slow-partner.toml"), DRILL).unwrap();
        std::fs::write(
            dir.path().join("env.json"),
            r#"[{"name":"partner","listen":"127.0.0.1:0","upstream":"127.0.0.1:9"}]"#,
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .current_dir(dir.path())
            .args(["serve", "--api", "127.0.0.1:0", "--control", "127.0.0.1:0", "env.json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let console = lines.next().unwrap().unwrap();
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        let api = first.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
        let paths: Vec<String> = console
            .split("http://")
            .skip(2)
            .map(|s| {
                format!(
                    "/{}",
                    s.split_once('/').unwrap().1.split_whitespace().next().unwrap().trim_end_matches([',', ')'])
                )
            })
            .collect();
        Self { child, api, responder_link: paths[0].clone(), observer_link: paths[1].clone(), _dir: dir }
    }

    /// One client for every request (a blocking client starts a runtime of its own: making one
    /// per request would measure that).
    fn client() -> reqwest::blocking::Client {
        static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
        CLIENT
            .get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(None)
                    .build()
                    .unwrap()
            })
            .clone()
    }

    /// Opens a session at `path` (a join link, or the login form); its cookie.
    fn session(&self, path: &str) -> String {
        let url = format!("http://{}{path}", self.api);
        let response = if path == "/ui/login" {
            Self::client().post(url).form(&[("token", "")]).send().unwrap()
        } else {
            Self::client().get(url).send().unwrap()
        };
        response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
    }

    fn csrf(&self, cookie: &str, path: &str) -> String {
        let page = Self::client()
            .get(format!("http://{}{path}", self.api))
            .header("cookie", cookie)
            .send()
            .unwrap()
            .text()
            .unwrap();
        page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned()
    }

    fn post(&self, cookie: &str, path: &str, form: &[(&str, &str)]) {
        let response = Self::client()
            .post(format!("http://{}{path}", self.api))
            .header("cookie", cookie)
            .form(form)
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 303, "{path}");
    }

    /// The daemon's CPU so far (user + system), in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A viewer: follows the Now page's events; sends (marker, receipt wall ms) the first time an
/// event shows each marker.
fn viewer(api: &str, cookie: &str, seen: &mpsc::Sender<(u64, u64)>) {
    let response =
        Serve::client().get(format!("http://{api}/ui/events?page=now")).header("cookie", cookie).send().unwrap();
    let mut known = std::collections::HashSet::new();
    for line in BufReader::new(response).lines().map_while(Result::ok) {
        let Some(data) = line.strip_prefix("data: ") else { continue };
        let at = wall_ms();
        for piece in data.split("marker-").skip(1) {
            let Some(n) = piece.split_once("-x").and_then(|(n, _)| n.parse::<u64>().ok()) else { continue };
            if known.insert(n) && seen.send((n, at)).is_err() {
                return;
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let serve = Serve::start();
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let facilitator = serve.session("/ui/login");
    let csrf = serve.csrf(&facilitator, "/ui/catalogue");
    serve.post(&facilitator, "/ui/catalogue/start", &[("csrf", &csrf), ("drill", "slow-partner"), ("team", "bench")]);
    let responder = serve.session(&serve.responder_link);
    let responder_csrf = serve.csrf(&responder, "/ui/respond");
    serve.post(&responder, "/ui/name", &[("csrf", &responder_csrf), ("name", "ana")]);

    let (tx, rx) = mpsc::channel();
    for _ in 0..VIEWERS {
        let (api, cookie, tx) = (serve.api.clone(), serve.session(&serve.observer_link), tx.clone());
        std::thread::spawn(move || viewer(&api, &cookie, &tx));
    }
    drop(tx);
    std::thread::sleep(Duration::from_secs(2)); // every viewer connected (set-up, not measured)

    let (mut p50s, mut p99s, mut maxes, mut per_act, mut busy, mut idle) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut marker = 0;
    let mut requests = Vec::new();
    for round in 0..ROUNDS {
        // Idle: the viewers connected, nothing happening.
        let (t, c) = (Instant::now(), serve.cpu_ticks());
        std::thread::sleep(Duration::from_secs(2));
        idle.push((serve.cpu_ticks() - c) as f64 / ticks_per_s / t.elapsed().as_secs_f64() * 100.0);
        while rx.try_recv().is_ok() {}
        // Acting: a diagnosis every 200 ms, each with its own marker.
        let mut sent = std::collections::HashMap::new();
        let (t, c) = (Instant::now(), serve.cpu_ticks());
        for _ in 0..ACTS {
            marker += 1;
            let text = format!("marker-{marker}-x");
            sent.insert(marker, wall_ms());
            let posted = Instant::now();
            serve.post(&responder, "/ui/act/diagnose", &[("csrf", &responder_csrf), ("run", ""), ("text", &text)]);
            requests.push(posted.elapsed().as_millis() as u64);
            std::thread::sleep(PACE);
        }
        let cpu = (serve.cpu_ticks() - c) as f64 / ticks_per_s;
        busy.push(cpu / t.elapsed().as_secs_f64() * 100.0);
        per_act.push(cpu / ACTS as f64 * 1000.0);
        // Every viewer's first sight of every marker of this round.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut latencies = Vec::new();
        while latencies.len() < ACTS * VIEWERS && Instant::now() < deadline {
            let Ok((n, at)) = rx.recv_timeout(Duration::from_secs(1)) else { continue };
            if let Some(sent_at) = sent.get(&n) {
                latencies.push(at.saturating_sub(*sent_at));
            }
        }
        assert_eq!(latencies.len(), ACTS * VIEWERS, "every viewer saw every act");
        latencies.sort_unstable();
        let (p50, p99, max) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99), *latencies.last().unwrap());
        println!("round {}: p50 {p50} ms, p99 {p99} ms, max {max} ms over {} arrivals", round + 1, latencies.len());
        p50s.push(p50 as f64);
        p99s.push(p99 as f64);
        maxes.push(max as f64);
    }
    println!(
        "\n{VIEWERS} viewers on SSE, {ACTS} acts per round at {} ms, median of {ROUNDS} rounds:",
        PACE.as_millis()
    );
    println!("  act to page: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms", median(p50s), median(p99s), median(maxes));
    requests.sort_unstable();
    println!(
        "  the act's own request (journaled and synced before it is answered): p50 {} ms, p99 {} ms",
        percentile(&requests, 0.5),
        percentile(&requests, 0.99)
    );
    println!(
        "  daemon CPU: {:.1} % of a core while acting ({:.1} ms per act, for {VIEWERS} viewers), {:.2} % idle",
        median(busy),
        median(per_act),
        median(idle)
    );
}
