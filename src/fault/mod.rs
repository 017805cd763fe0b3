//! Where faults go: the daemon's own proxies, or an external Toxiproxy-compatible admin API.

pub mod toxiproxy;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::proxy::Registry;
use crate::proxy::toxic::Toxic;
use crate::run::runner::FaultTarget;

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
    pub async fn names(&self) -> Result<BTreeSet<String>, String> {
        match self {
            Self::Local(registry) => Ok(registry.list().await.into_keys().collect()),
            Self::External(api) => api.proxy_names().await,
        }
    }
}

impl FaultTarget for Proxies {
    async fn apply(&self, proxy: &str, toxic: &Toxic) -> Result<(), String> {
        match self {
            Self::Local(registry) => registry.apply(proxy, toxic).await,
            Self::External(api) => api.apply(proxy, toxic).await,
        }
    }

    async fn remove(&self, proxy: &str, toxic: &str) -> Result<(), String> {
        match self {
            Self::Local(registry) => registry.remove(proxy, toxic).await,
            Self::External(api) => api.remove(proxy, toxic).await,
        }
    }
}
