//! What every handler of one HTTP worker thread shares.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use redis::aio::ConnectionManager;
use sluice_core::Keys;

use crate::queue::Depth;

/// Per-worker-thread application state.
pub struct AppState {
    /// This HTTP worker's own multiplexed Redis connection; each worker thread has one so the
    /// threads do not contend on a single socket.
    pub redis: ConnectionManager,
    /// Key names under the configured prefix.
    pub keys: Keys,
    /// PostgreSQL pool (shared by every worker thread), for `GET /messages` and `/ready`.
    pub pool: Pool,
    /// `ingest.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `ingest.max_batch_body_bytes`.
    pub max_batch_body_bytes: usize,
    /// `ingest.batch_max_messages`.
    pub batch_max_messages: usize,
    /// Longest wait for a Redis answer before a request is answered 503.
    pub redis_timeout: Duration,
    /// Queue length gauge and bound, shared by every worker thread.
    pub depth: Arc<Depth>,
    /// `ingest.admin_token`; `None` disables `/admin`.
    pub admin_token: Option<Arc<str>>,
}
