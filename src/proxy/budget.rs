//! Descriptors and connection caps. Each proxied connection holds two sockets, and a timer per
//! direction while a latency toxic waits. Descriptors go to connections first, within a budget
//! that keeps a reserve for the admin and control APIs, journals and the supervisor: past the
//! budget a timer is simply not made (the wait falls back to tokio's timer), and past the
//! connection cap a new client is refused at once, so the APIs always answer.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Descriptors kept out of the budget: at most this many, and at most a quarter of the limit.
pub const RESERVE: usize = 512;

/// The process-wide budget.
#[derive(Debug)]
pub struct Budget {
    /// Descriptors proxied connections may hold together.
    capacity: usize,
    /// Held now.
    used: AtomicUsize,
    /// Proxied connections open at once, across every proxy.
    max_connections: usize,
    /// Proxied connections open at once on any one proxy.
    max_per_proxy: usize,
    /// Open now, across every proxy.
    connections: AtomicUsize,
}

static BUDGET: OnceLock<Budget> = OnceLock::new();

/// Caps asked for on the command line (`serve --max-connections`, `--max-proxy-connections`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    /// Across every proxy; `None` = what the descriptor budget allows idle connections.
    pub max_connections: Option<usize>,
    /// On one proxy; `None` = the global cap.
    pub max_per_proxy: Option<usize>,
}

/// The open-files limit of this process, raised to its hard limit first.
fn open_files_limit() -> usize {
    #[cfg(target_os = "linux")]
    if let Ok(limit) = super::sys::raise_open_files_limit() {
        return usize::try_from(limit).unwrap_or(usize::MAX);
    }
    1024
}

impl Budget {
    fn new(limit: usize, caps: Caps) -> Self {
        let reserve = RESERVE.min(limit / 4);
        let capacity = limit.saturating_sub(reserve);
        // An idle connection holds its two sockets: the cap that fits them all in the budget.
        let fits = capacity / 2;
        let max_connections = caps.max_connections.map_or(fits, |n| n.min(fits));
        let max_per_proxy = caps.max_per_proxy.map_or(max_connections, |n| n.min(max_connections));
        Self { capacity, used: AtomicUsize::new(0), max_connections, max_per_proxy, connections: AtomicUsize::new(0) }
    }
}

/// Sets the caps, from the open-files limit (raised to its hard limit). The first call wins;
/// without one, the budget is made from the limit on first use.
pub fn init(caps: Caps) {
    let _ = BUDGET.set(Budget::new(open_files_limit(), caps));
}

fn budget() -> &'static Budget {
    BUDGET.get_or_init(|| Budget::new(open_files_limit(), Caps::default()))
}

/// The caps in force: (across every proxy, per proxy, descriptors in the budget).
pub fn caps() -> (usize, usize, usize) {
    let b = budget();
    (b.max_connections, b.max_per_proxy, b.capacity)
}

/// Descriptors held against the budget; given back when dropped.
#[derive(Debug)]
pub struct Descriptors(usize);

impl Drop for Descriptors {
    fn drop(&mut self) {
        budget().used.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// Takes `n` descriptors from the budget, if they fit.
pub fn take(n: usize) -> Option<Descriptors> {
    let used = &budget().used;
    let mut now = used.load(Ordering::Relaxed);
    loop {
        if now + n > budget().capacity {
            return None;
        }
        match used.compare_exchange_weak(now, now + n, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Some(Descriptors(n)),
            Err(actual) => now = actual,
        }
    }
}

/// Why a new client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The proxy has its cap of connections open.
    ProxyCap,
    /// The daemon has its cap of connections open across every proxy.
    GlobalCap,
    /// The descriptor budget is spent (timers of waiting connections count too).
    Descriptors,
}

impl Refused {
    /// The label value in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProxyCap => "proxy_cap",
            Self::GlobalCap => "global_cap",
            Self::Descriptors => "descriptors",
        }
    }
}

/// One open proxied connection: its place under both caps and its two sockets' descriptors.
#[derive(Debug)]
pub struct Slot {
    proxy: std::sync::Arc<AtomicUsize>,
    _sockets: Descriptors,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.proxy.fetch_sub(1, Ordering::Relaxed);
        budget().connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Admits a new connection on a proxy with `open` connections, or says which cap refuses it.
pub fn admit(open: &std::sync::Arc<AtomicUsize>) -> Result<Slot, Refused> {
    let b = budget();
    if b.connections.fetch_add(1, Ordering::Relaxed) >= b.max_connections {
        b.connections.fetch_sub(1, Ordering::Relaxed);
        return Err(Refused::GlobalCap);
    }
    if open.fetch_add(1, Ordering::Relaxed) >= b.max_per_proxy {
        open.fetch_sub(1, Ordering::Relaxed);
        b.connections.fetch_sub(1, Ordering::Relaxed);
        return Err(Refused::ProxyCap);
    }
    let Some(sockets) = take(2) else {
        b.connections.fetch_sub(1, Ordering::Relaxed);
        open.fetch_sub(1, Ordering::Relaxed);
        return Err(Refused::Descriptors);
    };
    Ok(Slot { proxy: std::sync::Arc::clone(open), _sockets: sockets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_and_the_caps_follow_the_limit() {
        let b = Budget::new(20_000, Caps::default());
        assert_eq!((b.capacity, b.max_connections, b.max_per_proxy), (19_488, 9_744, 9_744));
        let small = Budget::new(400, Caps { max_connections: Some(1_000), max_per_proxy: Some(50) });
        assert_eq!((small.capacity, small.max_connections, small.max_per_proxy), (300, 150, 50));
    }
}
