//! Typed, layered settings shared by every Sluice process.
//!
//! Layers, lowest precedence first:
//! 1. built-in defaults (the `Default` impls below);
//! 2. an optional TOML file given with `--config PATH`;
//! 3. the variables of the Python stack Sluice replaces (`REDIS_URL`, `REDIS_HOST`/`REDIS_PORT`,
//!    `DATABASE_URL`, `BATCH_SIZE`, `BATCH_TIMEOUT` in seconds), kept as aliases;
//! 4. `SLUICE__SECTION__KEY` environment variables.
//!
//! Loading never reads the process environment behind the caller's back: [`Settings::load`]
//! takes the variables as an argument so tests can layer settings without touching global state.
//! Every value is checked once here; a bad one becomes a [`SettingsError`] whose `Display` is the
//! single line a process prints before it exits non-zero.

pub mod reference;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Prefix of Sluice's own environment variables (`SLUICE__REDIS__URL`, ...).
pub const ENV_PREFIX: &str = "SLUICE";
/// Separator between the prefix, the section and the key in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// A setting that could not be loaded or is out of range.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value has the right type but is not acceptable.
    #[error("invalid setting {key} ({env}): {reason}")]
    Invalid {
        /// Dotted key, e.g. `worker.batch_max_size`.
        key: String,
        /// The environment variable that sets it.
        env: String,
        /// Why the value was refused, including the value itself.
        reason: String,
    },
    /// A legacy alias variable holds something that cannot be used.
    #[error("invalid environment variable {name}: {reason}")]
    Alias {
        /// Variable name, e.g. `BATCH_TIMEOUT`.
        name: &'static str,
        /// Why the value was refused.
        reason: String,
    },
    /// The configuration file or the layers could not be read or deserialized.
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
}

/// All settings of a Sluice process. Each service reads the sections it needs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where Redis is and how Sluice names its keys there.
    pub redis: RedisSettings,
    /// Where PostgreSQL is.
    pub postgres: PostgresSettings,
    /// The ingest API.
    pub ingest: IngestSettings,
    /// The batching workers.
    pub worker: WorkerSettings,
    /// The stats gateway.
    pub gateway: GatewaySettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
}

/// `[redis]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Connection URL, `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key and channel name, so tenants and tests can share one Redis.
    pub key_prefix: String,
    /// How long one command may take before the caller treats Redis as unavailable.
    #[schemars(range(min = 1, max = 60_000))]
    pub response_timeout_ms: u64,
    /// How long establishing a connection may take.
    #[schemars(range(min = 1, max = 60_000))]
    pub connect_timeout_ms: u64,
    /// Comma-separated URLs of Redis Cluster nodes (any few of them; the rest are discovered).
    /// When set, every service uses the cluster client instead of `url`, and every key carries
    /// the hash tag `{<key_prefix>}` (`{sluice}` when the prefix is empty) so that all of them,
    /// and so every script, live in one slot. Empty (the default): one Redis at `url`.
    pub cluster_nodes: String,
    /// Comma-separated URLs of Redis Sentinels (`redis://[:password@]host:port`, the
    /// sentinels' own credentials). When set, every service asks them where the primary named
    /// `sentinel_primary` is, connects there with `url`'s credentials and database (its host
    /// is not used), and asks again after losing it, so it follows a failover by itself.
    /// Empty (the default): no Sentinel.
    pub sentinels: String,
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> …`).
    pub sentinel_primary: String,
    /// Replicas that must hold a push before the ingest API answers 202 (Redis's `WAIT`), and
    /// that must hold a worker's take and commit record before it moves on. 0 (the default):
    /// answer as soon as the primary has the push; a failover can then lose the last
    /// acknowledged messages.
    #[schemars(range(min = 0, max = 100))]
    pub ack_replicas: u32,
    /// How long the replicas have to confirm a push (`WAIT`'s timeout). Past it the ingest API
    /// answers 503 `not_replicated` (the push may still be queued: retry with the same
    /// `Idempotency-Key`).
    #[schemars(range(min = 1, max = 60_000))]
    pub ack_timeout_ms: u64,
    /// Largest difference between this host's clock and Redis's `TIME` a process starts with.
    /// Every process stamps ids and times with its own clock corrected to Redis's (measured at
    /// start and every 30 s; `sluice_clock_offset_seconds`), so the fleet agrees whatever each
    /// host's clock says, but a clock this far off is a broken host: the process refuses to
    /// start, and logs an error while it stays past the bound.
    #[schemars(range(min = 10, max = 86_400_000))]
    pub max_clock_skew_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: String::new(),
            response_timeout_ms: 1_000,
            connect_timeout_ms: 1_000,
            cluster_nodes: String::new(),
            sentinels: String::new(),
            sentinel_primary: "mymaster".into(),
            ack_replicas: 0,
            ack_timeout_ms: 1_000,
            max_clock_skew_ms: 5_000,
        }
    }
}

/// The non-empty items of a comma-separated list, trimmed.
fn comma_list(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// The `host:port` of a URL (`scheme://[user[:password]@]host:port[/…]`), without its
/// credentials, for messages that must say where a connection went.
pub fn url_address(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

impl RedisSettings {
    /// Where Redis is, for messages: `Redis at host:port`, or `Redis Cluster at a, b`; never
    /// a password.
    pub fn describe(&self) -> String {
        let nodes = self.cluster_node_urls();
        let sentinels = self.sentinel_urls();
        if !sentinels.is_empty() {
            let sentinels: Vec<&str> = sentinels.into_iter().map(url_address).collect();
            return format!(
                "Redis primary {:?} of Sentinel at {}",
                self.sentinel_primary,
                sentinels.join(", ")
            );
        }
        if nodes.is_empty() {
            return format!("Redis at {}", url_address(&self.url));
        }
        let nodes: Vec<&str> = nodes.into_iter().map(url_address).collect();
        format!("Redis Cluster at {}", nodes.join(", "))
    }

    /// The cluster nodes' URLs; empty when Redis is a single server.
    pub fn cluster_node_urls(&self) -> Vec<&str> {
        comma_list(&self.cluster_nodes)
    }

    /// The sentinels' URLs; empty when Sentinel is not used.
    pub fn sentinel_urls(&self) -> Vec<&str> {
        comma_list(&self.sentinels)
    }

    /// [`Self::max_clock_skew_ms`] as a duration.
    pub fn max_clock_skew(&self) -> Duration {
        Duration::from_millis(self.max_clock_skew_ms)
    }

    /// [`Self::ack_timeout_ms`] as a duration.
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }

    /// `redis.ack_replicas` and `redis.ack_timeout_ms`, when acknowledgements are on.
    pub fn acks(&self) -> Option<(u32, Duration)> {
        (self.ack_replicas > 0).then(|| (self.ack_replicas, self.ack_timeout()))
    }

    /// How long a command followed by its `WAIT` may take: the response timeout, plus the
    /// replicas' with acknowledgements on.
    pub fn confirmed_timeout(&self) -> Duration {
        self.response_timeout() + self.acks().map_or(Duration::ZERO, |(_, wait)| wait)
    }

    /// The prefix every key is built with: [`Self::key_prefix`], made a hash tag in cluster
    /// mode unless it already holds one.
    pub fn effective_key_prefix(&self) -> String {
        if self.cluster_node_urls().is_empty() {
            return self.key_prefix.clone();
        }
        let has_tag = self
            .key_prefix
            .split_once('{')
            .is_some_and(|(_, rest)| rest.find('}').is_some_and(|end| end > 0));
        match self.key_prefix.as_str() {
            _ if has_tag => self.key_prefix.clone(),
            "" => "{sluice}".into(),
            prefix => format!("{{{prefix}}}"),
        }
    }

    /// [`Self::response_timeout_ms`] as a duration.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }

    /// [`Self::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// `[postgres]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSettings {
    /// Connection URL, `postgres://user[:password]@host:port/database`.
    pub url: String,
    /// Connections in each process's pool.
    #[schemars(range(min = 1, max = 1_000))]
    pub pool_size: usize,
    /// How long establishing a connection may take.
    #[schemars(range(min = 1, max = 60_000))]
    pub connect_timeout_ms: u64,
    /// Optional URL of a read replica: `GET /messages` reads from it instead of `url`. Empty
    /// (the default) reads from `url`.
    pub read_url: String,
    /// Span of each partition of `messages`, in hours: a divisor of 24 or a multiple of it.
    /// Partitions are aligned to multiples of the span since 1970-01-01 UTC (24: one per UTC
    /// day).
    #[schemars(range(min = 1, max = 24 * 366))]
    pub partition_hours: u64,
    /// Partitions the workers keep created ahead of the current one.
    #[schemars(range(min = 1, max = 1_000))]
    pub partitions_ahead: u64,
    /// Partitions whose every row is older than this many days are dropped by the workers;
    /// 0 (the default) keeps every row forever.
    #[schemars(range(min = 0, max = 100_000))]
    pub retention_days: u64,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/sluice".into(),
            pool_size: 8,
            connect_timeout_ms: 2_000,
            read_url: String::new(),
            partition_hours: 24,
            partitions_ahead: 3,
            retention_days: 0,
        }
    }
}

impl PostgresSettings {
    /// Where PostgreSQL is, for messages: `PostgreSQL at host:port`; never a password.
    pub fn describe(&self) -> String {
        format!("PostgreSQL at {}", url_address(&self.url))
    }

    /// The settings for the read replica, when `read_url` names one.
    pub fn reader(&self) -> Option<Self> {
        let url = self.read_url.trim();
        (!url.is_empty()).then(|| Self {
            url: url.to_owned(),
            ..self.clone()
        })
    }

    /// [`Self::partition_hours`] as a duration.
    pub fn partition_span(&self) -> Duration {
        Duration::from_secs(self.partition_hours * 3_600)
    }
}

/// `[ingest]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[schemars(range(min = 256, max = 64 << 20))]
    pub max_body_bytes: usize,
    /// HTTP worker threads; 0 means one per CPU core.
    #[schemars(range(min = 0, max = 1_024))]
    pub http_workers: usize,
    /// `POST /messages` answers 429 while `pending_messages` holds this many messages.
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub max_queue_depth: u64,
    /// Most messages in one `POST /messages/batch`.
    #[schemars(range(min = 1, max = 100_000))]
    pub batch_max_messages: usize,
    /// Largest `POST /messages/batch` body, in bytes.
    #[schemars(range(min = 256, max = 256 << 20))]
    pub max_batch_body_bytes: usize,
    /// Bearer token for the `/admin` endpoints; empty (the default) disables them.
    pub admin_token: String,
    /// Most open connections, split evenly among the HTTP workers; past it new connections
    /// wait in the listen backlog until one closes.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections: usize,
    /// Longest a request body may take to arrive, from the end of its head; slower bodies get
    /// 408 and the connection is closed.
    #[schemars(range(min = 100, max = 600_000))]
    pub body_timeout_ms: u64,
    /// Memory requests may hold at once, across all connections: each its body's buffer as it
    /// arrives, then three times the body and 512 B per message while it is parsed and queued,
    /// given back once queued (batches at most three quarters of it); a request that would pass
    /// it gets 503 with `Retry-After`.
    #[schemars(range(min = 1 << 20, max = 68_719_476_736_u64))]
    pub max_buffered_bytes: usize,
    /// A connection whose socket accepts nothing for this long is closed.
    #[schemars(range(min = 100, max = 600_000))]
    pub write_timeout_ms: u64,
    /// How long an `Idempotency-Key` and its answer are remembered.
    #[schemars(range(min = 1, max = 30 * 24 * 60 * 60))]
    pub idempotency_ttl_secs: u64,
    /// Most `Idempotency-Key`s remembered at once; past it the oldest are forgotten first.
    #[schemars(range(min = 1, max = 100_000_000))]
    pub idempotency_max_keys: u64,
    /// Most bytes of Redis the remembered `Idempotency-Key`s may cost (each its answer, about
    /// 120 B for a message and 38 B more per message of a batch, its key name twice and 128 B);
    /// past it the oldest are forgotten first.
    #[schemars(range(min = 1_048_576, max = 1_099_511_627_776_u64))]
    pub idempotency_max_bytes: u64,
    /// Whether the ingest API also serves the stats stream at `/ws/stats` (and `/stats`,
    /// `/stats/stream`), the URL dashboards of the Python stack connect to.
    pub serve_stats: bool,
    /// Longest wait a `Prefer: wait=N` request gets, in seconds; larger `N` are capped to it.
    #[schemars(range(min = 1, max = 600))]
    pub max_wait_secs: u64,
    /// Most message ids waited for at once (`Prefer: wait`) in this process; past it a request
    /// is answered at once, as if it had not asked to wait.
    #[schemars(range(min = 1, max = 10_000_000))]
    pub max_waiters: usize,
    /// Most `GET /messages` queries this process runs at once, each on a connection of the
    /// read pool (which holds this many); past it a request is answered 503 `server_busy` at
    /// once. Reads never take a connection that writes or readiness need.
    #[schemars(range(min = 1, max = 1_000))]
    pub read_concurrency: usize,
    /// Longest a `GET /messages` query may run (PostgreSQL's `statement_timeout` on the read
    /// pool's connections); past it the query is cancelled and answered 503 `read_timeout`.
    #[schemars(range(min = 10, max = 600_000))]
    pub read_timeout_ms: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            max_body_bytes: 64 * 1024,
            http_workers: 0,
            max_queue_depth: 1_000_000,
            batch_max_messages: 1_000,
            max_batch_body_bytes: 8 << 20,
            admin_token: String::new(),
            max_connections: 10_000,
            body_timeout_ms: 15_000,
            max_buffered_bytes: 128 << 20,
            write_timeout_ms: 10_000,
            idempotency_ttl_secs: 24 * 60 * 60,
            idempotency_max_keys: 100_000,
            idempotency_max_bytes: 64 << 20,
            serve_stats: true,
            max_wait_secs: 30,
            max_waiters: 100_000,
            read_concurrency: 4,
            read_timeout_ms: 2_000,
        }
    }
}

/// `[worker]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Stable identity of this worker; its processing list is named after it. Empty means
    /// `<hostname>-<pid>-<random>`, unique per process.
    pub id: String,
    /// A batch is flushed as soon as it holds this many messages.
    #[schemars(range(min = limits::BATCH_MAX_SIZE.0, max = limits::BATCH_MAX_SIZE.1))]
    pub batch_max_size: usize,
    /// How long a worker that emptied the queue keeps waiting for more messages before it
    /// inserts its batch, counted from the batch's first message. 0 inserts at once: batches
    /// still form by themselves, from what arrives while a worker inserts. A wait trades
    /// latency for fewer, larger transactions at moderate load.
    #[schemars(range(min = limits::BATCH_MAX_WAIT_MS.0, max = limits::BATCH_MAX_WAIT_MS.1))]
    pub batch_max_wait_ms: u64,
    /// How long one blocking wait for the first message of a batch lasts before the worker
    /// checks for shutdown and takes again what is waiting.
    #[schemars(range(min = 10, max = 60_000))]
    pub idle_poll_ms: u64,
    /// A worker whose heartbeat is older than this is presumed dead: a live worker reclaims
    /// its batch (within a tenth of this more, 250 ms at the least), and the stats no longer
    /// count it in `workers_alive`. Every service reads this one setting: give all of them the
    /// same. A worker beats every tenth of it, between 250 ms and a second, and is presumed
    /// dead only once it has also missed four of its own beats, however its peers are set.
    #[schemars(range(min = limits::DEAD_AFTER_MS.0, max = limits::DEAD_AFTER_MS.1))]
    pub dead_after_ms: u64,
    /// Most entries kept in `dead_messages`; past it the oldest are dropped and counted in
    /// `dead_letters_trimmed`.
    #[schemars(range(min = 1, max = 100_000_000))]
    pub dead_letters_max: u64,
    /// Most bytes of an entry a dead letter keeps: a longer one (which the ingest API never
    /// queues: its largest message is about 8.3 KB) keeps its first bytes and its size, and
    /// cannot be requeued. An entry of `dead_messages` costs at most about 8 times this (its
    /// JSON, and hex for bytes that are not UTF-8).
    #[schemars(range(min = 1_024, max = 131_072))]
    pub dead_letter_max_bytes: usize,
    /// Address of the worker's HTTP listener (`/metrics`, `/health`, `/ready`), e.g.
    /// `127.0.0.1:9101`; empty (the default) turns it off.
    pub listen: String,
}

impl WorkerSettings {
    /// [`Self::listen`] parsed; `None` when the listener is off.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.trim().parse().ok()
    }
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            id: String::new(),
            batch_max_size: 5_000,
            batch_max_wait_ms: 0,
            idle_poll_ms: 1_000,
            dead_after_ms: 10_000,
            dead_letters_max: 100_000,
            dead_letter_max_bytes: 16_384,
            listen: String::new(),
        }
    }
}

/// `[gateway]`
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Address the HTTP/WebSocket server binds.
    pub listen: SocketAddr,
    /// Default period of the stats stream, in milliseconds.
    #[schemars(range(min = limits::INTERVAL_MS.0, max = limits::INTERVAL_MS.1))]
    pub interval_ms: u64,
    /// Period of the server's WebSocket pings.
    #[schemars(range(min = 100, max = 600_000))]
    pub heartbeat_interval_ms: u64,
    /// A client that has sent nothing (not even a pong) for this long is closed.
    #[schemars(range(min = 200, max = 3_600_000))]
    pub client_timeout_ms: u64,
    /// Most open WebSocket and SSE streams; further upgrades get 503.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections: usize,
    /// Most open streams from one IP address; further upgrades from it get 503.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections_per_ip: usize,
    /// Most messages a client may send per second (averaged over a second, bursts of the same
    /// size allowed); a client sending more is closed with 1008.
    #[schemars(range(min = 1, max = 10_000))]
    pub client_max_messages_per_sec: u32,
    /// Largest message a client may send, one frame or the sum of a fragmented message's
    /// frames; a header declaring more closes the session with 1009 before its payload is read.
    #[schemars(range(min = 128, max = 16 << 20))]
    pub max_frame_bytes: usize,
    /// A connection whose socket accepts nothing for this long is closed and counted.
    #[schemars(range(min = 100, max = 600_000))]
    pub write_timeout_ms: u64,
    /// `SO_SNDBUF` of each connection, bounding what the kernel holds for a slow reader; 0
    /// keeps the kernel's autotuned default.
    #[schemars(range(min = 0, max = 64 << 20))]
    pub send_buffer_bytes: usize,
    /// Batch events buffered per client before it is considered behind and skips ahead.
    #[schemars(range(min = 1, max = 65_536))]
    pub client_queue: usize,
    /// Origins allowed to call the HTTP endpoints from a browser, comma-separated; `*` for any;
    /// empty for none.
    pub cors_origins: String,
    /// Bearer token for the `/admin` endpoints (the dashboard's dead-letters page); empty (the
    /// default) disables them. It may be the ingest API's `ingest.admin_token`.
    pub admin_token: String,
    /// Authentication of dashboards.
    pub auth: GatewayAuthSettings,
    /// The alert rules' thresholds and durations.
    pub alerts: AlertSettings,
}

/// `[gateway.alerts]`: when each rule fires. A rule fires once its condition has held for its
/// `*_for_secs`, and resolves once it has been false for `resolve_after_secs`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// `queue_depth_high`: messages waiting in `pending_messages`.
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub queue_depth_threshold: u64,
    /// `queue_depth_high`: how long the depth must stay above the threshold.
    #[schemars(range(min = 0, max = 86_400))]
    pub queue_depth_for_secs: u64,
    /// `queue_growing`: accepted/s minus persisted/s, in messages per second.
    #[schemars(range(min = 0.001, max = 1e9))]
    pub queue_growing_min_rate: f64,
    /// `queue_growing`: how long arrivals must outpace persistence.
    #[schemars(range(min = 0, max = 86_400))]
    pub queue_growing_for_secs: u64,
    /// `no_live_workers`: how long messages may wait with no live worker.
    #[schemars(range(min = 0, max = 86_400))]
    pub no_live_workers_for_secs: u64,
    /// `dead_letters_increased` resolves after this long without a new dead letter.
    #[schemars(range(min = 1, max = 86_400))]
    pub dead_letters_quiet_secs: u64,
    /// `commit_latency_high`: POST→commit p99, in milliseconds.
    #[schemars(range(min = 1, max = 3_600_000))]
    pub commit_latency_p99_ms: f64,
    /// `commit_latency_high`: how long the p99 must stay above the threshold.
    #[schemars(range(min = 0, max = 86_400))]
    pub commit_latency_for_secs: u64,
    /// `redis_down`: how long the gateway's reads must fail.
    #[schemars(range(min = 0, max = 86_400))]
    pub redis_down_for_secs: u64,
    /// `postgres_down`: how long a live worker must report PostgreSQL down.
    #[schemars(range(min = 0, max = 86_400))]
    pub postgres_down_for_secs: u64,
    /// `throughput_anomaly`: z-score of persisted/s for severity `medium`.
    #[schemars(range(min = 0.1, max = 100))]
    pub anomaly_z_medium: f64,
    /// `throughput_anomaly`: z-score of persisted/s for severity `high`.
    #[schemars(range(min = 0.1, max = 100))]
    pub anomaly_z_high: f64,
    /// `throughput_anomaly`: how long the z-score must stay above `anomaly_z_medium`.
    #[schemars(range(min = 0, max = 86_400))]
    pub anomaly_for_secs: u64,
    /// `throughput_anomaly`: seconds of persisted/s the mean and deviation are taken over.
    #[schemars(range(min = 30, max = 3_600))]
    pub anomaly_window_secs: u64,
    /// How long a rule's condition must be false before its alert resolves.
    #[schemars(range(min = 0, max = 86_400))]
    pub resolve_after_secs: u64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            queue_depth_threshold: 100_000,
            queue_depth_for_secs: 30,
            queue_growing_min_rate: 10.0,
            queue_growing_for_secs: 60,
            no_live_workers_for_secs: 10,
            dead_letters_quiet_secs: 60,
            commit_latency_p99_ms: 1_000.0,
            commit_latency_for_secs: 30,
            redis_down_for_secs: 2,
            postgres_down_for_secs: 10,
            anomaly_z_medium: 2.5,
            anomaly_z_high: 3.5,
            anomaly_for_secs: 10,
            anomaly_window_secs: 300,
            resolve_after_secs: 10,
        }
    }
}

/// `[gateway.auth]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayAuthSettings {
    /// HS256 secret; when set, `/ws/stats`, `/stats` and `/stats/stream` need a valid JWT
    /// signed with it. Empty (the default) disables authentication.
    pub jwt_secret: String,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
            interval_ms: 500,
            heartbeat_interval_ms: 15_000,
            client_timeout_ms: 30_000,
            max_connections: 50_000,
            max_connections_per_ip: 20_000,
            client_max_messages_per_sec: 20,
            max_frame_bytes: 64 * 1024,
            write_timeout_ms: 10_000,
            send_buffer_bytes: 64 * 1024,
            client_queue: 256,
            cors_origins: String::new(),
            admin_token: String::new(),
            auth: GatewayAuthSettings::default(),
            alerts: AlertSettings::default(),
        }
    }
}

impl GatewaySettings {
    /// `cors_origins` split on commas, trimmed, empty entries dropped.
    pub fn cors_origin_list(&self) -> Vec<&str> {
        self.cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .collect()
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, one event per line.
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[telemetry]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `pretty` (default) or `json`. Filtering is by `RUST_LOG`.
    pub format: LogFormat,
}

/// Range limits, spelled once so the error messages and the checks agree.
pub mod limits {
    /// Smallest and largest `worker.batch_max_size`.
    pub const BATCH_MAX_SIZE: (usize, usize) = (1, 100_000);
    /// Smallest and largest `worker.batch_max_wait_ms`.
    pub const BATCH_MAX_WAIT_MS: (u64, u64) = (0, 60_000);
    /// Smallest and largest stats interval, for `gateway.interval_ms` and `?interval_ms=`.
    pub const INTERVAL_MS: (u64, u64) = (100, 60_000);
    /// Shortest and longest period of a worker's heartbeat (see [`heartbeat_period_ms`]).
    pub const HEARTBEAT_PERIOD_MS: (u64, u64) = (250, 1_000);
    /// Heartbeats of its own a worker must have missed in a row before a peer presumes it
    /// dead, whatever the peer's `worker.dead_after_ms` (ten with the same setting from 2.5 s).
    pub const HEARTBEATS_MISSED: u64 = 4;
    /// Smallest and largest `worker.dead_after_ms`: at least [`HEARTBEATS_MISSED`] of the
    /// shortest heartbeat period, so a peer is presumed dead only after that many beats in a
    /// row went missing.
    pub const DEAD_AFTER_MS: (u64, u64) = (HEARTBEATS_MISSED * HEARTBEAT_PERIOD_MS.0, 3_600_000);

    /// How often a worker beats: a tenth of `dead_after_ms`, within [`HEARTBEAT_PERIOD_MS`]. A
    /// dead worker's batch is reclaimed at most one period past `dead_after_ms`; an idle worker
    /// costs Redis one beat a second from 10 s. Each records its period, so a peer configured
    /// otherwise still waits for [`HEARTBEATS_MISSED`] of its beats.
    pub const fn heartbeat_period_ms(dead_after_ms: u64) -> u64 {
        let tenth = dead_after_ms / 10;
        if tenth < HEARTBEAT_PERIOD_MS.0 {
            HEARTBEAT_PERIOD_MS.0
        } else if tenth > HEARTBEAT_PERIOD_MS.1 {
            HEARTBEAT_PERIOD_MS.1
        } else {
            tenth
        }
    }
    /// The part of `ingest.max_buffered_bytes` batch bodies may hold: however many batch
    /// uploads stall, the rest stays free for single messages.
    pub const BATCH_SHARE: (usize, usize) = (3, 4);
    /// Memory that parsing and queueing a request body of `n` bytes needs besides the body
    /// itself, in multiples of `n`: the parsed messages, then the command's arguments and the
    /// packed command the Redis client writes (the body is freed once parsed).
    pub const QUEUE_COST: usize = 2;
    /// Memory each parsed message needs besides its text: the envelope, and the JSON field
    /// names, id and timestamp in each copy of the command.
    pub const MESSAGE_COST: usize = 512;

    /// The most of `ingest.max_buffered_bytes` one request of `body` bytes holding `messages`
    /// messages takes, from its first byte until its messages are queued.
    pub const fn request_cost(body: usize, messages: usize) -> usize {
        body * (1 + QUEUE_COST) + messages * MESSAGE_COST
    }
}

impl Settings {
    /// Loads the layers described in the module docs. `env` is the process environment (or a
    /// test's stand-in for it); `file` is the optional `--config` path.
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let env: HashMap<String, String> = env.into_iter().collect();
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(legacy_aliases(&env)?);
        let own: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .try_parsing(true)
                .source(Some(own)),
        );
        let settings: Settings = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(explain)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every section; the first bad value is the error.
    fn validate(&self) -> Result<(), SettingsError> {
        self.check_ranges()?;
        self.validate_connections()?;
        self.validate_ingest()?;
        self.validate_worker()?;
        self.validate_gateway()?;
        self.validate_alerts()
    }

    /// `[redis]` and `[postgres]`.
    fn validate_connections(&self) -> Result<(), SettingsError> {
        check_url(
            "redis.url",
            &self.redis.url,
            &["redis", "rediss", "redis+unix", "unix"],
        )?;
        for node in self.redis.cluster_node_urls() {
            check_url("redis.cluster_nodes", node, &["redis", "rediss"])?;
        }
        self.validate_sentinels()?;
        check_url(
            "postgres.url",
            &self.postgres.url,
            &["postgres", "postgresql"],
        )?;
        self.postgres
            .url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| invalid("postgres.url", format!("{e}: {:?}", self.postgres.url)))?;
        self.validate_partitions()
    }

    /// `redis.sentinels`: URLs, a primary's name, and not with a cluster.
    fn validate_sentinels(&self) -> Result<(), SettingsError> {
        let redis = &self.redis;
        if redis.sentinel_urls().is_empty() {
            return Ok(());
        }
        for sentinel in redis.sentinel_urls() {
            check_url("redis.sentinels", sentinel, &["redis", "rediss"])?;
        }
        if !redis.cluster_node_urls().is_empty() {
            return Err(invalid(
                "redis.sentinels",
                "a Redis Cluster has no sentinels: set redis.sentinels or redis.cluster_nodes, \
                 not both"
                    .into(),
            ));
        }
        if redis.sentinel_primary.trim().is_empty() {
            return Err(invalid(
                "redis.sentinel_primary",
                "must name the primary the sentinels monitor (sentinel monitor <name> ...)".into(),
            ));
        }
        Ok(())
    }

    /// `postgres.read_url` and the partitioning of `messages`.
    fn validate_partitions(&self) -> Result<(), SettingsError> {
        if let Some(reader) = self.postgres.reader() {
            check_url(
                "postgres.read_url",
                &reader.url,
                &["postgres", "postgresql"],
            )?;
            reader
                .url
                .parse::<tokio_postgres::Config>()
                .map_err(|e| invalid("postgres.read_url", format!("{e}: {:?}", reader.url)))?;
        }
        let hours = self.postgres.partition_hours;
        if !24u64.is_multiple_of(hours) && !hours.is_multiple_of(24) {
            return Err(invalid(
                "postgres.partition_hours",
                format!("must divide 24 or be a multiple of 24, got {hours}"),
            ));
        }
        Ok(())
    }

    /// `[ingest]`.
    fn validate_ingest(&self) -> Result<(), SettingsError> {
        let ingest = &self.ingest;
        let (part, whole) = limits::BATCH_SHARE;
        let batch = limits::request_cost(ingest.max_batch_body_bytes, ingest.batch_max_messages);
        let single = limits::request_cost(ingest.max_body_bytes, 1);
        let needed = single.max(batch.div_ceil(part) * whole);
        if ingest.max_buffered_bytes < needed {
            return Err(invalid(
                "ingest.max_buffered_bytes",
                format!(
                    "must hold the largest request while it is parsed and queued: at least \
                     {needed} (a full batch costs {batch} bytes, and batches may use {part}/{whole} \
                     of the budget), got {}",
                    ingest.max_buffered_bytes
                ),
            ));
        }
        check_admin_token("ingest.admin_token", &self.ingest.admin_token)
    }

    /// `[worker]`.
    fn validate_worker(&self) -> Result<(), SettingsError> {
        let listen = self.worker.listen.trim();
        if !listen.is_empty() && listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "worker.listen",
                format!("must be empty or an address such as 127.0.0.1:9101, got {listen:?}"),
            ));
        }
        if self
            .worker
            .id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "worker.id",
                format!(
                    "must not contain spaces or control characters, got {:?}",
                    self.worker.id
                ),
            ));
        }
        Ok(())
    }

    /// `[gateway]` without its alerts.
    fn validate_gateway(&self) -> Result<(), SettingsError> {
        check_admin_token("gateway.admin_token", &self.gateway.admin_token)?;
        if self.gateway.send_buffer_bytes != 0 {
            check_range(
                "gateway.send_buffer_bytes",
                self.gateway.send_buffer_bytes,
                (4096, 64 << 20),
            )?;
        }
        for origin in self.gateway.cors_origin_list() {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid(
                    "gateway.cors_origins",
                    format!(
                        "each origin must be * or start with http:// or https://, got {origin:?}"
                    ),
                ));
            }
        }
        if !self.gateway.auth.jwt_secret.is_empty() && self.gateway.auth.jwt_secret.len() < 32 {
            return Err(invalid(
                "gateway.auth.jwt_secret",
                format!(
                    "must be at least 32 bytes for HS256 (or empty to disable auth), got {}",
                    self.gateway.auth.jwt_secret.len()
                ),
            ));
        }
        if self.gateway.client_timeout_ms < self.gateway.heartbeat_interval_ms * 2 {
            return Err(invalid(
                "gateway.client_timeout_ms",
                format!(
                    "must be at least twice gateway.heartbeat_interval_ms ({}), got {}",
                    self.gateway.heartbeat_interval_ms, self.gateway.client_timeout_ms
                ),
            ));
        }
        Ok(())
    }
}

impl Settings {
    fn validate_alerts(&self) -> Result<(), SettingsError> {
        let a = &self.gateway.alerts;
        for (key, value) in [
            (
                "gateway.alerts.queue_growing_min_rate",
                a.queue_growing_min_rate,
            ),
            (
                "gateway.alerts.commit_latency_p99_ms",
                a.commit_latency_p99_ms,
            ),
            ("gateway.alerts.anomaly_z_medium", a.anomaly_z_medium),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid(
                    key,
                    format!("must be a positive number, got {value}"),
                ));
            }
        }
        if !(a.anomaly_z_high.is_finite() && a.anomaly_z_high >= a.anomaly_z_medium) {
            return Err(invalid(
                "gateway.alerts.anomaly_z_high",
                format!(
                    "must be at least gateway.alerts.anomaly_z_medium ({}), got {}",
                    a.anomaly_z_medium, a.anomaly_z_high
                ),
            ));
        }
        Ok(())
    }
}

impl Settings {
    /// Checks every value against the range declared on its field (`#[schemars(range)]`), the
    /// same declaration `--help` and `proto-docs/configuration.md` show.
    fn check_ranges(&self) -> Result<(), SettingsError> {
        let values = serde_json::to_value(self).unwrap_or_default();
        let schema = schemars::schema_for!(Settings).to_value();
        for setting in reference::leaves(&schema, &values) {
            let Some(value) = setting.value.as_f64() else {
                continue;
            };
            if let (Some(min), Some(max)) = (setting.min, setting.max)
                && !(min..=max).contains(&value)
            {
                return Err(invalid(
                    &setting.key,
                    format!("must be between {min} and {max}, got {}", setting.value),
                ));
            }
        }
        Ok(())
    }
}

/// The environment variable that sets a dotted key: `worker.batch_max_size` →
/// `SLUICE__WORKER__BATCH_MAX_SIZE`.
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{ENV_SEPARATOR}{}",
        key.replace('.', ENV_SEPARATOR).to_uppercase()
    )
}

/// A configuration error as [`SettingsError::Invalid`], naming the key and its variable, when
/// the `config` crate's message says which key (it always does for a wrong type, a value that
/// does not parse, or an unknown key); otherwise as it is.
fn explain(error: config::ConfigError) -> SettingsError {
    let text = error.to_string();
    let Some((reason, rest)) = text.split_once(" for key `") else {
        return SettingsError::Config(error);
    };
    let Some((key, _)) = rest.split_once('`') else {
        return SettingsError::Config(error);
    };
    match reason
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
    {
        Some((field, expected)) => invalid(
            &format!("{key}.{field}"),
            format!(
                "unknown setting{}",
                expected.replacen(", expected", "; expected", 1)
            ),
        ),
        None => invalid(key, reason.to_owned()),
    }
}

fn invalid(key: &str, reason: String) -> SettingsError {
    SettingsError::Invalid {
        key: key.into(),
        env: env_name(key),
        reason,
    }
}

fn check_range<T>(key: &str, value: T, (min, max): (T, T)) -> Result<(), SettingsError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if value < min || value > max {
        return Err(invalid(
            key,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

fn check_url(key: &str, value: &str, schemes: &[&str]) -> Result<(), SettingsError> {
    let scheme = value.split_once("://").map(|(s, _)| s);
    match scheme {
        Some(s) if schemes.contains(&s) => Ok(()),
        _ => Err(invalid(
            key,
            format!(
                "must be a URL starting with {}, got {value:?}",
                schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        )),
    }
}

/// Turns the Python stack's variables into a configuration layer that sits below `SLUICE__…`.
/// An admin token is empty (off) or at least 16 characters.
fn check_admin_token(name: &str, token: &str) -> Result<(), SettingsError> {
    if token.is_empty() || token.len() >= 16 {
        return Ok(());
    }
    Err(invalid(
        name,
        format!(
            "must be at least 16 characters (or empty to disable /admin), got {}",
            token.len()
        ),
    ))
}

fn legacy_aliases(env: &HashMap<String, String>) -> Result<config::Config, SettingsError> {
    let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut layer = config::Config::builder();
    if let Some(url) = get("REDIS_URL") {
        layer = layer.set_override("redis.url", url)?;
    } else if get("REDIS_HOST").is_some() || get("REDIS_PORT").is_some() {
        let host = get("REDIS_HOST").unwrap_or("127.0.0.1");
        let port = get("REDIS_PORT").unwrap_or("6379");
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(SettingsError::Alias {
                name: "REDIS_PORT",
                reason: format!("must be a TCP port between 1 and 65535, got {port:?}"),
            });
        }
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        layer = layer.set_override("redis.url", format!("redis://{host}:{port}"))?;
    }
    if let Some(url) = get("DATABASE_URL") {
        layer = layer.set_override("postgres.url", url)?;
    }
    if let Some(size) = get("BATCH_SIZE") {
        let size: u64 = size.parse().map_err(|_| SettingsError::Alias {
            name: "BATCH_SIZE",
            reason: format!("must be a whole number of messages, got {size:?}"),
        })?;
        layer = layer.set_override("worker.batch_max_size", size)?;
    }
    if let Some(secs) = get("BATCH_TIMEOUT") {
        let ms = secs
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3_600.0)
            .map(|s| (s * 1_000.0).round() as u64)
            .ok_or_else(|| SettingsError::Alias {
                name: "BATCH_TIMEOUT",
                reason: format!("must be a number of seconds between 0 and 3600, got {secs:?}"),
            })?;
        layer = layer.set_override("worker.batch_max_wait_ms", ms)?;
    }
    Ok(layer.build()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn connection_descriptions_name_the_address_and_never_the_password() {
        let mut redis = RedisSettings {
            url: "redis://user:s3cret@cache.internal:6390/2".into(),
            ..RedisSettings::default()
        };
        assert_eq!(redis.describe(), "Redis at cache.internal:6390");
        redis.cluster_nodes = "redis://:pw@10.0.0.1:7000, redis://10.0.0.2:7001".into();
        assert_eq!(
            redis.describe(),
            "Redis Cluster at 10.0.0.1:7000, 10.0.0.2:7001"
        );
        let postgres = PostgresSettings {
            url: "postgres://app:p%40ss@db.internal:5433/sluice?sslmode=disable".into(),
            ..PostgresSettings::default()
        };
        assert_eq!(postgres.describe(), "PostgreSQL at db.internal:5433");
    }

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load(None, env(pairs))
    }

    #[test]
    fn defaults_match_the_documented_contract() {
        let s = load(&[]).expect("defaults are valid");
        assert_eq!(s.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(s.redis.key_prefix, "");
        assert_eq!(s.postgres.url, "postgres://postgres@127.0.0.1:5432/sluice");
        assert_eq!(s.ingest.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(s.gateway.listen.to_string(), "127.0.0.1:8001");
        assert_eq!(s.gateway.interval_ms, 500);
        assert_eq!(s.ingest.max_body_bytes, 65_536);
    }

    #[test]
    fn sluice_variables_set_nested_keys() {
        let s = load(&[
            ("SLUICE__REDIS__KEY_PREFIX", "tenant-a:"),
            ("SLUICE__WORKER__BATCH_MAX_SIZE", "250"),
            ("SLUICE__WORKER__BATCH_MAX_WAIT_MS", "40"),
            ("SLUICE__GATEWAY__LISTEN", "0.0.0.0:9001"),
            ("SLUICE__TELEMETRY__FORMAT", "json"),
        ])
        .expect("valid");
        assert_eq!(s.redis.key_prefix, "tenant-a:");
        assert_eq!(s.worker.batch_max_size, 250);
        assert_eq!(s.worker.batch_max_wait_ms, 40);
        assert_eq!(s.gateway.listen.to_string(), "0.0.0.0:9001");
        assert_eq!(s.telemetry.format, LogFormat::Json);
    }

    #[test]
    fn sentinels_name_a_primary_and_exclude_a_cluster() {
        let sentinels = (
            "SLUICE__REDIS__SENTINELS",
            "redis://s1:26379, redis://:pw@s2:26379",
        );
        let s = load(&[sentinels, ("SLUICE__REDIS__SENTINEL_PRIMARY", "main")]).expect("valid");
        assert_eq!(
            s.redis.sentinel_urls(),
            ["redis://s1:26379", "redis://:pw@s2:26379"]
        );
        assert_eq!(
            s.redis.describe(),
            r#"Redis primary "main" of Sentinel at s1:26379, s2:26379"#
        );
        assert_eq!(
            s.redis.effective_key_prefix(),
            "",
            "one server: no hash tag"
        );
        let both = load(&[
            sentinels,
            ("SLUICE__REDIS__CLUSTER_NODES", "redis://a:7000"),
        ]);
        let e = both.expect_err("refused").to_string();
        assert!(
            e.contains("SLUICE__REDIS__SENTINELS") && e.contains("not both"),
            "{e}"
        );
        let unnamed = load(&[sentinels, ("SLUICE__REDIS__SENTINEL_PRIMARY", " ")]);
        let e = unnamed.expect_err("refused").to_string();
        assert!(e.contains("SLUICE__REDIS__SENTINEL_PRIMARY"), "{e}");
        let e = load(&[("SLUICE__REDIS__SENTINELS", "s1:26379")]).expect_err("refused");
        assert!(e.to_string().contains("redis://"), "{e}");
    }

    #[test]
    fn acknowledgements_are_off_by_default_and_add_their_wait_to_the_bound() {
        let off = load(&[]).expect("valid");
        assert_eq!(off.redis.acks(), None);
        assert_eq!(off.redis.confirmed_timeout(), off.redis.response_timeout());
        let on = load(&[
            ("SLUICE__REDIS__ACK_REPLICAS", "2"),
            ("SLUICE__REDIS__ACK_TIMEOUT_MS", "250"),
        ])
        .expect("valid");
        assert_eq!(on.redis.acks(), Some((2, Duration::from_millis(250))));
        assert_eq!(on.redis.confirmed_timeout(), Duration::from_millis(1_250));
        let e = load(&[("SLUICE__REDIS__ACK_TIMEOUT_MS", "0")]).expect_err("refused");
        assert!(
            e.to_string().contains("SLUICE__REDIS__ACK_TIMEOUT_MS"),
            "{e}"
        );
    }

    #[test]
    fn cluster_mode_tags_every_key_with_one_hash_tag() {
        let single = load(&[("SLUICE__REDIS__KEY_PREFIX", "t:")]).expect("valid");
        assert_eq!(single.redis.effective_key_prefix(), "t:");
        let nodes = (
            "SLUICE__REDIS__CLUSTER_NODES",
            "redis://a:7000, redis://b:7001,",
        );
        let cluster = load(&[nodes]).expect("valid");
        assert_eq!(
            cluster.redis.cluster_node_urls(),
            ["redis://a:7000", "redis://b:7001"]
        );
        assert_eq!(cluster.redis.effective_key_prefix(), "{sluice}");
        let tagged = load(&[nodes, ("SLUICE__REDIS__KEY_PREFIX", "t:")]).expect("valid");
        assert_eq!(tagged.redis.effective_key_prefix(), "{t:}");
        let own = load(&[nodes, ("SLUICE__REDIS__KEY_PREFIX", "app:{t1}:")]).expect("valid");
        assert_eq!(own.redis.effective_key_prefix(), "app:{t1}:");
        let e = load(&[("SLUICE__REDIS__CLUSTER_NODES", "http://a:1")]).expect_err("refused");
        assert!(
            e.to_string().contains("SLUICE__REDIS__CLUSTER_NODES"),
            "{e}"
        );
    }

    #[test]
    fn partitions_and_the_read_replica_are_checked() {
        let s = load(&[
            ("SLUICE__POSTGRES__PARTITION_HOURS", "6"),
            ("SLUICE__POSTGRES__RETENTION_DAYS", "30"),
            (
                "SLUICE__POSTGRES__READ_URL",
                "postgres://reader@replica:5432/sluice",
            ),
        ])
        .expect("valid");
        assert_eq!(s.postgres.partition_span(), Duration::from_secs(6 * 3600));
        let reader = s.postgres.reader().expect("a replica");
        assert_eq!(reader.url, "postgres://reader@replica:5432/sluice");
        assert_eq!(reader.pool_size, s.postgres.pool_size);
        assert!(load(&[]).expect("defaults").postgres.reader().is_none());
        let message = |pairs| load(pairs).expect_err("refused").to_string();
        let e = message(&[("SLUICE__POSTGRES__PARTITION_HOURS", "5")]);
        assert!(
            e.contains("SLUICE__POSTGRES__PARTITION_HOURS") && e.contains("divide 24"),
            "{e}"
        );
        let e = message(&[("SLUICE__POSTGRES__READ_URL", "mysql://x")]);
        assert!(e.contains("SLUICE__POSTGRES__READ_URL"), "{e}");
    }

    #[test]
    fn numeric_looking_prefix_stays_a_string() {
        let s = load(&[("SLUICE__REDIS__KEY_PREFIX", "42")]).expect("valid");
        assert_eq!(s.redis.key_prefix, "42");
    }

    #[test]
    fn legacy_aliases_apply() {
        let s = load(&[
            ("REDIS_URL", "redis://10.0.0.5:6380/2"),
            ("DATABASE_URL", "postgres://app@db:5432/chat"),
            ("BATCH_SIZE", "300"),
            ("BATCH_TIMEOUT", "0.25"),
        ])
        .expect("valid");
        assert_eq!(s.redis.url, "redis://10.0.0.5:6380/2");
        assert_eq!(s.postgres.url, "postgres://app@db:5432/chat");
        assert_eq!(s.worker.batch_max_size, 300);
        assert_eq!(s.worker.batch_max_wait_ms, 250);
    }

    #[test]
    fn redis_host_and_port_build_a_url() {
        let s = load(&[("REDIS_HOST", "cache"), ("REDIS_PORT", "6390")]).expect("valid");
        assert_eq!(s.redis.url, "redis://cache:6390");
        let s = load(&[("REDIS_PORT", "6390")]).expect("valid");
        assert_eq!(s.redis.url, "redis://127.0.0.1:6390");
        let s = load(&[("REDIS_HOST", "::1")]).expect("valid");
        assert_eq!(s.redis.url, "redis://[::1]:6379");
    }

    #[test]
    fn redis_url_beats_host_and_port() {
        let s = load(&[("REDIS_URL", "redis://a:1"), ("REDIS_HOST", "b")]).expect("valid");
        assert_eq!(s.redis.url, "redis://a:1");
    }

    #[test]
    fn sluice_variables_beat_aliases() {
        let s = load(&[
            ("REDIS_URL", "redis://old:6379"),
            ("SLUICE__REDIS__URL", "redis://new:6379"),
            ("BATCH_SIZE", "10"),
            ("SLUICE__WORKER__BATCH_MAX_SIZE", "20"),
        ])
        .expect("valid");
        assert_eq!(s.redis.url, "redis://new:6379");
        assert_eq!(s.worker.batch_max_size, 20);
    }

    #[test]
    fn file_layer_sits_between_defaults_and_environment() {
        let dir = std::env::temp_dir().join(format!("sluice-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("sluice.toml");
        std::fs::write(
            &path,
            "[worker]\nbatch_max_size = 77\nbatch_max_wait_ms = 9\n[redis]\nkey_prefix = \"f:\"\n",
        )
        .expect("write");
        let s = Settings::load(
            Some(&path),
            env(&[("SLUICE__WORKER__BATCH_MAX_SIZE", "88")]),
        )
        .expect("valid");
        assert_eq!(
            s.worker.batch_max_size, 88,
            "environment wins over the file"
        );
        assert_eq!(s.worker.batch_max_wait_ms, 9, "file wins over defaults");
        assert_eq!(s.redis.key_prefix, "f:");
        // Aliases are environment too: they beat the file.
        let s = Settings::load(Some(&path), env(&[("BATCH_SIZE", "5")])).expect("valid");
        assert_eq!(s.worker.batch_max_size, 5);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Settings::load(Some(Path::new("/nonexistent/sluice.toml")), env(&[]))
            .expect_err("must fail");
        assert!(err.to_string().contains("sluice.toml"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_setting_and_variable() {
        let err = load(&[("SLUICE__WORKER__BATCH_MAX_SIZE", "0")]).expect_err("must fail");
        let line = err.to_string();
        assert!(line.contains("worker.batch_max_size"), "{line}");
        assert!(line.contains("SLUICE__WORKER__BATCH_MAX_SIZE"), "{line}");
        assert!(line.contains("got 0"), "{line}");
        assert!(!line.contains('\n'));

        let err = load(&[("SLUICE__GATEWAY__INTERVAL_MS", "5")]).expect_err("must fail");
        assert!(err.to_string().contains("gateway.interval_ms"), "{err}");
    }

    #[test]
    fn dead_after_must_cover_four_heartbeats() {
        for bad in ["0", "1", "999"] {
            let err = load(&[("SLUICE__WORKER__DEAD_AFTER_MS", bad)]).expect_err(bad);
            let line = err.to_string();
            assert!(line.contains("SLUICE__WORKER__DEAD_AFTER_MS"), "{line}");
            assert!(line.contains("between 1000 and"), "{line}");
        }
        let ok = load(&[("SLUICE__WORKER__DEAD_AFTER_MS", "1000")]).expect("four beats");
        assert_eq!(ok.worker.dead_after_ms, 1_000);
    }

    #[test]
    fn wrong_types_and_unknown_keys_are_errors() {
        // Whatever the mistake, the message names the variable to fix.
        for (var, value, says) in [
            (
                "SLUICE__WORKER__BATCH_MAX_SIZE",
                "lots",
                "expected an integer",
            ),
            ("SLUICE__WORKER__BATCH_MAXSIZE", "5", "unknown setting"),
            (
                "SLUICE__INGEST__LISTEN",
                "localhost",
                "invalid socket address",
            ),
            (
                "SLUICE__GATEWAY__ALERTS__ANOMALY_Z_HIGH",
                "x",
                "floating point",
            ),
        ] {
            let err = load(&[(var, value)]).expect_err("must fail").to_string();
            assert!(
                err.contains(&format!("({var})")) && err.contains(says),
                "{err}"
            );
        }
        let err = load(&[("SLUICE__WORKER__BATCH_MAX_SIZE", "lots")]).expect_err("must fail");
        assert!(err.to_string().contains("batch_max_size"), "{err}");
        let err = load(&[("SLUICE__WORKER__BATCH_MAXSIZE", "5")]).expect_err("must fail");
        assert!(err.to_string().contains("batch_maxsize"), "{err}");
        let err = load(&[("SLUICE__INGEST__LISTEN", "localhost")]).expect_err("must fail");
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn bad_urls_are_errors() {
        let err = load(&[("SLUICE__REDIS__URL", "127.0.0.1:6379")]).expect_err("must fail");
        assert!(err.to_string().contains("redis.url"), "{err}");
        let err = load(&[("DATABASE_URL", "mysql://x")]).expect_err("must fail");
        assert!(err.to_string().contains("postgres.url"), "{err}");
    }

    #[test]
    fn bad_aliases_name_the_variable() {
        let err = load(&[("BATCH_TIMEOUT", "soon")]).expect_err("must fail");
        assert!(err.to_string().contains("BATCH_TIMEOUT"), "{err}");
        let err = load(&[("BATCH_SIZE", "-3")]).expect_err("must fail");
        assert!(err.to_string().contains("BATCH_SIZE"), "{err}");
        let err = load(&[("REDIS_PORT", "99999")]).expect_err("must fail");
        assert!(err.to_string().contains("REDIS_PORT"), "{err}");
    }
}
