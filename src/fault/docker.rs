//! Kill faults on Docker containers, through the Docker Engine API (bollard): select by labels —
//! always including the drill's label scope — and name; kill, stop, restart or pause.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::HealthStatusEnum;
use bollard::query_parameters::{
    InspectContainerOptions, KillContainerOptions, ListContainersOptions, RestartContainerOptions,
    StartContainerOptions, StopContainerOptions,
};

use super::FaultError;
use super::kill::{FollowUp, Target};
use crate::drill::{KillAction, KillPlan};
use crate::signal::Signal;

/// A lazily connected Docker client (the engine's API version is negotiated on first use).
#[derive(Debug, Clone, Default)]
pub struct DockerTargets {
    client: Arc<tokio::sync::Mutex<Option<Docker>>>,
}

/// Whether a container `name` is the `wanted` one: equal, or matching it as a pattern in which
/// `*` stands for any run of characters (`shop-*`).
pub fn name_matches(wanted: &str, name: &str) -> bool {
    let mut parts = wanted.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else { return rest.is_empty() };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether process `pid` of this host belongs to container `id` (its full id), by its cgroup
/// (`/docker/<id>`, `docker-<id>.scope`, … — every driver puts the id in the path).
pub fn in_container_cgroup(pid: u32, id: &str) -> bool {
    id.len() >= 12
        && std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|cgroups| cgroups.lines().any(|line| line.contains(id)))
}

fn grace_secs(grace: Duration) -> i32 {
    i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)
}

/// The engine's address as the docker CLI finds it: `DOCKER_HOST` (`unix://`, `tcp://` — with
/// TLS when `DOCKER_TLS_VERIFY` is set, certificates from `DOCKER_CERT_PATH` —, `ssh://`
/// refused), or the local socket.
pub fn engine_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

impl DockerTargets {
    /// A Docker error, naming the engine it came from.
    fn error(&self, source: bollard::errors::Error) -> FaultError {
        let _ = self;
        FaultError::Docker { context: format!("Docker ({})", engine_host()), source }
    }

    async fn docker(&self) -> Result<Docker, FaultError> {
        let mut client = self.client.lock().await;
        if let Some(docker) = client.as_ref() {
            return Ok(docker.clone());
        }
        let host = engine_host();
        if host.starts_with("ssh://") {
            return Err(FaultError::Refused(format!(
                "DOCKER_HOST={host}: firedrill does not speak ssh to the Docker engine; forward its socket \
                 (ssh -nNT -L /tmp/docker.sock:/var/run/docker.sock HOST) and set DOCKER_HOST=unix:///tmp/docker.sock"
            )));
        }
        let unreachable =
            |source| FaultError::Docker { context: format!("cannot reach the Docker engine at {host}"), source };
        let docker =
            Docker::connect_with_host(&host).map_err(unreachable)?.negotiate_version().await.map_err(unreachable)?;
        *client = Some(docker.clone());
        Ok(docker)
    }

    /// Containers carrying every label in `labels` and, if given, named `name` — exactly, or as
    /// a pattern when it holds `*` — in any state: one that is stopped, exited, restarting or
    /// paused is listed not ready, since it counts against the blast radius.
    pub async fn list(&self, labels: &BTreeMap<String, String>, name: Option<&str>) -> Result<Vec<Target>, FaultError> {
        let docker = self.docker().await?;
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        filters.insert("label".into(), labels.iter().map(|(k, v)| format!("{k}={v}")).collect());
        let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
        let containers = docker.list_containers(Some(options)).await.map_err(|e| self.error(e))?;
        let mut targets = Vec::new();
        for container in containers {
            let Some(id) = container.id else { continue };
            // The engine filtered already; check again, since the scope is a promise.
            let own = container.labels.unwrap_or_default();
            if !labels.iter().all(|(k, v)| own.get(k) == Some(v)) {
                continue;
            }
            let names: Vec<String> =
                container.names.unwrap_or_default().iter().map(|n| n.trim_start_matches('/').to_owned()).collect();
            // Docker's own `name` filter is a substring match: `shop-1` would take `shop-10`.
            if let Some(wanted) = name
                && !names.iter().any(|n| name_matches(wanted, n))
            {
                continue;
            }
            let name = names.into_iter().next().unwrap_or_else(|| id.clone());
            let (ready, marker) = self.state(&docker, &id).await?.unwrap_or((false, String::new()));
            targets.push(Target { id, name, ready, marker });
        }
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(targets)
    }

    /// (ready, started-at) of a container; `None` if it is gone.
    async fn state(&self, docker: &Docker, id: &str) -> Result<Option<(bool, String)>, FaultError> {
        let inspect = match docker.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(inspect) => inspect,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        let state = inspect.state.unwrap_or_default();
        let healthy = state
            .health
            .and_then(|h| h.status)
            .is_none_or(|s| matches!(s, HealthStatusEnum::HEALTHY | HealthStatusEnum::NONE | HealthStatusEnum::EMPTY));
        let ready =
            state.running == Some(true) && state.paused != Some(true) && state.restarting != Some(true) && healthy;
        Ok(Some((ready, state.started_at.unwrap_or_default())))
    }

    /// Does `plan.action` to container `id`; a crash with a grace period has a follow-up.
    pub async fn act(&self, plan: &KillPlan, id: &str) -> Result<(String, Option<FollowUp>), FaultError> {
        let docker = self.docker().await?;
        let t = Some(grace_secs(plan.grace));
        let result = match plan.action {
            KillAction::Kill => {
                let options = KillContainerOptions { signal: plan.signal.to_string() };
                docker.kill_container(id, Some(options)).await.map(|()| format!("{} to container", plan.signal))
            }
            KillAction::Stop => docker
                .stop_container(id, Some(StopContainerOptions { t, signal: None }))
                .await
                .map(|()| format!("stopped with {}s grace", grace_secs(plan.grace))),
            KillAction::Restart => docker
                .restart_container(id, Some(RestartContainerOptions { t, signal: None }))
                .await
                .map(|()| format!("restarted with {}s grace", grace_secs(plan.grace))),
            KillAction::Pause => docker.pause_container(id).await.map(|()| "paused".to_owned()),
            KillAction::Crash => return self.crash(&docker, plan, id).await,
            KillAction::Delete => {
                return Err(FaultError::Refused("containers are not deleted; use kill, stop, restart or pause".into()));
            }
        };
        result
            .map(|detail| (detail, None))
            .map_err(|source| FaultError::Docker { context: format!("Docker {} {id}", plan.action.as_str()), source })
    }

    /// Signals the container's main process from this host (`State.Pid`): to Docker that is the
    /// process dying by itself, so the restart policy brings the container back, as it would
    /// after a real crash (a kill through the API counts as stopped by hand, and stays down).
    /// Needs firedrill on the Docker host, allowed to signal that process (root, usually).
    async fn crash(
        &self,
        docker: &Docker,
        plan: &KillPlan,
        id: &str,
    ) -> Result<(String, Option<FollowUp>), FaultError> {
        let inspect = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|source| FaultError::Docker { context: format!("Docker crash {id}"), source })?;
        let state = inspect.state.unwrap_or_default();
        let pid = state
            .pid
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p > 0 && state.running == Some(true))
            .ok_or_else(|| FaultError::Refused(format!("Docker crash {id}: the container is not running")))?;
        // The engine's pid is in the engine's PID namespace: behind a forwarded socket, in
        // docker-in-docker or a VM, the same number here is some other process. Signal it only
        // if it sits in the container's own cgroup.
        let full_id = inspect.id.as_deref().unwrap_or(id);
        if !in_container_cgroup(pid, full_id) {
            return Err(FaultError::Refused(format!(
                "Docker crash {id}: pid {pid}, the container's process as the engine ({}) sees it, is not in \
                 the container's cgroup here: the engine runs in another PID namespace (a forwarded socket, \
                 docker-in-docker, a VM), so nothing was signalled; run firedrill on the Docker host, or use \
                 action = \"kill\"",
                engine_host()
            )));
        }
        plan.signal.send(pid).map_err(|source| FaultError::Signal {
            context: format!(
                "Docker crash {id}: cannot signal its process (pid {pid}) from here; crash needs firedrill on the \
                 Docker host with the right to signal it (root), or use action = \"kill\""
            ),
            source,
        })?;
        let detail = format!("{} to its process (pid {pid}) on the host", plan.signal);
        if plan.grace.is_zero() || plan.signal == Signal::KILL {
            return Ok((detail, None));
        }
        let detail = format!("{detail}, SIGKILL after {}", crate::duration::format(plan.grace));
        Ok((detail, Some(FollowUp { after: plan.grace, pid })))
    }

    /// The SIGKILL after a crash's grace period, if `pid` still runs as the container's process.
    pub async fn follow_up(&self, id: &str, pid: u32) -> Result<Option<String>, FaultError> {
        let docker = self.docker().await?;
        let inspect = match docker.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(inspect) => inspect,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        let now = inspect.state.unwrap_or_default();
        let full_id = inspect.id.as_deref().unwrap_or(id);
        if now.running != Some(true) || now.pid != Some(i64::from(pid)) || !in_container_cgroup(pid, full_id) {
            return Ok(None);
        }
        Signal::KILL.send(pid).map_err(|source| FaultError::Signal {
            context: format!("Docker crash {id}: SIGKILL to pid {pid}"),
            source,
        })?;
        Ok(Some(format!("SIGKILL to its process (pid {pid}) after the grace period")))
    }

    /// Undoes a stop (start) or a pause (unpause); a container that is gone needs nothing.
    pub async fn undo(&self, action: KillAction, id: &str) -> Result<(), FaultError> {
        let docker = self.docker().await?;
        let result = match action {
            KillAction::Stop => docker.start_container(id, None::<StartContainerOptions>).await,
            KillAction::Pause => docker.unpause_container(id).await,
            _ => return Ok(()),
        };
        match result {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 304, .. }) => Ok(()),
            // Unpausing a container that is not paused (someone did it already) is fine too.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, message })
                if message.contains("not paused") =>
            {
                Ok(())
            }
            Err(source) => Err(FaultError::Docker { context: format!("Docker undo {} {id}", action.as_str()), source }),
        }
    }

    /// `Some(how)` once the container runs again, unpaused and healthy, after `action`.
    pub async fn recovered(&self, action: KillAction, target: &Target) -> Result<Option<String>, FaultError> {
        let docker = self.docker().await?;
        Ok(self.state(&docker, &target.id).await?.and_then(|(ready, started)| {
            let restarted = action == KillAction::Pause || started != target.marker;
            (ready && restarted).then(|| format!("running again (started {started})"))
        }))
    }
}
