//! The Linux system calls the proxy needs: `splice(2)` through a pipe, and the open-files limit.
//!
//! This is the only module with `unsafe`; each block is a plain libc call on descriptors the
//! caller keeps open for the call's duration.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The pipe size asked for: bigger pipes mean fewer system calls per byte on bulk transfers.
/// The kernel may grant less (`/proc/sys/fs/pipe-max-size`, per-user pipe limits).
const PIPE_SIZE: libc::c_int = 1024 * 1024;

/// A non-blocking pipe, the in-kernel buffer bytes pass through between two sockets.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes the pipe holds at most.
    capacity: usize,
}

impl Pipe {
    /// Opens a pipe with `O_NONBLOCK | O_CLOEXEC`.
    pub fn new() -> io::Result<Self> {
        let mut fds: [libc::c_int; 2] = [0; 2];
        // SAFETY: `fds` is a valid, writable array of two ints, as pipe2 requires.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ on a pipe we own; failure leaves the default size.
        let granted = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        // SAFETY: F_GETPIPE_SZ on a pipe we own.
        let size = if granted > 0 { granted } else { unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) } };
        let capacity = usize::try_from(size).ok().filter(|&c| c > 0).unwrap_or(4096);
        Ok(Self { read, write, capacity })
    }

    /// Bytes the pipe holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Moves up to `len` bytes from the socket `from` into the pipe; 0 means end of stream.
    pub fn fill_from(&self, from: RawFd, len: usize) -> io::Result<usize> {
        splice(from, self.write.as_raw_fd(), len)
    }

    /// Moves up to `len` bytes from the pipe to the socket `to`.
    pub fn drain_to(&self, to: RawFd, len: usize) -> io::Result<usize> {
        splice(self.read.as_raw_fd(), to, len)
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets are valid for pipes and sockets; both descriptors are open for the
    // duration of the call (the caller borrows the objects that own them).
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn splices_bytes_between_sockets() {
        let (mut writer, source) = UnixStream::pair().unwrap();
        let (sink, mut reader) = UnixStream::pair().unwrap();
        writer.write_all(b"through the pipe").unwrap();
        let pipe = Pipe::new().unwrap();
        assert!(pipe.capacity() >= 4096);
        let moved = pipe.fill_from(source.as_raw_fd(), pipe.capacity()).unwrap();
        assert_eq!(moved, 16);
        assert_eq!(pipe.drain_to(sink.as_raw_fd(), moved).unwrap(), 16);
        let mut out = [0; 16];
        reader.read_exact(&mut out).unwrap();
        assert_eq!(&out, b"through the pipe");
    }

    #[test]
    fn open_files_limit_can_be_raised() {
        assert!(raise_open_files_limit().unwrap() > 0);
    }
}
