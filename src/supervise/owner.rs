//! Who holds a listening port (Linux, from `/proc`): a replica's TCP or HTTP health check counts
//! only when the listener belongs to the replica's own process group, so an orphan of an
//! earlier process still holding the port never passes for the replica.

use std::collections::BTreeSet;

/// The socket inodes listening on `port` (IPv4 and IPv6, any address).
fn listener_inodes(port: u16) -> BTreeSet<u64> {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(local), Some(state), Some(inode)) = (fields.get(1), fields.get(3), fields.get(9)) else {
                continue;
            };
            let listening = *state == "0A";
            let on_port = local.rsplit(':').next().and_then(|hex| u16::from_str_radix(hex, 16).ok()) == Some(port);
            if let (true, true, Ok(inode)) = (listening, on_port, inode.parse::<u64>()) {
                inodes.insert(inode);
            }
        }
    }
    inodes
}

/// The process group of `pid`, from `/proc/<pid>/stat` (the field after state and ppid).
fn group_of(pid: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

/// Whether a process of group `pgid` holds one of `inodes` open.
fn group_holds(pgid: u32, inodes: &BTreeSet<u64>) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else { return false };
    procs.filter_map(Result::ok).any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { return false };
        if group_of(pid) != Some(pgid) {
            return false;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
        fds.filter_map(Result::ok).any(|fd| {
            std::fs::read_link(fd.path())
                .ok()
                .and_then(|target| {
                    let target = target.to_str()?.to_owned();
                    target.strip_prefix("socket:[")?.strip_suffix(']')?.parse::<u64>().ok()
                })
                .is_some_and(|inode| inodes.contains(&inode))
        })
    })
}

/// Whether the listener on `port` belongs to process group `pgid`: `None` when nothing on this
/// host listens there (the address is elsewhere) or `/proc` cannot say.
pub fn port_held_by_group(port: u16, pgid: u32) -> Option<bool> {
    let inodes = listener_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    Some(group_holds(pgid, &inodes))
}

/// The port of a health check's address: `127.0.0.1:8080`, `http://127.0.0.1:8080/healthz`.
pub fn port_of(address: &str) -> Option<u16> {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_found_in_its_own_group_and_not_in_another() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = std::process::id();
        let group = group_of(&me.to_string()).unwrap();
        assert_eq!(port_held_by_group(port, group), Some(true));
        assert_eq!(port_held_by_group(port, u32::MAX - 1), Some(false));
        drop(listener);
        assert_eq!(port_held_by_group(port, group), None, "nothing listens any more");
    }

    #[test]
    fn ports_are_read_from_addresses_and_urls() {
        assert_eq!(port_of("127.0.0.1:8080"), Some(8080));
        assert_eq!(port_of("http://127.0.0.1:9/healthz"), Some(9));
        assert_eq!(port_of("http://[::1]:7/x"), Some(7));
        assert_eq!(port_of("http://localhost/x"), None);
    }
}
