//! The steady-state check: the rule that says when the steady state holds.
//!
//! Mitigation is the first moment after t0 from which the steady state held for the drill's
//! verification window; the window's start is the timestamp, so its length is not charged.

use std::time::Duration;

/// How often the steady state is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Tracks whether the steady state holds: since a streak began, the share of good probes must
/// stay at or above `ratio`; once the streak spans `window`, the state holds from its start.
#[derive(Debug, Clone)]
pub struct SteadyState {
    window_ms: u64,
    ratio: f64,
    /// Start of the current streak, with (good, total) probes in it.
    streak: Option<(u64, u32, u32)>,
}

impl SteadyState {
    /// A tracker for a window and a success ratio.
    pub fn new(window: Duration, ratio: f64) -> Self {
        Self { window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX), ratio, streak: None }
    }

    /// Where the current streak of (mostly) good probes began, if one is going on.
    pub fn streak_start(&self) -> Option<u64> {
        self.streak.map(|(start, _, _)| start)
    }

    /// Records a probe at `t_ms`; returns the streak's start once the state has held a window.
    pub fn observe(&mut self, t_ms: u64, ok: bool) -> Option<u64> {
        let (start, good, total) = match self.streak {
            None if !ok => return None,
            None => (t_ms, 1, 1),
            Some((start, good, total)) => (start, good + u32::from(ok), total + 1),
        };
        if f64::from(good) / f64::from(total) < self.ratio {
            self.streak = None;
            return None;
        }
        self.streak = Some((start, good, total));
        (t_ms - start >= self.window_ms).then_some(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_once_a_full_window_of_good_probes_is_seen() {
        let mut state = SteadyState::new(Duration::from_secs(3), 1.0);
        assert_eq!(state.observe(0, false), None);
        assert_eq!(state.observe(1000, true), None);
        assert_eq!(state.observe(2000, true), None);
        assert_eq!(state.observe(3000, false), None, "a failure restarts the streak");
        for t in [4000, 5000, 6000] {
            assert_eq!(state.observe(t, true), None);
        }
        assert_eq!(state.observe(7000, true), Some(4000), "the window's start is the timestamp");
    }

    #[test]
    fn a_ratio_below_one_tolerates_some_failures() {
        let mut state = SteadyState::new(Duration::from_secs(4), 0.75);
        state.observe(0, true);
        state.observe(1000, true);
        state.observe(2000, true);
        assert_eq!(state.observe(3000, false), None, "3 of 4 is still 0.75");
        assert_eq!(state.observe(4000, true), Some(0));
    }
}
