//! Kill faults on Kubernetes pods, through the API (kube-rs): list by namespace and label
//! selector, delete with a grace period — only when the kubeconfig's current context and the
//! namespace are in the drill's allow-list. Every call is bounded: [`CONNECT_TIMEOUT`] to
//! connect, and [`request_timeout`] for the answer, so a hung API server fails the round with
//! a message naming the server and the timeout instead of holding the run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::FaultError;
use super::kill::Target;

/// How long connecting to the API server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default bound on one API call's answer; `FIREDRILL_KUBE_TIMEOUT` (seconds) changes it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The bound on one API call's answer: `FIREDRILL_KUBE_TIMEOUT` seconds (1 to 300), or
/// [`REQUEST_TIMEOUT`].
pub fn request_timeout() -> Duration {
    std::env::var("FIREDRILL_KUBE_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|s| (1..=300).contains(s))
        .map_or(REQUEST_TIMEOUT, Duration::from_secs)
}

/// A client for one context, with the server it talks to (named in every error).
#[derive(Clone)]
struct Connected {
    context: String,
    server: String,
    client: Client,
}

/// A kubeconfig-driven client, made on first use and kept per context.
#[derive(Clone, Default)]
pub struct KubernetesTargets {
    /// The kubeconfig file; `None` = `$KUBECONFIG` or `~/.kube/config`, as kubectl.
    kubeconfig: Option<PathBuf>,
    client: Arc<tokio::sync::Mutex<Option<Connected>>>,
}

impl std::fmt::Debug for KubernetesTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesTargets").field("kubeconfig", &self.kubeconfig).finish_non_exhaustive()
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A Kubernetes or kubeconfig error, with what was being done.
fn kube_error(context: String, source: impl std::error::Error + Send + Sync + 'static) -> FaultError {
    FaultError::Kubernetes { context, source: Some(Box::new(source)) }
}

impl KubernetesTargets {
    /// Clients from the kubeconfig file at `path`.
    pub fn from_kubeconfig(path: PathBuf) -> Self {
        Self { kubeconfig: Some(path), client: Arc::default() }
    }

    /// The kubeconfig's current context, and the kubeconfig.
    fn current(&self) -> Result<(String, Kubeconfig), FaultError> {
        let kubeconfig = match &self.kubeconfig {
            Some(path) => Kubeconfig::read_from(path),
            None => Kubeconfig::read(),
        }
        .map_err(|e| kube_error("cannot read the kubeconfig".into(), e))?;
        Ok((kubeconfig.current_context.clone().unwrap_or_default(), kubeconfig))
    }

    /// The kubeconfig's current context, when it is not in `contexts` (what `validate` warns
    /// about); `None` when it is, or when there is no kubeconfig to read.
    pub fn context_outside(&self, contexts: &[String]) -> Option<String> {
        let (current, _) = self.current().ok()?;
        (!contexts.contains(&current)).then_some(current)
    }

    /// A client for the current context, refused unless that context is in `contexts`.
    async fn client(&self, contexts: &[String]) -> Result<Connected, FaultError> {
        let (current, kubeconfig) = self.current()?;
        if !contexts.contains(&current) {
            return Err(FaultError::Refused(format!(
                "the kubeconfig's current context `{current}` is not in the drill's allow-list ({}); \
                 switch context (kubectl config use-context) or add it to blast_radius.kubernetes.contexts",
                contexts.join(", ")
            )));
        }
        let mut cached = self.client.lock().await;
        if let Some(connected) = cached.as_ref()
            && connected.context == current
        {
            return Ok(connected.clone());
        }
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| kube_error(format!("kubeconfig context `{current}`"), e))?;
        let timeout = request_timeout();
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| kube_error(format!("Kubernetes client for {server}"), e))?;
        let connected = Connected { context: current, server, client };
        *cached = Some(connected.clone());
        Ok(connected)
    }

    /// Runs one API call, bounded, with errors that name the server and the timeouts.
    async fn call<T>(
        connected: &Connected,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, FaultError> {
        let timeout = request_timeout();
        let bounds = format!(
            "connect timeout {}, request timeout {} (FIREDRILL_KUBE_TIMEOUT)",
            crate::duration::format(CONNECT_TIMEOUT),
            crate::duration::format(timeout)
        );
        match tokio::time::timeout(CONNECT_TIMEOUT + timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(kube_error(format!("Kubernetes API {}: {what} ({bounds})", connected.server), e)),
            Err(_) => Err(FaultError::Kubernetes {
                context: format!("Kubernetes API {}: {what}: no answer in time ({bounds})", connected.server),
                source: None,
            }),
        }
    }

    /// Pods in `namespace` matching `selector`, not already terminating.
    pub async fn list(&self, contexts: &[String], namespace: &str, selector: &str) -> Result<Vec<Target>, FaultError> {
        let connected = self.client(contexts).await?;
        let pods: Api<Pod> = Api::namespaced(connected.client.clone(), namespace);
        let what = format!("list pods in `{namespace}` matching `{selector}`");
        let list = Self::call(&connected, &what, pods.list(&ListParams::default().labels(selector))).await?;
        let mut targets: Vec<Target> = list
            .items
            .iter()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .filter_map(|pod| {
                let name = pod.metadata.name.clone()?;
                Some(Target {
                    id: name.clone(),
                    name,
                    ready: is_ready(pod),
                    marker: pod.metadata.uid.clone().unwrap_or_default(),
                })
            })
            .collect();
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(targets)
    }

    /// Deletes pod `name` with `grace`.
    pub async fn delete(
        &self,
        contexts: &[String],
        namespace: &str,
        name: &str,
        grace: Duration,
    ) -> Result<String, FaultError> {
        let connected = self.client(contexts).await?;
        let pods: Api<Pod> = Api::namespaced(connected.client.clone(), namespace);
        let seconds = u32::try_from(grace.as_secs()).unwrap_or(u32::MAX);
        let what = format!("delete pod `{namespace}/{name}`");
        Self::call(&connected, &what, pods.delete(name, &DeleteParams::default().grace_period(seconds))).await?;
        Ok(format!("deleted with {seconds}s grace"))
    }
}
