//! A run's timeline: faults in and out, scheduled hints, kill rounds, and the timebox, in the
//! order they happen. Pure: the runner pops it as tokio's clock reaches each step.

use std::collections::BTreeMap;

use tokio::time::Duration;

use crate::drill::{Drill, FaultAction, KillPlan};

/// One thing the timeline does at its moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Put fault `index` in.
    Apply(usize),
    /// The next round of a repeating kill fault.
    Kill(usize, u32),
    Remove(usize),
    Hint(usize),
    Timebox,
}

/// The run's timeline, in order: by offset, the timebox last among equal offsets, then in the
/// order steps were added.
#[derive(Default)]
pub(super) struct Schedule {
    steps: BTreeMap<(Duration, bool, u64), Step>,
    added: u64,
}

impl Schedule {
    pub(super) fn add(&mut self, at: Duration, step: Step) {
        self.added += 1;
        self.steps.insert((at, matches!(step, Step::Timebox), self.added), step);
    }

    pub(super) fn next_at(&self) -> Option<Duration> {
        self.steps.first_key_value().map(|((at, _, _), _)| *at)
    }

    pub(super) fn pop(&mut self) -> Option<Step> {
        self.steps.pop_first().map(|(_, step)| step)
    }
}

/// Faults in and out, scheduled hints, and the timebox last; repeating kills add their rounds
/// as they go ([`schedule_next_round`]).
pub(super) fn schedule(drill: &Drill, shift: Duration) -> Schedule {
    let mut schedule = Schedule::default();
    for (index, fault) in drill.faults.iter().enumerate() {
        schedule.add(shift + fault.at, Step::Apply(index));
        if let Some(duration) = fault.duration {
            schedule.add(shift + fault.at + duration, Step::Remove(index));
        }
    }
    for (index, hint) in drill.hints.iter().enumerate() {
        if let Some(after) = hint.after {
            schedule.add(shift + after, Step::Hint(index));
        }
    }
    schedule.add(shift + drill.timebox, Step::Timebox);
    schedule
}

/// Schedules round `round` of a kill fault with `every`, if it falls before the fault ends.
pub(super) fn schedule_next_round(schedule: &mut Schedule, drill: &Drill, index: usize, round: u32, now: Duration) {
    let fault = &drill.faults[index];
    let FaultAction::Kill(KillPlan { every: Some(every), .. }) = &fault.action else { return };
    let at = now + *every;
    let ends = fault.duration.map_or(drill.timebox, |d| fault.at + d);
    if at < ends {
        schedule.add(at, Step::Kill(index, round));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::drill::Environment;

    const DRILL: &str = r#"
[drill]
name = "crashloop"
title = "Wallet replicas keep dying"
briefing = "Some payments fail."
timebox = "20m"

[targets]
production = { detect = 5, diagnose = 15, mitigate = 20, resolve = 30 }

[blast_radius]
max_targets = 1

[[faults]]
at = "1m"
duration = "2m"
kill = { process = "wallet", count = 1, every = "30s" }

[[faults]]
at = "0s"
duration = "20m"
proxy = "partner"
toxic = { type = "latency", attributes = { latency = 100 } }

[answer]
component = "wallet"
kind = "crash"
accept = ["wallet"]

[[hints]]
after = "8m"
text = "Look at the restarts."

[[hints]]
text = "Only on request."
"#;

    fn drill() -> Drill {
        let environment = Environment { proxies: ["partner".to_owned()].into(), ..Environment::default() };
        crate::drill::parse(Path::new("t.toml"), DRILL, &environment).unwrap()
    }

    fn drain(schedule: &mut Schedule) -> Vec<(Duration, Step)> {
        let mut steps = Vec::new();
        while let Some(at) = schedule.next_at() {
            steps.push((at, schedule.pop().unwrap()));
        }
        steps
    }

    const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_timeline_is_in_order_with_the_timebox_last_among_equals() {
        let drill = drill();
        let mut schedule = schedule(&drill, s(3));
        assert_eq!(
            drain(&mut schedule),
            [
                (s(3), Step::Apply(0)),
                (s(63), Step::Apply(1)),
                (s(183), Step::Remove(1)),
                (s(483), Step::Hint(0)),
                (s(1203), Step::Remove(0)),
                (s(1203), Step::Timebox),
            ],
            "faults in drill order (by offset), shifted by the warm-up; the hint on request is not \
             scheduled; the fault that ends with the timebox comes out before it"
        );
        assert_eq!(schedule.next_at(), None);
    }

    #[test]
    fn kill_rounds_repeat_until_the_fault_ends() {
        let drill = drill();
        let mut schedule = Schedule::default();
        // Rounds every 30 s from the first at 1m; the fault ends at 3m.
        for (round, now) in [(1, s(60)), (2, s(90)), (3, s(120)), (4, s(150))] {
            schedule_next_round(&mut schedule, &drill, 1, round, now);
        }
        assert_eq!(
            drain(&mut schedule),
            [(s(90), Step::Kill(1, 1)), (s(120), Step::Kill(1, 2)), (s(150), Step::Kill(1, 3))],
            "the round due at 3m, when the fault ends, never comes"
        );
        schedule_next_round(&mut schedule, &drill, 0, 1, s(0));
        assert_eq!(schedule.next_at(), None, "a toxic fault has no rounds");
    }
}
