//! Drill definitions (`drills/*.toml`): the file model, two-stage loading with located errors,
//! and the validated plan the runner receives.

pub mod duration;
pub mod file;
pub mod load;
pub mod plan;

pub use load::{DrillError, Environment, load, parse};
pub use plan::{AnswerKey, Drill, Fault, Hint, Phase, Targets, Verify};
