//! Game days: plans validated with their locations, schedules across daylight saving (unit
//! tests in `gameday::when`), the calendar file read back by Python's `icalendar`, notifications
//! retried against a real HTTP receiver, an armed plan across a daemon restart, a scheduled day
//! starting on time, and a whole game day on the example shop through the real daemon and CLI,
//! down to the day's write-up.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use firedrill::fault::Proxies;
use firedrill::fault::kill::Killers;
use firedrill::gameday::log::{DayEvent, DayLog};
use firedrill::gameday::notify::{Notice, Notifier, Retry};
use firedrill::gameday::plan::{Webhook, WebhookFormat};
use firedrill::gameday::{Gamedays, log};
use firedrill::proxy::Registry;
use firedrill::proxy::config::{Mode, ProxyConfig};
use firedrill::run::manager::{Manager, RunDirs};
use firedrill::shop::Ports;
use firedrill::supervise::Supervisor;
use tokio_util::sync::CancellationToken;

use crate::harness::{ServeProcess, until};

const SIDE_DRILL: &str = r#"
[drill]
name = "side"
title = "A side proxy slows"
briefing = "Something is slow."
timebox = "10m"

[targets]
production = { detect = 3, diagnose = 6, mitigate = 9, resolve = 12 }

[[faults]]
at = "0s"
proxy = "side"
toxic = { type = "latency", attributes = { latency = 10 } }

[answer]
component = "side"
kind = "latency"
accept = ["side"]
"#;

/// A webhook receiver: answers `fail_first` requests with 503, then 200; keeps every body.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    hits: Arc<AtomicUsize>,
    got: Arc<tokio::sync::Notify>,
}

async fn receiver(fail_first: usize) -> Receiver {
    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let hits = Arc::new(AtomicUsize::new(0));
    let got = Arc::new(tokio::sync::Notify::new());
    let (b, h, g) = (bodies.clone(), hits.clone(), got.clone());
    let app = axum::Router::new().route(
        "/hook/{secret}",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (b, h, g) = (b.clone(), h.clone(), g.clone());
            async move {
                let n = h.fetch_add(1, Ordering::SeqCst);
                let status = if n < fail_first {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    b.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or_default());
                    axum::http::StatusCode::OK
                };
                g.notify_waiters();
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url: format!("http://{address}/hook/s3cret"), bodies, hits, got }
}

fn notice(text: &str) -> Notice {
    Notice {
        event: "gameday_started",
        gameday: "day-1".into(),
        plan: "day".into(),
        title: "A day".into(),
        team: "shop".into(),
        at_ms: 1,
        text: text.into(),
        details: serde_json::Map::new(),
    }
}

fn records(path: &Path) -> Vec<DayEvent> {
    log::read(path).unwrap().into_iter().map(|r| r.event).collect()
}

#[tokio::test]
async fn a_notification_is_retried_until_the_receiver_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let hook = receiver(2).await;
    let notifier = Notifier::new(
        Retry { attempts: 5, backoff: Duration::from_millis(20), timeout: Duration::from_secs(5) },
        CancellationToken::new(),
    );
    let log = Arc::new(DayLog::create(&dir.path().join("day.jsonl")).unwrap());
    let hooks = [
        Webhook { url: hook.url.clone(), format: WebhookFormat::Slack },
        Webhook { url: hook.url.clone(), format: WebhookFormat::Json },
    ];
    let outbox = notifier.outbox(&hooks[..1], &log);
    let sent = std::time::Instant::now();
    outbox.send(&notice("the day began"));
    drop(outbox);
    notifier.flush().await;
    assert_eq!(hook.hits.load(Ordering::SeqCst), 3, "two failures, then delivered");
    // Backoff: 20 ms, then 40 ms, before the third try.
    assert!(sent.elapsed() >= Duration::from_millis(60));
    assert_eq!(hook.bodies.lock().unwrap().as_slice(), [serde_json::json!({ "text": "the day began" })]);
    // The plain JSON form carries every field.
    let outbox = notifier.outbox(&hooks[1..], &log);
    outbox.send(&notice("again"));
    drop(outbox);
    notifier.flush().await;
    let last = hook.bodies.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["event"], "gameday_started");
    assert_eq!(last["gameday"], "day-1");
    assert_eq!(last["team"], "shop");
    assert_eq!(last["text"], "again");
    assert!(records(log.path()).is_empty(), "nothing failed for good: {:?}", records(log.path()));
    let _ = &hook.got;
}

#[tokio::test]
async fn a_notification_that_never_gets_through_is_journaled_and_holds_nothing_up() {
    let dir = tempfile::tempdir().unwrap();
    let hook = receiver(usize::MAX).await;
    let notifier = Notifier::new(
        Retry { attempts: 3, backoff: Duration::from_millis(10), timeout: Duration::from_secs(5) },
        CancellationToken::new(),
    );
    let log = Arc::new(DayLog::create(&dir.path().join("day.jsonl")).unwrap());
    let outbox = notifier.outbox(&[Webhook { url: hook.url.clone(), format: WebhookFormat::Slack }], &log);
    let queued = std::time::Instant::now();
    outbox.send(&notice("one"));
    // Sending returns at once, whatever the receiver does.
    assert!(queued.elapsed() < Duration::from_millis(50));
    drop(outbox);
    notifier.flush().await;
    assert_eq!(hook.hits.load(Ordering::SeqCst), 3);
    let events = records(log.path());
    let [DayEvent::NotifyFailed { url, event, attempts, error }] = events.as_slice() else {
        panic!("one failure journaled, got {events:?}")
    };
    assert_eq!((event.as_str(), *attempts), ("gameday_started", 3));
    assert!(error.contains("503"), "{error}");
    assert!(!url.contains("s3cret"), "the webhook's secret path is not journaled: {url}");
}

/// A manager over one proxy (`side`) with one drill (`side`), as a daemon has them.
async fn manager(dir: &Path) -> (Arc<Manager>, Arc<Registry>) {
    let registry = Registry::new(Some(1));
    let upstream = crate::harness::echo_server().await;
    let side = ProxyConfig {
        name: "side".into(),
        listen: "127.0.0.1:0".into(),
        upstream: upstream.to_string(),
        enabled: true,
        mode: Mode::Tcp,
        http: firedrill::proxy::config::HttpOptions::default(),
    };
    registry.create(side).await.unwrap();
    std::fs::create_dir_all(dir.join("drills")).unwrap();
    std::fs::create_dir_all(dir.join("gamedays")).unwrap();
    std::fs::write(dir.join("drills/side.toml"), SIDE_DRILL).unwrap();
    let dirs = RunDirs { drills: dir.join("drills"), data: dir.join("data"), scorecards: dir.join("cards") };
    (Manager::new(Proxies::Local(registry.clone()), Killers::new(Supervisor::new()), dirs), registry)
}

fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn plan(start: &str, repeat: &str, hook: &str) -> String {
    format!(
        "[gameday]\ntitle = \"Side day\"\nteam = \"side-team\"\nstart = \"{start}\"\ntime_zone = \"UTC\"\n{repeat}\n\
         [roles]\nfacilitator = \"Ana\"\n\n[[sequence]]\ndrill = \"side\"\n\n[[notify]]\nurl = \"{hook}\"\nformat = \"json\"\n"
    )
}

fn now_ms() -> i64 {
    i64::try_from(firedrill::clock::wall_ms()).unwrap()
}

#[tokio::test]
async fn an_armed_plan_survives_a_restart_and_what_passed_meanwhile_is_reported_missed() {
    let dir = tempfile::tempdir().unwrap();
    let (manager, _registry) = manager(dir.path()).await;
    let hook = receiver(0).await;
    // Daily at a whole second an hour from now.
    let first = (now_ms() / 1000 + 3600) * 1000;
    std::fs::write(dir.path().join("gamedays/side.toml"), plan(&utc(first), "repeat = \"FREQ=DAILY\"", &hook.url))
        .unwrap();
    let retry = Retry { attempts: 2, backoff: Duration::from_millis(10), timeout: Duration::from_secs(5) };
    let daemon = Gamedays::new(manager.clone(), dir.path().join("gamedays"), &dir.path().join("data"), retry);
    assert_eq!(daemon.schedule_all(now_ms()), ["side"]);
    assert_eq!(daemon.overview().scheduled[0].next_ms, first);
    let armed = dir.path().join("data/gamedays/armed/side.json");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&armed).unwrap()).unwrap();
    assert_eq!(kept["next_ms"], first);
    daemon.shutdown().await;
    assert!(daemon.overview().days.is_empty(), "nothing started");

    // The next daemon comes up two days and an hour after the first occurrence: three passed.
    let day = 86_400_000;
    let later = first + 2 * day + 3_600_000;
    let daemon = Gamedays::new(manager.clone(), dir.path().join("gamedays"), &dir.path().join("data"), retry);
    assert_eq!(daemon.schedule_all(later), ["side"]);
    let missed: Vec<i64> =
        daemon.overview().days.iter().filter(|d| d.state == "missed").map(|d| d.started_ms).collect();
    assert_eq!(missed, [first + 2 * day, first + day, first], "newest first");
    assert_eq!(daemon.overview().scheduled[0].next_ms, first + 3 * day, "armed for the next one, not late");
    assert!(manager.status(None).unwrap().is_empty(), "no run was started late");
    daemon.shutdown().await;
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert!(
        bodies
            .iter()
            .all(|b| b["event"] == "gameday_missed" && b["text"].as_str().unwrap().contains("not started late"))
    );

    // A third start at the same moment reports nothing twice.
    let daemon = Gamedays::new(manager.clone(), dir.path().join("gamedays"), &dir.path().join("data"), retry);
    daemon.schedule_all(later);
    assert_eq!(daemon.overview().days.len(), 3);
    daemon.shutdown().await;
}

/// `firedrill gameday status --json` of a daemon.
fn overview(serve: &ServeProcess) -> serde_json::Value {
    let (code, out, err) = serve.verb(&["gameday", "status", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_real_daemon_killed_and_restarted_keeps_its_armed_plan_and_reports_what_passed_as_missed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("drills")).unwrap();
    std::fs::create_dir_all(dir.path().join("gamedays")).unwrap();
    std::fs::write(dir.path().join("drills/side.toml"), SIDE_DRILL).unwrap();
    // Daily since three days ago, at a whole second an hour from now: the next one is in an hour.
    let day = 86_400_000;
    let first = (now_ms() / 1000 + 3600) * 1000;
    let text = plan(&utc(first - 3 * day), "repeat = \"FREQ=DAILY\"", "http://127.0.0.1:9/hook");
    std::fs::write(dir.path().join("gamedays/side.toml"), text).unwrap();
    let mut serve = ServeProcess::start_in(dir.path(), &[]);
    let seen = overview(&serve);
    assert_eq!(seen["scheduled"][0]["plan"], "side", "{seen}");
    assert_eq!(seen["scheduled"][0]["next_ms"], first, "{seen}");
    assert!(seen["days"].as_array().unwrap().is_empty(), "what passed before the first daemon is not missed: {seen}");
    let armed = dir.path().join(".firedrill/gamedays/armed/side.json");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&armed).unwrap()).unwrap();
    assert_eq!(kept["next_ms"], first);

    // Killed without a chance to tidy up, and down (as far as the armed file tells) for two days.
    serve.signal("KILL");
    serve.wait(Duration::from_secs(10));
    std::fs::write(&armed, serde_json::json!({ "next_ms": first - 2 * day }).to_string()).unwrap();
    let serve = ServeProcess::start_in(dir.path(), &[]);
    let seen = overview(&serve);
    let missed: Vec<(i64, String)> = seen["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["started_ms"].as_i64().unwrap(), d["state"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(missed, [(first - day, "missed".into()), (first - 2 * day, "missed".into())], "{seen}");
    assert_eq!(seen["scheduled"][0]["next_ms"], first, "armed again for the next one: {seen}");
    let (_, runs, _) = serve.verb(&["status", "--json"]);
    assert_eq!(runs.trim(), "[]", "nothing was started late");
    let (code, out, err) = serve.verb(&["gameday", "status"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("missed (no firedrill daemon was running at its start)"), "{out}");
    assert!(out.contains("scheduled  side  Side day — next"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_game_day_starts_on_time_and_ends_with_its_faults_out() {
    let dir = tempfile::tempdir().unwrap();
    let (manager, registry) = manager(dir.path()).await;
    let hook = receiver(0).await;
    let at = (now_ms() / 1000 + 2) * 1000;
    std::fs::write(dir.path().join("gamedays/side.toml"), plan(&utc(at), "", &hook.url)).unwrap();
    let data = dir.path().join("data");
    let daemon = Gamedays::new(manager.clone(), dir.path().join("gamedays"), &data, Retry::default());
    assert_eq!(daemon.schedule_all(now_ms()), ["side"]);
    std::fs::create_dir_all(data.join("gamedays")).unwrap();
    let journals = data.join("gamedays");
    let started = |(): ()| daemon.overview().days.into_iter().find(|d| !d.runs.is_empty());
    let found = tokio::task::block_in_place(|| until(&journals, Duration::from_secs(30), || started(()).is_some()));
    assert!(found, "the scheduled game day started and started its drill");
    let day = started(()).unwrap();
    let records = log::read(&journals.join(format!("{}.jsonl", day.id))).unwrap();
    let DayEvent::Started { by, scheduled_ms, .. } = &records[0].event else { panic!("{records:?}") };
    assert_eq!((by.as_str(), *scheduled_ms), ("schedule", Some(at)));
    let began = i64::try_from(records[0].at_ms).unwrap();
    assert!(began >= at && began < at + firedrill::gameday::conduct::GRACE_MS, "on time: {began} for {at}");
    let fault_in = || {
        manager
            .status(None)
            .unwrap()
            .into_iter()
            .filter_map(firedrill::run::manager::RunView::into_run)
            .any(|r| r.fault_in_ms.is_some())
    };
    assert!(tokio::task::block_in_place(|| until(&data, Duration::from_secs(10), fault_in)));
    // The journal says a fault goes in before the runner applies it (so a crash in between still
    // takes it out): wait for the toxic itself.
    let toxic_in = async {
        while registry.toxics("side").await.unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
    };
    assert!(tokio::time::timeout(Duration::from_secs(10), toxic_in).await.is_ok(), "the drill's fault goes in");
    assert_eq!(registry.toxics("side").await.unwrap().len(), 1, "the drill's fault is in");
    // Ended early: the run is aborted and its fault comes out.
    assert_eq!(daemon.end("", "Ana").await.unwrap(), day.id);
    assert!(registry.toxics("side").await.unwrap().is_empty());
    let view = daemon.overview().days.into_iter().find(|d| d.id == day.id).unwrap();
    assert_eq!((view.state.as_str(), view.detail.as_str()), ("ended", "ended by Ana"));
    assert_eq!(view.runs[0][2], "aborted");
    // Nothing is in progress: a second end says so; a plan that runs once is not armed again.
    assert!(daemon.end("", "Ana").await.is_err());
    assert!(daemon.overview().scheduled.is_empty());
    daemon.shutdown().await;
    manager.shutdown().await;
}

#[tokio::test]
async fn a_game_day_a_crash_left_open_is_closed_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let (manager, _registry) = manager(dir.path()).await;
    let journals = dir.path().join("data/gamedays");
    let log = DayLog::create(&journals.join("side-20270101-100000.jsonl")).unwrap();
    log.append(DayEvent::Started {
        plan: "side".into(),
        title: "Side day".into(),
        team: "side-team".into(),
        by: "Ana".into(),
        scheduled_ms: None,
        steps: vec!["drill side".into()],
        roles: vec![],
        questions: vec!["Why?".into()],
    })
    .unwrap();
    let daemon = Gamedays::new(manager, dir.path().join("gamedays"), &dir.path().join("data"), Retry::default());
    assert_eq!(daemon.recover(), ["side-20270101-100000"]);
    assert_eq!(daemon.recover(), Vec::<String>::new(), "closed once");
    assert_eq!(daemon.overview().days[0].state, "interrupted");
    // The debrief still takes notes on it, and checks the question's number.
    assert!(daemon.note("", "Bo", "we lost the daemon", Some(2)).is_err());
    assert_eq!(daemon.note("", "Bo", "we lost the daemon", Some(1)).unwrap(), "side-20270101-100000");
    assert!(daemon.note("nope", "Bo", "x", None).is_err());
    assert!(daemon.note("", "Bo", "   ", None).is_err());
}

#[test]
fn a_plan_with_mistakes_is_refused_with_each_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("drills")).unwrap();
    std::fs::write(dir.path().join("drills/side.toml"), SIDE_DRILL).unwrap();
    std::fs::create_dir(dir.path().join("gamedays")).unwrap();
    let text = "[gameday]\ntitle = \"x\"\nteam = \"shop\"\nstart = \"2027-03-28 02:30\"\ntime_zone = \"Europe/Berlin\"\n\n\
                [roles]\nresponders = [\"Bo <bo@nowhere\"]\n\n[[sequence]]\ndrill = \"sied\"\n\n[[sequence]]\nbreak = \"5 minutes\"\n";
    std::fs::write(dir.path().join("gamedays/bad.toml"), text).unwrap();
    let ran = crate::verb::Verb::new(["validate", "gamedays/bad.toml"]).dir(dir.path()).run();
    assert_eq!(ran.code, Some(2), "{}{}", ran.stdout, ran.stderr);
    for expected in [
        "gamedays/bad.toml:4:9: 2027-03-28 02:30:00 does not exist in Europe/Berlin",
        "gamedays/bad.toml:8:15: `Bo <bo@nowhere`",
        "gamedays/bad.toml:11:9: no drill `sied`",
        "gamedays/bad.toml:14:9: break:",
    ] {
        assert!(ran.stderr.contains(expected), "{expected:?} in\n{}", ran.stderr);
    }
    // The environment it names is read as the daemon will: a broken proxy file, a missing
    // environment file.
    std::fs::write(dir.path().join("broken.json"), "[{\"name\": \"x\"}]").unwrap();
    std::fs::write(
        dir.path().join("gamedays/bad.toml"),
        "[gameday]\ntitle = \"x\"\nteam = \"shop\"\n\n[[sequence]]\ndrill = \"side\"\n\n\
         [environment]\nproxies = [\"../broken.json\"]\nup = \"../absent.toml\"\n",
    )
    .unwrap();
    let ran = crate::verb::Verb::new(["validate", "gamedays/bad.toml"]).dir(dir.path()).run();
    assert_eq!(ran.code, Some(2), "{}{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("broken.json") && ran.stderr.contains("absent.toml"), "{}", ran.stderr);
    // An unknown key is a typo, never ignored.
    std::fs::write(
        dir.path().join("gamedays/bad.toml"),
        "[gameday]\ntitle = \"x\"\nteam = \"shop\"\nrepeats = \"FREQ=DAILY\"\n",
    )
    .unwrap();
    let ran = crate::verb::Verb::new(["validate", "gamedays/bad.toml"]).dir(dir.path()).run();
    assert_eq!(ran.code, Some(2));
    assert!(ran.stderr.contains("gamedays/bad.toml:4:1: unknown field `repeats`"), "{}", ran.stderr);
}

/// Python's interpreter with the `icalendar` package (`.ci/install` makes `target/py`).
fn python_with_icalendar() -> std::path::PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import icalendar, dateutil"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "needs Python's icalendar in target/py: run .ci/install (python3 -m venv target/py && target/py/bin/pip install icalendar)"
    );
    python
}

#[test]
#[ignore = "needs Python's icalendar package (.ci/install puts it in target/py)"]
fn the_calendar_file_reads_back_in_python_icalendar_with_its_occurrences_and_attendees() {
    let python = python_with_icalendar();
    let dir = tempfile::tempdir().unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gamedays/fortnightly.toml");
    let ics = dir.path().join("shop.ics");
    let ran =
        crate::verb::Verb::new(["gameday", "calendar", plan.to_str().unwrap(), "--out", ics.to_str().unwrap()]).run();
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    let script = r#"
import sys, json, datetime, zoneinfo
import icalendar
from dateutil.rrule import rrulestr
cal = icalendar.Calendar.from_ical(open(sys.argv[1], 'rb').read())
event = next(iter(cal.walk('VEVENT')))
start = event.decoded('DTSTART')
rule = event['RRULE'].to_ical().decode()
occurrences = list(rrulestr(rule, dtstart=start))[:8]
# The file's own VTIMEZONE, not the system's: it must agree with the IANA zone.
tz = next(iter(cal.walk('VTIMEZONE'))).to_tz()
berlin = zoneinfo.ZoneInfo('Europe/Berlin')
offsets_agree = all(
    tz.utcoffset(o.replace(tzinfo=None)) == berlin.utcoffset(o.replace(tzinfo=None))
    for o in occurrences
)
print(json.dumps({
    "tzid": event['DTSTART'].params.get('TZID'),
    "utc": [o.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%MZ') for o in occurrences],
    "offsets_agree": offsets_agree,
    "duration_min": int(event.decoded('DURATION').total_seconds() // 60),
    "summary": str(event['SUMMARY']),
    "organizer": str(event['ORGANIZER']),
    "attendees": sorted([str(a) + ' ' + a.params.get('ROLE', '') + ' ' + a.params.get('CN', '') for a in event.get('ATTENDEE', [])]),
}))
"#;
    let out = std::process::Command::new(python).args(["-c", script, ics.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["tzid"], "Europe/Berlin");
    // Every second Thursday at 10:00 Berlin time: 09:00 UTC in winter, 08:00 UTC once summer
    // time begins (28 March 2027).
    assert_eq!(
        parsed["utc"],
        serde_json::json!([
            "2027-01-07T09:00Z",
            "2027-01-21T09:00Z",
            "2027-02-04T09:00Z",
            "2027-02-18T09:00Z",
            "2027-03-04T09:00Z",
            "2027-03-18T09:00Z",
            "2027-04-01T08:00Z",
            "2027-04-15T08:00Z"
        ])
    );
    assert_eq!(parsed["offsets_agree"], true);
    assert_eq!(parsed["duration_min"], 90);
    assert_eq!(parsed["summary"], "Shop game day (fortnightly)");
    assert_eq!(parsed["organizer"], "mailto:ana@example.com");
    assert_eq!(
        parsed["attendees"],
        serde_json::json!([
            "mailto:ana@example.com CHAIR Ana",
            "mailto:bo@example.com REQ-PARTICIPANT Bo",
            "mailto:cy@example.com REQ-PARTICIPANT Cy",
            "urn:firedrill:person:Dee OPT-PARTICIPANT Dee"
        ])
    );
}

/// `firedrill status --json`'s run of `drill` whose fault is in, if any.
pub fn run_with_fault_in(serve: &ServeProcess, drill: &str) -> Option<String> {
    let (_, out, _) = serve.verb(&["status", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&out).ok()?;
    runs.as_array()?
        .iter()
        .find(|r| r["drill"] == drill && r["fault_in_ms"].is_u64() && r["outcome"].as_str().is_none_or(str::is_empty))
        .and_then(|r| r["run_id"].as_str().map(str::to_owned))
}

#[test]
fn a_whole_game_day_on_the_shop_two_drills_and_a_break_down_to_its_write_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ports = Ports::free().unwrap();
    for sub in ["proxies", "drills"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let text = ports.relocate(&std::fs::read_to_string(&path).unwrap());
            std::fs::write(dir.path().join(sub).join(path.file_name().unwrap()), text).unwrap();
        }
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_firedrill"));
    std::fs::write(dir.path().join("shop.toml"), firedrill::shop::environment(exe, ports)).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The receiver fails the first notification once: it is retried, in order.
    let hook = runtime.block_on(receiver(1));
    std::fs::create_dir(dir.path().join("gamedays")).unwrap();
    let plan = format!(
        r#"[gameday]
title = "Shop game day"
team = "shop"

[roles]
facilitator = "Ana"
responders = ["Bo", "Cy"]
observers = ["Dee"]

[[sequence]]
drill = "partner-503-burst"

[[sequence]]
break = "3s"

[[sequence]]
drill = "partner-latency"

[environment]
up = "../shop.toml"
proxies = ["../proxies/shop.json"]

[debrief]
questions = ["What told you first?", "What would have made it faster?"]

[[notify]]
url = "{}"
format = "json"
"#,
        hook.url
    );
    std::fs::write(dir.path().join("gamedays/day.toml"), plan).unwrap();
    // A daemon without proxies: the plan's environment brings them.
    let serve = ServeProcess::start_in(dir.path(), &[]);
    let (code, out, err) = serve.verb(&["gameday", "start", "day", "--as", "Ana"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let id = out.split_whitespace().nth(2).unwrap().to_owned();
    // A second game day while this one runs is refused.
    let (code, _, err) = serve.verb(&["gameday", "start", "day", "--as", "Ana"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is in progress"), "{err}");
    for (drill, diagnosis) in
        [("partner-503-burst", "the partner returns 503 errors"), ("partner-latency", "the partner is slow")]
    {
        let mut run = None;
        assert!(
            until(dir.path(), Duration::from_secs(90), || {
                run = run_with_fault_in(&serve, drill);
                run.is_some()
            }),
            "{drill}: the game day started it and its fault went in"
        );
        let run = run.unwrap();
        for (verb, who) in [(vec!["ack"], "Bo"), (vec!["diagnose", diagnosis], "Cy"), (vec!["resolve"], "Bo")] {
            let mut args = verb.clone();
            args.extend(["--run", &run, "--as", who]);
            let (code, out, err) = serve.verb(&args);
            assert_eq!(code, Some(0), "{args:?}: {out}{err}");
        }
    }
    let journal = dir.path().join(format!(".firedrill/gamedays/{id}.jsonl"));
    let ended = || log::read(&journal).is_ok_and(|r| r.iter().any(|r| matches!(r.event, DayEvent::Ended { .. })));
    assert!(until(dir.path(), Duration::from_secs(60), ended), "the day ended after its last step");
    let environment: Vec<String> = records(&journal)
        .into_iter()
        .filter_map(|e| match e {
            DayEvent::Environment { text } => Some(text),
            _ => None,
        })
        .collect();
    assert!(environment.iter().any(|t| t.contains("created proxies") && t.contains("shop.json")), "{environment:?}");
    let (code, out, err) = serve.verb(&["gameday", "status", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let overview: serde_json::Value = serde_json::from_str(&out).unwrap();
    let day = &overview["days"][0];
    assert_eq!(day["state"], "completed", "{day}");
    assert_eq!(day["runs"].as_array().unwrap().len(), 2);
    assert!(day["runs"].as_array().unwrap().iter().all(|r| r[2] == "resolved"), "{day}");

    // The debrief, then the write-up.
    for args in [
        vec!["note", "The burn-rate page came before anyone looked", "--question", "1", "--as", "Dee"],
        vec!["note", "Ask the partner for a status page", "--as", "Ana"],
    ] {
        let (code, out, err) = serve.verb(&args);
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(out.contains(&id), "{out}");
    }
    let (code, _, err) = serve.verb(&["note", "x", "--question", "3", "--as", "Dee"]);
    assert_eq!(code, Some(2), "only two questions: {err}");
    check_write_up(dir.path(), &id);
    check_notifications(&runtime, &hook);
    let _ = serve.verb(&["down"]);
}

/// The day's write-up, Markdown and HTML, and Bo's practice.
fn check_write_up(dir: &Path, id: &str) {
    let report = crate::verb::Verb::new(["report", "--gameday", id]).dir(dir).run();
    assert_eq!(report.code, Some(0), "{}", report.stderr);
    let text = report.stdout;
    for expected in [
        "# Shop game day — game day",
        "2 drill(s) run, 2 resolved",
        "| partner-503-burst | resolved |",
        "| partner-latency | resolved |",
        "step 2: a break of 3s",
        "partner-503-burst: detected by Bo",
        "partner-latency: diagnosed by Cy",
        "resolved by Bo",
        "of the production budget",
        "### 1. What told you first?",
        "- **Dee**: The burn-rate page came before anyone looked",
        "### 2. What would have made it faster?\n\n_No answer recorded._",
        "- **Ana**: Ask the partner for a status page",
        "the game day completed",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    let html =
        crate::verb::Verb::new(["report", "--gameday", id, "--format", "html", "--out", "day.html"]).dir(dir).run();
    assert_eq!(html.code, Some(0), "{}", html.stderr);
    let page = std::fs::read_to_string(dir.join("day.html")).unwrap();
    assert!(page.contains("<table") && page.contains("The burn-rate page came before anyone looked"));
    assert!(
        !page.contains("<script") && !page.contains("src=\"http") && !page.contains("href=\"http"),
        "self-contained"
    );
    // One person's practice.
    let practice = crate::verb::Verb::new(["report", "--responder", "Bo", "--drills", "drills"]).dir(dir).run();
    assert_eq!(practice.code, Some(0), "{}", practice.stderr);
    assert!(practice.stdout.contains("2 run(s)"), "{}", practice.stdout);
    assert!(
        practice.stdout.contains("| detect | 2 |") && practice.stdout.contains("| resolve | 2 |"),
        "{}",
        practice.stdout
    );
    assert!(
        practice.stdout.contains("## Never practised") && practice.stdout.contains("wallet-blackhole"),
        "{}",
        practice.stdout
    );
}

/// Every notification of the day arrived, in order, the first after one retry.
fn check_notifications(runtime: &tokio::runtime::Runtime, hook: &Receiver) {
    // Every notification arrived, in order, the first after one retry.
    let events = || {
        hook.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["event"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    let expected = ["gameday_started", "drill_started", "drill_ended", "drill_started", "drill_ended", "gameday_ended"];
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            while events().len() < expected.len() {
                let notified = hook.got.notified();
                if events().len() >= expected.len() {
                    break;
                }
                notified.await;
            }
        })
        .await
        .unwrap();
    });
    assert_eq!(events(), expected);
    assert_eq!(hook.hits.load(Ordering::SeqCst), expected.len() + 1);
    let last = hook.bodies.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["outcome"], "completed");
    assert_eq!(last["summary"].as_array().unwrap().len(), 2);
}
