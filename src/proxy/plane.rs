//! The data plane: where proxies accept and forward connections, on a runtime of their own.
//!
//! `firedrill serve` runs the data plane on one thread with a single-threaded tokio runtime, and
//! the control plane (admin API, control API, runs) on the multi-threaded one. An HTTP request
//! through an `http` proxy passes through several tasks (the server connection, the request,
//! the upstream connection); on one thread each hand-over is a queue push, where across worker
//! threads it is often a futex wake-up of the other thread — tens of microseconds each on a
//! small VM. Journal writes and other blocking work of the control plane never stall it.

use std::io;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
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
                let _ = stopped.await;
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
