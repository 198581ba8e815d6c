//! Reading the stats snapshot ([`sluice_proto::stats::Stats`]) from Redis, and the
//! commit-latency histogram the workers write and the upkeep reads.

use sluice_proto::stats::Stats;

use crate::keys::Keys;
use crate::lua::{self, stats::ReadStats};

/// Reads [`Stats`] from Redis in one round trip, writing nothing (see `lua/stats.lua`). Every
/// read is O(1) whatever the size of the fleet: the window figures come from the upkeep
/// ([`crate::upkeep`]), `in_flight` from the counter the workers' scripts keep.
#[derive(Debug, Clone)]
pub struct StatsReader {
    keys: Keys,
    worker_fresh_ms: u64,
}

impl StatsReader {
    /// A reader for the keys under `keys`' prefix, counting workers alive while their last
    /// heartbeat is younger than `worker_fresh` (`worker.dead_after_ms`).
    pub fn new(keys: Keys, worker_fresh: std::time::Duration) -> Self {
        Self {
            keys,
            worker_fresh_ms: worker_fresh.as_millis() as u64,
        }
    }

    /// One reading.
    #[tracing::instrument(name = "redis.read_stats", skip_all, err(level = "debug"))]
    pub async fn read<C>(&self, conn: &mut C) -> redis::RedisResult<Stats>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let read = ReadStats {
            worker_fresh_ms: self.worker_fresh_ms,
        };
        Ok(lua::call(conn, &self.keys, &read).await?.0)
    }
}

/// Sub-buckets per power of two in the commit-latency histogram: each bucket is about 9 %
/// wide, so a reported percentile is within about 4.5 % of the true one.
pub const LATENCY_BUCKETS_PER_OCTAVE: f64 = 8.0;

/// The histogram bucket of a POST→commit latency: bucket `b` holds latencies in
/// (2^((b-1)/8), 2^(b/8)] microseconds, and bucket 0 everything up to 1 µs. `lua/upkeep.lua`,
/// which is given [`LATENCY_BUCKETS_PER_OCTAVE`], reports a bucket's midpoint, 2^((b-0.5)/8) µs.
pub fn latency_bucket(micros: u64) -> u32 {
    if micros <= 1 {
        return 0;
    }
    (LATENCY_BUCKETS_PER_OCTAVE * (micros as f64).log2()).ceil() as u32
}

/// A batch's latencies as the `bucket:count,…` list the commit script adds to
/// `commit_latency`.
pub fn latency_histogram(latencies_micros: impl IntoIterator<Item = u64>) -> String {
    let mut counts = std::collections::BTreeMap::<u32, u64>::new();
    for micros in latencies_micros {
        *counts.entry(latency_bucket(micros)).or_default() += 1;
    }
    counts
        .iter()
        .map(|(bucket, n)| format!("{bucket}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_an_eighth_of_an_octave() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(1), 0);
        assert_eq!(latency_bucket(2), 8);
        assert_eq!(latency_bucket(1024), 80);
        assert_eq!(latency_bucket(1025), 81);
        // The reported midpoint of a bucket is within 5 % of every latency in it.
        for micros in [3u64, 900, 4_200, 45_800, 1_000_000, 3_600_000_000] {
            let b = latency_bucket(micros) as f64;
            let mid = 2f64.powf((b - 0.5) / LATENCY_BUCKETS_PER_OCTAVE);
            assert!(
                (mid / micros as f64 - 1.0).abs() < 0.05,
                "{micros} µs → {mid}"
            );
        }
        assert_eq!(latency_histogram([1024, 1000, 2, 1024]), "8:1,80:3");
        assert_eq!(latency_histogram([]), "");
    }
}
