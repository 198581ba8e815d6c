//! The event a worker publishes on `batch_events` after each committed batch.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One committed batch, as published on the `batch_events` channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEvent {
    /// Unique id of the batch (UUIDv7).
    pub batch_id: Uuid,
    /// The worker that committed it.
    pub worker_id: String,
    /// Messages in the batch.
    pub size: u64,
    /// Rows the batch added; less than `size` when some ids were already persisted.
    pub inserted: u64,
    /// When PostgreSQL confirmed the commit.
    pub committed_at: DateTime<Utc>,
    /// Ids of the messages in the batch, in consumption order.
    pub message_ids: Vec<Uuid>,
}
