//! A run's live SLI: synthetic traffic, counting good and bad events once a second, the
//! burn-rate rules over them, and the guardrails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use crate::drill::{Guardrails, SloPlan, TrafficPlan, TrafficTarget};
use crate::slo::eval::{Evaluator, Transition};

/// Requests in flight at once; beyond this a due request counts as failed (the target is stuck).
const MAX_IN_FLIGHT: usize = 256;

/// Cumulative counts of the synthetic traffic.
#[derive(Debug, Default)]
pub struct Counts {
    valid: AtomicU64,
    bad: AtomicU64,
    /// Counts that every event here also goes to: the drill's, across the daemon's runs, that
    /// `/metrics` shows.
    also: Option<Arc<Counts>>,
}

impl Counts {
    /// Counts whose every event also goes to `parent`.
    pub fn feeding(parent: Arc<Counts>) -> Self {
        Self { also: Some(parent), ..Self::default() }
    }

    /// (valid, bad) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.valid.load(Ordering::Relaxed), self.bad.load(Ordering::Relaxed))
    }

    fn record(&self, good: bool) {
        self.valid.fetch_add(1, Ordering::Relaxed);
        if !good {
            self.bad.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(parent) = &self.also {
            parent.record(good);
        }
    }
}

/// One synthetic request: good or bad.
async fn call(
    target: &TrafficTarget,
    http1: &Client<HttpConnector, Empty<Bytes>>,
    http2: &Client<HttpConnector, Full<Bytes>>,
) -> bool {
    match target {
        TrafficTarget::Http(url) => {
            let Ok(uri) = url.parse::<hyper::Uri>() else { return false };
            match http1.get(uri).await {
                Ok(response) => {
                    let ok = response.status().as_u16() < 500;
                    ok && response.into_body().collect().await.is_ok()
                }
                Err(_) => false,
            }
        }
        TrafficTarget::Grpc { address, path } => {
            // A unary call with an empty message: a zero-length, uncompressed frame.
            let request = hyper::Request::post(format!("http://{address}{path}"))
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .header("te", "trailers")
                .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])));
            let Ok(request) = request else { return false };
            let Ok(response) = http2.request(request).await else { return false };
            let header = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()?.parse::<u32>().ok());
            let Ok(collected) = response.into_body().collect().await else { return false };
            let trailer = collected.trailers().and_then(|t| t.get("grpc-status")?.to_str().ok()?.parse::<u32>().ok());
            header.or(trailer).is_some_and(|code| !crate::proxy::http::metrics::grpc_failed(code))
        }
    }
}

/// Sends `plan`'s requests until `stop`; returns the counts it keeps. A request slower than
/// `latency` (or the plan's timeout) is bad.
pub fn start_traffic(plan: &TrafficPlan, latency: Option<Duration>, stop: &CancellationToken) -> Arc<Counts> {
    start_traffic_into(plan, latency, stop, None)
}

/// [`start_traffic`], with every event also counted in `totals` (the drill's, for `/metrics`).
pub fn start_traffic_into(
    plan: &TrafficPlan,
    latency: Option<Duration>,
    stop: &CancellationToken,
    totals: Option<Arc<Counts>>,
) -> Arc<Counts> {
    let counts = Arc::new(totals.map_or_else(Counts::default, Counts::feeding));
    send_traffic(plan, latency, stop, counts.clone());
    counts
}

/// Sends `plan`'s requests until `stop`, counting them in `counts` (a spike adds to the drill's
/// own traffic this way).
pub fn send_traffic(plan: &TrafficPlan, latency: Option<Duration>, stop: &CancellationToken, counts: Arc<Counts>) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http1: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector.clone());
    let http2: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
    let limit = latency.map_or(plan.timeout, |l| l.min(plan.timeout));
    let (target, period, stop, shared) =
        (Arc::new(plan.target.clone()), Duration::from_secs_f64(1.0 / plan.rps), stop.clone(), counts);
    tokio::spawn(async move {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                shared.record(false);
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (target, http1, http2, shared, in_flight, stop) =
                (target.clone(), http1.clone(), http2.clone(), shared.clone(), in_flight.clone(), stop.clone());
            tokio::spawn(async move {
                let outcome = tokio::select! {
                    () = stop.cancelled() => None,
                    done = tokio::time::timeout(limit, call(&target, &http1, &http2)) => Some(done.unwrap_or(false)),
                };
                if let Some(good) = outcome {
                    shared.record(good);
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
}

/// Why a guardrail stopped the run.
pub type Trip = String;

/// The rules and guardrails over a run's SLI, fed once a second with cumulative counts.
pub struct Watch {
    evaluator: Evaluator,
    guardrails: Guardrails,
    slo: SloPlan,
    last: (u64, u64),
    /// Counts when the first fault went in.
    at_t0: Option<((u64, u64), tokio::time::Instant)>,
    below_floor: Duration,
}

impl Watch {
    /// Watches an SLI held to `slo`.
    pub fn new(slo: &SloPlan, guardrails: &Guardrails) -> Self {
        let rules = crate::slo::default_rules(slo.objective.period, slo.min_bad);
        Self {
            evaluator: Evaluator::new(slo.objective, rules),
            guardrails: guardrails.clone(),
            slo: slo.clone(),
            last: (0, 0),
            at_t0: None,
            below_floor: Duration::ZERO,
        }
    }

    /// The burn rate over each window of the rules (see [`Evaluator::burn_rates`]).
    pub fn burn_rates(&self) -> Vec<(Duration, f64)> {
        self.evaluator.burn_rates()
    }

    /// Marks t0 (the first fault) at `counts`.
    pub fn t0(&mut self, counts: (u64, u64)) {
        if self.at_t0.is_none() {
            self.at_t0 = Some((counts, tokio::time::Instant::now()));
        }
    }

    /// One second passed and the cumulative counts are `counts`: the rules' transitions, and a
    /// guardrail trip if one happened.
    pub fn second(&mut self, counts: (u64, u64)) -> (Vec<Transition>, Option<Trip>) {
        let (valid, bad) = (counts.0.saturating_sub(self.last.0), counts.1.saturating_sub(self.last.1));
        self.last = counts;
        let transitions = self.evaluator.push(valid, bad);
        let mut trip = None;
        if let Some((floor, hold)) = self.guardrails.sli_floor
            && valid > 0
        {
            #[allow(clippy::cast_precision_loss)]
            let sli = 1.0 - bad as f64 / valid as f64;
            self.below_floor = if sli < floor { self.below_floor + Duration::from_secs(1) } else { Duration::ZERO };
            if self.below_floor >= hold {
                trip = Some(format!(
                    "guardrail: the SLI stayed below {:.1}% for {}",
                    floor * 100.0,
                    crate::duration::format(hold)
                ));
            }
        }
        if let (Some(cap), Some(((v0, b0), since))) = (self.guardrails.max_budget_spent, self.at_t0) {
            let (dv, db) = (counts.0.saturating_sub(v0), counts.1.saturating_sub(b0));
            if dv > 0 {
                #[allow(clippy::cast_precision_loss)]
                let fraction = db as f64 / dv as f64;
                let rps = self.slo.production_rps;
                let spent = self.slo.objective.spent(fraction * rps * since.elapsed().as_secs_f64(), rps);
                if spent > cap {
                    trip = Some(format!(
                        "guardrail: the production-equivalent budget spend reached {:.1}% (cap {:.1}%)",
                        spent * 100.0,
                        cap * 100.0
                    ));
                }
            }
        }
        (transitions, trip)
    }
}
