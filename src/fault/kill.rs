//! Kill faults: choosing targets (at random, seeded, within the blast radius) and acting on them
//! through the right backend — the local supervisor, the Docker Engine API, the Kubernetes API —
//! then watching each one come back.

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::docker::DockerTargets;
use super::kubernetes::KubernetesTargets;
use crate::drill::{KillAction, KillPlan, Selector};
use crate::supervise::{ReplicaState, Signal, Supervisor};

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

/// Draws one round's targets from `matching`, or says why the round may not run.
pub fn choose_from(matching: &[Target], plan: &KillPlan, seed: u64) -> Result<Vec<Acted>, String> {
    if matching.is_empty() {
        return Err(format!("{} match nothing; nothing was killed", plan.selector.describe()));
    }
    let n = plan.pick.of(matching.len());
    if n > plan.max_targets {
        return Err(format!(
            "this round would take {n} of {} {}, more than blast_radius.max_targets ({}); nothing was killed",
            matching.len(),
            plan.selector.describe(),
            plan.max_targets
        ));
    }
    // Targets not ready yet (an earlier round's, or down on their own) count against the blast
    // radius, and only ready ones are drawn: repeated rounds never take more down at once than
    // the drill allows, and never hit one that has not come back.
    let ready: Vec<&Target> = matching.iter().filter(|t| t.ready).collect();
    let down = matching.len() - ready.len();
    if n + down > plan.max_targets {
        return Err(format!(
            "{down} of {} {} not ready; taking {n} more down would exceed blast_radius.max_targets ({}); nothing was killed",
            matching.len(),
            plan.selector.describe(),
            plan.max_targets
        ));
    }
    let ready_before = ready.len();
    Ok(sample(ready.len(), n, seed).into_iter().map(|i| Acted { target: ready[i].clone(), ready_before }).collect())
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
    pub async fn list(&self, selector: &Selector) -> Result<Vec<Target>, String> {
        match selector {
            Selector::Process { service } => {
                let replicas = self.supervisor.replicas_of(service);
                if replicas.is_empty() {
                    return Err(format!(
                        "no local service `{service}` is up (known: {}); start it with `firedrill up ENV_FILE`",
                        self.known_services()
                    ));
                }
                Ok(replicas
                    .into_iter()
                    .filter_map(|r| {
                        r.pid.map(|pid| Target {
                            id: r.id.clone(),
                            name: r.id,
                            ready: r.state == ReplicaState::Healthy,
                            marker: pid.to_string(),
                        })
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

    /// The targets one round of `plan` takes, drawn with `seed`: an error, before anything is
    /// touched, when nothing matches or the round would exceed the blast radius.
    pub async fn choose(&self, plan: &KillPlan, seed: u64) -> Result<(Vec<Acted>, usize), String> {
        let matching = self.list(&plan.selector).await?;
        let count = matching.len();
        choose_from(&matching, plan, seed).map(|chosen| (chosen, count))
    }

    /// Does `plan`'s action to one target; the answer says what was done.
    pub async fn act(&self, plan: &KillPlan, target: &Target) -> Result<String, String> {
        match &plan.selector {
            Selector::Process { .. } => {
                let pid = self.supervisor.kill(&target.id, plan.signal).map_err(|e| e.to_string())?;
                if plan.grace.is_zero() || plan.signal == Signal::KILL {
                    return Ok(format!("{} to pid {pid}", plan.signal));
                }
                // A grace period: SIGKILL follows if the same process is still there.
                let (supervisor, id, grace) = (self.supervisor.clone(), target.id.clone(), plan.grace);
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    if supervisor.replica(&id).is_some_and(|r| r.pid == Some(pid)) {
                        let _ = supervisor.kill(&id, Signal::KILL);
                    }
                });
                Ok(format!("{} to pid {pid}, SIGKILL after {}", plan.signal, crate::drill::duration::format(grace)))
            }
            Selector::Docker { .. } => self.docker.act(plan, &target.id).await,
            Selector::Kubernetes { namespace, contexts, .. } => {
                self.kubernetes.delete(contexts, namespace, &target.id, plan.grace).await
            }
        }
    }

    /// Undoes what `action` left behind on a target (unpause, start); a gone target is fine.
    pub async fn undo(&self, selector: &Selector, action: KillAction, id: &str) -> Result<(), String> {
        match selector {
            Selector::Docker { .. } if action.needs_undo() => self.docker.undo(action, id).await,
            _ => Ok(()),
        }
    }

    /// Undoes a journaled `action` (`stop`, `pause`) on a `backend` target, after a crash.
    pub async fn undo_journaled(&self, backend: &str, action: &str, id: &str) -> Result<(), String> {
        let action = match action {
            "stop" => KillAction::Stop,
            "pause" => KillAction::Pause,
            _ => return Ok(()),
        };
        match backend {
            "docker" => self.docker.undo(action, id).await,
            _ => Ok(()),
        }
    }

    /// Whether an acted-on target is back: `Some(how)` once it is.
    pub async fn recovered(&self, plan: &KillPlan, acted: &Acted) -> Result<Option<String>, String> {
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
        let err = choose_from(&matching, &plan(1), 1).unwrap_err();
        assert!(err.contains("1 of 3") && err.contains("exceed blast_radius.max_targets (1)"), "{err}");
        for seed in 0..50 {
            let chosen = choose_from(&matching, &plan(2), seed).unwrap();
            assert_eq!(chosen.len(), 1);
            assert_ne!(chosen[0].target.id, "a", "never the one still down");
            assert_eq!(chosen[0].ready_before, 2);
        }
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
