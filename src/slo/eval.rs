//! Live evaluation of burn-rate rules over one-second buckets of an SLI.
//!
//! A drill starts with no history, while the rules' windows are hours long. Seconds before the
//! first one observed count as good traffic at the rate observed so far: that is what a steady
//! state before the fault looks like, and it makes the rules fire when the math says they would
//! in production (`Rule::time_to_fire`), not the moment the first error arrives.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Objective, Rule};

/// A rule starting or stopping to fire, with the ratios that decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// The rule's name.
    pub rule: String,
    /// True when it starts firing, false when it clears.
    pub firing: bool,
    /// Error ratio over the long window.
    pub long_ratio: f64,
    /// Error ratio over the short window.
    pub short_ratio: f64,
    /// The threshold both must exceed.
    pub threshold: f64,
}

/// The rules of one SLI and the seconds they look at.
#[derive(Debug, Clone)]
pub struct Evaluator {
    objective: Objective,
    rules: Vec<Rule>,
    /// Running totals of (valid, bad) after each second, oldest first, behind the totals
    /// before the oldest second kept: at most the longest window plus one, so the counts of
    /// any window are one subtraction.
    totals: VecDeque<(u64, u64)>,
    capacity: usize,
    firing: Vec<bool>,
}

fn secs(d: std::time::Duration) -> usize {
    usize::try_from(d.as_secs()).unwrap_or(usize::MAX).max(1)
}

impl Evaluator {
    /// An evaluator of `rules` for `objective`.
    pub fn new(objective: Objective, rules: Vec<Rule>) -> Self {
        let capacity = rules.iter().map(|r| secs(r.long)).max().unwrap_or(1);
        let firing = vec![false; rules.len()];
        Self { objective, rules, totals: VecDeque::from([(0, 0)]), capacity, firing }
    }

    /// The error ratio and bad count over the last `window` seconds, the unobserved part of the
    /// window counted as good traffic at the observed rate.
    pub fn ratio(&self, window: usize) -> (f64, u64) {
        let n = window.min(self.totals.len() - 1);
        if n == 0 {
            return (0.0, 0);
        }
        let (last, first) = (self.totals[self.totals.len() - 1], self.totals[self.totals.len() - 1 - n]);
        let (valid, bad) = (last.0 - first.0, last.1 - first.1);
        if valid == 0 {
            return (0.0, bad);
        }
        #[allow(clippy::cast_precision_loss)]
        let expected = valid as f64 * window as f64 / n as f64;
        #[allow(clippy::cast_precision_loss)]
        (bad as f64 / expected, bad)
    }

    /// Adds one second of counts; returns the rules that started or stopped firing.
    pub fn push(&mut self, valid: u64, bad: u64) -> Vec<Transition> {
        let last = self.totals[self.totals.len() - 1];
        self.totals.push_back((last.0 + valid, last.1 + bad.min(valid)));
        while self.totals.len() > self.capacity + 1 {
            self.totals.pop_front();
        }
        let mut changes = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let threshold = rule.threshold(&self.objective);
            let (long_ratio, long_bad) = self.ratio(secs(rule.long));
            let (short_ratio, _) = self.ratio(secs(rule.short));
            let firing = long_ratio > threshold && short_ratio > threshold && long_bad >= rule.min_bad;
            if firing != self.firing[i] {
                self.firing[i] = firing;
                changes.push(Transition { rule: rule.name.clone(), firing, long_ratio, short_ratio, threshold });
            }
        }
        changes
    }

    /// The burn rate over each window the rules use, shortest first: the window's error ratio
    /// over the budget's allowed ratio.
    pub fn burn_rates(&self) -> Vec<(std::time::Duration, f64)> {
        let mut windows: Vec<std::time::Duration> = self.rules.iter().flat_map(|r| [r.short, r.long]).collect();
        windows.sort();
        windows.dedup();
        let allowed = self.objective.allowed();
        windows.into_iter().map(|w| (w, if allowed > 0.0 { self.ratio(secs(w)).0 / allowed } else { 0.0 })).collect()
    }

    /// The rules firing now.
    pub fn firing(&self) -> Vec<&str> {
        self.rules.iter().zip(&self.firing).filter(|(_, f)| **f).map(|(r, _)| r.name.as_str()).collect()
    }
}

/// The first second from t0 in which `rule` fires, looking at most `limit` seconds ahead, when
/// every request fails in the seconds `bad` says (1 = the first second after t0) and none fails
/// in the others, at `rps` requests a second. What `firedrill validate` checks a drill's
/// expected alerts with: the fault timeline at its worst.
pub fn first_firing(objective: Objective, rule: Rule, rps: u64, limit: u64, bad: impl Fn(u64) -> bool) -> Option<u64> {
    let mut evaluator = Evaluator::new(objective, vec![rule]);
    (1..=limit).find(|&second| evaluator.push(rps, if bad(second) { rps } else { 0 }).iter().any(|c| c.firing))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::slo::default_rules;

    fn evaluator(min_bad: u64) -> Evaluator {
        let objective = Objective::new(99.9, Duration::from_secs(30 * 86_400)).unwrap();
        Evaluator::new(objective, default_rules(objective.period, min_bad))
    }

    #[test]
    fn the_page_fires_when_predicted_and_clears_after_the_errors_stop() {
        let mut e = evaluator(0);
        let mut events = Vec::new();
        for second in 1..=600_u64 {
            let bad = if second <= 60 { 100 } else { 0 };
            for change in e.push(100, bad) {
                events.push((second, change.rule, change.firing));
            }
        }
        // 100 % errors: the 1 h page crosses 1.44 % after 51.84 s, so it fires in second 52.
        assert_eq!(events[0], (52, "page-1h".to_owned(), true));
        // The 6 h page needs 6 h × 0.006 = 129.6 s of total outage: the 60 s burst is not enough.
        assert!(events.iter().all(|(_, rule, _)| rule == "page-1h"), "{events:?}");
        // The 5 min window forgets the burst: once less than 4.32 s (1.44 % of 300 s) of it is
        // left in the window, in second 356, the page clears.
        assert_eq!(events[1], (356, "page-1h".to_owned(), false));
        assert!(e.firing().is_empty());
    }

    #[test]
    fn a_ten_percent_error_ratio_pages_after_8_64_minutes() {
        let mut e = evaluator(0);
        let fired = (1..=1200_u64).find(|_| e.push(100, 10).iter().any(|c| c.rule == "page-1h" && c.firing));
        assert_eq!(fired, Some(519), "518.4 s");
    }

    #[test]
    fn bursts_page_once_enough_of_them_add_up() {
        // The catalogue's partner-503-burst: 20 s of errors every 60 s. The 1 h page needs
        // 51.84 s of them in its window: 20 + 20 + 12, in second 132, so that drill expects
        // the page within 3 minutes, not 2.
        let e = evaluator(0);
        let page = e.rules[0].clone();
        assert_eq!(page.name, "page-1h");
        let fired = first_firing(e.objective, page.clone(), 10, 600, |second| (second - 1) % 60 < 20);
        assert_eq!(fired, Some(132));
        assert_eq!(first_firing(e.objective, page, 10, 131, |second| (second - 1) % 60 < 20), None);
    }

    #[test]
    fn low_traffic_suppression() {
        // One request a minute (60 an hour: one error is 1.7 % > 1.44 %); one of them fails.
        let run = |min_bad| {
            let mut e = evaluator(min_bad);
            let mut fired = false;
            for second in 1..=240_u64 {
                let valid = u64::from(second % 60 == 0);
                let bad = u64::from(second == 120);
                fired |= e.push(valid, bad).iter().any(|c| c.firing);
            }
            fired
        };
        assert!(run(0), "a single error pages at this traffic");
        assert!(!run(3), "not with a minimum of 3 bad events");
    }
}
