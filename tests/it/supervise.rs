//! The supervisor's restart policies with real child processes.

use std::path::Path;
use std::time::Duration;

use firedrill::signal::Signal;
use firedrill::supervise::{ReplicaState, Supervisor, envfile};

use crate::kill::healthd;

fn services(text: &str) -> Vec<firedrill::supervise::Service> {
    envfile::parse(Path::new("/tmp/env.toml"), text).unwrap()
}

async fn settle(
    supervisor: &Supervisor,
    id: &str,
    wanted: impl Fn(&firedrill::supervise::ReplicaStatus) -> bool,
) -> bool {
    crate::kill::replica_becomes(supervisor, id, Duration::from_secs(5), wanted).await
}

#[tokio::test]
async fn never_leaves_a_killed_replica_down_and_always_brings_it_back() {
    let supervisor = Supervisor::new();
    let text = format!(
        "[[services]]\nname = \"once\"\ncommand = \"{0}\"\nargs = [\"--listen\", \"127.0.0.1:0\"]\nrestart = {{ policy = \"never\" }}\n\n\
         [[services]]\nname = \"back\"\ncommand = \"{0}\"\nargs = [\"--listen\", \"127.0.0.1:0\"]\nrestart = {{ policy = \"always\", backoff = \"100ms\" }}\n",
        healthd().display()
    );
    supervisor.up(services(&text)).unwrap();
    for id in ["once-0", "back-0"] {
        assert!(settle(&supervisor, id, |r| r.state == ReplicaState::Healthy).await, "{id} never became healthy");
    }
    let old = supervisor.kill("once-0", Signal::KILL).unwrap();
    supervisor.kill("back-0", Signal::TERM).unwrap();
    assert!(settle(&supervisor, "once-0", |r| r.state == ReplicaState::Exited).await);
    // `back-0`, killed at the same moment, has been restarted after its backoff and is healthy
    // again: a restart of `once-0` would have come by now.
    assert!(settle(&supervisor, "back-0", |r| r.restarts == 1 && r.state == ReplicaState::Healthy).await);
    let once = supervisor.replica("once-0").unwrap();
    assert_eq!((once.restarts, once.pid), (0, None), "never means never");
    assert_eq!(once.last_exit.as_deref(), Some("signal: 9 (SIGKILL)"));
    let back = supervisor.replica("back-0").unwrap();
    assert_eq!(back.last_exit.as_deref(), Some("signal: 15 (SIGTERM)"));
    assert_ne!(back.pid, Some(old));
    assert!(matches!(
        supervisor.kill("once-0", Signal::KILL),
        Err(firedrill::supervise::SuperviseError::NotRunning(_))
    ));
    assert_eq!(supervisor.down().await, ["back", "once"]);
    assert!(supervisor.ps().is_empty());
    supervisor.shutdown().await;
}

#[tokio::test]
async fn on_failure_restarts_failures_only_with_a_growing_backoff() {
    let supervisor = Supervisor::new();
    let text = "[[services]]\nname = \"ok\"\ncommand = \"sh\"\nargs = [\"-c\", \"exit 0\"]\nrestart = { policy = \"on-failure\" }\n\n\
                [[services]]\nname = \"bad\"\ncommand = \"sh\"\nargs = [\"-c\", \"exit 3\"]\n\
                restart = { policy = \"on-failure\", backoff = \"100ms\", max_backoff = \"400ms\" }\n";
    let started = std::time::Instant::now();
    supervisor.up(services(text)).unwrap();
    // The backoff grows (100, 200, 400 ms): the third restart cannot come sooner than 700 ms.
    assert!(settle(&supervisor, "bad-0", |r| r.restarts >= 3).await, "a failing service is restarted");
    assert!(started.elapsed() >= Duration::from_millis(700), "restarts wait out a growing backoff");
    let bad = supervisor.replica("bad-0").unwrap();
    assert_eq!(bad.last_exit.as_deref(), Some("exit status: 3"));
    // Meanwhile the clean exit, long done, was never restarted.
    assert!(settle(&supervisor, "ok-0", |r| r.state == ReplicaState::Exited).await);
    let ok = supervisor.replica("ok-0").unwrap();
    assert_eq!((ok.state, ok.restarts), (ReplicaState::Exited, 0), "a clean exit is not restarted");

    // A command that does not exist fails to start and is reported.
    let missing = "[[services]]\nname = \"ghost\"\ncommand = \"./no/such/program\"\nrestart = { policy = \"never\" }\n";
    supervisor.up(services(missing)).unwrap();
    assert!(settle(&supervisor, "ghost-0", |r| r.state == ReplicaState::Failed).await);
    let ghost = supervisor.replica("ghost-0").unwrap();
    assert!(ghost.last_exit.unwrap().starts_with("cannot start /tmp/./no/such/program"), "reported");
    supervisor.shutdown().await;
}

#[tokio::test]
async fn a_grace_period_ends_in_sigkill_for_a_process_that_ignores_the_signal() {
    use firedrill::drill::{KillAction, KillPlan, Pick, Selector};
    let supervisor = Supervisor::new();
    let text = "[[services]]\nname = \"stubborn\"\ncommand = \"sh\"\nargs = [\"-c\", \"trap '' TERM; exec sleep 30\"]\n\
                restart = { policy = \"never\" }\n";
    supervisor.up(services(text)).unwrap();
    assert!(settle(&supervisor, "stubborn-0", |r| r.state == ReplicaState::Healthy).await);
    let pid = supervisor.replica("stubborn-0").unwrap().pid.unwrap();
    assert!(crate::kill::eventually(Duration::from_secs(10), || crate::kill::ignores_term(pid)), "the trap is set");
    let killers = firedrill::fault::kill::Killers::new(supervisor.clone());
    let plan = KillPlan {
        selector: Selector::Process { service: "stubborn".into() },
        pick: Pick::Count(1),
        every: None,
        signal: Signal::TERM,
        grace: Duration::from_millis(300),
        action: KillAction::Kill,
        max_targets: 1,
    };
    let (chosen, matching) = killers.choose(&plan, &[], &std::collections::BTreeSet::new(), 1).await.unwrap();
    assert_eq!(matching, 1);
    let (detail, follow_up) = killers.act(&plan, &chosen[0].target).await.unwrap();
    assert!(detail.starts_with("SIGTERM to pid ") && detail.ends_with(", SIGKILL after 300ms"), "{detail}");
    // The SIGKILL is the run's to send when the grace period is over (and never, if the run
    // ends first): nothing is left running in the background.
    let follow_up = follow_up.expect("a SIGKILL is due after the grace period");
    assert_eq!(follow_up.after, Duration::from_millis(300));
    assert_eq!(supervisor.replica("stubborn-0").unwrap().pid, Some(follow_up.pid), "SIGTERM is ignored");
    let sent = killers.follow_up(&plan, &chosen[0].target, follow_up.pid).await.unwrap();
    assert!(sent.is_some_and(|d| d.starts_with("SIGKILL to pid ")));
    assert!(settle(&supervisor, "stubborn-0", |r| r.state == ReplicaState::Exited).await);
    let again = killers.follow_up(&plan, &chosen[0].target, follow_up.pid).await.unwrap();
    assert_eq!(again, None, "a process that is gone is not signalled again");
    assert_eq!(supervisor.replica("stubborn-0").unwrap().last_exit.as_deref(), Some("signal: 9 (SIGKILL)"));
    supervisor.shutdown().await;
}

#[test]
fn the_shipped_shop_environment_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop/shop.toml");
    let services = envfile::load(&path).unwrap();
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["partner", "ledger", "wallet", "gateway"]);
}

#[tokio::test]
async fn replica_output_goes_to_a_log_file_rotated_at_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let supervisor = Supervisor::with_capped_logs(dir.path().to_path_buf(), 64 * 1024);
    // 200,000 bytes on stdout, then (once they have surely been read) one line on stderr.
    let text = "[[services]]\nname = \"chatty\"\ncommand = \"sh\"\n\
                args = [\"-c\", \"head -c 200000 /dev/zero | tr '\\\\0' x; echo; sleep 0.5; echo done >&2; exec sleep 30\"]\n";
    supervisor.up(services(text)).unwrap();
    let log = dir.path().join("chatty-0.log");
    let rotated = dir.path().join("chatty-0.log.1");
    let (watched, file) = (dir.path().to_owned(), log.clone());
    let done = move || std::fs::read_to_string(&file).unwrap_or_default().contains("done");
    let written = tokio::task::spawn_blocking(move || crate::harness::until(&watched, Duration::from_secs(10), done));
    assert!(written.await.unwrap(), "stderr never reached the log");
    let current = std::fs::read(&log).unwrap();
    let previous = std::fs::read(&rotated).unwrap();
    assert!(current.len() < 64 * 1024, "the live file stays under the cap: {}", current.len());
    assert!((64 * 1024..64 * 1024 + 8192).contains(&previous.len()), "rotated at the cap: {}", previous.len());
    // Rotation happens after the read that reaches the cap, so where the files split depends on
    // how the pipe was read; what each holds does not.
    assert!(previous.iter().all(|&b| b == b'x' || b == b'\n'), "only stdout's bytes in the rotated file");
    // Three files' worth were written; only the last two are kept.
    assert!(current.len() + previous.len() < 200_000);
    let tail = String::from_utf8_lossy(&current[current.len().saturating_sub(10)..]).into_owned();
    assert!(current.ends_with(b"done\n"), "{tail:?}");
    supervisor.down().await;
    supervisor.shutdown().await;
}

/// The live pids (zombies waiting to be reaped are gone already) whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let after = &stat[stat.rfind(')').unwrap() + 1..];
                let fields: Vec<&str> = after.split_whitespace().collect();
                fields[0] != "Z" && fields[2] == pgid.to_string()
            })
        })
        .collect()
}

#[tokio::test]
async fn kills_and_down_take_the_replicas_whole_process_group() {
    let supervisor = Supervisor::new();
    // A wrapper whose child would outlive a signal to the wrapper alone.
    let text = "[[services]]\nname = \"wrapped\"\ncommand = \"sh\"\nargs = [\"-c\", \"sleep 600 & wait\"]\n\
                restart = { policy = \"always\", backoff = \"100ms\" }\n";
    supervisor.up(services(text)).unwrap();
    assert!(settle(&supervisor, "wrapped-0", |r| r.state == ReplicaState::Healthy).await);
    let first = supervisor.replica("wrapped-0").unwrap().pid.unwrap();
    let mut members = Vec::new();
    for _ in 0..200 {
        members = group_members(first);
        if members.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(members.len() >= 2, "the wrapper and its child: {members:?}");
    supervisor.kill("wrapped-0", Signal::KILL).unwrap();
    assert!(settle(&supervisor, "wrapped-0", |r| r.pid.is_some_and(|p| p != first)).await, "restarted");
    assert!(group_members(first).is_empty(), "the child went with the wrapper");
    let second = supervisor.replica("wrapped-0").unwrap().pid.unwrap();
    assert_eq!(supervisor.down().await, ["wrapped"]);
    assert!(group_members(second).is_empty(), "`down` leaves nothing of the group behind");
    supervisor.shutdown().await;
}

#[tokio::test]
async fn a_health_check_answered_by_a_process_outside_the_replica_does_not_count() {
    // Something else already serves the replica's port: the check answers, but not from the
    // replica's own process group, so the replica never becomes healthy.
    let mut squatter = std::process::Command::new(healthd())
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(squatter.stdout.take().unwrap()), &mut line).unwrap();
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    let supervisor = Supervisor::new();
    let text = format!(
        "[[services]]\nname = \"late\"\ncommand = \"sleep\"\nargs = [\"600\"]\n\
         health = {{ http = \"http://127.0.0.1:{port}/healthz\", interval = \"100ms\" }}\n"
    );
    supervisor.up(services(&text)).unwrap();
    let fooled = settle(&supervisor, "late-0", |r| r.state == ReplicaState::Healthy).await;
    squatter.kill().unwrap();
    squatter.wait().unwrap();
    supervisor.shutdown().await;
    assert!(!fooled, "the squatter's answer passed for the replica's");
}
