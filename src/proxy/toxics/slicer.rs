//! `slicer`: splits data into pieces of `average_size` ± `size_variation` bytes, `delay` µs apart.

use std::time::Duration;

use rand::RngExt;
use rand::rngs::SmallRng;

use super::Piece;

/// Splits every piece; the `i`-th slice of a piece is ready `i × delay` after the piece.
pub fn apply(pieces: &mut Vec<Piece>, average: u64, variation: u64, delay_us: u64, rng: &mut SmallRng) {
    let mut out = Vec::new();
    for piece in pieces.drain(..) {
        let mut data = piece.data;
        let mut at = piece.ready_at;
        while !data.is_empty() {
            let size =
                if variation == 0 { average } else { rng.random_range(average - variation..=average + variation) };
            let size = usize::try_from(size).unwrap_or(usize::MAX).clamp(1, data.len());
            out.push(Piece { data: data.split_to(size), ready_at: at });
            at += Duration::from_micros(delay_us);
        }
    }
    *pieces = out;
}

#[cfg(test)]
mod tests {
    use super::super::harness::{chunk, total};
    use super::*;
    use rand::SeedableRng;
    use tokio::time::Instant;

    #[test]
    fn pieces_stay_within_the_size_range_and_are_spaced() {
        let now = Instant::now();
        let mut rng = SmallRng::seed_from_u64(9);
        let mut pieces = chunk(10_000, now);
        apply(&mut pieces, 100, 20, 1000, &mut rng);
        assert_eq!(total(&pieces), 10_000);
        let (last, body) = pieces.split_last().unwrap();
        assert!(body.iter().all(|p| (80..=120).contains(&p.data.len())));
        assert!(last.data.len() <= 120);
        for (i, piece) in pieces.iter().enumerate() {
            assert_eq!(piece.ready_at - now, Duration::from_micros(1000 * i as u64));
        }
    }
}
