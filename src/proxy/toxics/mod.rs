//! The toxic pipeline of one direction of one connection.
//!
//! Each toxic is a small transformer in its own file: it turns the pieces of a chunk (bytes and
//! the instant each may be written) into new pieces, or drops them, or asks for the connection to
//! close. Scheduling instead of sleeping keeps every toxic pure, so a toxic is tested without a
//! socket, and stacked toxics compose (two latency toxics add up).

mod bandwidth;
mod latency;
mod limit_data;
mod reset_peer;
mod slicer;
mod slow_close;
mod timeout;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::time::Instant;

use super::metrics::ProxyMetrics;
use super::toxic::{Stream, Toxic, ToxicKind};

/// A run of bytes and the earliest instant it may be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The bytes.
    pub data: Bytes,
    /// When the writer may send them.
    pub ready_at: Instant,
}

/// What the connection must do once the current pieces are written, or when a deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep going.
    Continue,
    /// Close the whole connection (FIN).
    Close,
    /// Reset the whole connection (RST).
    Reset,
}

/// Per-connection state a toxic keeps between chunks.
#[derive(Debug, Default)]
struct State {
    /// When the toxic started on this connection.
    started: Option<Instant>,
    /// bandwidth: when the link is free again.
    next_free: Option<Instant>,
    /// `limit_data`: bytes already forwarded.
    sent: u64,
    /// `reset_peer`: when the reset is due, once data has been seen.
    reset_at: Option<Instant>,
}

/// One toxic as it runs on one connection direction.
#[derive(Debug)]
struct LinkToxic {
    toxic: Toxic,
    /// The toxicity draw: false makes the toxic a no-op on this connection.
    enabled: bool,
    state: State,
}

/// The ordered toxics of one direction of one connection.
pub struct Chain {
    stream: Stream,
    toxics: Vec<LinkToxic>,
    rng: SmallRng,
    /// Where toxic activations are counted.
    metrics: Arc<ProxyMetrics>,
}

impl Chain {
    /// An empty chain for `stream`; `seed` makes its draws (toxicity, jitter, slices) repeatable.
    pub fn new(stream: Stream, seed: u64, metrics: Arc<ProxyMetrics>) -> Self {
        Self { stream, toxics: Vec::new(), rng: SmallRng::seed_from_u64(seed), metrics }
    }

    /// True when no toxic applies to this stream.
    pub fn is_empty(&self) -> bool {
        self.toxics.is_empty()
    }

    /// Brings the chain in line with the proxy's toxics: new toxics start (toxicity drawn now),
    /// updated ones keep their per-connection state, removed ones stop. Returns [`Verdict::Close`]
    /// when a removed toxic closes the connection (an active `timeout`, as in Toxiproxy).
    pub fn sync(&mut self, wanted: &[Toxic], now: Instant) -> Verdict {
        let mut verdict = Verdict::Continue;
        let mut old = std::mem::take(&mut self.toxics);
        for toxic in wanted.iter().filter(|t| t.stream == self.stream && !t.kind.is_request()) {
            let same = old
                .iter()
                .position(|o| o.toxic.name == toxic.name && o.toxic.kind.type_name() == toxic.kind.type_name());
            let link = if let Some(index) = same {
                let mut link = old.swap_remove(index);
                if (link.toxic.toxicity - toxic.toxicity).abs() > f64::EPSILON {
                    link.enabled = self.rng.random_bool(toxic.toxicity);
                }
                link.toxic = toxic.clone();
                link
            } else {
                let enabled = toxic.toxicity >= 1.0 || self.rng.random_bool(toxic.toxicity);
                if enabled {
                    self.metrics.toxic_activated(&toxic.name, toxic.kind.type_name());
                }
                LinkToxic { toxic: toxic.clone(), enabled, state: State { started: Some(now), ..State::default() } }
            };
            self.toxics.push(link);
        }
        for removed in old {
            if removed.enabled && matches!(removed.toxic.kind, ToxicKind::Timeout { .. }) {
                verdict = Verdict::Close;
            }
        }
        verdict
    }

    /// Runs a chunk that arrived at `arrived` through the chain.
    pub fn on_data(&mut self, data: Bytes, arrived: Instant) -> (Vec<Piece>, Verdict) {
        let mut pieces = vec![Piece { data, ready_at: arrived }];
        let mut verdict = Verdict::Continue;
        for link in self.toxics.iter_mut().filter(|l| l.enabled) {
            if pieces.is_empty() {
                break;
            }
            match link.toxic.kind {
                ToxicKind::Noop | ToxicKind::SlowClose { .. } | ToxicKind::Request(_) => {}
                ToxicKind::Latency { latency, jitter } => latency::apply(&mut pieces, latency, jitter, &mut self.rng),
                ToxicKind::Bandwidth { rate } => bandwidth::apply(&mut pieces, rate, &mut link.state.next_free),
                ToxicKind::Slicer { average_size, size_variation, delay } => {
                    slicer::apply(&mut pieces, average_size, size_variation, delay, &mut self.rng);
                }
                ToxicKind::Timeout { .. } => timeout::apply(&mut pieces),
                ToxicKind::ResetPeer { timeout } => reset_peer::apply(&mut pieces, timeout, &mut link.state.reset_at),
                ToxicKind::LimitData { bytes } => {
                    if limit_data::apply(&mut pieces, bytes, &mut link.state.sent) {
                        verdict = Verdict::Close;
                    }
                }
            }
        }
        (pieces, verdict)
    }

    /// How long the close (EOF) is held back: the sum of the active `slow_close` delays.
    pub fn on_eof(&self) -> Duration {
        self.toxics
            .iter()
            .filter(|l| l.enabled)
            .map(|l| match l.toxic.kind {
                ToxicKind::SlowClose { delay } => slow_close::delay(delay),
                _ => Duration::ZERO,
            })
            .sum()
    }

    /// The next instant at which a toxic acts on its own, and what it does then.
    pub fn deadline(&self) -> Option<(Instant, Verdict)> {
        self.toxics
            .iter()
            .filter(|l| l.enabled)
            .filter_map(|l| match l.toxic.kind {
                ToxicKind::Timeout { timeout } => {
                    timeout::deadline(l.state.started?, timeout).map(|at| (at, Verdict::Close))
                }
                ToxicKind::ResetPeer { .. } => l.state.reset_at.map(|at| (at, Verdict::Reset)),
                _ => None,
            })
            .min_by_key(|(at, _)| *at)
    }
}

#[cfg(test)]
pub(crate) mod harness {
    //! The shared test harness of the toxic transformers.
    use super::{Bytes, Instant, Piece};

    /// One piece of `len` bytes ready at `at`.
    pub fn chunk(len: usize, at: Instant) -> Vec<Piece> {
        vec![Piece { data: Bytes::from(vec![7_u8; len]), ready_at: at }]
    }

    /// Total bytes in the pieces.
    pub fn total(pieces: &[Piece]) -> usize {
        pieces.iter().map(|p| p.data.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn toxic(body: &serde_json::Value) -> Toxic {
        Toxic::from_create(body).unwrap()
    }

    fn chain() -> Chain {
        Chain::new(Stream::Downstream, 1, Arc::new(ProxyMetrics::default()))
    }

    #[test]
    fn stacked_latencies_add_up() {
        let now = Instant::now();
        let mut chain = chain();
        let wanted = [
            toxic(&json!({"name": "a", "type": "latency", "attributes": {"latency": 100}})),
            toxic(&json!({"name": "b", "type": "latency", "attributes": {"latency": 50}})),
            toxic(&json!({"name": "up", "type": "latency", "stream": "upstream", "attributes": {"latency": 999}})),
        ];
        assert_eq!(chain.sync(&wanted, now), Verdict::Continue);
        let (pieces, verdict) = chain.on_data(Bytes::from_static(b"hi"), now);
        assert_eq!(verdict, Verdict::Continue);
        assert_eq!(pieces[0].ready_at - now, Duration::from_millis(150));
    }

    #[test]
    fn toxicity_zero_never_applies_and_one_always_does() {
        let now = Instant::now();
        for seed in 0..100 {
            let mut chain = Chain::new(Stream::Downstream, seed, Arc::new(ProxyMetrics::default()));
            chain.sync(&[toxic(&json!({"type": "timeout", "toxicity": 0.0}))], now);
            assert_eq!(chain.on_data(Bytes::from_static(b"x"), now).0.len(), 1);
            let mut chain = Chain::new(Stream::Downstream, seed, Arc::new(ProxyMetrics::default()));
            chain.sync(&[toxic(&json!({"type": "timeout", "toxicity": 1.0}))], now);
            assert!(chain.on_data(Bytes::from_static(b"x"), now).0.is_empty());
        }
    }

    #[test]
    fn update_keeps_state_and_removal_of_timeout_closes() {
        let now = Instant::now();
        let mut chain = chain();
        chain.sync(&[toxic(&json!({"type": "timeout", "attributes": {"timeout": 1000}}))], now);
        let later = now + Duration::from_millis(400);
        chain.sync(&[toxic(&json!({"type": "timeout", "attributes": {"timeout": 500}}))], later);
        assert_eq!(chain.deadline(), Some((now + Duration::from_millis(500), Verdict::Close)));
        assert_eq!(chain.sync(&[], later), Verdict::Close);
        assert!(chain.is_empty());
    }
}
