//! Reports and the readiness verdict over a fixed set of scorecards (snapshots of what people
//! read), plus a corrupt file that is skipped and listed, never fatal.

use std::path::Path;
use std::process::Command;

use firedrill::drill::Phase;
use firedrill::journal::event::Outcome;
use firedrill::scorecard::readiness::{self, Policy};
use firedrill::scorecard::report::{self, Filter};
use firedrill::scorecard::{Detection, PhaseScore, SCHEMA_VERSION, Scorecard, Verdict, store};

const DAY_MS: u64 = 86_400_000;
const NOW_MS: u64 = 1_800_000_000_000;

/// A scorecard of `team` on `drill`, `days_ago`, with the four phase times in seconds.
fn card(team: &str, drill: &str, n: u32, days_ago: u64, seconds: [Option<u64>; 4]) -> Scorecard {
    let targets = [100_000, 400_000, 600_000, 1_200_000];
    let phases = Phase::ALL
        .iter()
        .enumerate()
        .map(|(i, &phase)| {
            let actual_ms = seconds[i].map(|s| s * 1000);
            let verdict = match actual_ms {
                None => Verdict::NotReached,
                Some(t) if t <= targets[i] => Verdict::Met,
                Some(_) => Verdict::Missed,
            };
            PhaseScore { phase, target_ms: targets[i], production_target_ms: targets[i] * 3, actual_ms, verdict }
        })
        .collect();
    Scorecard {
        schema_version: SCHEMA_VERSION,
        run_id: format!("{drill}-{n}"),
        drill: drill.into(),
        title: drill.into(),
        team: team.into(),
        responder: Some("ana".into()),
        blind: false,
        started_wall_ms: NOW_MS - days_ago * DAY_MS,
        t0_ms: 0,
        void: false,
        false_alarms: Vec::new(),
        faults_failed: 0,
        mitigation: seconds[2].map(|_| firedrill::scorecard::Mitigation::FaultIn),
        resolved_without_diagnosis: false,
        outcome: Some(if seconds[3].is_some() { Outcome::Resolved } else { Outcome::Unresolved }),
        outcome_reason: None,
        phases,
        detection: Detection {
            human_ms: seconds[0].map(|s| s * 1000),
            human_by: Some("bo".into()),
            machine_ms: n.is_multiple_of(2).then_some(30_000),
            machine_alert: n.is_multiple_of(2).then(|| "Latency".into()),
        },
        diagnosed_by: seconds[1].map(|_| "ana".into()),
        mitigated_by: None,
        resolved_by: None,
        wrong_diagnoses: Vec::new(),
        hints: Vec::new(),
        faults_applied: 1,
        faults_left: 0,
        fault_kinds: vec![if drill.contains("reset") { "reset_peer".into() } else { "latency".into() }],
        kills: Vec::new(),
        budget: None,
        alerts: Vec::new(),
        noise: Vec::new(),
    }
}

fn fixture(root: &Path) {
    let mut cards = [
        card("payments", "partner-latency", 1, 50, [Some(200), Some(900), Some(1000), Some(1500)]),
        card("payments", "partner-latency", 2, 20, [Some(90), Some(500), Some(700), Some(1100)]),
        card("payments", "partner-latency", 3, 5, [Some(60), Some(300), Some(500), Some(900)]),
        card("payments", "partner-reset", 1, 3, [Some(80), Some(350), None, None]),
        card("search", "partner-latency", 1, 100, [Some(40), Some(200), Some(300), Some(600)]),
    ];
    cards[2].blind = true;
    for card in &cards {
        store::write(root, card).unwrap();
    }
    std::fs::write(root.join("payments/broken.json"), "{\"schema_version\": 1, \"run_id\": ").unwrap();
    // A newer firedrill's extra field is tolerated.
    let mut newer =
        serde_json::to_value(card("payments", "partner-reset", 2, 1, [Some(60), Some(200), Some(300), Some(600)]))
            .unwrap();
    newer["from_the_future"] = serde_json::json!({"x": 1});
    std::fs::write(root.join("payments/newer.json"), newer.to_string()).unwrap();
}

fn relative(report: &mut report::Report, root: &Path) {
    for skipped in &mut report.skipped {
        skipped.path = skipped.path.replace(&root.display().to_string(), "<scorecards>");
    }
}

#[test]
fn reports_in_text_markdown_and_json() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (cards, skipped) = store::read_all(dir.path());
    assert_eq!(cards.len(), 6, "the newer file is read");
    assert_eq!(skipped.len(), 1, "the broken file is skipped");
    let mut all = report::build(&cards, &skipped, &Filter::default());
    let catalogue: report::Catalogue =
        [("partner-latency", "latency"), ("partner-reset", "reset_peer"), ("wallet-blackhole", "timeout")]
            .into_iter()
            .map(|(d, k)| (d.to_owned(), vec![k.to_owned()]))
            .collect();
    all.coverage = report::coverage(&cards, &catalogue, &Filter::default(), NOW_MS - 30 * DAY_MS);
    assert_eq!(all.coverage[0].never_run, ["wallet-blackhole"]);
    assert_eq!(all.coverage[0].kinds_never_practised, ["timeout"]);
    assert_eq!(all.coverage[1].stale, ["partner-latency"], "search last ran it 100 days ago");
    relative(&mut all, dir.path());
    insta::assert_snapshot!("report_text", report::text(&all));
    insta::assert_snapshot!("report_markdown", report::markdown(&all));

    let since = Filter { team: Some("payments".into()), since_ms: Some(NOW_MS - 30 * DAY_MS), ..Filter::default() };
    let recent = report::build(&cards, &[], &since);
    let latency = &recent.drills[0];
    assert_eq!((latency.drill.as_str(), latency.runs), ("partner-latency", 2), "the 50-day-old run is outside 30d");
    assert_eq!(latency.phases[0].median_ms, Some(60_000));
    assert_eq!(latency.phases[0].p90_ms, Some(90_000));
    assert!((latency.phases[0].share_within_target - 1.0).abs() < f64::EPSILON);
    assert_eq!((latency.detected_by_people, latency.detected_by_alerts), (1, 1));
}

#[test]
fn readiness_verdict_and_junit() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (cards, _) = store::read_all(dir.path());
    let required = ["partner-latency".to_owned(), "partner-reset".to_owned()];
    let requirements = readiness::evaluate(&Policy::default(), "payments", &required, &cards, &[], NOW_MS).unwrap();
    let verdict = readiness::text("payments", &requirements);
    assert!(verdict.starts_with("NOT READY"));
    insta::assert_snapshot!("readiness_text", verdict);
    insta::assert_snapshot!("readiness_junit", readiness::junit("payments", &requirements, NOW_MS, 0.25));

    // Run 2 missed two targets; only the latest one counts under this policy.
    let lenient =
        Policy { required_drills: vec!["partner-latency".into()], last_runs_meet_targets: 1, ..Policy::default() };
    let ok = readiness::evaluate(&lenient, "payments", &lenient.required_drills, &cards, &[], NOW_MS).unwrap();
    assert!(ok.iter().all(|r| r.failure.is_none()), "{ok:?}");
}

#[test]
fn the_cli_gates_on_readiness_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("scorecards");
    std::fs::create_dir(&root).unwrap();
    // Runs dated now, so the 60-day window of the real clock covers them.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    for (n, seconds) in [(1, 300), (2, 200)] {
        let mut c = card("payments", "partner-latency", n, 0, [Some(30), Some(seconds), Some(seconds), Some(seconds)]);
        c.started_wall_ms = now - u64::from(n) * 1000;
        store::write(&root, &c).unwrap();
    }
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "required_drills = [\"partner-latency\"]\n").unwrap();
    let junit = dir.path().join("readiness.xml");
    let run = |policy_text: Option<&str>| {
        if let Some(text) = policy_text {
            std::fs::write(&policy, text).unwrap();
        }
        crate::verb::Verb::new::<&str>([])
            .args(["readiness", "--team", "payments", "--scorecards"])
            .arg(&root)
            .arg("--policy")
            .arg(&policy)
            .arg("--junit")
            .arg(&junit)
            .output()
            .unwrap()
    };
    let ready = run(None);
    assert_eq!(ready.status.code(), Some(0), "{}", String::from_utf8_lossy(&ready.stdout));
    assert!(String::from_utf8_lossy(&ready.stdout).starts_with("READY"));
    assert!(std::fs::read_to_string(&junit).unwrap().contains("failures=\"0\""));
    let not_ready = run(Some("required_drills = [\"partner-latency\", \"wallet-blackhole\"]\n"));
    assert_eq!(not_ready.status.code(), Some(1));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"type="NotReady">0 run(s) in the last 60d</failure>"#),
        "the reason is the failure's text: {xml}"
    );
    assert!(xml.contains(r#"errors="0""#) && xml.contains(" time=\"") && xml.contains(" timestamp=\""), "{xml}");
    let bad = run(Some("min_runz = 3\n"));
    assert_eq!(bad.status.code(), Some(2), "a bad policy is bad input");
    assert!(!junit.exists(), "a failed readiness leaves no earlier verdict behind");
    let err = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(err.contains("policy.toml:1:1: unknown field `min_runz`"), "{err}");
    let bad = run(Some("min_runs = 3\nwindow = \"sixty days\"\n"));
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(err.contains("policy.toml:2:10: window: "), "the window's own place: {err}");
    let bad = run(Some("window = \"99999999999999999d\"\n"));
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    // No required drills in the policy, and no drill directory to take them from.
    let missing = dir.path().join("no-drills-here");
    let bad = crate::verb::Verb::new::<&str>([])
        .args(["readiness", "--team", "payments", "--scorecards"])
        .arg(&root)
        .arg("--drills")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr).into_owned();
    assert!(err.contains("cannot list the required drills in `") && err.contains("--drills DIR"), "{err}");

    let report = crate::verb::Verb::new::<&str>([])
        .args(["report", "--format", "json", "--scorecards"])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(report.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(json["drills"][0]["runs"], 2);
}

/// Chromium from Debian's package (the test that needs it is ignored unless asked for).
fn chromium() -> &'static str {
    let path = "/usr/bin/chromium";
    assert!(
        std::path::Path::new(path).exists(),
        "this test needs {path}: .ci/install installs it (apt-get install chromium)"
    );
    path
}

#[test]
#[ignore = "needs Chromium (.ci/install installs it)"]
fn the_html_report_is_self_contained_and_its_charts_render_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let html_path = dir.path().join("report.html");
    let out = crate::verb::Verb::new::<&str>([])
        .args(["report", "--format", "html", "--since", "3650d", "--out"])
        .arg(&html_path)
        .arg("--scorecards")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&html_path).unwrap();
    let charts = html.matches("<svg").count();
    assert!(charts >= 4 * 3, "four phase charts per drill: {charts}");
    assert!(!html.contains("src=") && !html.contains("<link") && !html.contains("url("), "nothing is fetched");
    assert!(html.contains("payments / partner-latency"));

    let browser = chromium();
    // The check runs in the browser: every chart must lay out with a size and hold drawn lines.
    let probe = html.replace(
        "</body>",
        "<script>const charts = [...document.querySelectorAll('figure.chart svg')];\
         const drawn = charts.filter(s => { const b = s.getBoundingClientRect(); \
         return b.width > 100 && b.height > 100 && s.querySelectorAll('polyline, path, circle').length > 2; });\
         document.body.setAttribute('data-charts', charts.length); \
         document.body.setAttribute('data-drawn', drawn.length);</script></body>",
    );
    let probe_path = dir.path().join("probe.html");
    std::fs::write(&probe_path, probe).unwrap();
    let dom = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--dump-dom"])
        .arg(format!("file://{}", probe_path.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    let attribute = |name: &str| -> usize {
        let start = dom.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("no {name} in the DOM: {dom:.400}"))
            + name.len()
            + 2;
        dom[start..].split('"').next().unwrap().parse().unwrap()
    };
    assert_eq!(attribute("data-charts"), charts, "every chart is in the rendered page");
    assert_eq!(attribute("data-drawn"), charts, "every chart rendered with a size and its lines");
}

#[test]
fn readiness_requires_the_expected_alerts_when_a_drill_has_them() {
    use firedrill::scorecard::AlertScore;
    let alert = |met: bool| AlertScore {
        name: "page-1h".into(),
        within_ms: 300_000,
        fired_after_ms: met.then_some(60_000),
        met,
        due: true,
        already_firing: false,
    };
    let fast = [Some(60), Some(200), Some(300), Some(600)];
    let mut cards = vec![card("payments", "api-burst", 1, 3, fast), card("payments", "api-burst", 2, 2, fast)];
    cards[0].alerts = vec![alert(true)];
    cards[1].alerts = vec![alert(false)];
    let required = ["api-burst".to_owned()];
    let requirements = readiness::evaluate(&Policy::default(), "payments", &required, &cards, &[], NOW_MS).unwrap();
    let alerts = requirements.iter().find(|r| r.name.starts_with("no expected alert missing")).unwrap();
    assert_eq!(alerts.failure.as_deref(), Some("api-burst-2 page-1h never fired"));
    assert!(readiness::text("payments", &requirements).starts_with("NOT READY"));
    // Not fired when a quick run ended before the deadline: not judged, so not missing.
    cards[1].alerts = vec![AlertScore { due: false, ..alert(false) }];
    let requirements = readiness::evaluate(&Policy::default(), "payments", &required, &cards, &[], NOW_MS).unwrap();
    assert!(requirements.iter().all(|r| r.failure.is_none()), "{requirements:?}");
    cards[1].alerts = vec![alert(true)];
    let requirements = readiness::evaluate(&Policy::default(), "payments", &required, &cards, &[], NOW_MS).unwrap();
    assert!(requirements.iter().all(|r| r.failure.is_none()), "{requirements:?}");
}

/// Runs `firedrill readiness` for team payments over `root`, with `drills` as the catalogue.
fn readiness_cli(root: &Path, drills: &Path) -> (Option<i32>, String, String) {
    let out = crate::verb::Verb::new::<&str>([])
        .args(["readiness", "--team", "payments", "--scorecards"])
        .arg(root)
        .arg("--drills")
        .arg(drills)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_gate_reads_only_real_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let (root, drills) = (dir.path().join("scorecards"), dir.path().join("drills"));
    std::fs::create_dir_all(&drills).unwrap();
    // The file is renamed; the drill keeps its name, which is what runs and reports use.
    let drill =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("drills/partner-latency.toml")).unwrap();
    std::fs::write(drills.join("renamed-file.toml"), drill).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let fast = [Some(30), Some(200), Some(300), Some(600)];
    let at = |mut c: Scorecard, ms: u64| {
        c.started_wall_ms = ms;
        c
    };
    // One good run, then a void one and one whose fault failed: neither is evidence.
    let good = at(card("payments", "partner-latency", 1, 0, fast), now - 60_000);
    let mut void = at(card("payments", "partner-latency", 2, 0, fast), now - 50_000);
    void.void = true;
    void.faults_applied = 0;
    let mut failed = at(card("payments", "partner-latency", 3, 0, fast), now - 40_000);
    failed.faults_applied = 0;
    failed.faults_failed = 1;
    for c in [&good, &void, &failed] {
        store::write(&root, c).unwrap();
    }
    let (code, out, err) = readiness_cli(&root, &drills);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.contains("partner-latency: run at least 2 times in the last 60d — 1 run(s)"), "{out}");

    // A copy of the good run under another name is still one run.
    std::fs::copy(root.join("payments/partner-latency-1.json"), root.join("payments/copy.json")).unwrap();
    let (code, out, _) = readiness_cli(&root, &drills);
    assert_eq!(code, Some(1));
    assert!(out.contains("— 1 run(s)"), "{out}");
    assert!(
        out.contains("  note  ") && out.contains(": another file holds run `partner-latency-1` too"),
        "named: {out}"
    );
    std::fs::remove_file(root.join("payments/copy.json")).unwrap();

    // A second real run makes it READY; ties on the start time follow the daemon's sequence
    // (…-10 after …-9), so the latest run judged is the one numbered 10.
    let mut nine = at(card("payments", "partner-latency", 9, 0, fast), now - 30_000);
    nine.run_id = "partner-latency-1796000000-9".into();
    let mut ten =
        at(card("payments", "partner-latency", 10, 0, [Some(30), Some(9_000), Some(300), Some(600)]), now - 30_000);
    ten.run_id = "partner-latency-1796000000-10".into();
    store::write(&root, &nine).unwrap();
    let (code, out, err) = readiness_cli(&root, &drills);
    assert_eq!(code, Some(0), "{out}{err}");
    store::write(&root, &ten).unwrap();
    let (code, out, _) = readiness_cli(&root, &drills);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("partner-latency-1796000000-10 diagnose missed") && !out.contains("-9 diagnose"), "{out}");
    std::fs::remove_file(root.join("payments/partner-latency-1796000000-10.json")).unwrap();

    // An unreadable scorecard, or one from a newer firedrill, is named and fails the gate.
    std::fs::write(root.join("payments/torn.json"), "{\"schema_version\": 2, \"run_id\": ").unwrap();
    let (code, out, _) = readiness_cli(&root, &drills);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  (scorecard store): every scorecard can be read") && out.contains("torn.json"), "{out}");
    std::fs::remove_file(root.join("payments/torn.json")).unwrap();
    let mut future = serde_json::to_value(at(card("payments", "partner-latency", 11, 0, fast), now)).unwrap();
    future["schema_version"] = serde_json::json!(SCHEMA_VERSION + 1);
    std::fs::write(root.join("payments/future.json"), future.to_string()).unwrap();
    let (code, out, _) = readiness_cli(&root, &drills);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("future.json: written by a newer firedrill"), "{out}");
    std::fs::remove_file(root.join("payments/future.json")).unwrap();
    assert_eq!(readiness_cli(&root, &drills).0, Some(0));

    // A drill file that does not load is an error of readiness, not a requirement.
    std::fs::write(drills.join("typo.toml"), "[drill]\nname = \"x\"\ntitel = \"oops\"\n").unwrap();
    let (code, out, err) = readiness_cli(&root, &drills);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("typo.toml:") && err.contains("each must load"), "{err}");
}

#[test]
fn the_managers_answer_has_a_verdict_a_date_and_a_trend_per_team_and_drill() {
    use firedrill::scorecard::glance::{self, AlertRecord, Trend};
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let (cards, _) = store::read_all(dir.path());
    let rows = glance::build(&cards, &Filter::default(), &Policy::default(), NOW_MS);
    let pairs: Vec<(&str, &str, bool)> = rows.iter().map(|g| (g.team.as_str(), g.drill.as_str(), g.ready)).collect();
    // NOT READY first; search's only run is 100 days old, out of the 60-day window.
    assert_eq!(
        pairs,
        [
            ("payments", "partner-latency", false),
            ("payments", "partner-reset", false),
            ("search", "partner-latency", false),
        ]
    );
    let latency = &rows[0];
    assert_eq!(latency.last_run.as_deref(), Some("2027-01-10"));
    // Detect went 200 s, 90 s, 60 s: the newer half is faster than the older.
    assert_eq!(latency.trends, [Trend::Faster; 4]);
    assert_eq!(latency.alerts, AlertRecord::default());
    assert_eq!(
        latency.reasons,
        ["the last 2 run(s) meet every phase target: partner-latency-2 diagnose missed by 1m40s (8m20s against \
          6m40s) on 2026-12-26; partner-latency-2 mitigate missed by 1m40s (11m40s against 10m) on 2026-12-26"]
    );
    // partner-reset's older run never reached mitigation; its newer one did: too few to say.
    assert_eq!(rows[1].trends, [Trend::TooFew; 4]);
    assert_eq!(rows[2].last_run, None);
    assert_eq!(rows[2].reasons[0], "run at least 2 times in the last 60d: 0 run(s) in the last 60d");

    // A run that did not reach a phase the earlier ones reached: slower, whatever the times.
    let mut worse = cards.clone();
    worse.push(card("payments", "partner-latency", 4, 1, [Some(50), None, None, None]));
    let rows = glance::build(&worse, &Filter::default(), &Policy::default(), NOW_MS);
    assert_eq!(rows[0].trends, [Trend::Faster, Trend::Slower, Trend::Slower, Trend::Slower]);
    assert_eq!(rows[0].last_run.as_deref(), Some("2027-01-14"));
}

#[test]
fn the_html_report_opens_on_the_managers_answer() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path());
    let out = crate::verb::Verb::new::<&str>([])
        .args(["report", "--format", "html", "--since", "3650d", "--scorecards"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let html = String::from_utf8_lossy(&out.stdout);
    let glance = html.find("<section id=\"glance\">").expect("the answer is there");
    assert!(glance < html.find("<section class=\"drill\">").unwrap(), "before any drill's details");
    // A team × drill grid: search never ran partner-reset.
    let grid = &html[glance..html[glance..].find("</table>").unwrap() + glance];
    assert_eq!(grid.matches("<tr><th>").count(), 3, "the drills, then a row per team: {grid}");
    assert!(grid.contains("<th>partner-latency</th><th>partner-reset</th>"), "{grid}");
    assert!(grid.contains("never run"), "{grid}");
    assert!(grid.contains("NOT READY") && grid.contains("last run 20") && grid.contains("detect "), "{grid}");
    assert!(html.contains("Why not ready") && html.contains("missed by 1m40s"), "reasons with amounts");
    // The charts are labelled with dates, not run numbers.
    assert!(html.contains("run start (UTC)") && !html.contains(">run<"));
}

#[test]
fn readiness_can_require_everyone_on_call_to_have_practised() {
    let day = 86_400_000;
    // Bo acknowledged 10 days ago; Cy resolved 100 days ago; Dee never took part.
    let mut recent = card("payments", "partner-latency", 1, 10, [Some(60), Some(200), Some(300), Some(600)]);
    recent.detection.human_by = Some("Bo".into());
    let mut old = card("payments", "partner-latency", 2, 100, [Some(60), Some(200), Some(300), Some(600)]);
    old.resolved_by = Some("Cy".into());
    let cards = [recent, old];
    let required = ["partner-latency".to_owned()];
    let policy = Policy {
        every_on_call_practised_within: Some("90d".into()),
        on_call: vec!["Bo".into(), "Cy".into(), "Dee".into()],
        min_runs: 1,
        last_runs_meet_targets: 1,
        window: "365d".into(),
        ..Policy::default()
    };
    let requirements = readiness::evaluate(&policy, "payments", &required, &cards, &[], NOW_MS).unwrap();
    let on_call = requirements.iter().find(|r| r.drill == "(on-call rotation)").unwrap();
    let failure = on_call.failure.as_deref().unwrap();
    let cy_last = chrono::DateTime::from_timestamp_millis(i64::try_from(NOW_MS - 100 * day).unwrap()).unwrap();
    assert_eq!(failure, format!("Cy last practised on {}; Dee never practised", cy_last.format("%Y-%m-%d")));
    assert!(readiness::text("payments", &requirements).starts_with("NOT READY"));
    // With Bo alone on call, it holds; with no rotation known, it fails and says where to list it.
    let bo = Policy { on_call: vec!["Bo".into()], ..policy.clone() };
    assert!(
        readiness::evaluate(&bo, "payments", &required, &cards, &[], NOW_MS)
            .unwrap()
            .iter()
            .all(|r| r.failure.is_none())
    );
    let nobody = Policy { on_call: vec![], ..policy };
    let requirements = readiness::evaluate(&nobody, "payments", &required, &cards, &[], NOW_MS).unwrap();
    assert!(requirements.iter().any(|r| r.failure.as_deref().is_some_and(|f| f.contains("teams/payments.toml"))));
    // The span is checked where it is written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, "min_runs = 1\nevery_on_call_practised_within = \"ninety days\"\n").unwrap();
    let errors = Policy::load(&path).unwrap_err();
    assert_eq!((errors[0].line, errors[0].column), (2, 34), "{errors:?}");
    std::fs::write(&path, "[team]\non_call = [\"Bo\", \"Cy\"]\n").unwrap();
    assert_eq!(readiness::on_call_rotation(&path).unwrap(), ["Bo", "Cy"]);
}
