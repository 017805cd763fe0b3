//! Unix signals by name, and sending one to a process: the supervisor's kill.
//!
//! The `unsafe` calls here are `kill(2)` on a pid (or the process group) the supervisor started itself,
//! `prctl(PR_SET_PDEATHSIG)` in a child between fork and exec, and restoring `SIGPIPE`'s default.
#![allow(unsafe_code)]

use std::fmt;

/// A signal a kill fault may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(i32);

/// The names accepted in drills, with and without the `SIG` prefix.
const NAMES: [(&str, i32); 8] = [
    ("SIGKILL", libc::SIGKILL),
    ("SIGTERM", libc::SIGTERM),
    ("SIGINT", libc::SIGINT),
    ("SIGHUP", libc::SIGHUP),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGABRT", libc::SIGABRT),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGUSR2", libc::SIGUSR2),
];

impl Signal {
    /// `SIGKILL`, the default: the process gets no say.
    pub const KILL: Self = Self(libc::SIGKILL);
    /// `SIGTERM`: a polite stop.
    pub const TERM: Self = Self(libc::SIGTERM);

    /// Parses `SIGKILL`, `KILL`, `sigterm`, ….
    pub fn parse(name: &str) -> Result<Self, String> {
        let upper = name.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
        NAMES
            .iter()
            .find(|(n, _)| *n == full)
            .map(|(_, s)| Self(*s))
            .ok_or_else(|| format!("unknown signal `{name}`: use one of {}", NAMES.map(|(n, _)| n).join(", ")))
    }

    /// The signal numbered `number`.
    pub fn from_number(number: i32) -> Self {
        Self(number)
    }

    /// The signal number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// Sends this signal to `pid`.
    pub fn send(self, pid: u32) -> std::io::Result<()> {
        let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
        if pid <= 0 {
            return Err(std::io::Error::other("refusing to signal a process group"));
        }
        // SAFETY: kill(2) takes plain integers; a positive pid names one process.
        if unsafe { libc::kill(pid, self.0) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }
}

impl Signal {
    /// Sends this signal to every process of group `pgid` (a replica started as the leader of
    /// its own group has `pgid` = its pid).
    pub fn send_group(self, pgid: u32) -> std::io::Result<()> {
        let pgid = libc::pid_t::try_from(pgid).map_err(|_| std::io::Error::other("pid out of range"))?;
        if pgid <= 1 {
            return Err(std::io::Error::other("refusing to signal that process group"));
        }
        // SAFETY: kill(2) takes plain integers; a negative pid names one process group.
        if unsafe { libc::kill(-pgid, self.0) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }
}

/// Makes the child of `command` get SIGKILL when the daemon dies, so a crashed daemon leaves no
/// supervised process behind (Linux; elsewhere nothing changes).
pub fn die_with_parent(command: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: between fork and exec only async-signal-safe calls are allowed; prctl is one,
        // and the closure touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// Restores the default action of `SIGPIPE` (Rust ignores it, so `println!` into a closed pipe
/// panics): `firedrill report | head` then ends quietly, as Unix tools do. Only for commands that
/// print and exit: a process that writes into sockets must keep ignoring it.
pub fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: signal(2) with SIG_DFL installs no handler; called once at start, before threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match NAMES.iter().find(|(_, s)| *s == self.0) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_or_without_the_prefix() {
        assert_eq!(Signal::parse("SIGKILL").unwrap(), Signal::KILL);
        assert_eq!(Signal::parse("term").unwrap(), Signal::TERM);
        assert_eq!(Signal::TERM.to_string(), "SIGTERM");
        assert!(Signal::parse("SIGNOPE").unwrap_err().starts_with("unknown signal `SIGNOPE`: use one of SIGKILL"));
    }
}
