//! A run's live SLI: its synthetic traffic (and the spikes of spike faults), the burn-rate rules
//! and guardrails over it, and the tick they are evaluated on.

use std::sync::Arc;

use tokio::time::Duration;
use tokio_util::sync::CancellationToken;

use super::sli;
use crate::drill::Drill;
use crate::fault::FaultTarget;

/// The drill's synthetic traffic, as spike faults send more of it: the same entry point and
/// timeout, counted in the same SLI, stopped with the run's traffic.
pub(super) struct SpikeSource {
    pub(super) plan: crate::drill::plan::TrafficPlan,
    pub(super) latency: Option<Duration>,
    pub(super) counts: Arc<sli::Counts>,
    pub(super) stop: CancellationToken,
}

/// How often the SLI is counted and the rules evaluated.
pub(super) const SLI_TICK: Duration = Duration::from_secs(1);
/// Journal the cumulative SLI every this many ticks (and at t0, when a rule fires, and at the end).
pub(super) const SLI_SAMPLE_EVERY: u32 = 5;

/// A run's live SLI: its synthetic traffic, the rules and guardrails, and their clock.
pub(super) struct Live {
    pub(super) traffic: Option<Arc<sli::Counts>>,
    /// The warm-up the timeline waits out.
    pub(super) shift: Duration,
    pub(super) watch: Option<sli::Watch>,
    pub(super) seconds: tokio::time::Interval,
    pub(super) since_sample: u32,
    /// Stops the traffic.
    pub(super) stop: CancellationToken,
}

impl Live {
    pub(super) fn start(drill: &Drill, totals: Option<Arc<sli::Counts>>, shutdown: &CancellationToken) -> Self {
        let stop = shutdown.child_token();
        let latency = drill.slo.as_ref().and_then(|s| s.latency);
        let traffic = drill.traffic.as_ref().map(|plan| sli::start_traffic_into(plan, latency, &stop, totals));
        Self {
            traffic,
            shift: drill.traffic.as_ref().map_or(Duration::ZERO, |plan| plan.warmup),
            watch: drill.slo.as_ref().map(|slo| sli::Watch::new(slo, &drill.guardrails)),
            // The first tick one second in: each tick covers a whole second of counts.
            seconds: tokio::time::interval_at(tokio::time::Instant::now() + SLI_TICK, SLI_TICK),
            since_sample: 0,
            stop,
        }
    }

    /// Where spike faults send their traffic: the drill's own, if it has some.
    pub(super) fn spike_source(&self, drill: &Drill) -> Option<SpikeSource> {
        Some(SpikeSource {
            plan: drill.traffic.clone()?,
            latency: drill.slo.as_ref().and_then(|s| s.latency),
            counts: self.traffic.clone()?,
            stop: self.stop.clone(),
        })
    }

    /// Marks t0 for the guardrails; the counts then, if the drill has an SLI.
    pub(super) async fn t0<T: FaultTarget>(&mut self, drill: &Drill, target: &T) -> Option<(u64, u64)> {
        self.watch.as_ref()?;
        let counts = self.counts(drill, target).await;
        self.watch.as_mut()?.t0(counts);
        Some(counts)
    }

    /// The SLI counts now: from the drill's proxy, or from its synthetic traffic.
    pub(super) async fn counts<T: FaultTarget>(&self, drill: &Drill, target: &T) -> (u64, u64) {
        match drill.slo.as_ref().map(|s| &s.source) {
            Some(crate::drill::SliSource::Proxy(proxy)) => target.counts(proxy).await.unwrap_or_default(),
            _ => self.traffic.as_deref().map(sli::Counts::get).unwrap_or_default(),
        }
    }
}
