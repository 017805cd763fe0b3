//! Drill definitions (`drills/*.toml`): the file model, two-stage loading with located errors,
//! and the validated plan the runner receives.

pub mod file;
pub mod load;
pub mod plan;

pub use load::{Environment, load, parse};
/// The drills of a directory, by file stem, sorted (the names `firedrill run` takes).
pub fn names_in(dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

pub use plan::{
    AnswerKey, Drill, ExpectedAlert, Fault, FaultAction, Guardrails, Hint, KillAction, KillPlan, Phase, Pick, Selector,
    SliSource, SloPlan, Targets, TrafficPlan, TrafficTarget, Verify,
};
