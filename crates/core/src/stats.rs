//! The stats snapshot: how it is read from Redis and the JSON it becomes.
//!
//! The field names and types are a public contract inherited from the Python stack, so a
//! dashboard written for it keeps working: see `proto-docs/websocket.md`.

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::keys::{Keys, RATE_WINDOW_SECS};

/// One reading of the pipeline's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// Reads [`Stats`] from Redis in one round trip, refreshing `current_rps` on the way so the key
/// decays to 0 when nothing is persisted instead of freezing at its last value.
#[derive(Debug, Clone)]
pub struct StatsReader {
    keys: Keys,
    script: redis::Script,
}

impl StatsReader {
    /// A reader for the keys under `keys`' prefix.
    pub fn new(keys: Keys) -> Self {
        Self {
            keys,
            script: redis::Script::new(include_str!("lua/stats.lua")),
        }
    }

    /// Takes one reading.
    #[tracing::instrument(name = "redis.read_stats", skip_all, err(level = "debug"))]
    pub async fn read<C>(&self, conn: &mut C) -> redis::RedisResult<Stats>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        let (total_messages, total_batches, queue_length, rps): (u64, u64, u64, String) = self
            .script
            .key(&self.keys.total_messages)
            .key(&self.keys.total_batches)
            .key(&self.keys.pending_messages)
            .key(&self.keys.rate_window)
            .key(&self.keys.current_rps)
            .arg(RATE_WINDOW_SECS)
            .invoke_async(conn)
            .await?;
        let current_rps = rps.parse().unwrap_or(0.0);
        Ok(Stats::new(
            total_messages,
            total_batches,
            queue_length,
            current_rps,
        ))
    }
}

impl Stats {
    /// A snapshot stamped with the current time; derived fields are computed here.
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
            timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        }
    }
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
    fn average_is_zero_before_the_first_batch() {
        assert_eq!(Stats::new(0, 0, 0, 0.0).avg_batch_size, 0.0);
        assert_eq!(Stats::new(10, 3, 0, 0.0).avg_batch_size, 3.33);
    }
}
