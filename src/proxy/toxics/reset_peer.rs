//! `reset_peer`: on the first data, waits `timeout` ms, then resets the connection (TCP RST).

use std::time::Duration;

use tokio::time::Instant;

use super::Piece;

/// Arms the reset on the first data, measured from when that data arrived; the data is dropped,
/// as in Toxiproxy.
pub fn apply(pieces: &mut Vec<Piece>, timeout: u64, reset_at: &mut Option<Instant>) {
    if let Some(first) = pieces.first() {
        reset_at.get_or_insert(first.ready_at + Duration::from_millis(timeout));
    }
    pieces.clear();
}

#[cfg(test)]
mod tests {
    use super::super::harness::chunk;
    use super::*;

    #[test]
    fn arms_once_on_first_data() {
        let now = Instant::now();
        let mut reset_at = None;
        let mut pieces = chunk(3, now);
        apply(&mut pieces, 200, &mut reset_at);
        assert!(pieces.is_empty());
        assert_eq!(reset_at, Some(now + Duration::from_millis(200)));
        let mut later = chunk(3, now + Duration::from_secs(1));
        apply(&mut later, 200, &mut reset_at);
        assert_eq!(reset_at, Some(now + Duration::from_millis(200)));
    }
}
