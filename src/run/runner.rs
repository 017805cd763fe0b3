//! The runner: applies a drill's faults at their offsets, reveals hints, takes responders'
//! commands, and ends the run — resolved, timed out, aborted or interrupted — always removing
//! every fault it put in. Every event is journaled before it takes effect.
//!
//! Time is tokio time, so tests drive whole timelines with a paused clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant, sleep_until};
use tokio_util::sync::CancellationToken;

pub use super::command::{Command, Refusal};
use super::live::{Live, SLI_SAMPLE_EVERY, SpikeSource};
pub use super::log::RunLog;
pub use super::recover::recover;
use super::schedule::{Step, schedule, schedule_next_round};
use super::sli;
use super::verify;
use crate::drill::{Drill, FaultAction, KillPlan};
use crate::fault::FaultTarget;
use crate::fault::kill::{Acted, Killers, NoRound};
use crate::journal::event::{AlertExpectation, AlertSource, Event, Outcome, PhaseMillis, Removal, SloInfo};
use crate::journal::{Journal, JournalError, Record};
use crate::scorecard::Scorecard;

/// A run to start.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Unique id (also the journal's and scorecard's file name).
    pub run_id: String,
    /// The validated drill.
    pub drill: Drill,
    /// The team practising.
    pub team: String,
    /// Who started it.
    pub responder: Option<String>,
    /// Seed of the run's draws.
    pub seed: u64,
    /// Started by blind mode: the responder knew neither what nor when.
    pub blind: bool,
    /// Who acknowledged while the blind drill was armed: false alarms, journaled at the start.
    pub armed_acks: Vec<String>,
    /// Where the drill's synthetic traffic is also counted, across runs, for `/metrics`
    /// (`None`: nowhere; a blind run's traffic would give its drill away).
    pub sli_totals: Option<Arc<sli::Counts>>,
}

/// Why a run could not be carried out at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The journal could not be written: nothing may happen unrecorded.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The journal has no scorecard.
    #[error(transparent)]
    Score(#[from] crate::scorecard::ScoreError),
}

/// How long after a resolve the steady state may take to hold for a whole window.
const RESOLVE_VERIFY_GRACE: Duration = Duration::from_secs(60);
/// How long after a declared mitigation the steady state may take to hold for a whole window.
const MITIGATE_VERIFY_GRACE: Duration = Duration::from_secs(60);

/// How a run ends: outcome, reason, and the reason journaled on each fault's removal.
type End = (Outcome, Option<String>, Removal);

/// How often targets acted on are checked for recovery.
const RECOVERY_POLL: Duration = Duration::from_millis(250);

/// A target acted on and not yet seen back.
struct Pending {
    fault: usize,
    acted: Acted,
}

struct Runner<'a, T> {
    spec: &'a RunSpec,
    target: &'a T,
    kills: &'a Killers,
    /// Kill faults in force, with the targets whose action must be undone at their end.
    kills_active: BTreeMap<usize, Vec<String>>,
    /// Targets acted on, not yet back.
    pending: Vec<Pending>,
    /// Alertmanager alerts already journaled: (fingerprint, startsAt).
    alerts_seen: std::collections::BTreeSet<(String, String)>,
    journal: Journal,
    records: Vec<Record>,
    /// Shared view of the records, for status and watchers.
    log: Arc<RunLog>,
    started: Instant,
    /// Faults applied and not yet removed, by index: (proxy, toxic name).
    active: BTreeMap<usize, (String, String)>,
    /// Where spike faults send their traffic (the drill's own, if it has `[traffic]`).
    spike_source: Option<SpikeSource>,
    /// Spike faults in force: each one's traffic stops when its token is cancelled.
    spikes: BTreeMap<usize, CancellationToken>,
    hints_shown: Vec<bool>,
    /// Run ms at which the first fault went in.
    t0_ms: Option<u64>,
    /// Run ms of the first acknowledgement after t0.
    acked_ms: Option<u64>,
    /// When each toxic or spike fault in force went in (run ms).
    applied_at: BTreeMap<usize, u64>,
    /// When each kill round acted (run ms) that the service weathered: the first probe to start
    /// after the round came back good.
    kill_rounds: Vec<u64>,
    /// SIGKILLs due after a grace period: (run ms due, fault, target, pid). The run owns them:
    /// they are sent and journaled when due, and dropped, never sent, when the run ends first.
    follow_ups: Vec<(u64, usize, crate::fault::kill::Target, u32)>,
    /// The latest kill round (run ms) no probe has started after yet.
    unprobed_kill: Option<u64>,
    /// Asks the steady-state probe to run now (after a kill round, while the target is down).
    probe_now: Arc<tokio::sync::Notify>,
    /// The steady state and the evidence that a mitigation happened with the fault in.
    evidence: Evidence,
    /// A declared mitigation waiting for the steady state: who, until when, and the answer.
    declared: Option<Declared>,
}

/// A declared mitigation waiting for the steady state to confirm it.
struct Declared {
    by: String,
    /// Run ms by which it must be confirmed.
    deadline_ms: u64,
    reply: oneshot::Sender<Result<u64, Refusal>>,
}

/// What the steady-state probe has seen since t0, to tell a mitigation from a pause between
/// pulses or a supervisor's restart.
#[derive(Default)]
struct Evidence {
    /// The verification window and success ratio, when the drill has a probe.
    steady: Option<verify::SteadyState>,
    window_ms: u64,
    /// A probe failed after t0: the fault bit.
    bitten: bool,
    /// The current streak's start and the SLI counts read then.
    streak: Option<(u64, (u64, u64))>,
    /// Mitigation was recorded (run ms from which it held).
    mitigated: Option<u64>,
}

impl<T: FaultTarget> Runner<'_, T> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn log(&mut self, event: Event) -> Result<(), RunError> {
        let record = self.journal.append(self.now_ms(), event)?;
        self.log.push(record.clone());
        self.records.push(record);
        Ok(())
    }

    /// Journals fault `index` going in somewhere other than a proxy (a kill, a spike).
    fn applied_elsewhere(&mut self, index: usize) -> Result<(), RunError> {
        let kind = self.spec.drill.faults[index].kind().to_owned();
        self.log(Event::FaultApplied { fault: index, proxy: String::new(), toxic: String::new(), kind })
    }

    /// Applies fault `index`; false if it failed (journaled).
    async fn apply(&mut self, index: usize) -> Result<bool, RunError> {
        let fault = &self.spec.drill.faults[index];
        let (proxy, original) = match &fault.action {
            FaultAction::Toxic { proxy, toxic } => (proxy.clone(), toxic),
            FaultAction::Kill(plan) => {
                self.applied_elsewhere(index)?;
                self.kills_active.insert(index, Vec::new());
                return self.kill_round(index, plan, 0).await;
            }
            FaultAction::Spike { rps } => {
                let rps = *rps;
                self.applied_elsewhere(index)?;
                let Some(source) = &self.spike_source else {
                    let error = "a spike needs the drill's [traffic]".to_owned();
                    self.log(Event::FaultFailed { fault: index, error })?;
                    return Ok(false);
                };
                let stop = source.stop.child_token();
                let plan = crate::drill::plan::TrafficPlan { rps, ..source.plan.clone() };
                sli::send_traffic(&plan, source.latency, &stop, source.counts.clone());
                self.spikes.insert(index, stop);
                self.went_in(index, true);
                return Ok(true);
            }
        };
        let mut toxic = original.clone();
        toxic.name = self.target.toxic_name(&self.spec.run_id, index, original);
        self.log(Event::FaultApplied {
            fault: index,
            proxy: proxy.clone(),
            toxic: toxic.name.clone(),
            kind: toxic.kind.type_name().to_owned(),
        })?;
        self.active.insert(index, (proxy.clone(), toxic.name.clone()));
        if let Err(e) = self.target.apply(&proxy, &toxic).await {
            let error = e.describe();
            tracing::warn!(%error, "fault could not be applied");
            // Not ours to undo: a toxic of that name may belong to someone else.
            self.active.remove(&index);
            self.log(Event::FaultFailed { fault: index, error })?;
            return Ok(false);
        }
        self.went_in(index, true);
        Ok(true)
    }

    /// One round of kill fault `index`: choose, journal, act, and watch for recovery. The first
    /// round failing fails the fault (false); a later one is journaled and the fault goes on.
    async fn kill_round(&mut self, index: usize, plan: &KillPlan, round: u32) -> Result<bool, RunError> {
        let seed = crate::fault::kill::round_seed(self.spec.seed, index, round);
        // Every target acted on and not seen back is down, whatever a listing says of it.
        let acted: BTreeSet<String> = self
            .pending
            .iter()
            .filter_map(|p| match &self.spec.drill.faults[p.fault].action {
                FaultAction::Kill(plan) => Some(crate::fault::kill::key(&plan.selector, &p.acted.target.id)),
                _ => None,
            })
            .collect();
        let selectors = self.spec.drill.kill_selectors();
        let chosen = match self.kills.choose(plan, &selectors, &acted, seed).await {
            Ok((chosen, _)) => chosen,
            Err(no) => {
                tracing::warn!(error = %no, "kill round could not run");
                if round == 0 {
                    self.kills_active.remove(&index);
                    self.log(Event::FaultFailed { fault: index, error: no.to_string() })?;
                    return Ok(false);
                }
                match no {
                    NoRound::BlastRadius(reason) => self.log(Event::KillSkipped { fault: index, round, reason })?,
                    NoRound::Failed(e) => {
                        self.log(Event::KillFailed { fault: index, target: None, error: e.describe() })?;
                    }
                }
                return Ok(true);
            }
        };
        // The fault is in once its targets are chosen, as the scorecard reads the journal.
        let t0_before = self.t0_ms;
        self.went_in(index, false);
        let mut failures = Vec::new();
        for acted in chosen {
            self.log(Event::TargetKilled {
                fault: index,
                backend: plan.selector.backend(),
                target: acted.target.id.clone(),
                name: acted.target.name.clone(),
                action: plan.action,
                round,
            })?;
            if plan.action.needs_undo()
                && let Some(undo) = self.kills_active.get_mut(&index)
            {
                undo.push(acted.target.id.clone());
            }
            let at = self.now_ms();
            match self.kills.act(plan, &acted.target).await {
                Ok((detail, follow_up)) => {
                    tracing::info!(target = acted.target.id, detail, "killed");
                    if let Some(follow_up) = follow_up {
                        let due_ms = at + u64::try_from(follow_up.after.as_millis()).unwrap_or(u64::MAX);
                        self.follow_ups.push((due_ms, index, acted.target.clone(), follow_up.pid));
                    }
                    self.unprobed_kill = Some(at);
                    self.probe_now.notify_one();
                    self.pending.push(Pending { fault: index, acted });
                }
                Err(e) => {
                    let error = e.describe();
                    failures.push(error.clone());
                    self.log(Event::KillFailed { fault: index, target: Some(acted.target.id.clone()), error })?;
                }
            }
        }
        // A first round that touched nothing: the fault never went in.
        if round == 0 && !failures.is_empty() && !self.pending.iter().any(|p| p.fault == index) {
            self.t0_ms = t0_before;
            if let (Some(undo), FaultAction::Kill(plan)) =
                (self.kills_active.remove(&index), &self.spec.drill.faults[index].action)
            {
                for target in undo {
                    let _ = self.kills.undo(&plan.selector, plan.action, &target).await;
                }
            }
            self.log(Event::FaultFailed { fault: index, error: failures.join("; ") })?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Sends the follow-up SIGKILLs that are due, journaling each one sent.
    async fn follow_up(&mut self) -> Result<(), RunError> {
        let now = self.now_ms();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.follow_ups).into_iter().partition(|f| f.0 <= now);
        self.follow_ups = later;
        for (_, fault, target, pid) in due {
            let FaultAction::Kill(plan) = &self.spec.drill.faults[fault].action else { continue };
            match self.kills.follow_up(plan, &target, pid).await {
                Ok(Some(detail)) => self.log(Event::KillEscalated { fault, target: target.id, detail })?,
                Ok(None) => {}
                Err(e) => self.log(Event::KillFailed { fault, target: Some(target.id), error: e.describe() })?,
            }
        }
        Ok(())
    }

    /// Checks every target acted on and journals those that are back.
    async fn poll_recovery(&mut self) -> Result<(), RunError> {
        let mut still = Vec::new();
        for pending in std::mem::take(&mut self.pending) {
            let FaultAction::Kill(plan) = &self.spec.drill.faults[pending.fault].action else { continue };
            match self.kills.recovered(plan, &pending.acted).await {
                Ok(Some(detail)) => self.log(Event::TargetRecovered {
                    fault: pending.fault,
                    target: pending.acted.target.id.clone(),
                    detail,
                })?,
                Ok(None) => still.push(pending),
                Err(e) => {
                    tracing::debug!(error = %e.describe(), "recovery check failed; trying again");
                    still.push(pending);
                }
            }
        }
        still.append(&mut self.pending);
        self.pending = still;
        Ok(())
    }

    /// A fault went in now (the first one sets t0); `continuous` is a toxic or spike fault
    /// that does damage for as long as it is in force (a kill acts in rounds instead).
    fn went_in(&mut self, index: usize, continuous: bool) {
        let now = self.now_ms();
        self.t0_ms.get_or_insert(now);
        if continuous {
            self.applied_at.entry(index).or_insert(now);
        }
    }

    async fn remove(&mut self, index: usize, reason: Removal) -> Result<(), RunError> {
        self.applied_at.remove(&index);
        if let Some(stop) = self.spikes.remove(&index) {
            stop.cancel();
            let (proxy, toxic) = (String::new(), String::new());
            return self.log(Event::FaultRemoved { fault: index, proxy, toxic, reason });
        }
        if let Some(undo) = self.kills_active.remove(&index) {
            if let FaultAction::Kill(plan) = &self.spec.drill.faults[index].action {
                for target in undo {
                    match self.kills.undo(&plan.selector, plan.action, &target).await {
                        Ok(()) => self.log(Event::TargetRestored { fault: index, target, action: plan.action })?,
                        Err(e) => {
                            tracing::error!(error = %e.describe(), target, "could not undo a kill; undo it by hand");
                        }
                    }
                }
            }
            self.log(Event::FaultRemoved { fault: index, proxy: String::new(), toxic: String::new(), reason })?;
            return Ok(());
        }
        if let Some((proxy, toxic)) = self.active.remove(&index) {
            if let Err(e) = self.target.remove(&proxy, &toxic).await {
                tracing::error!(error = %e.describe(), proxy, toxic, "could not remove a fault; remove it by hand");
            }
            self.log(Event::FaultRemoved { fault: index, proxy, toxic, reason })?;
        }
        Ok(())
    }

    /// One second of the SLI: journals samples and rule transitions; a guardrail trip ends the run.
    fn sli_second(&mut self, live: &mut Live, counts: (u64, u64), faulted: bool) -> Result<Option<End>, RunError> {
        let Some(watch) = live.watch.as_mut() else { return Ok(None) };
        if faulted {
            watch.t0(counts);
        }
        let (transitions, trip) = watch.second(counts);
        self.log.set_burn_rates(watch.burn_rates());
        live.since_sample += 1;
        if live.since_sample >= SLI_SAMPLE_EVERY || transitions.iter().any(|t| t.firing) {
            live.since_sample = 0;
            self.log(Event::Sli { valid: counts.0, bad: counts.1, at_ms: None })?;
        }
        for t in transitions {
            let source = AlertSource::BurnRate;
            if t.firing {
                let detail = format!(
                    "error ratio {:.3}% (long window), {:.3}% (short window), threshold {:.3}%",
                    t.long_ratio * 100.0,
                    t.short_ratio * 100.0,
                    t.threshold * 100.0
                );
                self.log(Event::Alert {
                    source,
                    name: t.rule,
                    detail: Some(detail),
                    starts_at: None,
                    fingerprint: None,
                })?;
            } else {
                self.log(Event::AlertCleared { source, name: t.rule })?;
            }
        }
        Ok(trip.map(|reason| (Outcome::Guardrail, Some(reason), Removal::Guardrail)))
    }

    /// Every fault in force — toxic, kill or spike — as the journal says: the same fold crash
    /// recovery uses, so a run's ending and a recovery take out the same faults.
    fn in_force(&self) -> Vec<usize> {
        let in_force: Vec<usize> = crate::journal::in_force(&self.records).faults.into_keys().collect();
        if cfg!(debug_assertions) {
            let mut held: Vec<usize> =
                self.active.keys().chain(self.kills_active.keys()).chain(self.spikes.keys()).copied().collect();
            held.sort_unstable();
            assert_eq!(in_force, held, "the journal and the runner agree on the faults in force");
        }
        in_force
    }

    async fn end(&mut self, outcome: Outcome, reason: Option<String>, why: Removal) -> Result<(), RunError> {
        for index in self.in_force() {
            self.remove(index, why).await?;
        }
        self.log(Event::Ended { outcome, reason })
    }

    fn reveal(&mut self, index: usize, by: Option<String>) -> Result<String, RunError> {
        self.hints_shown[index] = true;
        let text = self.spec.drill.hints[index].text.clone();
        self.log(Event::Hint { index, text: text.clone(), by })?;
        Ok(text)
    }

    /// Refuses a responder's act (other than an acknowledgement) that would count for nothing:
    /// before t0, or, in a blind drill, before an acknowledgement that counts.
    fn refusal(&self) -> Option<Refusal> {
        if self.spec.blind && self.acked_ms.is_none() {
            return Some(Refusal::AckFirst);
        }
        self.t0_ms.is_none().then(|| {
            let due = self.spec.drill.first_fault_due();
            Refusal::NotYet(due.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
        })
    }

    /// Journals the SLI counts read now (or at `at_ms`, when read earlier), if the drill has one.
    async fn sample(&mut self, live: &Live, at_ms: Option<u64>, counts: Option<(u64, u64)>) -> Result<(), RunError> {
        if live.watch.is_none() {
            return Ok(());
        }
        let (valid, bad) = match counts {
            Some(counts) => counts,
            None => live.counts(&self.spec.drill, self.target).await,
        };
        self.log(Event::Sli { valid, bad, at_ms })
    }

    /// Handles a command; `Some` ends the run with that outcome.
    async fn command(&mut self, command: Command, live: &Live) -> Result<Option<End>, RunError> {
        match command {
            Command::Ack { by, reply } => {
                self.log(Event::Ack { by })?;
                let counted = self.t0_ms.is_some();
                if counted && self.acked_ms.is_none() {
                    self.acked_ms = Some(self.now_ms());
                    // Mitigation may start here: its counts must be exact.
                    self.sample(live, None, None).await?;
                }
                let _ = reply.send(counted);
            }
            Command::Diagnose { by, text, reply } => {
                if let Some(refusal) = self.refusal() {
                    let _ = reply.send(Err(refusal));
                    return Ok(None);
                }
                let correct = self.spec.drill.answer.matches(&text);
                self.log(Event::Diagnosis { by, text, correct })?;
                let _ = reply.send(Ok(correct));
            }
            Command::Hint { by, reply } => {
                if let Some(refusal) = self.refusal() {
                    let _ = reply.send(Err(refusal));
                    return Ok(None);
                }
                let next = self.hints_shown.iter().position(|shown| !shown);
                let text = match next {
                    Some(index) => Some(self.reveal(index, Some(by))?),
                    None => None,
                };
                let _ = reply.send(Ok(text));
            }
            Command::Mitigate { by, reply } => {
                let refusal = self.refusal().or_else(|| {
                    if self.evidence.steady.is_none() && self.evidence.mitigated.is_none() {
                        Some(Refusal::NoProbe)
                    } else if self.acked_ms.is_none() {
                        Some(Refusal::NotAcknowledged)
                    } else {
                        None
                    }
                });
                if let Some(refusal) = refusal {
                    let _ = reply.send(Err(refusal));
                    return Ok(None);
                }
                self.log(Event::MitigateDeclared { by: by.clone() })?;
                if let Some(at) = self.evidence.mitigated {
                    let _ = reply.send(Ok(at.saturating_sub(self.t0_ms.unwrap_or(0))));
                    return Ok(None);
                }
                let deadline = self.now_ms()
                    + self.evidence.window_ms
                    + u64::try_from(MITIGATE_VERIFY_GRACE.as_millis()).unwrap_or(u64::MAX);
                if let Some(earlier) = self.declared.replace(Declared { by, deadline_ms: deadline, reply }) {
                    let _ =
                        earlier.reply.send(Err(Refusal::Unverified("a later declaration replaced this one".into())));
                }
            }
            Command::Resolve { by, reply } => {
                if let Some(refusal) = self.refusal() {
                    let _ = reply.send(Err(refusal));
                    return Ok(None);
                }
                // The impact's end, if nothing mitigated it before: exact counts now.
                self.sample(live, None, None).await?;
                self.log(Event::ResolveDeclared { by })?;
                let _ = reply.send(Ok(()));
                return Ok(Some((Outcome::Resolved, None, Removal::Resolved)));
            }
            Command::Abort { by } => {
                return Ok(Some((Outcome::Aborted, Some(format!("aborted by {by}")), Removal::Aborted)));
            }
            Command::Alert { name, labels, starts_at, fingerprint, reply } => {
                // Whose alert it is: the run its `firedrill_run` label names; without one, a run
                // of the drill its `drill` label names, or a run whose drill expects it.
                let expected = self
                    .spec
                    .drill
                    .alerts
                    .iter()
                    .any(|a| a.name == name && a.labels.iter().all(|(k, v)| labels.get(k) == Some(v)));
                let named = labels.get("drill").is_some_and(|d| *d == self.spec.drill.name);
                let ours = labels.get("firedrill_run").map_or(expected || named, |run| *run == self.spec.run_id);
                let recorded = ours && self.alerts_seen.insert((fingerprint.clone(), starts_at.clone()));
                if recorded && expected {
                    self.log(Event::Alert {
                        source: AlertSource::Alertmanager,
                        name,
                        detail: None,
                        starts_at: Some(starts_at),
                        fingerprint: Some(fingerprint),
                    })?;
                } else if recorded {
                    self.log(Event::AlertNoise { name, starts_at: Some(starts_at), fingerprint: Some(fingerprint) })?;
                }
                let _ = reply.send(recorded);
            }
        }
        Ok(None)
    }

    /// One steady-state probe at `now`. Mitigation with the fault in is recorded once the state
    /// has held a window while a fault was doing damage in it — a toxic or pulse in force for a
    /// whole window, or a kill round inside it that the service weathered (the probe sent right
    /// after the kill, while the target was down, came back good) — after the fault had bitten
    /// (a probe failed after t0) and after someone acknowledged. A pause between pulses, or a
    /// supervisor that restarts what a kill took down, is therefore never a mitigation.
    /// `sent` is the run ms at which this probe started.
    async fn probe(&mut self, live: &Live, now: u64, sent: u64, ok: bool) -> Result<(), RunError> {
        if let Some(kill) = self.unprobed_kill
            && sent >= kill
        {
            self.unprobed_kill = None;
            if ok {
                self.kill_rounds.push(kill);
            }
        }
        let Some(t0) = self.t0_ms else { return Ok(()) };
        if self.evidence.mitigated.is_some() {
            return Ok(());
        }
        if self.evidence.steady.is_none() {
            return Ok(());
        }
        if !ok && !self.evidence.bitten {
            self.evidence.bitten = true;
            self.log(Event::SteadyStateLost)?;
        }
        let Some(steady) = self.evidence.steady.as_mut() else { return Ok(()) };
        let held = steady.observe(now, ok);
        let start = steady.streak_start();
        match (start, self.evidence.streak) {
            (Some(start), Some((known, _))) if known == start => {}
            (Some(start), _) => {
                let counts =
                    if live.watch.is_some() { Some(live.counts(&self.spec.drill, self.target).await) } else { None };
                self.evidence.streak = Some((start, counts.unwrap_or_default()));
            }
            (None, _) => self.evidence.streak = None,
        }
        let (Some(since), Some(acked)) = (held, self.acked_ms) else { return Ok(()) };
        let window = self.evidence.window_ms;
        let mut biting = self.kill_rounds.iter().any(|&k| k >= since && k <= now && !self.kills_active.is_empty());
        for (&index, &at) in &self.applied_at {
            if biting || now.saturating_sub(at.max(since)) < window {
                continue;
            }
            // A toxic taken off behind the run's back (the admin API) is no fault in force.
            biting = match self.active.get(&index) {
                Some((proxy, toxic)) => self.target.present(proxy, toxic).await != Some(false),
                None => true, // a spike: the run's own traffic
            };
        }
        if !(self.evidence.bitten && biting && since >= t0) {
            return Ok(());
        }
        let at = since.max(acked);
        let counts = match self.evidence.streak {
            Some((start, counts)) if start >= acked => Some(counts),
            _ => None, // the acknowledgement's own sample is the later bound
        };
        if let Some(counts) = counts {
            self.sample(live, Some(at), Some(counts)).await?;
        }
        self.log(Event::Mitigated { since_ms: at })?;
        self.evidence.mitigated = Some(at);
        if let Some(declared) = self.declared.take() {
            let _ = declared.reply.send(Ok(at.saturating_sub(t0)));
        }
        Ok(())
    }

    /// A declared mitigation whose verification time ran out.
    fn mitigation_unverified(&mut self) -> Result<(), RunError> {
        if let Some(Declared { by, reply, .. }) = self.declared.take() {
            let window = crate::duration::format(Duration::from_millis(self.evidence.window_ms));
            let reason = format!("the steady state did not hold for {window} while the fault was still in");
            self.log(Event::MitigationUnverified { by, reason: reason.clone() })?;
            let _ = reply.send(Err(Refusal::Unverified(reason)));
        }
        Ok(())
    }
}

impl<'a, T: FaultTarget> Runner<'a, T> {
    fn new(spec: &'a RunSpec, target: &'a T, kills: &'a Killers, journal: Journal, log: Arc<RunLog>) -> Self {
        Self {
            spec,
            target,
            kills,
            kills_active: BTreeMap::new(),
            pending: Vec::new(),
            alerts_seen: std::collections::BTreeSet::new(),
            journal,
            records: Vec::new(),
            log,
            started: Instant::now(),
            active: BTreeMap::new(),
            spike_source: None,
            spikes: BTreeMap::new(),
            hints_shown: vec![false; spec.drill.hints.len()],
            t0_ms: None,
            acked_ms: None,
            applied_at: BTreeMap::new(),
            kill_rounds: Vec::new(),
            follow_ups: Vec::new(),
            unprobed_kill: None,
            probe_now: Arc::default(),
            evidence: Evidence::default(),
            declared: None,
        }
    }
}

/// Runs a drill to its end and returns its scorecard. `shutdown` (the daemon stopping) ends it as
/// interrupted; every path removes the faults the run applied before returning.
pub async fn run<T: FaultTarget>(
    spec: &RunSpec,
    target: &T,
    kills: &Killers,
    journal: Journal,
    mut commands: mpsc::Receiver<Command>,
    shutdown: CancellationToken,
    log: Arc<RunLog>,
) -> Result<Scorecard, RunError> {
    let drill = &spec.drill;
    let mut runner = Runner::new(spec, target, kills, journal, log);
    runner.log(started_event(spec))?;
    for by in &spec.armed_acks {
        runner.log(Event::Ack { by: by.clone() })?;
    }

    // Synthetic traffic starts now; the timeline waits out its warm-up, so t0 has a steady state.
    let mut live = Live::start(drill, spec.sli_totals.clone(), &shutdown);
    let shift = live.shift;
    runner.spike_source = live.spike_source(drill);

    let mut steps = schedule(drill, shift);
    let mut commands_open = true;
    let mut recovery = tokio::time::interval(RECOVERY_POLL);

    // The steady-state probe runs beside the timeline; results arrive as (run ms, ok).
    let probe = drill.verify.as_ref().and_then(|v| v.http.clone().map(|http| (http, v.window, v.success_ratio)));
    let probe_stop = shutdown.child_token();
    let mut probes = spawn_probe(
        probe.as_ref().map(|(http, _, _)| http.clone()),
        runner.started,
        Arc::clone(&runner.probe_now),
        probe_stop.clone(),
    );
    runner.evidence.steady = probe.as_ref().map(|(_, window, ratio)| verify::SteadyState::new(*window, *ratio));
    runner.evidence.window_ms = probe.as_ref().map_or(0, |(_, w, _)| u64::try_from(w.as_millis()).unwrap_or(u64::MAX));
    let mut faulted = false;

    let (outcome, reason, why) = loop {
        let next_at = steps.next_at().unwrap_or(drill.timebox + shift);
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break (Outcome::Interrupted, Some("the daemon stopped".to_owned()), Removal::Interrupted),
            Some((sent, ok)) = probes.recv(), if runner.evidence.steady.is_some() => {
                let now = runner.now_ms();
                runner.probe(&live, now, sent, ok).await?;
            }
            () = sleep_until(runner.started + Duration::from_millis(runner.declared.as_ref().map_or(0, |d| d.deadline_ms))),
                if runner.declared.is_some() => runner.mitigation_unverified()?,
            command = commands.recv(), if commands_open => match command {
                Some(command) => if let Some(end) = runner.command(command, &live).await? { break end },
                None => commands_open = false,
            },
            _ = recovery.tick(), if !runner.pending.is_empty() => runner.poll_recovery().await?,
            () = sleep_until(runner.started + Duration::from_millis(runner.follow_ups.iter().map(|f| f.0).min().unwrap_or(0))),
                if !runner.follow_ups.is_empty() => runner.follow_up().await?,
            _ = live.seconds.tick(), if live.watch.is_some() => {
                let counts = live.counts(drill, target).await;
                if let Some(end) = runner.sli_second(&mut live, counts, faulted)? {
                    break end;
                }
            }
            () = sleep_until(runner.started + next_at) => {
                let Some(step) = steps.pop() else { continue };
                match step {
                    Step::Apply(index) => {
                        if !faulted && let Some(counts) = live.t0(drill, target).await {
                            runner.log(Event::Sli { valid: counts.0, bad: counts.1, at_ms: None })?;
                        }
                        faulted = true;
                        if !runner.apply(index).await? {
                            break (Outcome::Failed, Some(format!("fault {index} could not be applied")), Removal::Failed);
                        }
                        schedule_next_round(&mut steps, drill, index, 1, next_at);
                    }
                    Step::Kill(index, round) => {
                        if runner.kills_active.contains_key(&index)
                            && let FaultAction::Kill(plan) = &drill.faults[index].action
                        {
                            runner.kill_round(index, plan, round).await?;
                            schedule_next_round(&mut steps, drill, index, round + 1, next_at);
                        }
                    }
                    Step::Remove(index) => runner.remove(index, Removal::Duration).await?,
                    Step::Hint(index) => {
                        if !runner.hints_shown[index] {
                            runner.reveal(index, None)?;
                        }
                    }
                    Step::Timebox => break (Outcome::Unresolved, Some("the timebox ran out".to_owned()), Removal::Timebox),
                }
            }
        }
    };
    let (outcome, reason) = match (&probe, outcome) {
        (Some((_, window, ratio)), Outcome::Resolved) => {
            verify_resolved(&mut runner, &mut probes, &shutdown, *window, *ratio).await?
        }
        _ => (outcome, reason),
    };
    probe_stop.cancel();
    runner.mitigation_unverified()?;
    runner.sample(&live, None, None).await?;
    live.stop.cancel();
    runner.end(outcome, reason, why).await?;
    Ok(Scorecard::from_journal(&runner.records)?)
}

/// The first event of a run: everything the scorecard needs from the drill.
fn started_event(spec: &RunSpec) -> Event {
    let drill = &spec.drill;
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Event::RunStarted {
        run_id: spec.run_id.clone(),
        drill: drill.name.clone(),
        title: drill.title.clone(),
        briefing: drill.briefing.clone(),
        team: spec.team.clone(),
        responder: spec.responder.clone(),
        seed: spec.seed,
        blind: spec.blind,
        timebox_ms: millis(drill.timebox),
        production_ms: PhaseMillis::from_array(drill.targets.production.map(millis)),
        ratio: drill.targets.ratio,
        answer: drill.answer.clone(),
        slo: drill.slo.as_ref().map(|slo| SloInfo {
            objective_percent: slo.objective.target * 100.0,
            period_s: slo.objective.period.as_secs_f64(),
            production_rps: slo.production_rps,
        }),
        expected_alerts: drill
            .alerts
            .iter()
            .map(|a| AlertExpectation { name: a.name.clone(), within_ms: millis(a.within) })
            .collect(),
    }
}

/// Probes the steady state every [`verify::PROBE_INTERVAL`], and at once when `now` is notified,
/// until `stop`; each result comes with the run ms (from `started`) at which its probe was sent.
/// Without a probe, the channel stays silent.
fn spawn_probe(
    http: Option<crate::probe::HttpProbe>,
    started: Instant,
    now: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) -> mpsc::Receiver<(u64, bool)> {
    let (tx, rx) = mpsc::channel::<(u64, bool)>(8);
    if let Some(http) = http {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(verify::PROBE_INTERVAL) => {}
                    () = now.notified() => {}
                }
                let sent = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                if tx.send((sent, crate::probe::probe(&http).await)).await.is_err() {
                    return;
                }
            }
        });
    }
    rx
}

/// After a resolve: takes every fault out, then waits for the steady state to hold a window.
async fn verify_resolved<T: FaultTarget>(
    runner: &mut Runner<'_, T>,
    probes: &mut mpsc::Receiver<(u64, bool)>,
    shutdown: &CancellationToken,
    window: Duration,
    ratio: f64,
) -> Result<(Outcome, Option<String>), RunError> {
    for index in runner.in_force() {
        runner.remove(index, Removal::Resolved).await?;
    }
    // Results probed before the faults came out say nothing about the state after.
    while probes.try_recv().is_ok() {}
    let mut state = verify::SteadyState::new(window, ratio);
    let limit = (window + RESOLVE_VERIFY_GRACE).min(runner.spec.drill.timebox.saturating_sub(runner.started.elapsed()));
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok((Outcome::Interrupted, Some("the daemon stopped".to_owned()))),
            () = &mut deadline => return Ok((
                Outcome::Unresolved,
                Some(format!("the steady state did not hold for {} after the resolve", crate::duration::format(window))),
            )),
            Some((_, ok)) = probes.recv() => {
                if state.observe(runner.now_ms(), ok).is_some() {
                    return Ok((Outcome::Resolved, None));
                }
            }
        }
    }
}
