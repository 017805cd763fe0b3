//! The Linux system calls the proxy needs: a `timerfd` for waits finer than tokio's millisecond
//! timer, the open-files limit, the units of `/proc`, and the run queue's length (`/proc/loadavg`).
//!
//! This is the only module with `unsafe`; each block is a plain libc call on descriptors the
//! caller keeps open for the call's duration.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A one-shot timer with the kernel's resolution (`timerfd_create(2)`, `CLOCK_MONOTONIC`, the
/// clock behind [`std::time::Instant`]). tokio's timer works in whole milliseconds and its
/// driver's `epoll_wait` rounds its timeout up, so a tokio sleep ends 0–2 ms late; the latency
/// toxic waits on this instead. It must be used inside a tokio runtime with I/O enabled.
#[derive(Debug)]
pub struct Timer {
    fd: tokio::io::unix::AsyncFd<OwnedFd>,
}

/// Timers open at once, across the process. Each holds a descriptor, and descriptors belong to
/// connections first: past this many, waits fall back to tokio's timer.
const MAX_TIMERS: usize = 1024;

/// Timers open now.
static TIMERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Timer {
    /// Opens a non-blocking timerfd and registers it with the runtime; fails when
    /// 1,024 are open already.
    pub fn new() -> io::Result<Self> {
        use std::sync::atomic::Ordering;
        if TIMERS.fetch_add(1, Ordering::Relaxed) >= MAX_TIMERS {
            TIMERS.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::other(format!("{MAX_TIMERS} precise timers are open already")));
        }
        Self::open().inspect_err(|_| {
            TIMERS.fetch_sub(1, Ordering::Relaxed);
        })
    }

    fn open() -> io::Result<Self> {
        // SAFETY: plain flags; the result is checked before use.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: timerfd_create succeeded, so `fd` is open and owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns `fd`, which stays open and the same until it is dropped.
        let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }?;
        Ok(Self { fd })
    }

    /// Waits until `deadline` (at once if it has passed). Cancel-safe: dropping the future
    /// leaves the timer armed, and the next call re-arms it.
    pub async fn sleep_until(&self, deadline: std::time::Instant) -> io::Result<()> {
        let Some(wait) = deadline.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero()) else {
            return Ok(());
        };
        let value = libc::timespec {
            tv_sec: libc::time_t::try_from(wait.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(wait.subsec_nanos().cast_signed()),
        };
        let spec = libc::itimerspec { it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 }, it_value: value };
        // SAFETY: `spec` is a valid itimerspec; a null old value is allowed.
        if unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &raw const spec, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0_u8; 8];
            let read = ready.try_io(|fd| {
                // SAFETY: reads 8 bytes into an 8-byte buffer from the timerfd we own.
                let n = unsafe { libc::read(fd.as_raw_fd(), expirations.as_mut_ptr().cast(), expirations.len()) };
                if n < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
            });
            match read {
                Ok(result) => return result,
                // Not expired yet (or an expiry consumed by a dropped wait: re-armed above).
                Err(_would_block) => {}
            }
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        TIMERS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Raises the soft limit on open files to the hard limit (a proxy holds two sockets and up to
/// two pipes per connection) and returns the new soft limit.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid rlimit with cur ≤ max.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Clock ticks per second (`_SC_CLK_TCK`), the unit of `/proc/<pid>/stat`'s CPU times.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant of the system; it has no memory arguments.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The memory page size (`_SC_PAGESIZE`), the unit of `/proc/<pid>/stat`'s resident set.
pub fn page_size() -> u64 {
    // SAFETY: as above.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// The kernel's count of threads runnable right now, machine-wide (the fourth field of
/// `/proc/loadavg`, before the slash), read through a descriptor kept open.
#[derive(Debug)]
pub struct RunQueue {
    file: std::fs::File,
}

impl RunQueue {
    /// Opens `/proc/loadavg`.
    pub fn open() -> io::Result<Self> {
        Ok(Self { file: std::fs::File::open("/proc/loadavg")? })
    }

    /// Threads running or waiting for a CPU now, the caller included; `None` if unreadable.
    pub fn runnable(&self) -> Option<usize> {
        use std::os::unix::fs::FileExt;
        let mut text = [0u8; 128];
        let n = self.file.read_at(&mut text, 0).ok()?;
        let text = std::str::from_utf8(&text[..n]).ok()?;
        text.split_whitespace().nth(3)?.split('/').next()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_timer_ends_at_its_deadline_not_before() {
        let timer = Timer::new().unwrap();
        for wait in [300_u64, 2_500, 10_000] {
            let deadline = std::time::Instant::now() + std::time::Duration::from_micros(wait);
            timer.sleep_until(deadline).await.unwrap();
            assert!(std::time::Instant::now() >= deadline, "never early ({wait} µs)");
        }
        // A deadline already past returns at once; a dropped wait leaves the timer usable.
        timer.sleep_until(std::time::Instant::now()).await.unwrap();
        let long = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let cancelled = tokio::time::timeout(std::time::Duration::from_millis(5), timer.sleep_until(long)).await;
        assert!(cancelled.is_err());
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1);
        tokio::time::timeout(std::time::Duration::from_secs(5), timer.sleep_until(deadline)).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn precise_timers_are_bounded_and_counted_back() {
        raise_open_files_limit().unwrap();
        let timers: Vec<Timer> = std::iter::from_fn(|| Timer::new().ok()).take(MAX_TIMERS + 1).collect();
        // Other tests in this process may hold a few.
        assert!(timers.len() <= MAX_TIMERS && timers.len() > MAX_TIMERS - 16, "{}", timers.len());
        assert!(Timer::new().is_err());
        drop(timers);
        assert!(Timer::new().is_ok(), "dropped timers free their places");
    }

    #[test]
    fn open_files_limit_can_be_raised() {
        assert!(raise_open_files_limit().unwrap() > 0);
    }

    #[test]
    fn the_run_queue_counts_every_thread_that_wants_a_cpu() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let queue = RunQueue::open().unwrap();
        assert!(queue.runnable().unwrap() >= 1, "the reader itself runs");
        // Three threads that spin are runnable all along, whether on a CPU or waiting for one,
        // once each has run. The kernel sums its per-CPU counts without a lock, so a thread the
        // balancer is moving between CPUs can be missed by one reading: read until the count
        // shows all four, for two seconds at most, and keep the largest.
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let spinning = std::sync::Arc::new(AtomicUsize::new(0));
        let spinners: Vec<_> = (0..3)
            .map(|_| {
                let (stop, spinning) = (stop.clone(), spinning.clone());
                std::thread::spawn(move || {
                    spinning.fetch_add(1, Ordering::SeqCst);
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        while spinning.load(Ordering::SeqCst) < 3 {
            std::thread::yield_now();
        }
        let (mut most, mut readings) = (0, 0);
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while most < 4 && std::time::Instant::now() < give_up {
            most = most.max(queue.runnable().unwrap());
            readings += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for spinner in spinners {
            spinner.join().unwrap();
        }
        assert!(most >= 4, "three spinners and the reader: at most {most} in {readings} readings");
    }
}
