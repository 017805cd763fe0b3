//! A running proxy: its listener's accept loop and the connections it opened.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::http::HttpEngine;
use super::link::{self, LinkShared};
use super::plane::Plane;

/// How long dialling the upstream may take before the client connection is closed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error (such as running out of descriptors) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What the accept loop and its connections share.
pub struct Upstream {
    /// The proxy's name, for logs.
    pub proxy: String,
    /// Where connections go; resolved on every dial, as Toxiproxy does.
    pub address: String,
    /// For an `http` proxy, the engine that serves its connections instead of a dial.
    pub http: Option<HttpEngine>,
    /// The toxics and counters.
    pub link: LinkShared,
    /// Source of per-connection seeds (seeded once per proxy, so runs are repeatable).
    pub seeds: Arc<Mutex<SmallRng>>,
    /// Connections open on this proxy now, under its cap (see [`super::budget`]).
    pub open: Arc<std::sync::atomic::AtomicUsize>,
}

/// A bound, accepting proxy. Dropping it does not stop it: call [`Running::stop`].
pub struct Running {
    /// Stops the accept loop (and with it the listener).
    listener: CancellationToken,
    /// Closes every open connection of this proxy.
    connections: CancellationToken,
    /// The accept loop; it owns the listener, so awaiting it means the port is closed.
    task: JoinHandle<()>,
}

impl Running {
    /// Binds `listen` on the data plane and starts accepting there. Returns the address bound.
    pub async fn start(listen: &str, upstream: Upstream, plane: &Plane) -> io::Result<(SocketAddr, Self)> {
        // Bound inside the plane's runtime, so the plane's own driver watches the socket.
        let listener = plane.handle.spawn(bind(listen.to_owned())).await.map_err(io::Error::other)??;
        let local = listener.local_addr()?;
        let (stop, connections) = (CancellationToken::new(), CancellationToken::new());
        let accept =
            accept_loop(listener, Arc::new(upstream), stop.clone(), connections.clone(), plane.tracker.clone());
        let task = plane.handle.spawn(accept);
        Ok((local, Self { listener: stop, connections, task }))
    }

    /// Stops accepting and closes every connection; returns once the port is closed.
    pub async fn stop(self) {
        self.connections.cancel();
        self.stop_accepting().await;
    }

    /// Stops accepting but leaves open connections to finish; returns the token that closes them.
    pub async fn stop_accepting(self) -> CancellationToken {
        self.listener.cancel();
        let _ = self.task.await;
        self.connections
    }
}

/// The listen backlog every listener of the daemon gets: set once by `serve --backlog`, else the
/// system's maximum (`/proc/sys/net/core/somaxconn`), as Toxiproxy has it.
static BACKLOG: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The system's maximum listen backlog, or 4096 where it cannot be read.
fn system_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4096)
}

/// Sets the listen backlog of every listener made after this (the first call wins).
pub fn set_backlog(backlog: u32) {
    let _ = BACKLOG.set(backlog.max(1));
}

/// The listen backlog in force.
pub fn backlog() -> u32 {
    *BACKLOG.get_or_init(system_backlog)
}

/// A listening socket on `address` with the daemon's [`backlog`] (tokio's own bind uses 1,024,
/// capped lower by some kernels, which drops SYNs under bursts of connections).
pub fn listen_on(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(address), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(i32::try_from(backlog()).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

async fn bind(listen: String) -> io::Result<TcpListener> {
    // IPv4 first, as Toxiproxy reports it: `localhost:3310` becomes `127.0.0.1:3310`.
    let mut addresses: Vec<SocketAddr> = tokio::net::lookup_host(listen.as_str()).await?.collect();
    addresses.sort_by_key(|a| !a.is_ipv4());
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
    for address in addresses {
        match listen_on(address) {
            Ok(listener) => return Ok(listener),
            Err(err) => last = err,
        }
    }
    Err(last)
}

async fn accept_loop(
    listener: TcpListener,
    upstream: Arc<Upstream>,
    stop: CancellationToken,
    connections: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, peer)) => {
                let slot = match super::budget::admit(&upstream.open) {
                    Ok(slot) => slot,
                    Err(why) => {
                        // Refused at once, with a reset: never left hanging, and counted.
                        let _ = client.set_zero_linger();
                        drop(client);
                        upstream.link.metrics.refused(why);
                        tracing::debug!(proxy = %upstream.proxy, %peer, reason = why.as_str(), "connection refused");
                        continue;
                    }
                };
                let span = tracing::debug_span!("conn", proxy = %upstream.proxy, %peer);
                let task = connection(client, upstream.clone(), connections.child_token(), tracker.clone());
                tracker.spawn(
                    async move {
                        task.await;
                        drop(slot);
                    }
                    .instrument(span),
                );
            }
            Err(err) => {
                tracing::warn!(proxy = %upstream.proxy, %err, "accept failed");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

/// What a client connection is joined to.
enum Peer<'a> {
    /// A connection to the upstream (`tcp` mode).
    Upstream(TcpStream),
    /// The proxy's HTTP engine (`http` mode).
    Http(&'a HttpEngine),
}

async fn connection(client: TcpStream, upstream: Arc<Upstream>, cancel: CancellationToken, tracker: TaskTracker) {
    // An `http` proxy serves the connection itself; a `tcp` one needs its upstream first.
    let peer = match &upstream.http {
        Some(engine) => Peer::Http(engine),
        None => match dial(&upstream, &cancel).await {
            Some(server) => Peer::Upstream(server),
            None => return,
        },
    };
    let metrics = &upstream.link.metrics;
    let seed = upstream.seeds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).random::<u64>();
    metrics.connection_opened();
    match peer {
        Peer::Upstream(server) => link::run(client, server, upstream.link.clone(), seed, cancel).await,
        Peer::Http(engine) => engine.serve(client, upstream.link.clone(), seed, cancel, &tracker).await,
    }
    metrics.connection_closed();
}

/// Connects to the upstream; `None` (counted as a failed dial unless cancelled) closes the client.
async fn dial(upstream: &Upstream, cancel: &CancellationToken) -> Option<TcpStream> {
    let dial = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream.address.as_str()));
    tokio::select! {
        () = cancel.cancelled() => None,
        dialled = dial => match dialled {
            Ok(Ok(server)) => Some(server),
            Ok(Err(err)) => {
                tracing::info!(upstream = %upstream.address, %err, "upstream refused; closing the client");
                upstream.link.metrics.dial_failed();
                None
            }
            Err(_) => {
                tracing::info!(upstream = %upstream.address, "upstream dial timed out; closing the client");
                upstream.link.metrics.dial_failed();
                None
            }
        },
    }
}
