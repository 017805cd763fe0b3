//! One run of the `firedrill` binary as a user runs it — arguments, environment, directory —
//! bounded in time (a verb that hangs fails its test, naming itself, instead of hanging CI),
//! then held to the exact stdout, stderr and exit code it must end with (after `just`'s
//! `tests/test.rs`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a verb may take unless its test says otherwise: `mitigate` and `resolve` wait for
/// the steady state (up to a window plus a minute), so longer than any of them.
pub const LIMIT: Duration = Duration::from_secs(180);

/// A `firedrill` command line about to run.
pub struct Verb {
    command: Command,
    line: String,
    limit: Duration,
}

/// How a verb ended.
#[derive(Debug)]
pub struct Ran {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Verb {
    /// `firedrill ARGS…`, with stdin closed, within [`LIMIT`].
    pub fn new<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_firedrill"));
        let mut line = "firedrill".to_owned();
        for arg in args {
            line.push(' ');
            line.push_str(&arg.as_ref().to_string_lossy());
            command.arg(arg);
        }
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        Self { command, line, limit: LIMIT }
    }

    /// With `key=value` in its environment.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Run in `dir`.
    pub fn dir(mut self, dir: &std::path::Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Without `key` in its environment.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    /// Allowed to take up to `limit`.
    pub fn limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// One more argument (as `Command::arg`).
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.line.push(' ');
        self.line.push_str(&arg.as_ref().to_string_lossy());
        self.command.arg(arg);
        self
    }

    /// More arguments (as `Command::args`).
    pub fn args<S: AsRef<std::ffi::OsStr>>(self, args: impl IntoIterator<Item = S>) -> Self {
        args.into_iter().fold(self, Self::arg)
    }

    /// Run from `dir` (as `Command::current_dir`).
    pub fn current_dir(self, dir: impl AsRef<Path>) -> Self {
        let mut verb = self;
        verb.command.current_dir(dir);
        verb
    }

    /// Runs it to the end; past its limit it is killed and the test fails, naming the command.
    pub fn run(self) -> Ran {
        let output = self.output().unwrap();
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs it to the end and returns what it wrote (as `Command::output`), within its limit.
    pub fn output(mut self) -> std::io::Result<std::process::Output> {
        let child = self.command.spawn()?;
        bounded(child, &self.line, self.limit)
    }
}

/// Waits for a child someone spawned (a watcher, a verb that runs beside others) and collects
/// its output, at most `limit`: past it, the child is killed and the test fails, naming `line`.
pub fn bounded(child: std::process::Child, line: &str, limit: Duration) -> std::io::Result<std::process::Output> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        panic!("`{line}` did not finish within {limit:?}; it was killed");
    })
}

impl Ran {
    /// Asserts the exit code.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, Some(code), "exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts stdout, exactly.
    #[track_caller]
    pub fn stdout(self, expected: &str) -> Self {
        assert_eq!(self.stdout, expected, "stdout (stderr:\n{})", self.stderr);
        self
    }

    /// Asserts stderr, exactly.
    #[track_caller]
    pub fn stderr(self, expected: &str) -> Self {
        assert_eq!(self.stderr, expected, "stderr (stdout:\n{})", self.stdout);
        self
    }
}

#[test]
fn a_verb_that_hangs_is_killed_and_named() {
    // `firedrill watch` against a daemon that accepts but never answers waits forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let verb = Verb::new(["watch", "--addr", address.as_str()]).limit(Duration::from_millis(500));
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| verb.run())).unwrap_err();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.starts_with(&format!("`firedrill watch --addr {address}` did not finish within")), "{message}");
    drop(silent);
}

#[test]
fn exact_output_and_code_are_held() {
    Verb::new(["frobnicate"]).run().code(2).stdout("").stderr(
        "error: unrecognized subcommand 'frobnicate'\n\nUsage: firedrill <COMMAND>\n\nFor more information, try '--help'.\n",
    );
}
