//! The data plane: where proxies accept and forward connections, on a runtime of their own.
//!
//! `firedrill serve` runs the data plane on one thread with a single-threaded tokio runtime, and
//! the control plane (admin API, control API, runs) on the multi-threaded one. An HTTP request
//! through an `http` proxy passes through several tasks (the server connection, the request,
//! the upstream connection); on one thread each hand-over is a queue push, where across worker
//! threads it is often a futex wake-up of the other thread — tens of microseconds each on a
//! small VM. Journal writes and other blocking work of the control plane never stall it. After
//! forwarding bytes the thread busy-polls for 200 µs before it parks (see `BUSY_POLL`), unless the
//! machine has more threads runnable than CPUs (polling would only take CPU from them) or the bytes
//! came in a bulk read (the sender streams ahead of the proxy: see `BULK_READ`).

use std::cell::Cell;
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
                    () = keep_a_timer_armed() => {}
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
/// without that wake-up. Past it the thread parks as before, so an idle proxy uses no CPU (but
/// for one wake-up per [`TIMER_HORIZON`]).
const BUSY_POLL: Duration = Duration::from_micros(200);

/// How long the thread goes without polling once it found more threads runnable than CPUs.
/// Then the machine is busy: the CPU will not halt when the thread parks, and every microsecond
/// spent polling is taken from the processes that send and answer the traffic.
const BUSY_MACHINE_REST: Duration = Duration::from_millis(1);

/// Polls between two looks at the machine's run queue (each look is a `pread` of
/// `/proc/loadavg`, about as dear as a poll).
const LOOK_EVERY: u32 = 8;

/// Looks in a row (about 100 µs) that must find more threads runnable than CPUs before the poll
/// rests: a moment's crowd (the threads that answer waking up) is not a busy machine, and in
/// one the poll pays most, since a parked thread would wait for a CPU to wake on. Measured
/// (BENCHMARKS.md): resting after 4 looks put sockperf's p99 through the proxy at 147 µs, after
/// 16 at 98, never at 94; `tcp` mode under 64 HTTP/2 streams cost 3.1 µs of CPU per request
/// after 16 and 8.9 never resting.
const CROWDED_LOOKS: u32 = 16;

/// A read at least this large means the sender streams ahead of the proxy: its next bytes arrive
/// before a wake-up could delay anything that waits for them, and polling only picks them up
/// sooner, in smaller pieces — more calls and more CPU per byte. So a bulk read starts no poll
/// and stops a running one at its next look. Through the proxy, iperf3's reads averaged 140 KB
/// with the poll and 436 KB without it; a request or a reply in a round trip is far smaller
/// (a 16 KiB threshold measured the same as this one). Measured (BENCHMARKS.md): with the poll,
/// 2 s of iperf3 took 24,000 reads and 418 ms of CPU per GB; without it 8,800 reads and 383 ms.
const BULK_READ: usize = 64 * 1024;

thread_local! {
    /// Signalled by [`moved`]; the busy poll of this thread's data plane waits on it.
    static ACTIVITY: Arc<Notify> = Arc::new(Notify::new());
    /// Whether the last read this thread's data plane reported was a bulk one.
    static STREAMING: Cell<bool> = const { Cell::new(false) };
}

/// Tells this thread's data plane that a read (or an `http` proxy's write to its client) just
/// moved `bytes`, so it polls for the next ones for a while instead of parking — unless that was
/// a bulk move (64 KiB or more, `BULK_READ`), which stops the poll instead. Costs a flag store
/// when the poll is already running; a no-op on a thread with no data plane.
pub fn moved(bytes: usize) {
    let streaming = bytes >= BULK_READ;
    STREAMING.with(|flag| flag.set(streaming));
    if !streaming {
        ACTIVITY.with(|activity| activity.notify_one());
    }
}

/// How far ahead the data plane always has a timer armed (see [`keep_a_timer_armed`]): below the
/// `http` mode's default upstream timeout (15 s), so that timeout never arms the earliest timer.
const TIMER_HORIZON: Duration = Duration::from_secs(10);

/// Keeps a timer armed at most [`TIMER_HORIZON`] ahead. tokio wakes its driver (a `write` to an
/// eventfd) whenever a timer is armed earlier than every other, as if the driver slept on another
/// thread; on this one thread it never does, so the write is wasted. Without this timer each
/// `http` request's upstream timeout was such a write, one per request (counted with
/// `perf stat -e syscalls:sys_enter_write`); with it, timers due later than the horizon are armed
/// without one. An idle data plane wakes once per horizon for it.
async fn keep_a_timer_armed() {
    loop {
        tokio::time::sleep(TIMER_HORIZON).await;
    }
}

/// Polls the runtime's I/O driver without blocking (each `yield_now` on a current-thread runtime
/// is an `epoll_wait` with a zero timeout) for [`BUSY_POLL`] after each activity, offering the
/// CPU to any other thread that wants it (`sched_yield`) between polls. The poll only pays while
/// a CPU would otherwise sit idle: when the kernel has more threads runnable than there are CPUs
/// (this one included), the thread stops polling for [`BUSY_MACHINE_REST`]; after a bulk read it
/// stops until the next small one. Where the run queue cannot be read, it never polls.
async fn busy_poll() {
    let activity = ACTIVITY.with(Arc::clone);
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let Ok(run_queue) = super::sys::RunQueue::open() else { return std::future::pending().await };
    let mut crowded = 0;
    loop {
        activity.notified().await;
        let until = Instant::now() + BUSY_POLL;
        let mut polls = 0u32;
        while Instant::now() < until {
            if polls.is_multiple_of(LOOK_EVERY) {
                if STREAMING.with(Cell::get) {
                    break;
                }
                crowded = if run_queue.runnable().is_none_or(|runnable| runnable > cpus) { crowded + 1 } else { 0 };
                if crowded >= CROWDED_LOOKS {
                    crowded = 0;
                    tokio::time::sleep(BUSY_MACHINE_REST).await;
                    break;
                }
            }
            tokio::task::yield_now().await;
            std::thread::yield_now();
            polls = polls.wrapping_add(1);
        }
    }
}
