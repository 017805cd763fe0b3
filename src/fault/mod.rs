//! Where faults go: the daemon's own proxies, or an external Toxiproxy-compatible admin API.

pub mod docker;
mod error;
pub mod kill;
pub mod kubernetes;
mod target;
pub mod toxiproxy;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::proxy::Registry;
use crate::proxy::toxic::Toxic;
pub use error::{FaultError, with_causes};
pub use target::FaultTarget;

/// Where each proxy listens and sends, by name (`listen -> upstream`, or `external`).
pub type Addresses = std::collections::BTreeMap<String, String>;

/// The proxies a daemon's drills act on.
#[derive(Clone)]
pub enum Proxies {
    /// The daemon's own proxies.
    Local(Arc<Registry>),
    /// Another Toxiproxy-compatible API (Toxiproxy itself, or another firedrill daemon).
    External(Arc<toxiproxy::ToxiproxyApi>),
}

impl Proxies {
    /// The names of the proxies drills may use.
    pub async fn names(&self) -> Result<BTreeSet<String>, FaultError> {
        match self {
            Self::Local(registry) => Ok(registry.list().await.into_keys().collect()),
            Self::External(api) => api.proxy_names().await,
        }
    }
}

impl Proxies {
    /// Creates each proxy of `configs` not there yet (by name); returns the names created. An
    /// external API's proxies are its own: none is created there, and any missing is an error.
    pub async fn ensure(&self, configs: Vec<crate::proxy::config::ProxyConfig>) -> Result<Vec<String>, FaultError> {
        let present = self.names().await?;
        let missing: Vec<_> = configs.into_iter().filter(|c| !present.contains(&c.name)).collect();
        match self {
            Self::Local(registry) => {
                let mut created = Vec::new();
                for config in missing {
                    let proxy = config.name.clone();
                    registry
                        .create(config)
                        .await
                        .map_err(|source| FaultError::Proxy { proxy: proxy.clone(), source })?;
                    created.push(proxy);
                }
                Ok(created)
            }
            Self::External(_) if missing.is_empty() => Ok(Vec::new()),
            Self::External(_) => Err(FaultError::Refused(format!(
                "the external Toxiproxy API has no proxy {}: create them there (firedrill does not create proxies on another API)",
                missing.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Where each proxy listens and sends (`listen -> upstream`); an external API's proxies by
    /// name only.
    pub async fn addresses(&self) -> Result<Addresses, FaultError> {
        match self {
            Self::Local(registry) => Ok(registry
                .list()
                .await
                .into_iter()
                .map(|(name, view)| (name, format!("{} -> {}", view.listen, view.upstream)))
                .collect()),
            Self::External(api) => {
                Ok(api.proxy_names().await?.into_iter().map(|name| (name, "external".to_owned())).collect())
            }
        }
    }

    /// The names of the proxies in `http` mode (an external API has none that firedrill knows of).
    pub async fn http_names(&self) -> BTreeSet<String> {
        match self {
            Self::Local(registry) => registry
                .list()
                .await
                .into_iter()
                .filter(|(_, view)| view.mode == crate::proxy::config::Mode::Http)
                .map(|(name, _)| name)
                .collect(),
            Self::External(_) => BTreeSet::new(),
        }
    }
}

impl FaultTarget for Proxies {
    async fn counts(&self, proxy: &str) -> Option<(u64, u64)> {
        match self {
            Self::Local(registry) => registry.sli_counts(proxy).await,
            Self::External(_) => None,
        }
    }

    async fn present(&self, proxy: &str, toxic: &str) -> Option<bool> {
        match self {
            Self::Local(registry) => registry.present(proxy, toxic).await,
            Self::External(_) => None,
        }
    }

    fn toxic_name(&self, run: &str, fault: usize, toxic: &Toxic) -> String {
        match self {
            Self::Local(registry) => registry.toxic_name(run, fault, toxic),
            Self::External(api) => api.toxic_name(run, fault, toxic),
        }
    }

    async fn apply(&self, proxy: &str, toxic: &Toxic) -> Result<(), FaultError> {
        match self {
            Self::Local(registry) => registry.apply(proxy, toxic).await,
            Self::External(api) => api.apply(proxy, toxic).await,
        }
    }

    async fn remove(&self, proxy: &str, toxic: &str) -> Result<(), FaultError> {
        match self {
            Self::Local(registry) => registry.remove(proxy, toxic).await,
            Self::External(api) => api.remove(proxy, toxic).await,
        }
    }
}
