//! The stats snapshot: how it is read from Redis and the JSON it becomes.
//!
//! The field names and types are a public contract inherited from the Python stack, so a
//! dashboard written for it keeps working: see `proto-docs/websocket.md`.

use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};

use crate::keys::Keys;
use crate::lua::LuaScript;

/// POST→commit latency percentiles over the last 10 seconds (`keys::RATE_WINDOW_SECS`), in
/// milliseconds; `null` when nothing was committed in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// One reading of the pipeline's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename = "stats")]
pub struct Stats {
    /// Messages persisted in PostgreSQL, all workers together (`total_messages`).
    pub total_messages: u64,
    /// Messages persisted per second over the last 10 seconds (`current_rps`).
    pub current_rps: f64,
    /// The same figure under the name older dashboards read.
    pub messages_per_second: f64,
    /// Messages waiting in `pending_messages`.
    pub queue_depth: u64,
    /// The same figure under the name older dashboards read.
    pub queue_length: u64,
    /// Batches committed (`total_batches`).
    pub total_batches: u64,
    /// `total_messages / total_batches`, 0 before the first batch.
    pub avg_batch_size: f64,
    /// When this reading was taken, RFC 3339 in UTC with milliseconds.
    pub timestamp: String,
    /// Messages the ingest API answered 202 for, all ingest processes together.
    #[serde(default)]
    pub accepted_total: u64,
    /// Messages accepted per second over the last 10 seconds.
    #[serde(default)]
    pub accepted_per_second: f64,
    /// Messages in the workers' processing lists: taken, not yet committed.
    #[serde(default)]
    pub in_flight: u64,
    /// `queue_depth + in_flight`: every message accepted and not yet persisted. Autoscalers
    /// scale workers on it (KEDA's metrics-api trigger, `deploy/k8s/`), since the queue alone
    /// reads 0 while busy workers still hold batches.
    #[serde(default)]
    pub backlog: u64,
    /// Workers whose heartbeat is fresh.
    #[serde(default)]
    pub workers_alive: u64,
    /// Live workers that report PostgreSQL down in their heartbeat.
    #[serde(default)]
    pub workers_postgres_down: u64,
    /// Entries in the dead-letter list `dead_messages` now.
    #[serde(default)]
    pub dead_letters: u64,
    /// Messages ever dead-lettered (the `dead_letters` counter).
    #[serde(default)]
    pub dead_letters_total: u64,
    /// Age of the oldest message waiting in `pending_messages`; 0 when it is empty.
    #[serde(default)]
    pub oldest_pending_age_ms: u64,
    /// POST→commit latency over the last 10 seconds, all workers together.
    #[serde(default)]
    pub commit_latency_ms: Latency,
}

/// Reads [`Stats`] from Redis in one round trip, writing nothing (see `lua/stats.lua`). Every
/// read is O(1) whatever the size of the fleet: the window figures come from the upkeep
/// ([`crate::upkeep`]), `in_flight` from the counter the workers' scripts keep.
#[derive(Debug, Clone)]
pub struct StatsReader {
    keys: Keys,
    worker_fresh_ms: u64,
    script: LuaScript,
}

impl StatsReader {
    /// A reader for the keys under `keys`' prefix, counting workers alive while their last
    /// heartbeat is younger than `worker_fresh` (`worker.dead_after_ms`).
    pub fn new(keys: Keys, worker_fresh: std::time::Duration) -> Self {
        Self {
            keys,
            worker_fresh_ms: worker_fresh.as_millis() as u64,
            script: LuaScript::new(include_str!("lua/stats.lua")),
        }
    }

    /// One reading.
    #[tracing::instrument(name = "redis.read_stats", skip_all, err(level = "debug"))]
    pub async fn read<C>(&self, conn: &mut C) -> redis::RedisResult<Stats>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let mut invocation = self.script.keyed(&self.keys, &[])?;
        invocation.arg(self.worker_fresh_ms);
        let reply: Vec<String> = invocation.invoke_async(conn).await?;
        Stats::from_reply(&reply).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unexpected stats script reply",
                format!("{reply:?}"),
            ))
        })
    }
}

fn decimal(s: &str) -> f64 {
    s.parse().unwrap_or(0.0)
}

fn millis(s: &str) -> Option<f64> {
    s.parse().ok()
}

impl Stats {
    /// A snapshot stamped with the current time; derived fields are computed here, and the
    /// fields beyond the legacy four are zero.
    pub fn new(
        total_messages: u64,
        total_batches: u64,
        queue_length: u64,
        current_rps: f64,
    ) -> Self {
        let avg_batch_size = if total_batches == 0 {
            0.0
        } else {
            round2(total_messages as f64 / total_batches as f64)
        };
        Self {
            total_messages,
            current_rps,
            messages_per_second: current_rps,
            queue_depth: queue_length,
            queue_length,
            total_batches,
            avg_batch_size,
            timestamp: crate::clock::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            accepted_total: 0,
            accepted_per_second: 0.0,
            in_flight: 0,
            backlog: queue_length,
            workers_alive: 0,
            workers_postgres_down: 0,
            dead_letters: 0,
            dead_letters_total: 0,
            oldest_pending_age_ms: 0,
            commit_latency_ms: Latency::default(),
        }
    }

    /// The stats from the script's reply, in its order (see `lua/stats.lua`).
    fn from_reply(reply: &[String]) -> Option<Self> {
        let [
            total,
            batches,
            queue,
            rps,
            accepted,
            accepted_rps,
            in_flight,
            alive,
            rest @ ..,
        ] = reply
        else {
            return None;
        };
        let [pg_down, dead, dead_total, oldest, p50, p95, p99, _now_ms] = rest else {
            return None;
        };
        let int = |s: &String| s.parse::<u64>().ok();
        let (queue, in_flight) = (int(queue)?, int(in_flight)?);
        Some(Self {
            accepted_total: int(accepted)?,
            accepted_per_second: decimal(accepted_rps),
            in_flight,
            backlog: queue + in_flight,
            workers_alive: int(alive)?,
            workers_postgres_down: int(pg_down)?,
            dead_letters: int(dead)?,
            dead_letters_total: int(dead_total)?,
            oldest_pending_age_ms: int(oldest)?,
            commit_latency_ms: Latency {
                p50: millis(p50),
                p95: millis(p95),
                p99: millis(p99),
            },
            ..Self::new(int(total)?, int(batches)?, queue, decimal(rps))
        })
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

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_legacy_fields_and_types() {
        let s = Stats::new(10, 4, 3, 1.5);
        let v = serde_json::to_value(&s).expect("serializes");
        assert_eq!(v["type"], "stats");
        assert_eq!(v["total_messages"], 10);
        assert_eq!(v["total_batches"], 4);
        assert_eq!(v["queue_depth"], 3);
        assert_eq!(v["queue_length"], 3);
        assert_eq!(v["current_rps"], 1.5);
        assert_eq!(v["messages_per_second"], 1.5);
        assert_eq!(v["avg_batch_size"], 2.5);
        let ts = v["timestamp"].as_str().expect("string");
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert!(ts.ends_with('Z'), "{ts}");
        let back: Stats = serde_json::from_value(v).expect("round trip");
        assert_eq!(back, s);
    }

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

    #[test]
    fn average_is_zero_before_the_first_batch() {
        assert_eq!(Stats::new(0, 0, 0, 0.0).avg_batch_size, 0.0);
        assert_eq!(Stats::new(10, 3, 0, 0.0).avg_batch_size, 3.33);
    }
}
