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

use super::kill::Target;
use crate::drill::{KillAction, KillPlan};
use crate::supervise::Signal;

/// A lazily connected Docker client (the engine's API version is negotiated on first use).
#[derive(Debug, Clone, Default)]
pub struct DockerTargets {
    client: Arc<tokio::sync::Mutex<Option<Docker>>>,
}

fn grace_secs(grace: Duration) -> i32 {
    i32::try_from(grace.as_secs()).unwrap_or(i32::MAX)
}

impl DockerTargets {
    async fn docker(&self) -> Result<Docker, String> {
        let mut client = self.client.lock().await;
        if let Some(docker) = client.as_ref() {
            return Ok(docker.clone());
        }
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| format!("cannot reach the Docker engine: {e}"))?
            .negotiate_version()
            .await
            .map_err(|e| format!("cannot reach the Docker engine: {e}"))?;
        *client = Some(docker.clone());
        Ok(docker)
    }

    /// Running containers carrying every label in `labels` and, if given, `name` in their name.
    pub async fn list(&self, labels: &BTreeMap<String, String>, name: Option<&str>) -> Result<Vec<Target>, String> {
        let docker = self.docker().await?;
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        filters.insert("label".into(), labels.iter().map(|(k, v)| format!("{k}={v}")).collect());
        if let Some(name) = name {
            filters.insert("name".into(), vec![name.to_owned()]);
        }
        let options = ListContainersOptions { all: false, filters: Some(filters), ..Default::default() };
        let containers = docker.list_containers(Some(options)).await.map_err(|e| format!("Docker: {e}"))?;
        let mut targets = Vec::new();
        for container in containers {
            let Some(id) = container.id else { continue };
            // The engine filtered already; check again, since the scope is a promise.
            let own = container.labels.unwrap_or_default();
            if !labels.iter().all(|(k, v)| own.get(k) == Some(v)) {
                continue;
            }
            let name = container
                .names
                .and_then(|n| n.first().map(|n| n.trim_start_matches('/').to_owned()))
                .unwrap_or_else(|| id.clone());
            let (ready, marker) = self.state(&docker, &id).await?.unwrap_or((false, String::new()));
            targets.push(Target { id, name, ready, marker });
        }
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(targets)
    }

    /// (ready, started-at) of a container; `None` if it is gone.
    async fn state(&self, docker: &Docker, id: &str) -> Result<Option<(bool, String)>, String> {
        let inspect = match docker.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(inspect) => inspect,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(None),
            Err(e) => return Err(format!("Docker: {e}")),
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

    /// Does `plan.action` to container `id`.
    pub async fn act(&self, plan: &KillPlan, id: &str) -> Result<String, String> {
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
            KillAction::Delete => return Err("containers are not deleted; use kill, stop, restart or pause".into()),
        };
        result.map_err(|e| format!("Docker {} {id}: {e}", plan.action.as_str()))
    }

    /// Signals the container's main process from this host (`State.Pid`): to Docker that is the
    /// process dying by itself, so the restart policy brings the container back, as it would
    /// after a real crash (a kill through the API counts as stopped by hand, and stays down).
    /// Needs firedrill on the Docker host, allowed to signal that process (root, usually).
    async fn crash(&self, docker: &Docker, plan: &KillPlan, id: &str) -> Result<String, String> {
        let inspect = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| format!("Docker crash {id}: {e}"))?;
        let state = inspect.state.unwrap_or_default();
        let pid = state
            .pid
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p > 0 && state.running == Some(true))
            .ok_or_else(|| format!("Docker crash {id}: the container is not running"))?;
        plan.signal.send(pid).map_err(|e| {
            format!(
                "Docker crash {id}: cannot signal its process (pid {pid}) from here: {e}; crash needs firedrill                  on the Docker host with the right to signal it (root), or use action = \"kill\""
            )
        })?;
        if plan.grace.is_zero() || plan.signal == Signal::KILL {
            return Ok(format!("{} to its process (pid {pid}) on the host", plan.signal));
        }
        // A grace period: SIGKILL follows if the same process still runs.
        let (docker, id_owned, started, grace) = (docker.clone(), id.to_owned(), state.started_at, plan.grace);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let Ok(inspect) = docker.inspect_container(&id_owned, None::<InspectContainerOptions>).await else {
                return;
            };
            let now = inspect.state.unwrap_or_default();
            if now.running == Some(true) && now.started_at == started && now.pid == Some(i64::from(pid)) {
                let _ = Signal::KILL.send(pid);
            }
        });
        Ok(format!(
            "{} to its process (pid {pid}) on the host, SIGKILL after {}",
            plan.signal,
            crate::drill::duration::format(grace)
        ))
    }

    /// Undoes a stop (start) or a pause (unpause); a container that is gone needs nothing.
    pub async fn undo(&self, action: KillAction, id: &str) -> Result<(), String> {
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
            Err(e) => Err(format!("Docker undo {} {id}: {e}", action.as_str())),
        }
    }

    /// `Some(how)` once the container runs again, unpaused and healthy, after `action`.
    pub async fn recovered(&self, action: KillAction, target: &Target) -> Result<Option<String>, String> {
        let docker = self.docker().await?;
        Ok(self.state(&docker, &target.id).await?.and_then(|(ready, started)| {
            let restarted = action == KillAction::Pause || started != target.marker;
            (ready && restarted).then(|| format!("running again (started {started})"))
        }))
    }
}
