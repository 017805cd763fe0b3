//! `bandwidth`: paces the connection to `rate` KB/s; 0 stalls the data until the toxic changes.

use std::time::Duration;

use super::Piece;
use crate::proxy::toxic::MAX_MILLIS;

/// Pieces are cut to at most this long a transmission, so pacing is smooth (as in Toxiproxy).
const SLICE: Duration = Duration::from_millis(100);

/// Re-schedules the pieces so that the connection never exceeds `rate` KB/s. `next_free` is
/// when the previous piece finished its transmission time on this connection.
pub fn apply(pieces: &mut Vec<Piece>, rate: u64, next_free: &mut Option<tokio::time::Instant>) {
    if rate == 0 {
        // A stall, not a hang of the proxy: the data waits until the toxic is updated or removed.
        for piece in pieces.iter_mut() {
            piece.ready_at += Duration::from_millis(MAX_MILLIS);
        }
        return;
    }
    let bytes_per_sec = u128::from(rate) * 1024;
    let slice_len = usize::try_from((bytes_per_sec / 10).max(1)).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(pieces.len());
    for piece in pieces.drain(..) {
        let mut data = piece.data;
        while !data.is_empty() {
            let part = data.split_to(slice_len.min(data.len()));
            let cost = Duration::from_nanos((part.len() as u128 * 1_000_000_000 / bytes_per_sec) as u64);
            let start = next_free.map_or(piece.ready_at, |free| free.max(piece.ready_at));
            let ready_at = start + cost.min(SLICE);
            *next_free = Some(ready_at);
            out.push(Piece { data: part, ready_at });
        }
    }
    *pieces = out;
}

#[cfg(test)]
mod tests {
    use super::super::harness::{chunk, total};
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn paces_to_the_rate() {
        let now = Instant::now();
        let mut next_free = None;
        // 100 KB/s: 200 KiB takes two seconds, in 100 ms slices of 10 KiB.
        let mut pieces = chunk(200 * 1024, now);
        apply(&mut pieces, 100, &mut next_free);
        assert_eq!(total(&pieces), 200 * 1024);
        assert_eq!(pieces.len(), 20);
        let last = pieces.last().unwrap().ready_at - now;
        assert!(last.abs_diff(Duration::from_secs(2)) < Duration::from_millis(5), "{last:?}");
        // The next chunk, arriving at once, queues behind the first.
        let mut more = chunk(1024, now);
        apply(&mut more, 100, &mut next_free);
        assert!(more[0].ready_at - now > Duration::from_secs(2));
    }

    #[test]
    fn zero_rate_stalls_without_dropping() {
        let now = Instant::now();
        let mut pieces = chunk(10, now);
        apply(&mut pieces, 0, &mut None);
        assert_eq!(total(&pieces), 10);
        assert!(pieces[0].ready_at - now >= Duration::from_hours(1));
    }
}
