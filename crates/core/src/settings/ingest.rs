//! `[ingest]`: the ingest API.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

use super::{ListenerTlsSettings, Secret, SettingsError, check_admin_token, invalid, limits};

/// `[ingest]`
#[derive(Debug, Clone, SmartDefault, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    /// Address the HTTP server binds.
    #[default(SocketAddr::from(([127, 0, 0, 1], 8000)))]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[default(64 * 1024)]
    #[schemars(range(min = 256, max = 64 << 20))]
    pub max_body_bytes: usize,
    /// HTTP worker threads; 0 means one per CPU core.
    #[schemars(range(min = 0, max = 1_024))]
    pub http_workers: usize,
    /// `POST /messages` answers 429 while `pending_messages` holds this many messages.
    #[default(1_000_000)]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub max_queue_depth: u64,
    /// Most messages in one `POST /messages/batch`.
    #[default(1_000)]
    #[schemars(range(min = 1, max = 100_000))]
    pub batch_max_messages: usize,
    /// Largest `POST /messages/batch` body, in bytes.
    #[default(8 << 20)]
    #[schemars(range(min = 256, max = 256 << 20))]
    pub max_batch_body_bytes: usize,
    /// Bearer token for the `/admin` endpoints; empty (the default) disables them.
    pub admin_token: Secret,
    /// Most open connections, split evenly among the HTTP workers; past it new connections
    /// wait in the listen backlog until one closes.
    #[default(10_000)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections: usize,
    /// Longest a request body may take to arrive, from the end of its head; slower bodies get
    /// 408 and the connection is closed.
    #[default(15_000)]
    #[schemars(range(min = 100, max = 600_000))]
    pub body_timeout_ms: u64,
    /// Memory requests may hold at once, across all connections: each its body's buffer as it
    /// arrives, then three times the body and 512 B per message while it is parsed and queued,
    /// given back once queued (batches at most three quarters of it); a request that would pass
    /// it gets 503 with `Retry-After`.
    #[default(128 << 20)]
    #[schemars(range(min = 1 << 20, max = 68_719_476_736_u64))]
    pub max_buffered_bytes: usize,
    /// A connection whose socket accepts nothing for this long is closed.
    #[default(10_000)]
    #[schemars(range(min = 100, max = 600_000))]
    pub write_timeout_ms: u64,
    /// How long an `Idempotency-Key` and its answer are remembered.
    #[default(24 * 60 * 60)]
    #[schemars(range(min = 1, max = 30 * 24 * 60 * 60))]
    pub idempotency_ttl_secs: u64,
    /// Most `Idempotency-Key`s remembered at once; past it the oldest are forgotten first.
    #[default(100_000)]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub idempotency_max_keys: u64,
    /// Most bytes of Redis the remembered `Idempotency-Key`s may cost (each its answer, about
    /// 120 B for a message and 38 B more per message of a batch, its key name twice and 128 B);
    /// past it the oldest are forgotten first.
    #[default(64 << 20)]
    #[schemars(range(min = 1_048_576, max = 1_099_511_627_776_u64))]
    pub idempotency_max_bytes: u64,
    /// Whether the ingest API also serves the stats stream at `/ws/stats` (and `/stats`,
    /// `/stats/stream`), the URL dashboards of the Python stack connect to.
    #[default(true)]
    pub serve_stats: bool,
    /// Longest wait a `Prefer: wait=N` request gets, in seconds; larger `N` are capped to it.
    #[default(30)]
    #[schemars(range(min = 1, max = 600))]
    pub max_wait_secs: u64,
    /// Most message ids waited for at once (`Prefer: wait`) in this process; past it a request
    /// is answered at once, as if it had not asked to wait.
    #[default(100_000)]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub max_waiters: usize,
    /// Most `GET /messages` queries this process runs at once, each on a connection of the
    /// read pool (which holds this many); past it a request is answered 503 `server_busy` at
    /// once. Reads never take a connection that writes or readiness need.
    #[default(4)]
    #[schemars(range(min = 1, max = 1_000))]
    pub read_concurrency: usize,
    /// Longest a `GET /messages` query may run (PostgreSQL's `statement_timeout` on the read
    /// pool's connections); past it the query is cancelled and answered 503 `read_timeout`.
    #[default(2_000)]
    #[schemars(range(min = 10, max = 600_000))]
    pub read_timeout_ms: u64,
    /// HTTPS on `listen`.
    pub tls: ListenerTlsSettings,
}

impl IngestSettings {
    /// The memory budget holds the largest request; the admin token is long enough.
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let ingest = self;
        ingest.tls.validate("ingest")?;
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
        check_admin_token("ingest.admin_token", self.admin_token.expose())
    }
}
