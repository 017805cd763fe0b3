//! Kill faults: choosing targets (at random, seeded, within the blast radius) and acting on them
//! through the right backend — the local supervisor, the Docker Engine API, the Kubernetes API —
//! then watching each one come back.

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::FaultError;
use super::docker::DockerTargets;
use super::kubernetes::KubernetesTargets;
use crate::drill::{KillAction, KillPlan, Selector};
use crate::journal::event::Backend;
use crate::signal::Signal;
use crate::supervise::{ReplicaState, Supervisor};

/// One thing a kill fault may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Stable id: replica id, container id, pod name.
    pub id: String,
    /// What people call it (container name; the same as `id` elsewhere).
    pub name: String,
    /// Ready/healthy right now.
    pub ready: bool,
    /// What changes when it comes back: pid, container start time, pod uid.
    pub marker: String,
}

/// A target acted on, with what recovery is measured against.
#[derive(Debug, Clone)]
pub struct Acted {
    /// The target as it was just before.
    pub target: Target,
    /// How many matching targets were ready just before (pods come back as new pods).
    pub ready_before: usize,
}

/// A SIGKILL due `after` the action, if process `pid` is still the target's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUp {
    /// The grace period.
    pub after: std::time::Duration,
    /// The process signalled first.
    pub pid: u32,
}

/// The backends kill faults go through.
#[derive(Debug, Clone)]
pub struct Killers {
    supervisor: Arc<Supervisor>,
    docker: DockerTargets,
    kubernetes: KubernetesTargets,
}

/// Picks `n` of `count` indexes at random, without repeats, in a seeded order.
fn sample(count: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut indexes: Vec<usize> = (0..count).collect();
    let n = n.min(count);
    for i in 0..n {
        let j = rng.random_range(i..count);
        indexes.swap(i, j);
    }
    indexes.truncate(n);
    indexes
}

/// The seed of round `round` of fault `fault` in a run seeded `seed`.
pub fn round_seed(seed: u64, fault: usize, round: u32) -> u64 {
    seed ^ ((fault as u64) << 40) ^ u64::from(round)
}

/// Why a kill round did not act.
#[derive(Debug, thiserror::Error)]
pub enum NoRound {
    /// Acting would take more of the drill's targets down at once than its blast radius allows:
    /// the round is skipped, nothing touched.
    #[error("{0}")]
    BlastRadius(String),
    /// Nothing matched, or the backend could not be asked: nothing touched.
    #[error(transparent)]
    Failed(FaultError),
}

/// The key of a target in the drill-wide count of what is down: backend and id.
pub fn key(selector: &Selector, id: &str) -> String {
    format!("{}/{id}", selector.backend())
}

/// Draws one round's targets from `matching` (this fault's targets now), or says why the round
/// may not run. `down` holds the [`key`] of every target of the drill that is short of healthy
/// now — listed not ready (killed, stopped, exited, restarting, in backoff, paused, a pod not
/// Ready), or acted on by the run and not seen back yet — whatever took it down. The invariant:
/// after this round, no more than `plan.max_targets` are down at once.
pub fn choose_from(
    matching: &[Target],
    down: &BTreeSet<String>,
    plan: &KillPlan,
    seed: u64,
) -> Result<Vec<Acted>, NoRound> {
    if matching.is_empty() {
        return Err(NoRound::Failed(FaultError::Refused(format!(
            "{} match nothing; nothing was killed",
            plan.selector.describe()
        ))));
    }
    let n = plan.pick.of(matching.len());
    if n > plan.max_targets {
        return Err(NoRound::BlastRadius(format!(
            "this round would take {n} of {} {}, more than blast_radius.max_targets ({}); nothing was killed",
            matching.len(),
            plan.selector.describe(),
            plan.max_targets
        )));
    }
    if n + down.len() > plan.max_targets {
        let names: Vec<&str> = down.iter().map(String::as_str).collect();
        return Err(NoRound::BlastRadius(format!(
            "{} of the drill's targets {} down now ({}); taking {n} more down would exceed \
             blast_radius.max_targets ({}); round skipped, nothing was killed",
            down.len(),
            if down.len() == 1 { "is" } else { "are" },
            names.join(", "),
            plan.max_targets
        )));
    }
    let drawable: Vec<&Target> =
        matching.iter().filter(|t| t.ready && !down.contains(&key(&plan.selector, &t.id))).collect();
    let ready_before = drawable.len();
    Ok(sample(drawable.len(), n, seed)
        .into_iter()
        .map(|i| Acted { target: drawable[i].clone(), ready_before })
        .collect())
}

impl Killers {
    /// Backends over `supervisor`, the local Docker engine, and the current kubeconfig.
    pub fn new(supervisor: Arc<Supervisor>) -> Self {
        Self { supervisor, docker: DockerTargets::default(), kubernetes: KubernetesTargets::default() }
    }

    /// The same, with Kubernetes clients from another kubeconfig (tests).
    #[must_use]
    pub fn with_kubernetes(mut self, kubernetes: KubernetesTargets) -> Self {
        self.kubernetes = kubernetes;
        self
    }

    /// The supervisor.
    pub fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }

    /// Every target `selector` matches now.
    pub async fn list(&self, selector: &Selector) -> Result<Vec<Target>, FaultError> {
        match selector {
            Selector::Process { service } => {
                let replicas = self.supervisor.replicas_of(service);
                if replicas.is_empty() {
                    return Err(FaultError::Refused(format!(
                        "no local service `{service}` is up (known: {}); start it with `firedrill up ENV_FILE`",
                        self.known_services()
                    )));
                }
                // Every replica, with or without a process: one in backoff is down, not gone.
                Ok(replicas
                    .into_iter()
                    .map(|r| Target {
                        id: r.id.clone(),
                        name: r.id,
                        ready: r.state == ReplicaState::Healthy && r.pid.is_some(),
                        marker: r.pid.map(|pid| pid.to_string()).unwrap_or_default(),
                    })
                    .collect())
            }
            Selector::Docker { labels, name } => self.docker.list(labels, name.as_deref()).await,
            Selector::Kubernetes { namespace, selector, contexts } => {
                self.kubernetes.list(contexts, namespace, selector).await
            }
        }
    }

    fn known_services(&self) -> String {
        let mut names: Vec<String> = self.supervisor.ps().into_iter().map(|r| r.service).collect();
        names.dedup();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    }

    /// The [`key`]s of every target that `selectors` (a drill's kill faults) match and that is
    /// not ready now, with `acted` (targets the run acted on, not seen back yet).
    pub async fn down(
        &self,
        selectors: &[&Selector],
        acted: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, FaultError> {
        let mut down = acted.clone();
        let mut seen: Vec<&Selector> = Vec::new();
        for &selector in selectors {
            if seen.contains(&selector) {
                continue;
            }
            seen.push(selector);
            let targets = self.list(selector).await?;
            down.extend(targets.iter().filter(|t| !t.ready).map(|t| key(selector, &t.id)));
        }
        Ok(down)
    }

    /// The targets one round of `plan` takes, drawn with `seed`, or why it takes none, before
    /// anything is touched: nothing matches, or the round would take more of the drill's
    /// targets (what `selectors` match, and `acted`) down at once than the blast radius allows.
    pub async fn choose(
        &self,
        plan: &KillPlan,
        selectors: &[&Selector],
        acted: &BTreeSet<String>,
        seed: u64,
    ) -> Result<(Vec<Acted>, usize), NoRound> {
        let matching = self.list(&plan.selector).await.map_err(NoRound::Failed)?;
        let mut all = selectors.to_vec();
        all.retain(|s| **s != plan.selector);
        let mut down = self.down(&all, acted).await.map_err(NoRound::Failed)?;
        down.extend(matching.iter().filter(|t| !t.ready).map(|t| key(&plan.selector, &t.id)));
        let count = matching.len();
        choose_from(&matching, &down, plan, seed).map(|chosen| (chosen, count))
    }

    /// Does `plan`'s action to one target; the answer says what was done, and the SIGKILL that
    /// is due after the grace period if the process is still there (sent by
    /// [`Killers::follow_up`] when the run, which tracks it, gets there).
    pub async fn act(&self, plan: &KillPlan, target: &Target) -> Result<(String, Option<FollowUp>), FaultError> {
        match &plan.selector {
            Selector::Process { .. } => {
                let pid = self.supervisor.kill(&target.id, plan.signal)?;
                if plan.grace.is_zero() || plan.signal == Signal::KILL {
                    return Ok((format!("{} to pid {pid}'s process group", plan.signal), None));
                }
                let detail = format!(
                    "{} to pid {pid}'s process group, SIGKILL after {}",
                    plan.signal,
                    crate::duration::format(plan.grace)
                );
                Ok((detail, Some(FollowUp { after: plan.grace, pid })))
            }
            Selector::Docker { .. } => self.docker.act(plan, &target.id).await,
            Selector::Kubernetes { namespace, contexts, .. } => {
                Ok((self.kubernetes.delete(contexts, namespace, &target.id, plan.grace).await?, None))
            }
        }
    }

    /// The SIGKILL after a grace period: sent only if `pid` is still the target's process.
    /// `Some(what was done)`, or `None` when it had gone by itself.
    pub async fn follow_up(&self, plan: &KillPlan, target: &Target, pid: u32) -> Result<Option<String>, FaultError> {
        match &plan.selector {
            Selector::Process { .. } => {
                if self.supervisor.replica(&target.id).is_none_or(|r| r.pid != Some(pid)) {
                    return Ok(None);
                }
                self.supervisor.kill(&target.id, Signal::KILL)?;
                Ok(Some(format!("SIGKILL to pid {pid}'s process group after the grace period")))
            }
            Selector::Docker { .. } => self.docker.follow_up(&target.id, pid).await,
            Selector::Kubernetes { .. } => Ok(None),
        }
    }

    /// Undoes what `action` left behind on a target (unpause, start); a gone target is fine.
    pub async fn undo(&self, selector: &Selector, action: KillAction, id: &str) -> Result<(), FaultError> {
        match selector {
            Selector::Docker { .. } if action.needs_undo() => self.docker.undo(action, id).await,
            _ => Ok(()),
        }
    }

    /// Undoes a journaled `action` (`stop`, `pause`) on a `backend` target, after a crash.
    pub async fn undo_journaled(&self, backend: Backend, action: KillAction, id: &str) -> Result<(), FaultError> {
        match backend {
            Backend::Docker if action.needs_undo() => self.docker.undo(action, id).await,
            _ => Ok(()),
        }
    }

    /// Whether an acted-on target is back: `Some(how)` once it is.
    pub async fn recovered(&self, plan: &KillPlan, acted: &Acted) -> Result<Option<String>, FaultError> {
        match &plan.selector {
            Selector::Process { .. } => Ok(self.supervisor.replica(&acted.target.id).and_then(|r| {
                let back =
                    r.state == ReplicaState::Healthy && r.pid.is_some_and(|p| p.to_string() != acted.target.marker);
                back.then(|| format!("pid {} healthy after {} restart(s)", r.pid.unwrap_or_default(), r.restarts))
            })),
            Selector::Docker { .. } => self.docker.recovered(plan.action, &acted.target).await,
            Selector::Kubernetes { namespace, selector, contexts } => {
                let pods = self.kubernetes.list(contexts, namespace, selector).await?;
                let ready = pods.iter().filter(|p| p.ready && p.id != acted.target.id).count();
                Ok((ready >= acted.ready_before.max(1))
                    .then(|| format!("{ready} ready pod(s) again (was {})", acted.ready_before)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str, ready: bool) -> Target {
        Target { id: id.into(), name: id.into(), ready, marker: String::new() }
    }

    fn plan(max_targets: usize) -> KillPlan {
        KillPlan {
            selector: Selector::Process { service: "wallet".into() },
            pick: crate::drill::Pick::Count(1),
            every: None,
            signal: Signal::KILL,
            grace: std::time::Duration::ZERO,
            action: KillAction::Kill,
            max_targets,
        }
    }

    #[test]
    fn a_round_draws_only_ready_targets_and_counts_the_down_ones_against_the_blast_radius() {
        let matching = [target("a", false), target("b", true), target("c", true)];
        let down: BTreeSet<String> = ["process/a".to_owned()].into();
        let NoRound::BlastRadius(err) = choose_from(&matching, &down, &plan(1), 1).unwrap_err() else { panic!() };
        assert!(err.contains("1 of the drill's targets is down now (process/a)"), "{err}");
        assert!(err.contains("exceed blast_radius.max_targets (1); round skipped"), "{err}");
        // Acted on and not seen back counts, even when a listing calls it ready.
        let acted: BTreeSet<String> = ["process/b".to_owned(), "process/a".to_owned()].into();
        assert!(matches!(choose_from(&matching, &acted, &plan(2), 1), Err(NoRound::BlastRadius(_))));
        for seed in 0..50 {
            let chosen = choose_from(&matching, &down, &plan(2), seed).unwrap();
            assert_eq!(chosen.len(), 1);
            assert_ne!(chosen[0].target.id, "a", "never the one still down");
            assert_eq!(chosen[0].ready_before, 2);
        }
    }

    /// One target of the reference model, as the world has it.
    #[derive(Clone, Copy)]
    struct Truth {
        /// Not ready until this ms (killed, restarting, or down on its own).
        down_until: u64,
        /// Killed by the run at this ms and not back since.
        killed_at: Option<u64>,
    }

    /// The blast-radius invariant over seeded random schedules: rounds at random intervals,
    /// random restart delays (some never come back), health flaps, and a listing that still
    /// shows a just-killed target as ready for a while. The reference model: at every instant,
    /// no more targets are down because of the run's kills than `max_targets`, and right after
    /// every kill no more are down at all, whatever took them down.
    #[test]
    fn no_schedule_takes_more_down_at_once_than_the_blast_radius() {
        let mut rounds_skipped = 0;
        for seed in 0..3000_u64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let n = rng.random_range(1..=6);
            let max_targets = rng.random_range(1..=n);
            let count = rng.random_range(1..=max_targets);
            let every = rng.random_range(100..3000_u64);
            let lag = rng.random_range(0..500_u64);
            let plan = KillPlan { pick: crate::drill::Pick::Count(count), ..plan(max_targets) };
            let mut world = vec![Truth { down_until: 0, killed_at: None }; n];
            let mut pending: BTreeSet<String> = BTreeSet::new();
            let mut next_round = 0;
            for now in (0..30_000_u64).step_by(50) {
                for truth in &mut world {
                    if truth.down_until <= now {
                        truth.killed_at = None;
                    }
                    if truth.down_until <= now && rng.random_bool(0.002) {
                        truth.down_until = now + rng.random_range(50..4000); // a flap
                    }
                }
                // Recovery is polled: a target acted on is seen back once it is ready again.
                if now % 250 == 0 {
                    pending
                        .retain(|k| world[k.trim_start_matches("process/").parse::<usize>().unwrap()].down_until > now);
                }
                let by_us = world.iter().filter(|t| t.killed_at.is_some()).count();
                assert!(by_us <= max_targets, "seed {seed}: {by_us} down by the run's kills at {now} ms");
                if now < next_round {
                    continue;
                }
                next_round = now + every;
                let listing: Vec<Target> = world
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let lagging = t.killed_at.is_some_and(|k| now < k + lag);
                        target(&i.to_string(), t.down_until <= now || lagging)
                    })
                    .collect();
                let mut down = pending.clone();
                down.extend(listing.iter().filter(|t| !t.ready).map(|t| key(&plan.selector, &t.id)));
                match choose_from(&listing, &down, &plan, seed ^ now) {
                    Ok(chosen) => {
                        for acted in chosen {
                            let i: usize = acted.target.id.parse().unwrap();
                            assert!(world[i].down_until <= now, "seed {seed}: drew a target that was down");
                            let back = if rng.random_bool(0.1) { u64::MAX } else { now + rng.random_range(0..5000) };
                            world[i] = Truth { down_until: back, killed_at: Some(now) };
                            pending.insert(key(&plan.selector, &acted.target.id));
                        }
                        let all_down = world.iter().filter(|t| t.down_until > now).count();
                        assert!(all_down <= max_targets, "seed {seed}: {all_down} down right after a kill at {now} ms");
                    }
                    Err(NoRound::BlastRadius(_)) => rounds_skipped += 1,
                    Err(NoRound::Failed(e)) => panic!("seed {seed}: {}", e.describe()),
                }
            }
        }
        assert!(rounds_skipped > 1000, "the schedules do press against the blast radius: {rounds_skipped}");
    }

    #[test]
    fn samples_are_seeded_and_never_repeat() {
        let a = sample(10, 3, 7);
        assert_eq!(a, sample(10, 3, 7), "the same seed picks the same targets");
        assert_eq!(a.len(), 3);
        let mut unique = a.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 3);
        assert!(a.iter().all(|&i| i < 10));
        assert_eq!(sample(2, 5, 1).len(), 2, "never more than there are");
        let spread: std::collections::BTreeSet<usize> = (0..200).map(|s| sample(5, 1, s)[0]).collect();
        assert_eq!(spread.len(), 5, "every target can be drawn");
    }
}
