//! Why a fault could not be put in, taken out or checked: one error type for every place a
//! fault goes, with the engine's own error kept as its source.

/// A fault that could not be applied, removed or checked.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The daemon's own proxies refused a change.
    #[error("proxy `{proxy}`")]
    Proxy {
        /// The proxy.
        proxy: String,
        /// The proxy registry's answer.
        #[source]
        source: crate::proxy::ApiError,
    },
    /// The external Toxiproxy API, or its client, failed. The client crate reports in words.
    #[error("the Toxiproxy API at {address}: {detail}")]
    Toxiproxy {
        /// The API's `host:port`.
        address: String,
        /// What went wrong.
        detail: String,
    },
    /// The Docker engine refused or failed.
    #[error("{context}")]
    Docker {
        /// What was being done, to what, on which engine.
        context: String,
        /// The engine's answer.
        #[source]
        source: bollard::errors::Error,
    },
    /// The kubeconfig, or the Kubernetes API, refused or failed (or did not answer in time: no
    /// source).
    #[error("{context}")]
    Kubernetes {
        /// What was being done, on which server, with which timeouts.
        context: String,
        /// The client's error (`kube::Error`, or the kubeconfig's).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The supervisor could not act on a local replica.
    #[error(transparent)]
    Supervise(#[from] crate::supervise::SuperviseError),
    /// A signal could not be sent from here.
    #[error("{context}")]
    Signal {
        /// What was being signalled, and what to do instead.
        context: String,
        /// The system call's error.
        #[source]
        source: std::io::Error,
    },
    /// Refused before anything was touched: the target, or the configuration, does not allow it.
    #[error("{0}")]
    Refused(String),
}

impl FaultError {
    /// The message followed by every cause not already in it, for people and for the journal.
    pub fn describe(&self) -> String {
        with_causes(self)
    }
}

/// An error's message followed by each cause that does not repeat what is already said.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_carries_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Operation not permitted");
        let e = FaultError::Signal { context: "crash abc: cannot signal pid 7".into(), source: io };
        assert_eq!(e.to_string(), "crash abc: cannot signal pid 7");
        assert_eq!(e.describe(), "crash abc: cannot signal pid 7: Operation not permitted");
        assert!(std::error::Error::source(&e).is_some());
        let refused = FaultError::Refused("containers are not deleted".into());
        assert_eq!(refused.describe(), "containers are not deleted");
    }
}
