//! The fault proxy: Toxiproxy-compatible TCP proxies with live toxics, and their admin API.
//!
//! - [`registry`]: the proxies and every operation on them;
//! - [`listener`] and [`link`]: accepting and forwarding (splice fast path, toxic pipeline);
//! - [`plane`]: the runtime they run on;
//! - [`toxic`] and [`toxics`]: the toxic model and one transformer per toxic type;
//! - [`api`]: the HTTP admin API; [`config`]: proxy bodies and config files;
//! - [`metrics`]: counters in Prometheus text format.

pub mod api;
pub mod budget;
pub mod config;
pub mod error;
pub mod http;
pub mod link;
pub mod listener;
pub mod metrics;
pub mod plane;
pub mod registry;
#[cfg(target_os = "linux")]
pub mod sys;
pub mod toxic;
pub mod toxics;

pub use error::ApiError;
pub use registry::{ProxyView, Registry};
