//! The data plane: where proxies accept and forward connections, on a runtime of their own.
//!
//! `firedrill serve` runs the data plane on one thread with a single-threaded tokio runtime, and
//! the control plane (admin API, control API, runs) on the multi-threaded one. An HTTP request
//! through an `http` proxy passes through several tasks (the server connection, the request,
//! the upstream connection); on one thread each hand-over is a queue push, where across worker
//! threads it is often a futex wake-up of the other thread — tens of microseconds each on a
//! small VM. Journal writes and other blocking work of the control plane never stall it. After
//! forwarding bytes the thread busy-polls for 200 µs before it parks (see `BUSY_POLL`).

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::{Notify, oneshot};
use tokio_util::task::TaskTracker;

/// Where a proxy's tasks run, and what tracks them for the drain.
#[derive(Clone)]
pub struct Plane {
    /// The runtime proxies bind and run on.
    pub handle: Handle,
    /// Tracks connection tasks, so shutdown can wait for them to drain.
    pub tracker: TaskTracker,
}

/// A thread running a single-threaded runtime until dropped.
pub struct PlaneThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl PlaneThread {
    /// Starts the thread and its runtime.
    pub fn start() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("firedrill-proxies".into()).spawn(move || {
            // Tasks run while the thread blocks here; dropping the runtime afterwards cancels
            // whatever a drain left.
            runtime.block_on(async {
                tokio::select! {
                    _ = stopped => {}
                    () = busy_poll() => {}
                }
            });
        })?;
        Ok(Self { handle, stop: Some(stop) })
    }

    /// The runtime's handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for PlaneThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How long the data-plane thread keeps polling for I/O after it last forwarded bytes, before it
/// lets itself sleep in `epoll_wait`. On a VM an idle vCPU halts, and waking it for the next
/// packet costs tens of microseconds: a reply that comes back within this window is picked up
/// without that wake-up. Past it the thread parks as before, so an idle proxy uses no CPU.
const BUSY_POLL: Duration = Duration::from_micros(200);

thread_local! {
    /// Signalled by [`active`]; the busy poll of this thread's data plane waits on it.
    static ACTIVITY: Arc<Notify> = Arc::new(Notify::new());
}

/// Tells this thread's data plane that bytes just moved, so it polls for the next ones for a
/// while instead of parking. Costs a flag store when the poll is already running; a no-op on a
/// thread with no data plane.
pub fn active() {
    ACTIVITY.with(|activity| activity.notify_one());
}

/// Polls the runtime's I/O driver without blocking (each `yield_now` on a current-thread runtime
/// is an `epoll_wait` with a zero timeout) for [`BUSY_POLL`] after each activity.
async fn busy_poll() {
    let activity = ACTIVITY.with(Arc::clone);
    loop {
        activity.notified().await;
        let until = Instant::now() + BUSY_POLL;
        while Instant::now() < until {
            tokio::task::yield_now().await;
        }
    }
}
