//! The messages the load generators send, and the ids their answers carry.

use anyhow::Context;
use hyper::body::Bytes;
use sluice_proto::api::{BatchQueued, Queued};
use sluice_proto::message::MessageRequest;
use uuid::Uuid;

/// A typical chat message, so payload sizes are realistic.
pub const SAMPLE_CONTENT: &str =
    "hey, are we still on for the release review at 3? I pushed the last fixes";

/// Message `i` (user and channel vary with `i`).
pub fn sample_message(i: u64) -> MessageRequest {
    let (user, channel) = (i % 10_000 + 1, i % 100 + 1);
    MessageRequest::new(
        user as i64,
        channel as i64,
        format!("{SAMPLE_CONTENT} #{i}"),
    )
}

/// The JSON body of message `i`.
pub fn message_json(i: u64) -> String {
    serde_json::to_string(&sample_message(i)).unwrap_or_default()
}

/// A JSON array of `size` messages starting at `i * size`.
pub fn batch_json(i: u64, size: usize) -> String {
    let first = i * size as u64;
    let items: Vec<MessageRequest> = (first..first + size as u64).map(sample_message).collect();
    serde_json::to_string(&items).unwrap_or_default()
}

/// The message ids in 202 answers of `/messages` (`message_id`) or `/messages/batch`
/// (`message_ids`).
pub fn accepted_ids(bodies: &[Bytes]) -> anyhow::Result<Vec<Uuid>> {
    /// Either endpoint's answer, told apart by its fields.
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Answer {
        Batch(BatchQueued),
        One(Queued),
    }
    let mut ids = Vec::with_capacity(bodies.len());
    for body in bodies {
        match serde_json::from_slice(body).context("a 202 answer")? {
            Answer::Batch(batch) => ids.extend(batch.message_ids),
            Answer::One(one) => ids.push(one.message_id),
        }
    }
    Ok(ids)
}
