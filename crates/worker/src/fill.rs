//! How long a batch waits to fill at high intake.
//!
//! Each batch costs PostgreSQL, Redis and the worker a fixed amount on top of its rows (a
//! transaction, the take and record scripts, the batch event): about 0.8 ms of CPU on the
//! reference machine, 16 µs a message in batches of 51. A worker that takes messages fast
//! enough to gather [`WorkerSettings::batch_fill_size`] of them within
//! [`WorkerSettings::batch_fill_max_wait_ms`] waits for them; a slower one inserts at once,
//! so light load keeps its latency.
//!
//! [`WorkerSettings::batch_fill_size`]: sluice_core::settings::WorkerSettings::batch_fill_size
//! [`WorkerSettings::batch_fill_max_wait_ms`]: sluice_core::settings::WorkerSettings::batch_fill_max_wait_ms

use std::time::Duration;

use tokio::time::Instant;

/// The intake rate averages over about this long: each collection weighs by the time it
/// covers, so a second without messages replaces a rate entirely.
const AVERAGE_OVER: Duration = Duration::from_millis(100);

/// A worker's recent intake: messages taken per second, averaged over its last
/// [`AVERAGE_OVER`].
#[derive(Debug, Default)]
pub struct Intake {
    /// Messages a second; `None` until two collections have been seen.
    rate: Option<f64>,
    /// When the last collection ended.
    last: Option<Instant>,
}

/// The fill a batch waits for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fill {
    /// Messages the batch waits to hold.
    pub size: usize,
    /// How long the intake should take to bring them, from the batch's first message.
    pub within: Duration,
    /// The intake rate, messages a second.
    pub rate: f64,
}

impl Fill {
    /// How long to sleep before looking again, the batch holding `held`: the time the rest
    /// should take to arrive, at least `poll`, so a wait of 20 ms costs a few takes rather
    /// than one a millisecond.
    pub fn pause(&self, held: usize, poll: Duration) -> Duration {
        let missing = self.size.saturating_sub(held) as f64;
        Duration::from_secs_f64(missing / self.rate).max(poll)
    }
}

impl Intake {
    /// Notes a collection that took `taken` messages (zero for an idle one), ended `now`.
    pub fn record(&mut self, taken: usize, now: Instant) {
        if let Some(last) = self.last.replace(now) {
            let secs = now.duration_since(last).as_secs_f64();
            if secs > 0.0 {
                let rate = taken as f64 / secs;
                let weight = 1.0 - (-secs / AVERAGE_OVER.as_secs_f64()).exp();
                self.rate = Some(match self.rate {
                    Some(old) => old + weight * (rate - old),
                    None => rate,
                });
            }
        }
    }

    /// The fill to wait for when this intake brings `size` messages within `max_wait`;
    /// `None` (insert at once) when it is slower, unknown, or `size` is 0.
    pub fn fill(&self, size: usize, max_wait: Duration) -> Option<Fill> {
        let rate = self.rate.filter(|r| *r > 0.0)?;
        // Compared before dividing: after a long idle spell the rate is tiny, and `size / rate`
        // no duration at all.
        if size == 0 || size as f64 > rate * max_wait.as_secs_f64() {
            return None;
        }
        let within = Duration::from_secs_f64(size as f64 / rate);
        Some(Fill { size, within, rate })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// An intake that took `per_batch` messages every `every`, `batches` times.
    fn steady(per_batch: usize, every: Duration, batches: u32) -> Intake {
        let mut intake = Intake::default();
        let start = Instant::now();
        for i in 0..=batches {
            intake.record(per_batch, start + every * i);
        }
        intake
    }

    #[test]
    fn a_fast_intake_waits_for_the_fill_and_a_slow_one_does_not() {
        // 10,000 a second: 200 arrive in 20 ms, within 25.
        let fast = steady(50, 5 * MS, 20);
        let fill = fast.fill(200, 25 * MS).expect("fast enough");
        assert_eq!(fill.size, 200);
        assert!((fill.within.as_secs_f64() - 0.020).abs() < 1e-6, "{fill:?}");
        // 2,500 a second: 200 would take 80 ms.
        let slow = steady(5, 2 * MS, 20);
        assert_eq!(slow.fill(200, 25 * MS), None);
        assert_eq!(fast.fill(0, 25 * MS), None, "a size of 0 turns it off");
    }

    #[test]
    fn the_rate_is_unknown_until_two_collections() {
        let mut intake = Intake::default();
        intake.record(5_000, Instant::now());
        assert_eq!(intake.fill(1, Duration::from_secs(60)), None);
        assert!(steady(50, MS, 1).fill(200, 25 * MS).is_some());
    }

    #[test]
    fn an_idle_spell_brings_the_rate_down() {
        let mut intake = steady(100, 5 * MS, 10);
        assert!(intake.fill(200, 25 * MS).is_some());
        let later = Instant::now() + Duration::from_secs(10);
        // One lone message after seconds of nothing: no wait for it.
        intake.record(1, later);
        intake.record(1, later + Duration::from_secs(1));
        assert_eq!(intake.fill(200, 25 * MS), None);
        // Hours of idle polls, a second each: the rate is all but zero, and still no wait.
        for second in 2..200 {
            intake.record(0, later + Duration::from_secs(second));
            assert_eq!(intake.fill(200, 25 * MS), None);
            assert_eq!(intake.fill(1, Duration::from_secs(1)), None);
        }
    }

    #[test]
    fn the_pause_is_the_time_the_rest_takes_at_least_the_poll() {
        let fill = Fill {
            size: 200,
            within: 20 * MS,
            rate: 10_000.0,
        };
        assert_eq!(fill.pause(100, MS), 10 * MS);
        assert_eq!(fill.pause(199, MS), MS, "100 µs, raised to the poll");
        assert_eq!(fill.pause(500, MS), MS, "already full");
    }
}
