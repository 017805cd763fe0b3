//! Scheduled game days: the daemon arms every plan with a `start` and starts it at each
//! occurrence. The next occurrence of each plan is kept on disk (`<data>/gamedays/armed/`), so a
//! daemon that was down when one passed reports it missed — journaled and notified — and never
//! starts it late unannounced.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::conduct::{Armed, GRACE_MS, Gamedays, ScheduledView};
use super::log::DayEvent;
use super::plan::Plan;
use super::when::Occurrence;

/// The most missed occurrences reported at once (a daemon down for years).
const MISSED_LIMIT: usize = 100;

impl Gamedays {
    fn armed_path(&self, plan: &str) -> PathBuf {
        self.journal_dir().join("armed").join(format!("{plan}.json"))
    }

    fn keep(&self, plan: &str, next_ms: Option<i64>) {
        let path = self.armed_path(plan);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| serde_json::to_vec(&Armed { next_ms }).map_err(std::io::Error::other))
            .and_then(|bytes| crate::scorecard::store::write_atomic(&path, &bytes));
        if let Err(err) = written {
            tracing::error!(%err, path = %path.display(), "could not keep a game day's next occurrence");
        }
    }

    fn kept(&self, plan: &str) -> Option<i64> {
        let bytes = std::fs::read(self.armed_path(plan)).ok()?;
        serde_json::from_slice::<Armed>(&bytes).ok()?.next_ms
    }

    /// Arms every plan of the plan directory that has a `start`; reports the occurrences that
    /// passed while no daemon was up as missed. Returns the plans armed. A plan that does not
    /// load is logged and left out (`firedrill validate` says why).
    pub fn schedule_all(self: &Arc<Self>, now_ms: i64) -> Vec<String> {
        let mut armed = Vec::new();
        for (name, plan) in self.plans() {
            match plan {
                Ok(plan) if plan.when.is_some() => {
                    if self.arm(plan, now_ms) {
                        armed.push(name);
                    }
                }
                Ok(_) => {}
                Err(err) => tracing::error!(plan = name, %err, "a game-day plan does not load; it is not scheduled"),
            }
        }
        armed
    }

    /// Arms one plan; false if it has no occurrence left.
    fn arm(self: &Arc<Self>, plan: Plan, now_ms: i64) -> bool {
        let Some(when) = plan.when.clone() else { return false };
        // Occurrences between the one an earlier daemon waited for and now passed unseen.
        if let Some(kept) = self.kept(&plan.name) {
            // One that started before a crash is not missed: its journal says so.
            let started: std::collections::BTreeSet<i64> = self
                .journals()
                .into_iter()
                .filter_map(|(_, records)| match records.first().map(|r| &r.event) {
                    Some(DayEvent::Started { plan: p, scheduled_ms: Some(at), .. }) if *p == plan.name => Some(*at),
                    _ => None,
                })
                .collect();
            let passed = when.between(kept, now_ms - GRACE_MS, MISSED_LIMIT);
            for missed in passed.into_iter().filter(|o| !started.contains(&o.at_ms)) {
                self.missed(&plan, missed.at_ms, "no firedrill daemon was running at its start");
            }
        }
        let Some(next) = when.next_from(now_ms - GRACE_MS) else {
            self.keep(&plan.name, None);
            return false;
        };
        self.keep(&plan.name, Some(next.at_ms));
        self.show_next(&plan, next);
        let this = self.clone();
        self.tracker().spawn(async move { this.wait_and_start(plan, next).await });
        true
    }

    fn show_next(&self, plan: &Plan, next: Occurrence) {
        let zone = plan.when.as_ref().map(|w| w.zone.name()).unwrap_or_default();
        let view = ScheduledView {
            plan: plan.name.clone(),
            title: plan.title.clone(),
            next_ms: next.at_ms,
            next_local: format!("{} {zone}", next.local.format("%Y-%m-%d %H:%M")),
        };
        self.scheduled_views().insert(plan.name.clone(), view);
    }

    async fn wait_and_start(self: Arc<Self>, plan: Plan, mut next: Occurrence) {
        let Some(when) = plan.when.clone() else { return };
        loop {
            // Sleep in steps of at most a minute, against the wall clock (a suspended machine
            // or a changed clock must not make it start late or early).
            loop {
                let left = next.at_ms - i64::try_from(crate::clock::wall_ms()).unwrap_or(i64::MAX);
                if left <= 0 {
                    break;
                }
                let step = Duration::from_millis(u64::try_from(left.min(60_000)).unwrap_or(0));
                tokio::select! {
                    () = self.stopping() => return,
                    () = tokio::time::sleep(step) => {}
                }
            }
            let now = i64::try_from(crate::clock::wall_ms()).unwrap_or(i64::MAX);
            // The plan as it is now; its schedule is the one read when the daemon started.
            let current = self.plan(&plan.name);
            if now - next.at_ms > GRACE_MS {
                self.missed(&plan, next.at_ms, "the daemon could not start it on time");
            } else {
                match current {
                    Ok(current) => {
                        if let Err(err) = self.begin_scheduled(current, next.at_ms) {
                            self.missed(&plan, next.at_ms, &err.to_string());
                        }
                    }
                    Err(err) => self.missed(&plan, next.at_ms, &format!("the plan does not load: {err}")),
                }
            }
            let Some(following) = when.next_from(next.at_ms + 1) else {
                self.keep(&plan.name, None);
                self.scheduled_views().remove(&plan.name);
                return;
            };
            self.keep(&plan.name, Some(following.at_ms));
            self.show_next(&plan, following);
            next = following;
        }
    }

    /// Journals and notifies an occurrence that did not start.
    fn missed(&self, plan: &Plan, at_ms: i64, reason: &str) {
        tracing::warn!(plan = plan.name, at_ms, reason, "a scheduled game day was missed");
        let stamp = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default().format("%Y%m%d-%H%M%S");
        let path = self.journal_dir().join(format!("{}-missed-{stamp}.jsonl", plan.name));
        let event = DayEvent::Missed {
            plan: plan.name.clone(),
            title: plan.title.clone(),
            team: plan.team.clone(),
            scheduled_ms: at_ms,
            reason: reason.to_owned(),
        };
        match super::log::DayLog::create(&path) {
            Ok(log) => {
                let log = Arc::new(log);
                log.record(event);
                let local = plan.when.as_ref().map_or_else(String::new, |w| {
                    use chrono::TimeZone as _;
                    w.zone
                        .timestamp_millis_opt(at_ms)
                        .single()
                        .map(|t| t.format("%Y-%m-%d %H:%M %Z").to_string())
                        .unwrap_or_default()
                });
                let mut notice = Self::notice(
                    plan,
                    "",
                    "gameday_missed",
                    format!(
                        "Game day \"{}\" scheduled for {local} was missed: {reason}. It was not started late.",
                        plan.title
                    ),
                );
                notice.details.insert("scheduled_ms".into(), at_ms.into());
                self.notifier().outbox(&plan.notify, &log).send(&notice);
            }
            // Reported once already (a restart within the grace period reads the same file).
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => tracing::error!(%err, path = %path.display(), "could not journal a missed game day"),
        }
    }

    fn scheduled_views(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, ScheduledView>> {
        self.scheduled.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
