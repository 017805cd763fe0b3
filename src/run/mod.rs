//! Runs: the events of a run, its crash-safe journal, and the runner that applies faults.

pub mod event;
pub mod journal;
pub mod manager;
pub mod runner;
pub mod verify;
