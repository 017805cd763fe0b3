//! `cargo bench --bench report`: 100,000 scorecards written to disk, then read and reported on
//! (the store read, the aggregation, and the text and HTML renderings), timed separately; median
//! of 3.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use firedrill::journal::Record;
use firedrill::journal::event::{Event, Outcome, PhaseMillis};
use firedrill::scorecard::report::{self, Filter};
use firedrill::scorecard::{Scorecard, store};

const CARDS: usize = 100_000;
const ROUNDS: usize = 3;

/// A realistic scorecard, built the way the runner builds one: from a journal.
fn card(i: usize) -> Scorecard {
    let teams = ["payments", "search", "checkout", "ledger", "identity"];
    let drills = ["partner-latency", "partner-reset", "ledger-bandwidth", "wallet-blackhole"];
    let record = |seq: u64, t_ms: u64, event: Event| Record {
        seq,
        t_ms,
        wall_ms: 1_790_000_000_000 + i as u64 * 60_000 + t_ms,
        event,
    };
    let jitter = (i as u64 * 7919) % 600_000;
    let answer: firedrill::drill::AnswerKey = serde_json::from_value(serde_json::json!({
        "component": "partner", "kind": "latency", "accept": [["partner"]]
    }))
    .unwrap();
    let records = vec![
        record(
            1,
            0,
            Event::RunStarted {
                run_id: format!("run-{i}"),
                drill: drills[i % drills.len()].into(),
                title: "t".into(),
                briefing: String::new(),
                team: teams[i % teams.len()].into(),
                responder: None,
                seed: i as u64,
                blind: i.is_multiple_of(10),
                timebox_ms: 2_700_000,
                production_ms: PhaseMillis {
                    detect: 300_000,
                    diagnose: 1_200_000,
                    mitigate: 1_800_000,
                    resolve: 3_600_000,
                },
                ratio: 1.0 / 3.0,
                answer,
                slo: None,
                expected_alerts: Vec::new(),
            },
        ),
        record(2, 1000, Event::FaultApplied { fault: 0, proxy: "p".into(), toxic: "t".into(), kind: "latency".into() }),
        record(3, 60_000 + jitter / 4, Event::Ack { by: "ana".into() }),
        record(4, 300_000 + jitter, Event::Diagnosis { by: "ana".into(), text: "partner".into(), correct: true }),
        record(5, 900_000 + jitter, Event::ResolveDeclared { by: "ana".into() }),
        record(6, 900_000 + jitter, Event::Ended { outcome: Outcome::Resolved, reason: None }),
    ];
    Scorecard::from_journal(&records).unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    for i in 0..CARDS {
        store::write(dir.path(), &card(i)).unwrap();
    }
    println!("wrote {CARDS} scorecards in {:.1} s (setup, not measured)", started.elapsed().as_secs_f64());
    let (mut read, mut build, mut render, mut html) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let (cards, skipped) = store::read_all(dir.path());
        read.push(t.elapsed().as_secs_f64());
        assert_eq!(cards.len(), CARDS);
        let t = Instant::now();
        let report = report::build(&cards, &skipped, &Filter::default());
        build.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let text = report::text(&report);
        render.push(t.elapsed().as_secs_f64());
        assert!(text.contains("payments / partner-latency"));
        let t = Instant::now();
        let page = firedrill::scorecard::html::html(&report);
        html.push(t.elapsed().as_secs_f64());
        assert!(page.matches("<svg").count() >= 20 * 4);
    }
    let (r, b, t, h) = (median(read), median(build), median(render), median(html));
    println!("report over {CARDS} scorecards, median of {ROUNDS}:");
    println!("  read the store   {r:6.3} s");
    println!("  aggregate        {b:6.3} s");
    println!("  render text      {t:6.3} s");
    println!("  total            {:6.3} s   (target <= 1 s)", r + b + t);
    println!("  render HTML      {h:6.3} s   (charts of the latest 50 runs per drill)");
    println!("  total with HTML  {:6.3} s   (target <= 1 s)", r + b + h);
}
