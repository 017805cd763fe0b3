//! Blind drills: a random drill at a random moment, armed (and kept across restarts) until
//! then, answering acknowledgements and aborts the same armed as running.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use super::status::RunView;
use super::{Manager, ManagerError};
use crate::drill;
use crate::run::armed::{self, Arming};

/// Blind mode's draw: which of `count` drills, and how long to wait (less than `within`).
/// The same seed always gives the same draw.
pub fn blind_pick(count: usize, seed: u64, within: std::time::Duration) -> Option<(usize, std::time::Duration)> {
    use rand::{RngExt, SeedableRng};
    if count == 0 {
        return None;
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let index = rng.random_range(0..count);
    let millis = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
    let delay = if millis == 0 { 0 } else { rng.random_range(0..millis) };
    Some((index, std::time::Duration::from_millis(delay)))
}

/// A blind drill waiting for its moment.
pub(super) struct Armed {
    pub(super) team: String,
    /// Disarms it (the kill switch).
    pub(super) cancel: CancellationToken,
    /// Why it could not start when its moment came; kept for status until disarmed.
    pub(super) failed: Option<String>,
    /// Where it is kept across restarts ([`armed`]); removed when it starts or is disarmed.
    pub(super) file: PathBuf,
    /// Acknowledgements while it waited: false alarms, journaled when it starts.
    pub(super) acks: Vec<String>,
}

impl Armed {
    pub(super) fn waiting(&self) -> bool {
        self.failed.is_none()
    }
}

impl Manager {
    /// Blind mode: picks a random drill from the drill directory and starts it at a random moment
    /// within `within`, so the responder knows neither what nor when. Returns once it is armed.
    /// Only drills with a fault (something to notice) that this environment can run are drawn:
    /// a tabletop exercise or a drill for another environment would never show itself.
    pub async fn start_blind(
        self: &Arc<Self>,
        team: String,
        responder: Option<String>,
        seed: Option<u64>,
        within: std::time::Duration,
    ) -> Result<(), ManagerError> {
        let environment = self.environment().await?;
        let mut names = drill::names_in(&self.dirs.drills).map_err(|_| ManagerError::NoBlindDrill)?;
        names.retain(|name| {
            let loaded = self.find_drill(name).ok().and_then(|path| drill::load(&path, &environment).ok());
            loaded.is_some_and(|drill| !drill.faults.is_empty())
        });
        let seed = seed.unwrap_or_else(rand::random);
        let (index, delay) = blind_pick(names.len(), seed, within).ok_or(ManagerError::NoBlindDrill)?;
        let drill = names.swap_remove(index);
        let now = crate::clock::wall_ms();
        let at_wall_ms = now.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        let within_ms = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
        let arming = Arming { drill, team, responder, seed, at_wall_ms, within_ms };
        let key = format!("{now}-{}", self.counter.fetch_add(1, Ordering::Relaxed));
        let file = armed::save(&self.armed_dir(), &key, &arming).map_err(|e| ManagerError::Arm(e.to_string()))?;
        self.arm(arming, file);
        Ok(())
    }

    /// Waits for an armed drill's moment, then starts it; the kill switch or shutdown cancels the
    /// wait (shutdown keeps its file, so the next daemon arms it again).
    pub(super) fn arm(self: &Arc<Self>, arming: Arming, file: PathBuf) {
        let delay = std::time::Duration::from_millis(arming.at_wall_ms.saturating_sub(crate::clock::wall_ms()));
        let cancel = self.shutdown.child_token();
        let number = self.counter.fetch_add(1, Ordering::Relaxed);
        let blind = Armed {
            team: arming.team.clone(),
            cancel: cancel.clone(),
            failed: None,
            file: file.clone(),
            acks: Vec::new(),
        };
        self.armed().insert(number, blind);
        self.changed();
        let manager = self.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep(delay) => {
                    let Arming { drill, team, responder, seed, .. } = arming;
                    if let Err(err) = manager.start_run(&drill, &team, responder, Some(seed), Some(number), true).await {
                        tracing::error!(%err, "the blind drill could not start");
                        // Status says so, instead of the responder waiting for nothing; then the
                        // arming's file goes (whoever watches the files sees status already say it).
                        if let Some(armed) = manager.armed().get_mut(&number) {
                            armed.failed = Some(err.to_string());
                        }
                        manager.changed();
                        armed::remove(&file);
                        return;
                    }
                }
            }
            manager.armed().remove(&number);
            manager.changed();
        });
    }

    /// Arms again the blind drills an earlier daemon armed and did not start (it stopped or
    /// crashed while they waited). One whose moment passed meanwhile gets a new moment within its
    /// span from now ([`Arming::redrawn`]), kept in its file. Returns the teams they are for.
    pub fn rearm(self: &Arc<Self>) -> Vec<String> {
        let mut teams = Vec::new();
        for (path, arming) in armed::load_all(&self.armed_dir()) {
            match arming {
                Ok(mut arming) => {
                    let now = crate::clock::wall_ms();
                    if arming.at_wall_ms < now {
                        arming.at_wall_ms = arming.redrawn(now);
                        if let Err(err) = armed::save_to(&path, &arming) {
                            // The drill is armed all the same; a second restart would draw again.
                            tracing::error!(%err, path = %path.display(), "could not keep a blind drill's new moment");
                        }
                        tracing::warn!(
                            team = arming.team,
                            "a blind drill's moment passed while the daemon was down; a new one is drawn within its span"
                        );
                    }
                    teams.push(arming.team.clone());
                    self.arm(arming, path);
                }
                Err(err) => {
                    tracing::error!(%err, path = %path.display(), "cannot read an armed blind drill; left in place");
                }
            }
        }
        teams
    }

    /// Disarms every blind drill that has not started yet; returns how many.
    pub(super) fn disarm(&self) -> usize {
        let armed = std::mem::take(&mut *self.armed());
        for blind in armed.values() {
            armed::remove(&blind.file);
            blind.cancel.cancel();
        }
        self.changed();
        armed.len()
    }

    /// An acknowledgement while a blind drill waits: a false alarm, kept for its journal.
    pub fn ack_armed(&self, by: String) -> Option<RunView> {
        let mut armed = self.armed();
        let blind = armed.values_mut().find(|a| a.waiting())?;
        blind.acks.push(by);
        Some(RunView::Sealed { team: blind.team.clone() })
    }

    /// Disarms the blind drill that waits (abort without `--all` and with no run in progress).
    pub fn disarm_waiting(&self) -> usize {
        let mut armed = self.armed();
        let Some(number) = armed.iter().find(|(_, a)| a.waiting()).map(|(n, _)| *n) else { return 0 };
        let Some(blind) = armed.remove(&number) else { return 0 };
        armed::remove(&blind.file);
        blind.cancel.cancel();
        drop(armed);
        self.changed();
        1
    }
}
