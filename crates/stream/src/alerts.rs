//! The alerts as clients see them: each [`Rule`]'s name and the [`Alert`] transition that is
//! stored in Redis and sent on the `alerts` topic; [`store`] reads and records them.
//!
//! Alerts are evaluated by gateways only (`sluice-gateway`'s `alerts`); every stream, the ingest
//! API's too, serves what they recorded.

pub mod store;

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A rule's name, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// More messages waiting than `queue_depth_threshold`.
    QueueDepthHigh,
    /// Arrivals outpace persistence.
    QueueGrowing,
    /// Messages wait and no worker has a fresh heartbeat.
    NoLiveWorkers,
    /// New dead letters.
    DeadLettersIncreased,
    /// POST→commit p99 above `commit_latency_p99_ms`.
    CommitLatencyHigh,
    /// The gateway cannot read Redis.
    RedisDown,
    /// A live worker reports PostgreSQL down.
    PostgresDown,
    /// persisted/s far from its recent mean.
    ThroughputAnomaly,
}

impl Rule {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::QueueDepthHigh => "queue_depth_high",
            Self::QueueGrowing => "queue_growing",
            Self::NoLiveWorkers => "no_live_workers",
            Self::DeadLettersIncreased => "dead_letters_increased",
            Self::CommitLatencyHigh => "commit_latency_high",
            Self::RedisDown => "redis_down",
            Self::PostgresDown => "postgres_down",
            Self::ThroughputAnomaly => "throughput_anomaly",
        }
    }

    /// The rule's position in [`Rule`]'s declaration, for per-rule tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One alert transition, as stored and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// Always `"alert"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The rule.
    pub rule: Rule,
    /// `medium`, `high` or `critical`.
    pub severity: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// The measured value when the transition happened.
    pub value: f64,
    /// What the value was compared with.
    pub threshold: f64,
    /// When the alert fired (RFC 3339, UTC).
    pub started_at: String,
    /// When it resolved; `null` while firing.
    pub resolved_at: Option<String>,
    /// One line for people.
    pub summary: String,
}

/// The current time as alerts carry it.
pub fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

