//! Replicas' output kept in size-capped log files: `<id>.log`, rotated to `<id>.log.1` when it
//! reaches the cap (the older one is dropped), so a practice environment left running for days
//! keeps at most two files' worth per replica.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{ChildStderr, ChildStdout};

/// The default cap of one log file.
pub const LOG_CAP: u64 = 8 << 20;

/// Where replicas' logs go, and how large one file may grow.
#[derive(Debug, Clone)]
pub struct LogDir {
    /// The directory of `<id>.log` files.
    pub dir: PathBuf,
    /// Bytes at which a file is rotated.
    pub cap: u64,
}

impl LogDir {
    /// The log file of a replica.
    pub fn file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }
}

/// One replica's log file, appended to and rotated at its cap.
struct LogFile {
    path: PathBuf,
    cap: u64,
    file: std::fs::File,
    size: u64,
}

fn append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    fn open(path: PathBuf, cap: u64) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = append(&path)?;
        let size = file.metadata()?.len();
        let mut log = Self { path, cap, file, size };
        if log.size >= log.cap {
            log.rotate()?;
        }
        Ok(log)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, old)?;
        self.file = append(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Appends a chunk (a small write to the page cache), rotating once the file is full.
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file.write_all(chunk)?;
        self.size += chunk.len() as u64;
        if self.size >= self.cap {
            self.rotate()?;
        }
        Ok(())
    }
}

/// Reads from a pipe that is still open; never resolves for one that has closed.
async fn read_from<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buffer: &mut [u8]) -> std::io::Result<usize> {
    match pipe {
        Some(reader) => reader.read(buffer).await,
        None => std::future::pending().await,
    }
}

/// Copies a replica's stdout and stderr into its log file until both pipes close (the
/// replica and everything it started have exited).
pub async fn keep(path: PathBuf, cap: u64, stdout: Option<ChildStdout>, stderr: Option<ChildStderr>) {
    let mut log = match LogFile::open(path, cap) {
        Ok(log) => log,
        Err(err) => {
            tracing::warn!(%err, "cannot open a replica's log file; its output is discarded");
            return;
        }
    };
    let (mut stdout, mut stderr) = (stdout, stderr);
    let (mut out, mut err) = (vec![0; 8192], vec![0; 8192]);
    while stdout.is_some() || stderr.is_some() {
        let chunk = tokio::select! {
            read = read_from(&mut stdout, &mut out) => match read {
                Ok(n) if n > 0 => &out[..n],
                _ => { stdout = None; continue; }
            },
            read = read_from(&mut stderr, &mut err) => match read {
                Ok(n) if n > 0 => &err[..n],
                _ => { stderr = None; continue; }
            },
        };
        if let Err(error) = log.write(chunk) {
            tracing::warn!(%error, path = %log.path.display(), "cannot write a replica's log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_rotates_and_the_one_before_is_dropped() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("svc-0.log");
        let mut log = LogFile::open(path.clone(), 10).unwrap_or_else(|e| panic!("{e}"));
        for chunk in [&b"aaaaaa"[..], b"aaaaaa", b"bbbbbbbbbbbb", b"cc"] {
            log.write(chunk).unwrap_or_else(|e| panic!("{e}"));
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(read(&path), "cc");
        assert_eq!(read(&dir.path().join("svc-0.log.1")), "bbbbbbbbbbbb", "the a's were dropped");
        // Reopened over the cap (a restart), the file rotates at once.
        std::fs::write(&path, "dddddddddddd").unwrap_or_else(|e| panic!("{e}"));
        let log = LogFile::open(path.clone(), 10).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((log.size, read(&path).as_str()), (0, ""));
        assert_eq!(read(&dir.path().join("svc-0.log.1")), "dddddddddddd");
    }
}
