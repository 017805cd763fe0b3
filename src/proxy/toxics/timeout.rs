//! `timeout`: drops all data and closes the connection `timeout` ms after the toxic started on it.
//!
//! Toxiproxy restarts the timer on every chunk, so steady traffic keeps a "timed out"
//! connection open; firedrill measures from when the toxic started, as documented.

use std::time::Duration;

use tokio::time::Instant;

use super::Piece;

/// Drops the data on the floor.
pub fn apply(pieces: &mut Vec<Piece>) {
    pieces.clear();
}

/// When the connection closes: `timeout` ms after `started`, or never for 0.
pub fn deadline(started: Instant, timeout: u64) -> Option<Instant> {
    (timeout > 0).then(|| started + Duration::from_millis(timeout))
}

#[cfg(test)]
mod tests {
    use super::super::harness::chunk;
    use super::*;

    #[test]
    fn drops_data_and_times_from_the_start() {
        let now = Instant::now();
        let mut pieces = chunk(10, now);
        apply(&mut pieces);
        assert!(pieces.is_empty());
        assert_eq!(deadline(now, 250), Some(now + Duration::from_millis(250)));
        assert_eq!(deadline(now, 0), None);
    }
}
