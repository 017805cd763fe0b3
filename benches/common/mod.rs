//! What the benchmarks share: the real `firedrill serve` in its own process, and its admin API.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// Makes the process `command` starts receive SIGKILL when the thread that started it ends — so a
/// bench stopped by a signal (where no `Drop` runs) leaves no peer running. Start peers from the
/// main thread.
#[allow(unsafe_code)]
pub fn dies_with_bench(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2), which
    // is async-signal-safe and touches no memory shared with the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// The daemon under test; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub api: SocketAddr,
    pub http: reqwest::blocking::Client,
}

impl Daemon {
    /// Starts `firedrill serve` on port-0 addresses and reads its admin address from its first line.
    pub fn start() -> Self {
        let mut child = dies_with_bench(&mut Command::new(env!("CARGO_BIN_EXE_firedrill")))
            .args(["serve", "--api", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let api = line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|a| a.parse().ok());
        let Some(api) = api else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no announcement from firedrill serve: {line:?}");
        };
        Self { child, api, http: reqwest::blocking::Client::new() }
    }

    /// POSTs `body` to the admin API; the answer's JSON.
    pub fn post(&self, path: &str, body: &str) -> serde_json::Value {
        let response = self.http.post(format!("http://{}{path}", self.api)).body(body.to_owned()).send().unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().unwrap()
    }

    /// The daemon's process id.
    #[allow(dead_code, reason = "the http bench reads the daemon's CPU; the proxy bench does not")]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Creates a proxy in `mode` (`tcp` or `http`) in front of `upstream`; its address.
    pub fn proxy_in(&self, name: &str, upstream: SocketAddr, mode: &str) -> SocketAddr {
        let body = format!(r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}","mode":"{mode}"}}"#);
        self.post("/proxies", &body)["listen"].as_str().unwrap().parse().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
