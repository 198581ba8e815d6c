//! What workers write about batches: the event published on `batch_events` after each commit,
//! and the `dead_messages` entry for a message that can never be inserted.

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

/// An entry of the `dead_messages` list: a message that can never be inserted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The entry exactly as it was found in `pending_messages` (bytes that are not UTF-8 are
    /// replaced by U+FFFD).
    pub payload: String,
    /// Why it cannot be inserted.
    pub reason: String,
    /// When it was set aside.
    pub failed_at: DateTime<Utc>,
    /// The worker that set it aside.
    pub worker_id: String,
}
