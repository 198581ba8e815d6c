//! Capped exponential backoff with full jitter, for every retry loop in Sluice.

use std::time::Duration;

use rand::Rng;

/// Delays `base · 2^n`, capped at `cap`, each drawn uniformly from `[delay/2, delay]` so
/// processes that failed together do not retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base` and never exceeding `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(20));
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = exp.min(self.cap);
        let floor = ceiling / 2;
        let jitter = rand::rng().random_range(0..=(ceiling - floor).as_millis() as u64);
        floor + Duration::from_millis(jitter)
    }

    /// Consecutive failures so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_stays_under_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let second = b.next_delay();
        assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
        for attempt in 2..42 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(2), "attempt {attempt}: {d:?}");
            if attempt >= 5 {
                assert!(d >= Duration::from_secs(1), "attempt {attempt}: {d:?}");
            }
        }
        assert_eq!(b.attempts(), 42);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
