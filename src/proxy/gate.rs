//! Bounds on slow HTTP clients, shared by the admin API and `http` proxies: a timeout on each
//! request's headers, and a cap on connections still waiting for their first headers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long a client may take to send a request's headers before its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections at once that have not sent their first request's headers yet. Past this, the
/// one that has waited longest is closed to make room: slow clients cannot lock others out.
pub const MAX_IN_HEADERS: usize = 64;

/// The connections of one server still waiting for their first request's headers, oldest first.
#[derive(Default)]
pub struct HeaderGate {
    waiting: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    next: u64,
    ids: VecDeque<(u64, CancellationToken)>,
}

impl HeaderGate {
    /// A new, empty gate.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a newly accepted connection in the queue, evicting the oldest waiting one when the
    /// queue is full. The connection must stop serving when [`Waiter::evicted`] fires.
    pub fn enter(self: &Arc<Self>) -> Arc<Waiter> {
        let evicted = CancellationToken::new();
        let mut queue = self.lock();
        if queue.ids.len() >= MAX_IN_HEADERS
            && let Some((_, oldest)) = queue.ids.pop_front()
        {
            oldest.cancel();
        }
        queue.next += 1;
        let id = queue.next;
        queue.ids.push_back((id, evicted.clone()));
        Arc::new(Waiter { gate: Arc::clone(self), id, evicted, arrived: AtomicBool::new(false) })
    }

    /// How many connections are waiting for their first headers.
    pub fn len(&self) -> usize {
        self.lock().ids.len()
    }

    /// Whether no connection is waiting for its first headers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leave(&self, id: u64) {
        self.lock().ids.retain(|(waiting, _)| *waiting != id);
    }
}

/// One connection's place in a [`HeaderGate`]; it leaves the queue when its first request's
/// headers are in ([`Waiter::arrived`]) or when it is dropped.
pub struct Waiter {
    gate: Arc<HeaderGate>,
    id: u64,
    evicted: CancellationToken,
    arrived: AtomicBool,
}

impl Waiter {
    /// Marks the first request's headers as in: off the queue (cheap after the first call).
    pub fn arrived(&self) {
        if !self.arrived.swap(true, Ordering::Relaxed) {
            self.gate.leave(self.id);
        }
    }

    /// Fires when the connection is evicted to make room for a newer one.
    pub fn evicted(&self) -> &CancellationToken {
        &self.evicted
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.arrived();
    }
}

/// A hyper server builder (HTTP/1.1 and HTTP/2) with [`HEADER_READ_TIMEOUT`] on HTTP/1.1 headers.
pub fn server_builder() -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_connection_makes_room_and_arrivals_leave_the_queue() {
        let gate = HeaderGate::new();
        let waiters: Vec<_> = (0..MAX_IN_HEADERS).map(|_| gate.enter()).collect();
        assert_eq!(gate.len(), MAX_IN_HEADERS);
        waiters[1].arrived();
        waiters[1].arrived();
        assert_eq!(gate.len(), MAX_IN_HEADERS - 1);
        let _late = gate.enter();
        assert!(!waiters[0].evicted().is_cancelled(), "there was room: nothing evicted");
        let _later = gate.enter();
        assert!(waiters[0].evicted().is_cancelled(), "the oldest waiting one goes");
        assert!(!waiters[1].evicted().is_cancelled(), "one that sent its headers is never evicted");
        assert!(!waiters[2].evicted().is_cancelled());
        assert_eq!(gate.len(), MAX_IN_HEADERS);
        drop(waiters);
        assert_eq!(gate.len(), 2);
    }
}
