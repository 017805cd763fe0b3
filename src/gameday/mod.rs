//! Game days: plans (`gamedays/*.toml`) with roles, a schedule and a sequence of drills and
//! breaks; the daemon's conduct of them (on time, notified, journaled); their calendar files;
//! and the day's write-up.

pub mod conduct;
pub mod ical;
pub mod log;
pub mod notify;
pub mod plan;
pub mod report;
mod schedule;
pub mod when;

pub use conduct::{DayView, Gamedays, Overview, ScheduledView};
pub use plan::{Plan, Step};

/// Why a request about game days failed.
#[derive(Debug, thiserror::Error)]
pub enum GamedayError {
    /// No plan of that name.
    #[error("no game-day plan `{0}` in the plan directory (`firedrill gameday list` shows them)")]
    NoPlan(String),
    /// The plan does not load.
    #[error("the plan is invalid:\n{0}")]
    BadPlan(String),
    /// Another game day is in progress.
    #[error("game day `{0}` is in progress: end it first (`firedrill gameday end`)")]
    InProgress(String),
    /// No game day is in progress.
    #[error("no game day is in progress")]
    NoneInProgress,
    /// The game day named is not in progress.
    #[error("game day `{0}` is not in progress")]
    NotInProgress(String),
    /// No game day of that id.
    #[error("no game day `{0}` (`firedrill gameday status` lists them)")]
    NoGameday(String),
    /// No game day has taken place yet.
    #[error("no game day has taken place yet: name one with --gameday ID")]
    NoneYet,
    /// A note that cannot be taken.
    #[error("{0}")]
    BadNote(String),
    /// The daemon is stopping.
    #[error("the daemon is stopping")]
    Stopping,
    /// A journal could not be read or written.
    #[error("game-day journal: {0} (check that the data directory is writable)")]
    Io(String),
}
