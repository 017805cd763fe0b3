//! Local services under supervision (`firedrill up`): each replica a child process of the daemon,
//! health-checked, restarted per its policy with exponential backoff — a Deployment in miniature,
//! so a drill's `kill` fault has something real to kill and something real to watch recover.

pub mod envfile;
pub mod logs;
pub mod owner;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::signal::Signal;
pub use envfile::{HealthCheck, RestartPolicy, Service};

use crate::probe::HttpProbe;

/// A replica that stayed up this long has its backoff reset to the first step.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// How long a stopping replica gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Where a replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Started; its health check has not passed yet.
    Starting,
    /// Running and passing its health check.
    Healthy,
    /// Running, and its last health check failed.
    Unhealthy,
    /// Exited; waiting out the backoff before a restart.
    Backoff,
    /// Exited and, per policy, not coming back (or stopped by `down`).
    Exited,
    /// Could not be started at all (the command is missing, say); retried per policy.
    Failed,
}

/// What `firedrill ps` shows of one replica.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// `<service>-<index>`.
    pub id: String,
    /// The service.
    pub service: String,
    /// The current process, if one runs.
    pub pid: Option<u32>,
    /// Its state.
    pub state: ReplicaState,
    /// How many times it was started again.
    pub restarts: u32,
    /// How the last process ended (`exit status: 0`, `signal: 9 (SIGKILL)`), or why it could not start.
    pub last_exit: Option<String>,
}

/// Why `up` refused.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// A service of that name is already supervised.
    #[error("service `{0}` is already up; run `firedrill down` first")]
    AlreadyUp(String),
    /// No such replica.
    #[error("no replica `{0}`")]
    NoReplica(String),
    /// The replica has no running process.
    #[error("replica `{0}` has no running process")]
    NotRunning(String),
    /// The signal could not be delivered.
    #[error("cannot signal replica `{0}`: {1}")]
    Signal(String, std::io::Error),
}

/// The supervisor: every replica of every service brought up.
#[derive(Debug)]
pub struct Supervisor {
    replicas: Mutex<BTreeMap<String, ReplicaStatus>>,
    /// Stops each service's replicas (by service name).
    stops: Mutex<BTreeMap<String, CancellationToken>>,
    tracker: TaskTracker,
    stop: CancellationToken,
    /// Where each replica's stdout and stderr go (`<id>.log`, capped); `None` discards them.
    logs: Option<logs::LogDir>,
    /// Counts every change of a replica's status, for whoever waits on one (see [`Supervisor::changes`]).
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self {
            replicas: Mutex::default(),
            stops: Mutex::default(),
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            logs: None,
            changes: tokio::sync::watch::channel(0).0,
        }
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status: {code}"),
        (None, Some(number)) => format!("signal: {number} ({})", Signal::from_number(number)),
        _ => status.to_string(),
    }
}

impl Supervisor {
    /// A supervisor with nothing up; replicas' output is discarded.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A supervisor whose replicas' stdout and stderr go to `<dir>/<replica>.log` (appended,
    /// rotated to `<replica>.log.1` at [`logs::LOG_CAP`]).
    pub fn with_logs(dir: PathBuf) -> Arc<Self> {
        Self::with_capped_logs(dir, logs::LOG_CAP)
    }

    /// As [`Supervisor::with_logs`], rotating each file at `cap` bytes.
    pub fn with_capped_logs(dir: PathBuf, cap: u64) -> Arc<Self> {
        Arc::new(Self { logs: Some(logs::LogDir { dir, cap }), ..Self::default() })
    }

    /// The log file of a replica, if output is kept.
    pub fn log_file(&self, id: &str) -> Option<PathBuf> {
        self.logs.as_ref().map(|logs| logs.file(id))
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut ReplicaStatus)) {
        if let Some(replica) = self.replicas.lock().unwrap_or_else(PoisonError::into_inner).get_mut(id) {
            change(replica);
        }
        self.changes.send_modify(|n| *n += 1);
    }

    /// A receiver that is told each time a replica's status may have changed (started, healthy,
    /// exited, restarted): wait on it instead of polling [`Supervisor::ps`].
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Starts every replica of `services`; nothing starts if one of them is already up.
    pub fn up(self: &Arc<Self>, services: Vec<Service>) -> Result<Vec<String>, SuperviseError> {
        let mut stops = self.stops.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(taken) = services.iter().find(|s| stops.contains_key(&s.name)) {
            return Err(SuperviseError::AlreadyUp(taken.name.clone()));
        }
        let mut started = Vec::new();
        for service in services {
            let stop = self.stop.child_token();
            stops.insert(service.name.clone(), stop.clone());
            let service = Arc::new(service);
            for replica in 0..service.replicas {
                let id = format!("{}-{replica}", service.name);
                self.replicas.lock().unwrap_or_else(PoisonError::into_inner).insert(
                    id.clone(),
                    ReplicaStatus {
                        id: id.clone(),
                        service: service.name.clone(),
                        pid: None,
                        state: ReplicaState::Starting,
                        restarts: 0,
                        last_exit: None,
                    },
                );
                self.changes.send_modify(|n| *n += 1);
                started.push(id.clone());
                let (me, service, stop) = (self.clone(), service.clone(), stop.clone());
                self.tracker.spawn(async move { me.supervise(&service, replica, &id, stop).await });
            }
        }
        Ok(started)
    }

    /// Every replica, sorted by id.
    pub fn ps(&self) -> Vec<ReplicaStatus> {
        self.replicas.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// The replicas of `service`.
    pub fn replicas_of(&self, service: &str) -> Vec<ReplicaStatus> {
        self.ps().into_iter().filter(|r| r.service == service).collect()
    }

    /// One replica.
    pub fn replica(&self, id: &str) -> Option<ReplicaStatus> {
        self.replicas.lock().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    /// Sends `signal` to a replica's current process and everything in its process group (a
    /// `sh -c` wrapper's children with it); the replica comes back per its policy.
    pub fn kill(&self, id: &str, signal: Signal) -> Result<u32, SuperviseError> {
        let replica = self.replica(id).ok_or_else(|| SuperviseError::NoReplica(id.to_owned()))?;
        let pid = replica.pid.ok_or_else(|| SuperviseError::NotRunning(id.to_owned()))?;
        signal.send_group(pid).map_err(|e| SuperviseError::Signal(id.to_owned(), e))?;
        Ok(pid)
    }

    /// Stops every service (SIGTERM, then SIGKILL after a grace) and forgets them.
    pub async fn down(&self) -> Vec<String> {
        let stops: Vec<(String, CancellationToken)> =
            std::mem::take(&mut *self.stops.lock().unwrap_or_else(PoisonError::into_inner)).into_iter().collect();
        for (_, stop) in &stops {
            stop.cancel();
        }
        // Wait for those replicas to be gone.
        for _ in 0..200 {
            let running = self.ps().iter().any(|r| r.pid.is_some());
            if !running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let names: Vec<String> = stops.into_iter().map(|(name, _)| name).collect();
        self.replicas.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, r| !names.contains(&r.service));
        self.changes.send_modify(|n| *n += 1);
        names
    }

    /// Stops everything and waits for every replica task (daemon shutdown).
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    fn spawn(&self, service: &Service, replica: u32, id: &str) -> std::io::Result<Child> {
        let output = || if self.logs.is_some() { Stdio::piped() } else { Stdio::null() };
        let mut command = Command::new(&service.command);
        command
            .args(service.args.iter().map(|a| service.fill(a, replica)))
            .envs(service.env.iter().map(|(k, v)| (k, service.fill(v, replica))))
            .env("FIREDRILL_REPLICA", replica.to_string())
            .current_dir(&service.dir)
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            .process_group(0)
            .kill_on_drop(true);
        crate::signal::die_with_parent(&mut command);
        let mut child = command.spawn()?;
        if let Some(logs) = &self.logs {
            let (path, cap) = (logs.file(id), logs.cap);
            // Not tracked: it ends when the pipes close, and a grandchild still holding one
            // must not hold up the daemon's shutdown.
            tokio::spawn(logs::keep(path, cap, child.stdout.take(), child.stderr.take()));
        }
        Ok(child)
    }

    /// The replica's health check; a TCP or HTTP check passes only if the listener on this host
    /// belongs to the replica's process group (`pgid`), not to something else on its port.
    async fn healthy(service: &Service, replica: u32, pgid: Option<u32>) -> bool {
        let within = service.health_interval.max(Duration::from_millis(100));
        let (passed, address) = match &service.health {
            HealthCheck::Running => return true,
            HealthCheck::Tcp(address) => {
                let address = service.fill(address, replica);
                let connect = tokio::net::TcpStream::connect(address.clone());
                (tokio::time::timeout(within, connect).await.is_ok_and(|r| r.is_ok()), address)
            }
            HealthCheck::Http(url) => {
                let probe = HttpProbe { url: service.fill(url, replica), within };
                (crate::probe::probe(&probe).await, probe.url)
            }
        };
        let (Some(pgid), Some(port)) = (pgid, owner::port_of(&address)) else { return passed };
        if !passed {
            return false;
        }
        let owned = tokio::task::spawn_blocking(move || owner::port_held_by_group(port, pgid)).await;
        owned.ok().flatten() != Some(false)
    }

    /// One replica's life: start, watch, check health, restart per policy, until `stop`.
    async fn supervise(&self, service: &Service, replica: u32, id: &str, stop: CancellationToken) {
        let mut backoff = service.backoff;
        let mut first = true;
        loop {
            if !first {
                self.update(id, |r| r.state = ReplicaState::Backoff);
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(service.max_backoff);
                self.update(id, |r| r.restarts += 1);
            }
            first = false;
            let mut child = match self.spawn(service, replica, id) {
                Ok(child) => child,
                Err(e) => {
                    tracing::warn!(replica = id, error = %e, command = %service.command.display(), dir = %service.dir.display(), "cannot start");
                    self.update(id, |r| {
                        r.state = ReplicaState::Failed;
                        r.last_exit = Some(format!("cannot start {}: {e}", service.command.display()));
                    });
                    if service.restart == RestartPolicy::Never {
                        break;
                    }
                    continue;
                }
            };
            let pid = child.id();
            self.update(id, |r| {
                r.pid = pid;
                r.state = ReplicaState::Starting;
            });
            let started = tokio::time::Instant::now();
            let mut ticks = tokio::time::interval(service.health_interval);
            let status = loop {
                tokio::select! {
                    () = stop.cancelled() => {
                        if let Some(pid) = pid {
                            let _ = Signal::TERM.send_group(pid);
                        }
                        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                            let _ = child.kill().await;
                        }
                        // What is left of the group (children that outlived the leader) goes too.
                        if let Some(pid) = pid {
                            let _ = Signal::KILL.send_group(pid);
                        }
                        self.update(id, |r| {
                            r.pid = None;
                            r.state = ReplicaState::Exited;
                            r.last_exit = Some("stopped".to_owned());
                        });
                        return;
                    }
                    status = child.wait() => break status,
                    _ = ticks.tick() => {
                        let ok = Self::healthy(service, replica, pid).await;
                        self.update(id, |r| if r.pid == pid {
                            r.state = if ok { ReplicaState::Healthy } else if r.state == ReplicaState::Starting { ReplicaState::Starting } else { ReplicaState::Unhealthy };
                        });
                    }
                }
            };
            // The replica is its whole process group, as a container is: children that
            // outlived the leader would keep its port and pass its health check.
            if let Some(pid) = pid {
                let _ = Signal::KILL.send_group(pid);
            }
            let exit = status.map_or_else(|e| format!("lost: {e}"), describe);
            tracing::info!(replica = id, exit, "replica exited");
            let success = exit == "exit status: 0";
            self.update(id, |r| {
                r.pid = None;
                r.state = ReplicaState::Exited;
                r.last_exit = Some(exit);
            });
            if started.elapsed() >= STABLE_AFTER {
                backoff = service.backoff;
            }
            match service.restart {
                RestartPolicy::Never => break,
                RestartPolicy::OnFailure if success => break,
                _ => {}
            }
        }
    }
}
