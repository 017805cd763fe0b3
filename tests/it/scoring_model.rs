//! The scoring model against a small reference model written here: seeded random timelines —
//! faults that fail or pulse, kill rounds, acknowledgements and diagnoses before and after the
//! fault, mitigations, resolves, alerts whose `startsAt` is before or after t0, crashes — are
//! folded by `Scorecard::from_journal` and by the reference, which must agree on every phase,
//! the false alarms, void runs and the alerts' verdicts.

use std::sync::Arc;
use std::time::Duration;

use firedrill::drill::AnswerKey;
use firedrill::journal::Record;
use firedrill::journal::event::{
    AlertExpectation, AlertSource, Backend, Event, KillAction, Outcome, PhaseMillis, Removal,
};
use firedrill::journal::{self, Journal};
use firedrill::proxy::Registry;
use firedrill::proxy::config::{Mode, ProxyConfig};
use firedrill::run::runner::{self, Command, Refusal, RunSpec};
use firedrill::scorecard::{ALERT_CLOCK_SKEW_MS, Scorecard};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

const WALL: u64 = 1_800_000_000_000;
const TIMELINES: u64 = 10_000;

fn rfc3339(wall_ms: u64) -> String {
    jiff::Timestamp::from_millisecond(i64::try_from(wall_ms).unwrap()).unwrap().to_string()
}

/// A random journal: the run's start, then events at increasing times.
fn timeline(seed: u64) -> Vec<Record> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut events: Vec<(u64, Event)> = Vec::new();
    let faults = rng.random_range(0..4usize);
    let mut t = 0;
    let next = |rng: &mut SmallRng, t: &mut u64| {
        *t += rng.random_range(0..20_000);
        *t
    };
    for fault in 0..faults {
        let at = next(&mut rng, &mut t);
        let kind = if rng.random_bool(0.2) { "kill" } else { "latency" };
        events.push((
            at,
            Event::FaultApplied { fault, proxy: "p".into(), toxic: format!("t{fault}"), kind: kind.into() },
        ));
        if rng.random_bool(0.25) {
            events.push((at, Event::FaultFailed { fault, error: "refused".into() }));
        } else if kind == "kill" {
            events.push((
                at,
                Event::TargetKilled {
                    fault,
                    backend: Backend::Process,
                    target: "w-0".into(),
                    name: "w".into(),
                    action: KillAction::Kill,
                    round: 0,
                },
            ));
        } else if rng.random_bool(0.5) {
            // A pulse: out again after a while.
            let out = at + rng.random_range(1..30_000);
            events.push((
                out,
                Event::FaultRemoved { fault, proxy: "p".into(), toxic: format!("t{fault}"), reason: Removal::Duration },
            ));
        }
    }
    // Responders and alerts, anywhere in time: before the first fault too.
    let mut t = 0;
    for _ in 0..rng.random_range(0..12) {
        let at = next(&mut rng, &mut t);
        let event = match rng.random_range(0..7) {
            0 => Event::Ack { by: format!("r{}", rng.random_range(0..3)) },
            1 => Event::Diagnosis { by: "r0".into(), text: "x".into(), correct: rng.random_bool(0.5) },
            2 => Event::Mitigated { since_ms: at.saturating_sub(rng.random_range(0..10_000)) },
            3 => Event::ResolveDeclared { by: "r1".into() },
            4 => Event::Alert {
                source: AlertSource::BurnRate,
                name: "page-1h".into(),
                detail: None,
                starts_at: None,
                fingerprint: None,
            },
            5 => {
                // Alertmanager: startsAt anywhere from an hour before this moment to now.
                let starts = (WALL + at).saturating_sub(rng.random_range(0..3_600_000));
                Event::Alert {
                    source: AlertSource::Alertmanager,
                    name: "Burn".into(),
                    detail: None,
                    starts_at: Some(rfc3339(starts)),
                    fingerprint: Some(format!("f{at}")),
                }
            }
            _ => Event::Hint { index: 0, text: "h".into(), by: Some("r2".into()) },
        };
        events.push((at, event));
    }
    events.sort_by_key(|(at, _)| *at);
    let end = events.last().map_or(0, |(at, _)| *at) + rng.random_range(0..5_000);
    // A crash leaves the journal without an end, or recovery closes it as interrupted.
    match rng.random_range(0..5) {
        0 => {}
        1 => events.push((end, Event::Ended { outcome: Outcome::Interrupted, reason: None })),
        2 => events.push((end, Event::Ended { outcome: Outcome::Aborted, reason: None })),
        3 => events.push((end, Event::Ended { outcome: Outcome::Unresolved, reason: None })),
        _ => events.push((end, Event::Ended { outcome: Outcome::Resolved, reason: None })),
    }
    let start = Event::RunStarted {
        run_id: format!("r-{seed}"),
        drill: "d".into(),
        title: "t".into(),
        briefing: String::new(),
        team: "team".into(),
        responder: None,
        seed,
        blind: false,
        timebox_ms: 3_600_000,
        production_ms: PhaseMillis { detect: 30_000, diagnose: 90_000, mitigate: 120_000, resolve: 180_000 },
        ratio: 1.0 / 3.0,
        answer: AnswerKey { component: "x".into(), kind: "y".into(), accept: vec![vec!["x".into()]] },
        slo: None,
        expected_alerts: vec![
            AlertExpectation { name: "page-1h".into(), within_ms: 60_000 },
            AlertExpectation { name: "Burn".into(), within_ms: 60_000 },
        ],
    };
    std::iter::once((0, start))
        .chain(events)
        .enumerate()
        .map(|(seq, (t_ms, event))| Record { seq: seq as u64 + 1, t_ms, wall_ms: WALL + t_ms, event })
        .collect()
}

/// What the reference model says of a journal.
#[derive(Debug, PartialEq)]
struct Expected {
    void: bool,
    phases: [Option<u64>; 4],
    false_alarms: usize,
    alerts: Vec<(Option<u64>, bool)>,
}

/// The rules, as the README states them, written from scratch.
fn reference(records: &[Record]) -> Expected {
    let failed: Vec<usize> = records
        .iter()
        .filter_map(|r| if let Event::FaultFailed { fault, .. } = r.event { Some(fault) } else { None })
        .collect();
    let t0_at =
        records.iter().position(|r| matches!(r.event, Event::FaultApplied { fault, .. } if !failed.contains(&fault)));
    let Some(t0_at) = t0_at else {
        let acks = records.iter().filter(|r| matches!(r.event, Event::Ack { .. })).count();
        let alerts = Vec::new(); // nothing was practised: no alert is judged
        return Expected { void: true, phases: [None; 4], false_alarms: acks, alerts };
    };
    let (t0, t0_wall) = (records[t0_at].t_ms, records[t0_at].wall_ms);
    let (before, after) = records.split_at(t0_at);
    let from_t0 = |r: &Record| r.t_ms - t0;
    let false_alarms = before.iter().filter(|r| matches!(r.event, Event::Ack { .. })).count();
    let caused = |starts_at: &Option<String>| match starts_at {
        None => true,
        Some(s) => s.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64 + ALERT_CLOCK_SKEW_MS >= t0_wall,
    };
    let human = after.iter().find(|r| matches!(r.event, Event::Ack { .. })).map(from_t0);
    let machine =
        after.iter().find(|r| matches!(&r.event, Event::Alert { starts_at, .. } if caused(starts_at))).map(from_t0);
    let diagnosed = after.iter().find(|r| matches!(r.event, Event::Diagnosis { correct: true, .. })).map(from_t0);
    let outcome =
        records.iter().find_map(|r| if let Event::Ended { outcome, .. } = r.event { Some(outcome) } else { None });
    let declared = after.iter().filter(|r| matches!(r.event, Event::ResolveDeclared { .. })).map(from_t0).next_back();
    let resolved = declared.filter(|_| matches!(outcome, Some(Outcome::Resolved | Outcome::Interrupted)));
    let detected = [human, machine, resolved].into_iter().flatten().min();
    let evidence = after.iter().find_map(|r| {
        if let Event::Mitigated { since_ms } = r.event { Some(since_ms.saturating_sub(t0)) } else { None }
    });
    let with_fault_in = match (evidence, detected) {
        (Some(m), Some(d)) => Some(m.max(d)),
        _ => None,
    };
    let mitigated = [with_fault_in, resolved].into_iter().flatten().min();
    let Event::RunStarted { expected_alerts, .. } = &records[0].event else { panic!("no start") };
    let alerts = expected_alerts
        .iter()
        .map(|expected| {
            let name = &expected.name;
            let fired = after
                .iter()
                .skip(1)
                .find(|r| matches!(&r.event, Event::Alert { name: n, starts_at, .. } if n == name && caused(starts_at)))
                .map(from_t0);
            (fired, fired.is_some_and(|f| f <= expected.within_ms))
        })
        .collect();
    Expected { void: false, phases: [detected, diagnosed, mitigated, resolved], false_alarms, alerts }
}

fn scored(card: &Scorecard) -> Expected {
    Expected {
        void: card.void,
        phases: [0, 1, 2, 3].map(|i| card.phases[i].actual_ms),
        false_alarms: card.false_alarms.len(),
        alerts: card.alerts.iter().map(|a| (a.fired_after_ms, a.met)).collect(),
    }
}

#[test]
fn the_scorecard_agrees_with_the_reference_model_on_random_timelines() {
    let mut seen = [0usize; 4];
    for seed in 0..TIMELINES {
        let records = timeline(seed);
        let card = Scorecard::from_journal(&records).unwrap();
        if seed % 10 == 0 {
            crate::harness::assert_scorecard_schema(&serde_json::to_value(&card).unwrap());
        }
        let expected = reference(&records);
        assert_eq!(scored(&card), expected, "seed {seed}: {records:#?}");
        // The rules the README promises, checked on every timeline as well.
        let phases = expected.phases;
        if let (Some(d), Some(m)) = (phases[0], phases[2]) {
            assert!(m >= d || phases[3] == Some(m), "seed {seed}: mitigation before detection");
        }
        if card.void {
            assert!(card.phases.iter().all(|p| p.actual_ms.is_none()), "seed {seed}");
        }
        seen[0] += usize::from(card.void);
        seen[1] += usize::from(!card.false_alarms.is_empty());
        seen[2] += usize::from(card.alerts.iter().any(|a| a.already_firing));
        seen[3] += usize::from(card.phases[3].actual_ms.is_some());
    }
    // The schema is a check that can fail: a made-up verdict or field is refused.
    let mut card = serde_json::to_value(Scorecard::from_journal(&timeline(1)).unwrap()).unwrap();
    card["phases"][0]["verdict"] = "almost".into();
    card["grade"] = "A+".into();
    assert_eq!(crate::harness::scorecard_schema_errors(&card).len(), 2, "{card}");
    // The generator reaches every case it is meant to.
    assert!(seen.iter().all(|&n| n > TIMELINES as usize / 50), "cases covered: {seen:?}");
}

/// How many drills the real runner plays on the paused clock.
const RUNS: u64 = 10_000;

/// A random drill: one to three latency faults on `partner` at random offsets, some of them
/// pulses, and a timebox.
fn random_drill(rng: &mut SmallRng) -> String {
    use std::fmt::Write as _;
    let mut text = String::from(
        "[drill]\nname = \"random\"\ntitle = \"t\"\nbriefing = \"b\"\ntimebox = \"10m\"\n\n[targets]\n\
         production = { detect = 1, diagnose = 2, mitigate = 3, resolve = 4 }\n\n\
         [answer]\ncomponent = \"partner\"\nkind = \"latency\"\naccept = [\"partner\"]\n",
    );
    for _ in 0..rng.random_range(1..4) {
        let at = rng.random_range(0..120);
        let pulse =
            if rng.random_bool(0.4) { format!("duration = \"{}s\"\n", rng.random_range(1..60)) } else { String::new() };
        let _ = write!(
            text,
            "\n[[faults]]\nat = \"{at}s\"\n{pulse}proxy = \"partner\"\ntoxic = {{ type = \"latency\", attributes = {{ latency = 10 }} }}\n"
        );
    }
    text
}

/// One responder's random acts on the paused clock, each reply checked against the rules: an
/// acknowledgement counts only after t0, a diagnosis or resolve before t0 is refused. Ends with a
/// resolve taken, an abort, the daemon stopping, or silence (the run then runs to its timebox).
async fn respond(
    tx: mpsc::Sender<Command>,
    shutdown: CancellationToken,
    mut rng: SmallRng,
    first_fault: Duration,
    seed: u64,
) {
    let started = tokio::time::Instant::now();
    let mut whole = 0u64;
    for _ in 0..rng.random_range(0..10) {
        // Half a second off the faults' whole seconds: never the same instant as one.
        whole += rng.random_range(0..40);
        let at = Duration::from_millis(whole * 1000 + 500);
        tokio::time::sleep_until(started + at).await;
        let before = at < first_fault;
        let go_on = match rng.random_range(0..7) {
            0 | 1 => {
                let (reply, counted) = oneshot::channel();
                let _ = tx.send(Command::Ack { by: "r".into(), reply }).await;
                counted.await.map(|c| assert!(before || c, "seed {seed}: an ack at {at:?} counts")).is_ok()
            }
            2 => {
                let (reply, answer) = oneshot::channel();
                let text = if rng.random_bool(0.5) { "the partner" } else { "the ledger" }.to_owned();
                let _ = tx.send(Command::Diagnose { by: "r".into(), text, reply }).await;
                answer.await.map(|a| assert_eq!(a.is_err(), before, "seed {seed}")).is_ok()
            }
            3 => {
                let (reply, answer) = oneshot::channel();
                let _ = tx.send(Command::Resolve { by: "r".into(), reply }).await;
                let answer = answer.await;
                if let Ok(answer) = &answer {
                    assert_eq!(matches!(answer, Err(Refusal::NotYet(_))), before, "seed {seed}: {answer:?}");
                }
                matches!(answer, Ok(Err(_)))
            }
            4 => {
                let _ = tx.send(Command::Abort { by: "r".into() }).await;
                false
            }
            5 => {
                // The daemon stops (Ctrl-C, SIGTERM): the run ends interrupted.
                shutdown.cancel();
                false
            }
            _ => {
                let (reply, answer) = oneshot::channel();
                let _ = tx.send(Command::Hint { by: "r".into(), reply }).await;
                answer.await.is_ok()
            }
        };
        if !go_on {
            return;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_runner_and_the_reference_agree_on_random_runs_on_the_paused_clock() {
    let registry = Registry::new(Some(1));
    let config = ProxyConfig {
        mode: Mode::Tcp,
        http: firedrill::proxy::config::HttpOptions::default(),
        name: "partner".into(),
        listen: "127.0.0.1:0".into(),
        upstream: "127.0.0.1:9".into(),
        enabled: false,
    };
    registry.create(config).await.unwrap();
    let environment = firedrill::drill::Environment {
        proxies: ["partner".to_owned()].into(),
        http: std::collections::BTreeSet::new(),
        external: false,
    };
    let killers = firedrill::fault::kill::Killers::new(firedrill::supervise::Supervisor::new());
    // Journals are fsync'd: a memory file system keeps 10,000 runs quick where there is one.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() };
    for seed in 0..RUNS {
        let mut rng = SmallRng::seed_from_u64(seed);
        let text = random_drill(&mut rng);
        let drill = firedrill::drill::parse(std::path::Path::new("random.toml"), &text, &environment).unwrap();
        let first_fault = drill.faults.iter().map(|f| f.at).min().unwrap();
        let spec = RunSpec {
            run_id: format!("run-{seed}"),
            drill,
            team: "t".into(),
            responder: None,
            seed,
            blind: false,
            armed_acks: Vec::new(),
            sli_totals: None,
        };
        let path = dir.path().join(format!("run-{seed}.jsonl"));
        let (tx, rx) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let journal = Journal::create(&path).unwrap();
        let run = runner::run(&spec, &registry, &killers, journal, rx, shutdown.clone(), Arc::default());
        let (card, ()) = tokio::join!(run, respond(tx, shutdown, rng, first_fault, seed));
        let card = card.unwrap();
        let records = journal::read(&path).unwrap();
        assert_eq!(Scorecard::from_journal(&records).unwrap(), card, "seed {seed}: the scorecard is the journal's");
        assert_eq!(scored(&card), reference(&records), "seed {seed}: {records:#?}");
        assert_eq!(card.faults_left, 0, "seed {seed}: every fault came out");
        std::fs::remove_file(&path).unwrap();
    }
    assert!(registry.toxics("partner").await.unwrap().is_empty(), "no toxic left behind");
}
