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
    /// Bytes this toxic dropped (`timeout`, `reset_peer`, `limit_data`): the connection can no
    /// longer go on as if nothing happened, so the toxic can only leave by ending it.
    dropped: u64,
}

impl LinkToxic {
    /// How the connection must end when this toxic leaves it (removed, retyped, or redrawn off):
    /// a toxic that dropped bytes never lets the stream go on after the gap, a pending reset
    /// still happens, and an active `timeout` closes, as in Toxiproxy.
    fn leaving(&self) -> Verdict {
        if !self.enabled {
            return Verdict::Continue;
        }
        match self.toxic.kind {
            ToxicKind::ResetPeer { .. } if self.state.reset_at.is_some() || self.state.dropped > 0 => Verdict::Reset,
            ToxicKind::Timeout { .. } => Verdict::Close,
            _ if self.state.dropped > 0 => Verdict::Close,
            _ => Verdict::Continue,
        }
    }
}

/// The stronger of two verdicts: a reset over a close over going on.
fn worst(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Reset, _) | (_, Verdict::Reset) => Verdict::Reset,
        (Verdict::Close, _) | (_, Verdict::Close) => Verdict::Close,
        _ => Verdict::Continue,
    }
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
    /// updated ones keep their per-connection state, removed ones stop. Returns how the
    /// connection must end, if it must: a toxic that leaves (removed, or redrawn off by a new
    /// toxicity) after dropping bytes ends it — with a reset if a reset was pending — so no
    /// stream ever goes on after a gap; an active `timeout` closes it, as in Toxiproxy.
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
                    let enabled = toxic.toxicity >= 1.0 || self.rng.random_bool(toxic.toxicity);
                    if link.enabled && !enabled {
                        verdict = worst(verdict, link.leaving());
                        link.state = State { started: Some(now), ..State::default() };
                    } else if !link.enabled && enabled {
                        // Switched on now: it starts now, as a new toxic would.
                        self.metrics.toxic_activated(&toxic.name, toxic.kind.type_name());
                        link.state = State { started: Some(now), ..State::default() };
                    }
                    link.enabled = enabled;
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
            verdict = worst(verdict, removed.leaving());
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
                ToxicKind::Timeout { .. } => {
                    link.state.dropped += total(&pieces);
                    timeout::apply(&mut pieces);
                }
                ToxicKind::ResetPeer { timeout } => {
                    link.state.dropped += total(&pieces);
                    reset_peer::apply(&mut pieces, timeout, &mut link.state.reset_at);
                }
                ToxicKind::LimitData { bytes } => {
                    let before = total(&pieces);
                    if limit_data::apply(&mut pieces, bytes, &mut link.state.sent) {
                        verdict = Verdict::Close;
                    }
                    link.state.dropped += before - total(&pieces);
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

/// Total bytes in `pieces`.
fn total(pieces: &[Piece]) -> u64 {
    pieces.iter().map(|p| p.data.len() as u64).sum()
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

    /// A random toxic of a byte-level type, named `name`.
    fn random_toxic(rng: &mut SmallRng, name: &str) -> Toxic {
        let toxicity: f64 = [0.0, 0.3, 0.7, 1.0][rng.random_range(0..4)];
        let (kind, attributes) = match rng.random_range(0..8) {
            0 => ("latency", json!({"latency": rng.random_range(0..50), "jitter": rng.random_range(0..5)})),
            1 => ("bandwidth", json!({"rate": rng.random_range(1..500)})),
            2 => ("slicer", json!({"average_size": 64, "size_variation": 10, "delay": 0})),
            3 => ("timeout", json!({"timeout": rng.random_range(0..100)})),
            4 => ("reset_peer", json!({"timeout": rng.random_range(0..100)})),
            5 => ("limit_data", json!({"bytes": rng.random_range(0..20_000)})),
            6 => ("slow_close", json!({"delay": 5})),
            _ => ("noop", json!({})),
        };
        toxic(&json!({"name": name, "type": kind, "toxicity": toxicity, "attributes": attributes}))
    }

    /// Byte accounting as an invariant: through seeded random sequences of toxics added,
    /// updated (attributes and toxicity, which redraws) and removed between chunks, what a
    /// direction delivers is always a prefix of what it was sent — and once a toxic dropped
    /// bytes, the connection ends (a close or a reset) before anything after the gap is
    /// delivered, including when the toxic leaves.
    #[test]
    fn no_stream_goes_on_after_a_gap_whatever_the_toxics_do() {
        let mut ended_by_leaving = 0;
        for seed in 0..2000_u64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let now = Instant::now();
            let mut chain = Chain::new(Stream::Downstream, seed, Arc::new(ProxyMetrics::default()));
            let mut toxics: Vec<Toxic> = Vec::new();
            let (mut sent, mut delivered) = (0_u64, 0_u64);
            let mut ended = Verdict::Continue;
            for step in 0..60 {
                let at = now + Duration::from_millis(step * 10);
                let change = match rng.random_range(0..6) {
                    0 if toxics.len() < 4 => {
                        let name = format!("t{}", rng.random_range(0..6));
                        toxics.retain(|t| t.name != name);
                        toxics.push(random_toxic(&mut rng, &name));
                        true
                    }
                    1 if !toxics.is_empty() => {
                        toxics.remove(rng.random_range(0..toxics.len()));
                        true
                    }
                    2 if !toxics.is_empty() => {
                        let i = rng.random_range(0..toxics.len());
                        let toxicity = [0.0, 0.5, 1.0][rng.random_range(0..3)];
                        let body = json!({ "toxicity": toxicity });
                        toxics[i] = toxics[i].updated(&body).unwrap();
                        true
                    }
                    _ => false,
                };
                if change {
                    let verdict = chain.sync(&toxics, at);
                    if verdict != Verdict::Continue {
                        ended = verdict;
                        ended_by_leaving += usize::from(delivered < sent);
                        break;
                    }
                }
                let len = rng.random_range(1..4000_u64);
                let (pieces, verdict) = chain.on_data(Bytes::from(vec![0; len as usize]), at);
                let out = total(&pieces);
                assert!(out <= len, "seed {seed}: more out than in");
                if delivered < sent {
                    assert_eq!(
                        out,
                        0,
                        "seed {seed}: bytes delivered after a gap of {} at step {step}",
                        sent - delivered
                    );
                }
                if out > 0 && out < len {
                    // Part of this chunk went through: what was cut is its tail, and the end is now.
                    assert_ne!(verdict, Verdict::Continue, "seed {seed}: a chunk was cut and the stream goes on");
                }
                sent += len;
                delivered += out;
                if verdict != Verdict::Continue {
                    ended = verdict;
                    break;
                }
            }
            if ended == Verdict::Continue && delivered < sent {
                // Whatever still holds the gap open must end the connection when it leaves.
                assert_ne!(chain.sync(&[], now + Duration::from_secs(10)), Verdict::Continue, "seed {seed}");
                ended_by_leaving += 1;
            }
        }
        assert!(ended_by_leaving > 100, "the sequences do exercise toxics leaving after a gap: {ended_by_leaving}");
    }

    #[test]
    fn a_pending_reset_still_happens_when_its_toxic_is_removed() {
        let now = Instant::now();
        let mut chain = chain();
        chain.sync(&[toxic(&json!({"type": "reset_peer", "attributes": {"timeout": 1000}}))], now);
        assert!(chain.on_data(Bytes::from_static(b"dropped"), now).0.is_empty());
        assert_eq!(chain.sync(&[], now + Duration::from_millis(10)), Verdict::Reset);
    }

    #[test]
    fn a_redraw_that_turns_a_dropping_toxic_off_ends_the_connection() {
        let now = Instant::now();
        for seed in 0..50 {
            let mut chain = Chain::new(Stream::Downstream, seed, Arc::new(ProxyMetrics::default()));
            let limit = toxic(&json!({"type": "limit_data", "toxicity": 1.0, "attributes": {"bytes": 0}}));
            chain.sync(std::slice::from_ref(&limit), now);
            let timeout = toxic(&json!({"type": "timeout", "toxicity": 1.0}));
            chain.sync(std::slice::from_ref(&timeout), now);
            assert!(chain.on_data(Bytes::from_static(b"x"), now).0.is_empty());
            let off = timeout.updated(&json!({"toxicity": 0.0})).unwrap();
            assert_eq!(chain.sync(&[off], now), Verdict::Close, "seed {seed}");
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
