//! The daemon behind `firedrill serve`: validate every proxy file, bind the admin API and the
//! proxies, serve until told to stop, then drain connections within a bounded time.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::Failure;
use crate::fault::Proxies;
use crate::proxy::{Registry, api, config};
use crate::run::manager::{Manager, RunDirs};

/// Writes a startup line to stdout, ignoring a closed stdout: a script that read the first line
/// and went away (`firedrill serve | head -1`) must not bring the daemon down with it.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

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
    listener: TcpListener,
    control_listener: TcpListener,
    token: Option<String>,
}

impl Daemon {
    /// Validates every file, then binds the API and every proxy. Bad input binds nothing.
    pub async fn start(options: ServeOptions) -> Result<Self, Failure> {
        for (what, address) in [("admin API", options.api), ("control API", options.control)] {
            if !address.ip().is_loopback() && options.token.as_deref().is_none_or(str::is_empty) {
                return Err(Failure::BadInput(anyhow!(
                    "the {what} would listen on {address} (beyond loopback) without a token; pass --token or set FIREDRILL_TOKEN"
                )));
            }
        }
        let configs = config::load_files(&options.files).map_err(|errors| {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            Failure::BadInput(anyhow!("{}\nnothing was started; fix the proxy file(s) and try again", list.join("\n")))
        })?;
        #[cfg(target_os = "linux")]
        if let Err(err) = crate::proxy::sys::raise_open_files_limit() {
            tracing::warn!(%err, "could not raise the open-files limit");
        }
        crate::proxy::budget::init(options.caps);
        if let Some(backlog) = options.backlog {
            crate::proxy::listener::set_backlog(backlog);
        }
        let listener = crate::proxy::listener::listen_on(options.api)
            .map_err(|e| Failure::Failed(anyhow!("cannot listen on {} for the admin API: {e}", options.api)))?;
        let api = listener.local_addr().map_err(|e| Failure::Failed(e.into()))?;
        let control_listener = crate::proxy::listener::listen_on(options.control)
            .map_err(|e| Failure::Failed(anyhow!("cannot listen on {} for the control API: {e}", options.control)))?;
        let control = control_listener.local_addr().map_err(|e| Failure::Failed(e.into()))?;
        let registry = Registry::on_own_thread(options.seed)
            .map_err(|e| Failure::Failed(anyhow!("cannot start the proxies' thread: {e}")))?;
        for config in configs {
            let name = config.name.clone();
            if let Err(err) = registry.create(config).await {
                registry.shutdown(Duration::ZERO).await;
                return Err(Failure::Failed(anyhow!("cannot start proxy `{name}`: {err}")));
            }
        }
        let proxies = match &options.toxiproxy {
            Some(address) => {
                let api = Arc::new(crate::fault::toxiproxy::ToxiproxyApi::new(address));
                api.proxy_names()
                    .await
                    .map_err(|e| Failure::Failed(anyhow!("cannot use the Toxiproxy API given by --toxiproxy: {e}")))?;
                Proxies::External(api)
            }
            None => Proxies::Local(registry.clone()),
        };
        let supervisor = crate::supervise::Supervisor::with_logs(options.dirs.data.join("logs"));
        let kills = crate::fault::kill::Killers::new(supervisor);
        let manager = Manager::new(proxies, kills, options.dirs);
        let recovered = manager.recover().await;
        let rearmed = manager.rearm();
        Ok(Self {
            api,
            registry,
            control,
            manager,
            recovered,
            rearmed,
            listener,
            control_listener,
            token: options.token,
        })
    }

    /// Serves until `shutdown` completes, then stops accepting and drains connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Failure> {
        let stop = CancellationToken::new();
        let webhooks = crate::run::alertmanager::router(self.manager.clone());
        let server = tokio::spawn(api::serve_with(
            self.listener,
            self.registry.clone(),
            self.token.clone(),
            webhooks,
            stop.clone(),
        ));
        let control =
            tokio::spawn(crate::control::serve(self.control_listener, self.manager.clone(), self.token, stop.clone()));
        shutdown.await;
        // Runs first: every fault comes out before the proxies go away.
        self.manager.shutdown().await;
        self.manager.supervisor().shutdown().await;
        stop.cancel();
        if let Ok(Err(e)) = control.await {
            tracing::error!(%e, "control API failed");
        }
        let closed = self.registry.shutdown(DRAIN_TIMEOUT).await;
        if closed > 0 {
            tracing::warn!(closed, "connections still open after the drain time were closed");
        }
        match server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Failed(anyhow!("admin API failed: {e}"))),
            Err(e) => Err(Failure::Failed(anyhow!("admin API task failed: {e}"))),
        }
    }
}

/// `firedrill serve`: start, announce on stdout, serve until `shutdown`.
pub async fn run(options: ServeOptions, shutdown: impl Future<Output = ()>) -> Result<(), Failure> {
    let daemon = Daemon::start(options).await?;
    let proxies = daemon.registry.list().await;
    say!(
        "firedrill: admin API listening on http://{} with {} proxies; control API on {}",
        daemon.api,
        proxies.len(),
        daemon.control
    );
    for proxy in proxies.values() {
        say!("firedrill: proxy {} {} -> {}", proxy.name, proxy.listen, proxy.upstream);
    }
    let (global, per_proxy, descriptors) = crate::proxy::budget::caps();
    say!(
        "firedrill: at most {global} proxied connections at once ({per_proxy} per proxy), {descriptors} descriptors \
         for them; the rest is kept for the APIs"
    );
    for run in &daemon.recovered {
        say!("firedrill: closed run {run}, interrupted by a crash; its faults were removed");
    }
    for team in &daemon.rearmed {
        say!("firedrill: a blind drill for team {team}, armed before this daemon started, is armed again");
    }
    daemon.run(shutdown).await
}

/// Completes on Ctrl-C, SIGTERM or SIGHUP (the terminal running `serve` closed): all three get
/// the same ordered cleanup.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
            (Ok(mut term), Ok(mut hup)) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
