//! The stats snapshot: the JSON every stats reader (WebSocket, SSE, `GET /stats`) gets.
//!
//! The field names and types are a public contract inherited from the Python stack, so a
//! dashboard written for it keeps working: see `proto-docs/websocket.md`.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// POST→commit latency percentiles over the last 10 seconds (`keys::RATE_WINDOW_SECS`), in
/// milliseconds; `null` when nothing was committed in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// One reading of the pipeline's counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Workers whose heartbeat is late (older than `GET /workers`' `late_after_ms`) but that
    /// are not yet presumed dead.
    #[serde(default)]
    pub workers_late: u64,
    /// Workers lost: presumed dead (silent past `worker.dead_after_ms`), or reclaimed in the
    /// last 5 minutes and not back.
    #[serde(default)]
    pub workers_lost: u64,
    /// A few of the late workers' ids (at most [`NAMED_WORKERS`]), for alerts to name.
    #[serde(default)]
    pub late_worker_ids: Vec<String>,
    /// A few of the lost workers' ids (at most [`NAMED_WORKERS`]).
    #[serde(default)]
    pub lost_worker_ids: Vec<String>,
    /// Replicas of the Redis primary in sync with it (`state=online`), as the upkeep last
    /// counted them; `null` before any count (no worker runs the upkeep).
    #[serde(default)]
    pub replicas_in_sync: Option<u64>,
    /// Replicas a push needs (the workers' `redis.ack_replicas`); 0 when pushes are not
    /// replicated before they are acknowledged.
    #[serde(default)]
    pub replicas_wanted: u64,
    /// The ingest APIs' 5xx answers per second over the last 10 seconds, by error `code`
    /// (`redis_unavailable`, `not_replicated`, …); empty when there were none.
    #[serde(default)]
    pub errors_per_second: BTreeMap<String, f64>,
}

/// Most worker ids a reading names in `late_worker_ids` and `lost_worker_ids`.
pub const NAMED_WORKERS: usize = 3;

impl Stats {
    /// A snapshot taken `at`; derived fields are computed here, and the fields beyond the
    /// legacy four are zero.
    pub fn at(
        at: DateTime<Utc>,
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
            timestamp: at.to_rfc3339_opts(SecondsFormat::Millis, true),
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
            workers_late: 0,
            workers_lost: 0,
            late_worker_ids: Vec::new(),
            lost_worker_ids: Vec::new(),
            replicas_in_sync: None,
            replicas_wanted: 0,
            errors_per_second: BTreeMap::new(),
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
        let s = Stats::at(Utc::now(), 10, 4, 3, 1.5);
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
        assert_eq!(Stats::at(Utc::now(), 0, 0, 0, 0.0).avg_batch_size, 0.0);
        assert_eq!(Stats::at(Utc::now(), 10, 3, 0, 0.0).avg_batch_size, 3.33);
    }
}
