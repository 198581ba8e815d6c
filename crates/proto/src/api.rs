//! What the HTTP endpoints answer, as types that the servers build and the clients
//! (`sluice-client`, the `sluice` command, the tests) read: one definition of each JSON shape.
//! The stats themselves are [`crate::stats::Stats`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A rule's name, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// A worker's heartbeat is late (or it is lost, see [`Rule::WorkerLost`]).
    WorkerLate,
    /// A worker is presumed dead, or was reclaimed lately and is not back.
    WorkerLost,
    /// The Redis primary has fewer replicas in sync than a push needs, or pushes are refused
    /// with `not_replicated`.
    ReplicationDegraded,
    /// The ingest APIs answer 5xx more often than `error_rate_threshold` a second.
    ErrorRate,
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
            Self::WorkerLate => "worker_late",
            Self::WorkerLost => "worker_lost",
            Self::ReplicationDegraded => "replication_degraded",
            Self::ErrorRate => "error_rate",
        }
    }

    /// Every rule, in declaration order.
    pub const ALL: [Rule; 12] = [
        Self::QueueDepthHigh,
        Self::QueueGrowing,
        Self::NoLiveWorkers,
        Self::DeadLettersIncreased,
        Self::CommitLatencyHigh,
        Self::RedisDown,
        Self::PostgresDown,
        Self::ThroughputAnomaly,
        Self::WorkerLate,
        Self::WorkerLost,
        Self::ReplicationDegraded,
        Self::ErrorRate,
    ];

    /// The rule's position in [`Rule`]'s declaration, for per-rule tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One alert transition, as stored and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// `GET /alerts`: what fires now, and the latest transitions, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertList {
    /// Alerts firing now.
    pub active: Vec<Alert>,
    /// The latest transitions, firing and resolved, newest first.
    pub recent: Vec<Alert>,
}

/// `GET /batches/recent`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecentBatches {
    /// The latest `batch_persisted` messages this process saw, newest first: each the fields of
    /// a batch event (`batch_id`, `worker_id`, `size`, `inserted`, `committed_at`, ...) and
    /// `"type": "batch_persisted"`, without the id lists.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub batches: Vec<crate::events::BatchEvent>,
}

/// Where a worker is in its life, as `GET /workers` says and the dashboard and `sluice watch`
/// show it: `up` → `late` → `presumed_dead` → `gone`. One machine, decided by the server from
/// the heartbeat's age by the Redis clock ([`WorkerState::of`]) and the departures Redis
/// records; clients only show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Its heartbeat is fresh.
    Up,
    /// Its heartbeat is older than `late_after_ms`: stuck, paused or cut off, not yet given up.
    Late,
    /// Silent past `dead_after_ms`: a live worker will reclaim its batch. Until it does, the
    /// worker stays listed in red.
    PresumedDead,
    /// It left the registry: a clean exit, or reclaimed by a peer (see [`GoneWorker`]).
    Gone,
}

impl WorkerState {
    /// The state of a worker in the registry whose heartbeat is `age_ms` old.
    pub fn of(age_ms: u64, late_after_ms: u64, dead_after_ms: u64) -> Self {
        if age_ms >= dead_after_ms {
            Self::PresumedDead
        } else if age_ms >= late_after_ms {
            Self::Late
        } else {
            Self::Up
        }
    }

    /// How people read it: `up`, `late`, `presumed dead`, `gone`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Late => "late",
            Self::PresumedDead => "presumed dead",
            Self::Gone => "gone",
        }
    }
}

/// How a worker left the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum Departure {
    /// It stopped cleanly and unregistered.
    Exit,
    /// It was presumed dead and a live worker took its batch over.
    Reclaimed {
        /// The worker that reclaimed it.
        by: String,
    },
}

impl Departure {
    /// Parses a `workers_gone_how` value: `exit` or `reclaimed <peer id>`.
    pub fn from_field(field: &str) -> Option<Self> {
        match field.split_once(' ') {
            None if field == "exit" => Some(Self::Exit),
            Some(("reclaimed", by)) if !by.is_empty() => Some(Self::Reclaimed { by: by.into() }),
            _ => None,
        }
    }

    /// How people read it: `exited`, `reclaimed by <peer>`.
    pub fn label(&self) -> String {
        match self {
            Self::Exit => "exited".into(),
            Self::Reclaimed { by } => format!("reclaimed by {by}"),
        }
    }
}

/// A worker that left the registry lately (the last 5 minutes), as `GET /workers` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GoneWorker {
    /// `worker.id`.
    pub id: String,
    /// Always `gone`.
    pub state: WorkerState,
    /// When it left (RFC 3339, UTC, by the Redis clock).
    pub left_at: String,
    /// How long ago that was, in ms.
    pub left_ago_ms: u64,
    /// How it left.
    pub departure: Departure,
}

/// One worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerInfo {
    /// `worker.id`; its processing list is `processing:<id>`.
    pub id: String,
    /// `up`, `late` or `presumed_dead`, from its heartbeat's age.
    pub state: WorkerState,
    /// Its last heartbeat (RFC 3339, UTC, by the Redis clock).
    pub last_heartbeat: String,
    /// How long ago that was, in ms.
    pub heartbeat_age_ms: u64,
    /// Messages in its processing list.
    pub in_hand: u64,
    /// Whether its heartbeat is fresh; a stale worker's batch is reclaimed by a live one.
    pub alive: bool,
    /// Whether its heartbeat is late (older than `late_after_ms`) though it is not yet
    /// presumed dead: a worker that is stuck, paused or cut off, shown before it is dropped.
    #[serde(default)]
    pub late: bool,
    /// PostgreSQL as the worker last saw it: `up`, `down`, or `unknown`.
    pub postgres: String,
    /// The PostgreSQL server it writes to, as its last insert or probe reached it: `host:port`
    /// (the server's own address) or `a local socket`; with a multi-host `postgres.url`, the
    /// primary. Absent before it reached one, and from a worker that does not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_server: Option<String>,
    /// Since when it reaches that server (RFC 3339, UTC): after a failover, when it found the
    /// new primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_server_since: Option<String>,
    /// Batches it recorded since it started; `None` from a worker that does not report it.
    #[serde(default)]
    pub batches: Option<u64>,
    /// Rows it persisted since it started.
    #[serde(default)]
    pub persisted: Option<u64>,
    /// Rows it persisted per second over the same 10-second window as the stats'
    /// `current_rps` (so the workers' rates add up to it); `null` unless it is `up`: a silent
    /// worker's rate is unknown, not its last figure.
    #[serde(default)]
    pub persisted_per_second: Option<f64>,
}

/// The `GET /workers` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerList {
    /// The workers, most recent heartbeat first.
    pub workers: Vec<WorkerInfo>,
    /// The workers that left the registry in the last 5 minutes and did not come back, most
    /// recent first.
    #[serde(default)]
    pub gone: Vec<GoneWorker>,
    /// The heartbeat age past which a worker is not alive.
    pub dead_after_ms: u64,
    /// The heartbeat age past which a worker is late: a quarter of `dead_after_ms`, at least
    /// two heartbeats (a worker beats every tenth of `dead_after_ms`, between 250 ms and 1 s).
    #[serde(default)]
    pub late_after_ms: u64,
}

/// `GET /admin/dead-letters` body.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterPage {
    /// Dead letters waiting in `dead_messages`.
    pub total: u64,
    /// Newer entries skipped before this page (`offset` of the request).
    #[serde(default)]
    pub offset: u64,
    /// The `offset` of the next page; `null` after the last. A page holds at most `limit`
    /// entries and ends after the one that brings it to 1 MiB, so it may hold fewer.
    #[serde(default)]
    pub next_offset: Option<u64>,
    /// Newest first. Each has `id` (which names it in the calls on one dead letter) and
    /// `bytes` (its size in `dead_messages`). A dead letter adds `payload` (text), and, when
    /// present and of their type, `payload_hex` (when the bytes are not UTF-8),
    /// `payload_bytes` (when only its first bytes were kept: it cannot be requeued), `reason`,
    /// `failed_at` and `worker_id`. Any other entry (not JSON, no text `payload`, bad hex, or
    /// longer than a page carries) adds `unreadable` and `unreadable_hex`: its first 4 KiB as
    /// text (invalid bytes as U+FFFD) and as hex.
    pub dead_letters: Vec<serde_json::Value>,
}

/// `POST /admin/dead-letters/requeue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Requeued {
    /// Dead letters moved back to `pending_messages`.
    pub requeued: u64,
    /// Entries skipped because they cannot be read (not JSON, no payload, bad hex): moved to
    /// the newest end of `dead_messages`; `DELETE /admin/dead-letters?only=unreadable` deletes
    /// them.
    #[serde(default)]
    pub unreadable: u64,
}

/// `DELETE /admin/dead-letters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Purged {
    /// Dead letters deleted.
    pub purged: u64,
}

/// Where a message is, as the ingest API answers for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// In Redis, waiting for a worker (every 202).
    Queued,
    /// In PostgreSQL (a `Prefer: wait` answered 201).
    Persisted,
    /// Refused by PostgreSQL, now in `dead_messages` (a `Prefer: wait` answered 200).
    DeadLettered,
}

/// The answer to an accepted message (`POST /messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Queued {
    /// The id the message will have in PostgreSQL.
    pub message_id: Uuid,
    /// `queued`; after a `Prefer: wait`, `persisted` or `dead_lettered`.
    pub status: MessageStatus,
    /// When the message was accepted; also its `created_at`.
    pub queued_at: String,
    /// When the worker's commit was recorded (`persisted` answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted_at: Option<String>,
}

/// The answer to an accepted batch (`POST /messages/batch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchQueued {
    /// The ids the messages will have in PostgreSQL, in the order they were sent.
    pub message_ids: Vec<Uuid>,
    /// `queued`; after a `Prefer: wait`, `persisted` (every message) or `dead_lettered` (some
    /// were refused: see `dead_lettered_ids`; the others are persisted).
    pub status: MessageStatus,
    /// When the batch was accepted; the `created_at` of every message in it.
    pub queued_at: String,
    /// When the last of the workers' commits was recorded (waited answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted_at: Option<String>,
    /// The messages PostgreSQL refused, now in `dead_messages` (`dead_lettered` answers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_lettered_ids: Vec<Uuid>,
}

/// One persisted message (`GET /messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredMessage {
    /// Message id.
    pub id: Uuid,
    /// Author.
    pub user_id: i64,
    /// Channel.
    pub channel_id: i64,
    /// Text.
    pub content: String,
    /// When the ingest API accepted it.
    pub created_at: DateTime<Utc>,
    /// When a worker committed it.
    pub inserted_at: DateTime<Utc>,
}

/// A page of `GET /messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessagePage {
    /// Newest first.
    pub messages: Vec<StoredMessage>,
    /// Pass as `before` to get the next (older) page; `null` on the last page.
    pub next_before: Option<Uuid>,
}

/// What a worker has done since it started, as its full heartbeats write it in the
/// `workers_output` hash: `"<batches> <rows persisted> <rows per second, last 10 s>"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerOutput {
    /// Batches committed.
    pub batches: u64,
    /// Rows persisted.
    pub persisted: u64,
    /// Rows persisted per second over the last 10 seconds.
    pub persisted_per_second: f64,
}

impl WorkerOutput {
    /// The hash value, as `workers_output` holds it.
    pub fn to_field(&self) -> String {
        format!(
            "{} {} {:.1}",
            self.batches, self.persisted, self.persisted_per_second
        )
    }

    /// Parses a hash value; `None` for an empty or malformed one (a worker that has not sent a
    /// full heartbeat yet).
    pub fn from_field(field: &str) -> Option<Self> {
        let mut parts = field.split(' ');
        let output = Self {
            batches: parts.next()?.parse().ok()?,
            persisted: parts.next()?.parse().ok()?,
            persisted_per_second: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_output_field_round_trips_and_junk_is_none() {
        let output = WorkerOutput {
            batches: 42,
            persisted: 300,
            persisted_per_second: 29.96,
        };
        assert_eq!(output.to_field(), "42 300 30.0");
        let back = WorkerOutput::from_field(&output.to_field()).expect("parses");
        assert_eq!(
            (back.batches, back.persisted, back.persisted_per_second),
            (42, 300, 30.0)
        );
        for junk in ["", "1 2", "1 2 x", "1 2 3 4", "-1 2 3.0"] {
            assert_eq!(WorkerOutput::from_field(junk), None, "{junk:?}");
        }
    }
}
