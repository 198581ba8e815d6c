//! What every handler of one HTTP worker thread shares.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use sluice_core::Keys;
use sluice_core::connect::RedisConnection;

use crate::body::{Budget, Limits, Share};
use crate::queue::{Depth, Retention};

/// Per-worker-thread application state.
pub struct AppState {
    /// This HTTP worker's own multiplexed Redis connection; each worker thread has one so the
    /// threads do not contend on a single socket.
    pub redis: RedisConnection,
    /// Key names under the configured prefix.
    pub keys: Keys,
    /// PostgreSQL pool (shared by every worker thread), for `/ready` and the persisted-row
    /// checks of `Prefer: wait`.
    pub pool: Pool,
    /// Where `GET /messages` reads: the replica at `postgres.read_url`, or [`Self::pool`].
    pub read_pool: Pool,
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
    /// `ingest.max_buffered_bytes`, shared by every worker thread.
    pub budget: Budget,
    /// `ingest.body_timeout_ms`.
    pub body_timeout: Duration,
    /// `ingest.idempotency_ttl_secs` and `ingest.idempotency_max_keys`.
    pub idempotency: Retention,
    /// What the HTTP edge counted (write timeouts, malformed requests), for `/health`.
    pub edge: Arc<sluice_http::EdgeStats>,
    /// Messages queued and not yet added to `accepted_total`, shared by every worker thread.
    pub accepted: Arc<crate::accepted::Accepted>,
    /// Requests waiting for their messages' commit (`Prefer: wait`), shared by every worker
    /// thread and fed by the process's one subscription.
    pub waiters: Arc<crate::persisted::Waiters>,
    /// `ingest.max_wait_secs`.
    pub max_wait: Duration,
}

impl AppState {
    /// How a `POST /messages` body is read.
    pub fn message_limits(&self) -> Limits<'_> {
        self.body_limits(self.max_body_bytes, Share::Single)
    }

    /// How a `POST /messages/batch` body is read.
    pub fn batch_limits(&self) -> Limits<'_> {
        self.body_limits(self.max_batch_body_bytes, Share::Batch)
    }

    fn body_limits(&self, max_bytes: usize, share: Share) -> Limits<'_> {
        Limits {
            max_bytes,
            timeout: self.body_timeout,
            budget: &self.budget,
            share,
        }
    }
}
