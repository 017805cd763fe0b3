//! `firedrill replay`: a fixed journal (with a torn last line) gives the same scorecard, always.

fn replay(fixture: &str) -> serde_json::Value {
    let journal = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let output = crate::verb::Verb::new::<&str>([]).args(["replay", &journal]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let card = serde_json::from_slice(&output.stdout).unwrap();
    crate::harness::assert_scorecard_schema(&card);
    card
}

#[test]
fn a_fixed_journal_replays_to_its_scorecard() {
    insta::assert_json_snapshot!(replay("partner-latency.jsonl"));
}

#[test]
fn a_timed_out_journal_scores_as_unresolved() {
    insta::assert_json_snapshot!(replay("timebox.jsonl"));
}

#[test]
fn a_journal_that_is_not_one_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "{\"seq\":1}\n{\"seq\":2}\n").unwrap();
    let output = crate::verb::Verb::new::<&str>([]).arg("replay").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.jsonl:1: not a journal event"));
}
