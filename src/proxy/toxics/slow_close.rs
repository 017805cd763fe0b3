//! `slow_close`: data passes untouched; the close (EOF) is held back by `delay` ms.

use std::time::Duration;

/// How long the close waits.
pub fn delay(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

#[cfg(test)]
mod tests {
    #[test]
    fn delay_is_in_milliseconds() {
        assert_eq!(super::delay(1500), std::time::Duration::from_millis(1500));
    }
}
