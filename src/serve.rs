//! The daemon behind `firedrill serve`: validate every proxy file, bind the admin API and the
//! proxies, serve until told to stop, then drain connections within a bounded time.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fault::Proxies;
use crate::proxy::{Registry, api, config};
use crate::run::manager::{Manager, RunDirs};

/// How long open connections may take to finish after a stop signal before they are closed.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What `firedrill serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Admin API address.
    pub api: SocketAddr,
    /// Bearer token for the API.
    pub token: Option<String>,
    /// Seed for random draws.
    pub seed: Option<u64>,
    /// Proxy files to load.
    pub files: Vec<PathBuf>,
    /// Address of the gRPC control API.
    pub control: SocketAddr,
    /// Where drills, journals and scorecards live.
    pub dirs: RunDirs,
    /// An external Toxiproxy-compatible API for the drills' faults, instead of the own proxies.
    pub toxiproxy: Option<String>,
    /// The listen backlog of every listener; `None` = the system's maximum (`somaxconn`).
    pub backlog: Option<u32>,
    /// Connection caps of the proxies (see [`crate::proxy::budget`]).
    pub caps: crate::proxy::budget::Caps,
    /// Alertmanagers (base URLs) the built-in burn-rate alerts are sent to.
    pub alertmanagers: Vec<String>,
    /// A second bearer token that opens the webhooks and nothing else (for Alertmanager).
    pub webhook_token: Option<String>,
    /// Where game-day plans are (`gamedays/*.toml`); those with a `start` are scheduled.
    pub gamedays: PathBuf,
}

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An API would listen beyond loopback without a token (bad input).
    #[error(
        "the {what} would listen on {address} (beyond loopback) without a token; pass --token or set FIREDRILL_TOKEN"
    )]
    NoToken {
        /// Which API.
        what: &'static str,
        /// Where it would listen.
        address: SocketAddr,
    },
    /// `--webhook-token` was given empty (bad input).
    #[error("--webhook-token is empty: give it a secret, or leave it out")]
    EmptyWebhookToken,
    /// The proxy files hold errors, one located line each (bad input).
    #[error("{}\nnothing was started; fix the proxy file(s) and try again", .0.join("\n"))]
    ProxyFiles(Vec<String>),
    /// An API's address cannot be bound.
    #[error("cannot listen on {address} for the {what}")]
    Listen {
        /// Which API.
        what: &'static str,
        /// The address asked for.
        address: SocketAddr,
        /// The underlying error, kept as the source.
        #[source]
        source: std::io::Error,
    },
    /// A socket call failed.
    #[error(transparent)]
    Io(std::io::Error),
    /// The proxies' runtime thread did not start.
    #[error("cannot start the proxies' thread")]
    ProxyThread(#[source] std::io::Error),
    /// A proxy of the files could not be started (its address is taken, …).
    #[error("cannot start proxy `{name}`")]
    Proxy {
        /// The proxy.
        name: String,
        /// The underlying error, kept as the source.
        #[source]
        source: crate::proxy::ApiError,
    },
    /// The external Toxiproxy API cannot be used.
    #[error("cannot use the Toxiproxy API given by --toxiproxy")]
    Toxiproxy(#[source] crate::fault::FaultError),
    /// The admin API's task panicked or was cancelled.
    #[error("admin API task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl ServeError {
    /// Whether the input (flags, files) is at fault rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::NoToken { .. } | Self::EmptyWebhookToken | Self::ProxyFiles(_))
    }
}

/// A daemon whose API and proxies are bound and ready.
pub struct Daemon {
    /// The admin API's bound address.
    pub api: SocketAddr,
    /// The proxies.
    pub registry: Arc<Registry>,
    /// The control API's bound address.
    pub control: SocketAddr,
    /// The runs.
    pub manager: Arc<Manager>,
    /// Runs a crash left open, closed at start (their faults removed).
    pub recovered: Vec<String>,
    /// The teams of blind drills an earlier daemon armed, waiting again.
    pub rearmed: Vec<String>,
    /// The game-day console, under `/ui/` on the admin address.
    pub console: Arc<crate::console::Console>,
    /// The game days.
    pub gamedays: Arc<crate::gameday::Gamedays>,
    /// Game days a crash left open, closed at start (as interrupted).
    pub closed_gamedays: Vec<String>,
    /// The plans scheduled.
    pub scheduled: Vec<String>,
    listener: TcpListener,
    control_listener: TcpListener,
    token: Option<String>,
    webhook_token: Option<String>,
    /// Where built-in alerts are sent.
    alertmanagers: Vec<String>,
}

impl Daemon {
    /// Validates every file, then binds the API and every proxy. Bad input binds nothing.
    pub async fn start(options: ServeOptions) -> Result<Self, ServeError> {
        for (what, address) in [("admin API", options.api), ("control API", options.control)] {
            if !address.ip().is_loopback() && options.token.as_deref().is_none_or(str::is_empty) {
                return Err(ServeError::NoToken { what, address });
            }
        }
        if options.webhook_token.as_deref().is_some_and(str::is_empty) {
            return Err(ServeError::EmptyWebhookToken);
        }
        let configs = config::load_files(&options.files)
            .map_err(|errors| ServeError::ProxyFiles(errors.iter().map(ToString::to_string).collect()))?;
        #[cfg(target_os = "linux")]
        if let Err(err) = crate::proxy::sys::raise_open_files_limit() {
            tracing::warn!(%err, "could not raise the open-files limit");
        }
        crate::proxy::budget::init(options.caps);
        if let Some(backlog) = options.backlog {
            crate::proxy::listener::set_backlog(backlog);
        }
        let listener = crate::proxy::listener::listen_on(options.api).map_err(|source| ServeError::Listen {
            what: "admin API",
            address: options.api,
            source,
        })?;
        let api = listener.local_addr().map_err(ServeError::Io)?;
        let control_listener = crate::proxy::listener::listen_on(options.control)
            .map_err(|source| ServeError::Listen { what: "control API", address: options.control, source })?;
        let control = control_listener.local_addr().map_err(ServeError::Io)?;
        let registry = Registry::on_own_thread(options.seed).map_err(ServeError::ProxyThread)?;
        for config in configs {
            let name = config.name.clone();
            if let Err(err) = registry.create(config).await {
                registry.shutdown(Duration::ZERO).await;
                return Err(ServeError::Proxy { name, source: err });
            }
        }
        let proxies = match &options.toxiproxy {
            Some(address) => {
                let api = Arc::new(crate::fault::toxiproxy::ToxiproxyApi::new(address));
                api.proxy_names().await.map_err(ServeError::Toxiproxy)?;
                Proxies::External(api)
            }
            None => Proxies::Local(registry.clone()),
        };
        let supervisor = crate::supervise::Supervisor::with_logs(options.dirs.data.join("logs"));
        let kills = crate::fault::kill::Killers::new(supervisor);
        let data = options.dirs.data.clone();
        let manager = Manager::new(proxies, kills, options.dirs);
        // `/metrics` shows the runs beside the proxies. A weak reference: the registry must not
        // keep the manager (and its runs) alive.
        let runs = Arc::downgrade(&manager);
        registry.add_metrics(Arc::new(move || {
            let mut text = runs.upgrade().map(|m| m.metrics()).unwrap_or_default();
            text.push_str(&process_metrics());
            text
        }));
        let recovered = manager.recover().await;
        let rearmed = manager.rearm();
        let gamedays = crate::gameday::Gamedays::new(
            manager.clone(),
            options.gamedays.clone(),
            &data,
            crate::gameday::notify::Retry::default(),
        );
        let closed_gamedays = gamedays.recover();
        let scheduled = gamedays.schedule_all(i64::try_from(crate::clock::wall_ms()).unwrap_or(i64::MAX));
        Ok(Self {
            api,
            registry,
            control,
            console: crate::console::Console::new(manager.clone(), gamedays.clone(), options.token.clone()),
            gamedays,
            closed_gamedays,
            scheduled,
            manager,
            recovered,
            rearmed,
            listener,
            control_listener,
            token: options.token,
            webhook_token: options.webhook_token,
            alertmanagers: options.alertmanagers,
        })
    }

    /// Serves until `shutdown` completes, then stops accepting and drains connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let stop = CancellationToken::new();
        let webhooks = crate::run::alertmanager::router(self.manager.clone());
        // The console sits beside the API's guard, not behind it: the API refuses browsers.
        let app = api::router_with(self.registry.clone(), self.token.clone(), self.webhook_token.clone(), webhooks)
            .merge(crate::console::router(self.console.clone()));
        let server = tokio::spawn(api::serve_router(self.listener, app, stop.clone()));
        let control =
            tokio::spawn(crate::control::serve(self.control_listener, self.gamedays.clone(), self.token, stop.clone()));
        let paging = CancellationToken::new();
        let pager = (!self.alertmanagers.is_empty()).then(|| {
            let manager = Arc::downgrade(&self.manager);
            tokio::spawn(crate::run::manager::page::push(manager, self.alertmanagers.clone(), paging.clone()))
        });
        shutdown.await;
        // Game days first, so none starts its next drill; then runs: every fault comes out
        // before the proxies go away.
        self.gamedays.shutdown().await;
        self.manager.shutdown().await;
        self.manager.supervisor().shutdown().await;
        // The runs have ended: what was sent firing is sent resolved.
        paging.cancel();
        if let Some(pager) = pager {
            let _ = pager.await;
        }
        stop.cancel();
        if let Ok(Err(e)) = control.await {
            tracing::error!(%e, "control API failed");
        }
        let closed = self.registry.shutdown(DRAIN_TIMEOUT).await;
        if closed > 0 {
            tracing::warn!(closed, "connections still open after the drain time were closed");
        }
        server.await.map_err(ServeError::Task)
    }
}

/// `firedrill_build_info` and the usual `process_*` series (as Prometheus's client libraries
/// name them), from `/proc/self`; on a system without `/proc` only the build info.
fn process_metrics() -> String {
    let mut out = format!(
        "# HELP firedrill_build_info The firedrill build serving this endpoint.\n# TYPE firedrill_build_info gauge\n\
         firedrill_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    );
    #[cfg(target_os = "linux")]
    out.push_str(&linux_process_metrics().unwrap_or_default());
    out
}

#[cfg(target_os = "linux")]
fn linux_process_metrics() -> Option<String> {
    use std::fmt::Write as _;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let ticks = crate::proxy::sys::clock_ticks_per_second() as f64;
    let cpu = (field(14)? + field(15)?) as f64 / ticks;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
    let start = boot as f64 + field(22)? as f64 / ticks;
    let virtual_bytes = field(23)?;
    let resident = field(24)? * crate::proxy::sys::page_size();
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count();
    let max = std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok());
    let mut out = String::new();
    let mut series = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    series("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.", format!("{cpu}"));
    series(
        "process_start_time_seconds",
        "gauge",
        "When the process started, in seconds since the Unix epoch.",
        format!("{start}"),
    );
    series("process_resident_memory_bytes", "gauge", "Resident memory, in bytes.", resident.to_string());
    series("process_virtual_memory_bytes", "gauge", "Virtual memory, in bytes.", virtual_bytes.to_string());
    series("process_open_fds", "gauge", "Open file descriptors.", open.to_string());
    if let Some(max) = max {
        series("process_max_fds", "gauge", "The most file descriptors the process may open.", max.to_string());
    }
    Some(out)
}
