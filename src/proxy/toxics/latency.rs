//! `latency`: every chunk waits `latency` ± `jitter` ms from when it arrived.

use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;

use super::Piece;

/// Shifts every piece by the latency and a fresh jitter draw in `[-jitter, jitter]`.
pub fn apply(pieces: &mut [Piece], latency: u64, jitter: u64, rng: &mut SmallRng) {
    for piece in pieces {
        let offset = if jitter == 0 { 0 } else { rng.random_range(-(jitter as i64)..=jitter as i64) };
        let millis = (latency as i64 + offset).max(0) as u64;
        piece.ready_at += Duration::from_millis(millis);
    }
}

#[cfg(test)]
mod tests {
    use super::super::harness::chunk;
    use super::*;
    use rand::SeedableRng;
    use tokio::time::Instant;

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let mut pieces = chunk(10, now);
            apply(&mut pieces, 100, 20, &mut rng);
            let delay = (pieces[0].ready_at - now).as_millis();
            assert!((80..=120).contains(&delay), "delay {delay}");
            seen.insert(delay);
        }
        assert!(seen.len() > 30, "jitter should spread the delays: {seen:?}");
    }

    #[test]
    fn jitter_larger_than_latency_never_goes_negative() {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(3);
        for _ in 0..100 {
            let mut pieces = chunk(1, now);
            apply(&mut pieces, 5, 50, &mut rng);
            assert!(pieces[0].ready_at >= now);
        }
    }
}
