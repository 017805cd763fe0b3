//! The fault proxy: Toxiproxy-compatible TCP proxies with live toxics, and their admin API.
//!
//! - [`registry`]: the proxies and every operation on them;
//! - [`listener`] and [`link`]: accepting and forwarding (copy fast path, toxic pipeline);
//! - [`plane`]: the runtime they run on; `sys`: the Linux system calls (timers, limits, run queue);
//! - [`toxic`] and [`toxics`]: the toxic model and one transformer per toxic type; [`external`]:
//!   what an external Toxiproxy's client can express;
//! - [`api`]: the HTTP admin API; [`config`]: proxy bodies and config files;
//! - [`gate`]: bounds on slow HTTP clients (admin API and `http` proxies);
//! - [`budget`]: connection caps and the descriptor budget; [`error`]: the API's error shape;
//! - [`http`]: the `http` proxy mode (request-level toxics);
//! - [`metrics`]: counters in Prometheus text format.

pub mod api;
pub mod budget;
pub mod config;
pub mod error;
pub mod external;
pub mod gate;
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
