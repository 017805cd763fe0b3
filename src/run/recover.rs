//! Crash recovery: a journal with no end is closed, and everything its run put in and did not
//! take out ([`crate::journal::in_force`]) comes out.

use std::path::Path;

use crate::fault::FaultTarget;
use crate::fault::kill::Killers;
use crate::journal::event::{Event, Outcome, Removal};
use crate::journal::{self, InForce, Journal};
use crate::scorecard::Scorecard;

use super::runner::RunError;

/// After a crash: closes a journal that has no end, removing every fault it applied and did not
/// remove — toxics come off, paused or stopped containers come back. Returns the scorecard, or
/// `None` if the run had already ended.
pub async fn recover<T: FaultTarget>(path: &Path, target: &T, kills: &Killers) -> Result<Option<Scorecard>, RunError> {
    // Most journals ended long ago: their last line says so.
    if journal::last_record(path).is_some_and(|r| matches!(r.event, Event::Ended { .. })) {
        return Ok(None);
    }
    let mut records = journal::read(path)?;
    if records.iter().any(|r| matches!(r.event, Event::Ended { .. })) {
        return Ok(None);
    }
    let InForce { faults: active, lasting } = journal::in_force(&records);
    let mut journal = Journal::reopen(path, &records)?;
    let t_ms = records.last().map_or(0, |r| r.t_ms);
    for ((fault, target), (backend, action)) in lasting {
        if !active.contains_key(&fault) {
            continue;
        }
        match kills.undo_journaled(backend, action, &target).await {
            Ok(()) => records.push(journal.append(t_ms, Event::TargetRestored { fault, target, action })?),
            Err(e) => {
                tracing::error!(error = %e.describe(), target, "could not undo a kill left by a crashed run; undo it by hand");
            }
        }
    }
    for (fault, (proxy, toxic)) in active {
        if !proxy.is_empty()
            && let Err(e) = target.remove(&proxy, &toxic).await
        {
            tracing::error!(error = %e.describe(), proxy, toxic, "could not remove a fault left by a crashed run");
        }
        let event = Event::FaultRemoved { fault, proxy, toxic, reason: Removal::Interrupted };
        records.push(journal.append(t_ms, event)?);
    }
    let end = Event::Ended { outcome: Outcome::Interrupted, reason: Some("the daemon stopped mid-run".to_owned()) };
    records.push(journal.append(t_ms, end)?);
    Ok(Some(Scorecard::from_journal(&records)?))
}
