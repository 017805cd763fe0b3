//! The texts people read, held word for word by insta snapshots: every verb's `--help` here;
//! what `validate` says, `status` and `/metrics` where a drill, a run and a proxy exist
//! (`validate.rs`, `drill_e2e.rs`, `api.rs`). `cargo insta review` shows a change for approval.

use crate::verb::Verb;

/// The verbs of the command tree (the hidden `shop` is for the demo's own services).
const VERBS: [&[&str]; 21] = [
    &[],
    &["serve"],
    &["run"],
    &["ack"],
    &["diagnose"],
    &["hint"],
    &["mitigate"],
    &["resolve"],
    &["abort"],
    &["status"],
    &["watch"],
    &["validate"],
    &["up"],
    &["slo", "budget"],
    &["slo", "rules"],
    &["demo"],
    &["ps"],
    &["down"],
    &["report"],
    &["readiness"],
    &["replay"],
];

/// `firedrill VERB --help`, with no `FIREDRILL_*` variable that would show as a default.
fn help(verb: &[&str]) -> String {
    let mut command = Verb::new(verb).arg("--help");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("FIREDRILL_")) {
        command = command.env_remove(&key);
    }
    let ran = command.run().code(0).stderr("");
    ran.stdout
}

#[test]
fn every_verbs_help_reads_as_approved() {
    for verb in VERBS {
        let name = if verb.is_empty() { "help".to_owned() } else { format!("help_{}", verb.join("_")) };
        insta::assert_snapshot!(name, help(verb));
    }
}
