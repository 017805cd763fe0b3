//! `limit_data`: forwards at most `bytes` bytes on the connection, then closes it.

use super::Piece;

/// Truncates the pieces to what is left of the budget; true when the budget is spent.
pub fn apply(pieces: &mut Vec<Piece>, limit: u64, sent: &mut u64) -> bool {
    let mut out = Vec::with_capacity(pieces.len());
    for mut piece in pieces.drain(..) {
        let left = usize::try_from(limit.saturating_sub(*sent)).unwrap_or(usize::MAX);
        if left == 0 {
            break;
        }
        piece.data.truncate(left);
        *sent += piece.data.len() as u64;
        out.push(piece);
    }
    *pieces = out;
    *sent >= limit
}

#[cfg(test)]
mod tests {
    use super::super::harness::{chunk, total};
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn forwards_exactly_the_budget() {
        let now = Instant::now();
        let mut sent = 0;
        let mut first = chunk(60, now);
        assert!(!apply(&mut first, 100, &mut sent));
        let mut second = chunk(60, now);
        assert!(apply(&mut second, 100, &mut sent));
        assert_eq!(total(&first) + total(&second), 100);
        let mut third = chunk(5, now);
        assert!(apply(&mut third, 100, &mut sent));
        assert!(third.is_empty());
    }

    #[test]
    fn zero_budget_closes_on_first_data() {
        let mut pieces = chunk(1, Instant::now());
        assert!(apply(&mut pieces, 0, &mut 0));
        assert!(pieces.is_empty());
    }
}
