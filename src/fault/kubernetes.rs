//! Kill faults on Kubernetes pods, through the API (kube-rs): list by namespace and label
//! selector, delete with a grace period — only when the kubeconfig's current context and the
//! namespace are in the drill's allow-list.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::kill::Target;

/// A kubeconfig-driven client, made on first use and kept per context.
#[derive(Clone, Default)]
pub struct KubernetesTargets {
    /// The kubeconfig file; `None` = `$KUBECONFIG` or `~/.kube/config`, as kubectl.
    kubeconfig: Option<PathBuf>,
    client: Arc<tokio::sync::Mutex<Option<(String, Client)>>>,
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

impl KubernetesTargets {
    /// Clients from the kubeconfig file at `path`.
    pub fn from_kubeconfig(path: PathBuf) -> Self {
        Self { kubeconfig: Some(path), client: Arc::default() }
    }

    /// A client for the current context, refused unless that context is in `contexts`.
    async fn client(&self, contexts: &[String]) -> Result<Client, String> {
        let kubeconfig = match &self.kubeconfig {
            Some(path) => Kubeconfig::read_from(path),
            None => Kubeconfig::read(),
        }
        .map_err(|e| format!("cannot read the kubeconfig: {e}"))?;
        let current = kubeconfig.current_context.clone().unwrap_or_default();
        if !contexts.contains(&current) {
            return Err(format!(
                "the kubeconfig's current context `{current}` is not in the drill's allow-list ({}); \
                 switch context (kubectl config use-context) or add it to blast_radius.kubernetes.contexts",
                contexts.join(", ")
            ));
        }
        let mut cached = self.client.lock().await;
        if let Some((context, client)) = cached.as_ref()
            && *context == current
        {
            return Ok(client.clone());
        }
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| format!("kubeconfig context `{current}`: {e}"))?;
        let client = Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))?;
        *cached = Some((current, client.clone()));
        Ok(client)
    }

    /// Pods in `namespace` matching `selector`, not already terminating.
    pub async fn list(&self, contexts: &[String], namespace: &str, selector: &str) -> Result<Vec<Target>, String> {
        let pods: Api<Pod> = Api::namespaced(self.client(contexts).await?, namespace);
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| format!("Kubernetes: list pods in `{namespace}` matching `{selector}`: {e}"))?;
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
    ) -> Result<String, String> {
        let pods: Api<Pod> = Api::namespaced(self.client(contexts).await?, namespace);
        let seconds = u32::try_from(grace.as_secs()).unwrap_or(u32::MAX);
        pods.delete(name, &DeleteParams::default().grace_period(seconds))
            .await
            .map_err(|e| format!("Kubernetes: delete pod `{namespace}/{name}`: {e}"))?;
        Ok(format!("deleted with {seconds}s grace"))
    }
}
