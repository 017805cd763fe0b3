//! The one interface every place a toxic can go implements: the daemon's own proxies, an
//! external Toxiproxy API, or either of them behind an `Arc`.

use std::future::Future;
use std::sync::Arc;

use super::FaultError;
use crate::proxy::Registry;
use crate::proxy::toxic::Toxic;

/// Where faults go: the daemon's own proxies, or an external Toxiproxy-compatible API.
pub trait FaultTarget: Send + Sync {
    /// The name fault number `fault` of run `run` gets on its proxy: recognisable, and unique
    /// per run and fault index, so two runs never claim each other's toxics.
    fn toxic_name(&self, run: &str, fault: usize, toxic: &Toxic) -> String {
        format!("firedrill_{run}_{fault}_{}", toxic.name)
    }
    /// Puts `toxic` on `proxy`.
    fn apply(&self, proxy: &str, toxic: &Toxic) -> impl Future<Output = Result<(), FaultError>> + Send;
    /// Takes the toxic named `toxic` off `proxy`; a toxic that is already gone is not an error.
    fn remove(&self, proxy: &str, toxic: &str) -> impl Future<Output = Result<(), FaultError>> + Send;
    /// Cumulative (valid, bad) events of `proxy` as an SLI, when it can tell.
    fn counts(&self, _proxy: &str) -> impl Future<Output = Option<(u64, u64)>> + Send {
        std::future::ready(None)
    }
    /// Whether the toxic named `toxic` is still on `proxy` (`None`: cannot tell). A toxic someone
    /// removed behind the run's back is no evidence of anything.
    fn present(&self, _proxy: &str, _toxic: &str) -> impl Future<Output = Option<bool>> + Send {
        std::future::ready(None)
    }
}

impl FaultTarget for Registry {
    async fn counts(&self, proxy: &str) -> Option<(u64, u64)> {
        self.sli_counts(proxy).await
    }

    async fn present(&self, proxy: &str, toxic: &str) -> Option<bool> {
        self.toxics(proxy).await.ok().map(|toxics| toxics.iter().any(|t| t.name == toxic))
    }

    async fn apply(&self, proxy: &str, toxic: &Toxic) -> Result<(), FaultError> {
        self.insert_toxic(proxy, toxic.clone())
            .await
            .map(|_| ())
            .map_err(|source| FaultError::Proxy { proxy: proxy.to_owned(), source })
    }

    async fn remove(&self, proxy: &str, toxic: &str) -> Result<(), FaultError> {
        match self.remove_toxic(proxy, toxic).await {
            Ok(()) => Ok(()),
            Err(e) if e.status.as_u16() == 404 => Ok(()),
            Err(source) => Err(FaultError::Proxy { proxy: proxy.to_owned(), source }),
        }
    }
}

impl<T: FaultTarget> FaultTarget for Arc<T> {
    fn toxic_name(&self, run: &str, fault: usize, toxic: &Toxic) -> String {
        self.as_ref().toxic_name(run, fault, toxic)
    }

    fn apply(&self, proxy: &str, toxic: &Toxic) -> impl Future<Output = Result<(), FaultError>> + Send {
        self.as_ref().apply(proxy, toxic)
    }

    fn remove(&self, proxy: &str, toxic: &str) -> impl Future<Output = Result<(), FaultError>> + Send {
        self.as_ref().remove(proxy, toxic)
    }

    fn counts(&self, proxy: &str) -> impl Future<Output = Option<(u64, u64)>> + Send {
        self.as_ref().counts(proxy)
    }

    fn present(&self, proxy: &str, toxic: &str) -> impl Future<Output = Option<bool>> + Send {
        self.as_ref().present(proxy, toxic)
    }
}
