//! What the poller and the event subscription produce, serialized once for every session: the
//! stats [`Snapshot`], the [`BatchFrames`] of one batch event, Redis's [`RedisState`], and the
//! [`Reading`] that observers of the poller see.

use std::sync::Arc;

use bytestring::ByteString;
use sluice_proto::stats::Stats;
use tokio::time::Instant;

/// One stats reading, serialized once for every session.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one per reading.
    pub seq: u64,
    /// When the reading was taken.
    pub taken_at: Instant,
    /// The reading.
    pub stats: Stats,
    /// `stats` as the JSON text frame sessions send.
    pub json: ByteString,
}

/// One batch event, serialized once in both forms sessions may want.
#[derive(Debug)]
pub struct BatchFrames {
    /// `batch_persisted` with `message_ids`.
    pub with_ids: ByteString,
    /// `batch_persisted` without them.
    pub without_ids: ByteString,
}

/// Whether the poller can read Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisState {
    /// Not read yet.
    Unknown,
    /// The last read succeeded.
    Up,
    /// The last read failed.
    Down,
}

/// The outcome of the poller's latest read, for observers (the gateway's alert rules). Every
/// read replaces it, a failed one too, so an observer wakes once per read.
#[derive(Debug, Clone, Default)]
pub enum Reading {
    /// Nothing read yet.
    #[default]
    None,
    /// The read succeeded.
    Taken(Arc<Snapshot>),
    /// The read that began at this instant failed or timed out: Redis stopped answering by
    /// then, which is when an outage is measured from, not when the timeout ran out.
    Failed(Instant),
}
