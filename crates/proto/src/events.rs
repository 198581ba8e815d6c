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
    /// When the worker had taken the batch off the queue (its wait for more messages done)
    /// and began to insert it; absent from events of workers built before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<DateTime<Utc>>,
    /// When PostgreSQL confirmed the commit.
    pub committed_at: DateTime<Utc>,
    /// Ids of the messages the batch persisted, in consumption order; absent from the
    /// `batch_persisted` messages of clients that did not ask for ids.
    #[serde(default)]
    pub message_ids: Vec<Uuid>,
    /// Ids of messages of the batch PostgreSQL refused, now in `dead_messages`; absent when
    /// there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letter_ids: Vec<Uuid>,
}

/// An entry of the `dead_messages` list: a message that can never be inserted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The entry as it was found in `pending_messages`; when it is not UTF-8, its invalid bytes
    /// show as U+FFFD here and [`Self::payload_hex`] holds the exact bytes.
    pub payload: String,
    /// The exact bytes of an entry that is not UTF-8, in lowercase hex; absent otherwise.
    /// Requeueing puts back these bytes, not `payload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
    /// The entry's size in bytes when it was longer than `worker.dead_letter_max_bytes`: only
    /// its first bytes are kept (in `payload`, and `payload_hex`), and the letter cannot be
    /// requeued. Absent when the entry is kept whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u64>,
    /// Why it cannot be inserted.
    pub reason: String,
    /// When it was set aside.
    pub failed_at: DateTime<Utc>,
    /// The worker that set it aside.
    pub worker_id: String,
}

impl DeadLetter {
    /// A dead letter for `raw`, keeping its exact bytes when they are not UTF-8, and at most
    /// its first `max_bytes` (cut at a character boundary when it is text).
    pub fn new(
        raw: &[u8],
        reason: String,
        failed_at: DateTime<Utc>,
        worker_id: &str,
        max_bytes: usize,
    ) -> Self {
        let (kept, payload_bytes) = match raw.get(..max_bytes) {
            Some(head) if raw.len() > max_bytes => (text_boundary(head), Some(raw.len() as u64)),
            _ => (raw, None),
        };
        let (payload, payload_hex) = match std::str::from_utf8(kept) {
            Ok(text) => (text.to_owned(), None),
            Err(_) => (
                String::from_utf8_lossy(kept).into_owned(),
                Some(kept.iter().map(|b| format!("{b:02x}")).collect()),
            ),
        };
        Self {
            payload,
            payload_hex,
            payload_bytes,
            reason,
            failed_at,
            worker_id: worker_id.to_owned(),
        }
    }

    /// Whether only the first bytes of the entry are kept.
    pub fn truncated(&self) -> bool {
        self.payload_bytes.is_some()
    }

    /// The entry's exact bytes (its first ones, when [`Self::truncated`]).
    pub fn bytes(&self) -> Vec<u8> {
        let Some(hex) = &self.payload_hex else {
            return self.payload.as_bytes().to_vec();
        };
        (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect()
    }
}

/// `head` without a character cut in two at its end, when the rest of it is text: a payload cut
/// mid-character would otherwise stop being UTF-8 and be kept as hex.
fn text_boundary(head: &[u8]) -> &[u8] {
    match std::str::from_utf8(head) {
        Err(e) if e.error_len().is_none() => &head[..e.valid_up_to()],
        _ => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_payloads_stay_text_and_others_keep_their_exact_bytes() {
        let at = Utc::now();
        let text = DeadLetter::new(b"{\"oops\"", "bad".into(), at, "w", 100);
        assert_eq!(text.payload, "{\"oops\"");
        let json = serde_json::to_value(&text).expect("json");
        assert!(json.get("payload_hex").is_none(), "{json}");

        let raw = b"\xff\x00ok\xc3";
        let binary = DeadLetter::new(raw, "bad".into(), at, "w", 100);
        assert_eq!(binary.payload, "\u{fffd}\u{0}ok\u{fffd}");
        assert_eq!(binary.payload_hex.as_deref(), Some("ff006f6bc3"));
        let back: DeadLetter =
            serde_json::from_str(&serde_json::to_string(&binary).expect("json")).expect("parse");
        assert_eq!(back.bytes(), raw);
        assert_eq!(text.bytes(), b"{\"oops\"");
        assert!(!text.truncated() && !binary.truncated());
    }

    #[test]
    fn a_long_entry_keeps_its_first_bytes_and_its_size() {
        let at = Utc::now();
        // "é" is two bytes: a cut after 5 bytes would split the third one.
        let text = DeadLetter::new("ééééé".as_bytes(), "bad".into(), at, "w", 5);
        assert_eq!(text.payload, "éé");
        assert_eq!(
            (text.payload_hex.as_deref(), text.payload_bytes),
            (None, Some(10))
        );
        assert!(text.truncated());
        let garbage = vec![0xffu8; 10 << 20];
        let letter = DeadLetter::new(&garbage, "bad".into(), at, "w", 1024);
        assert_eq!(letter.bytes().len(), 1024);
        assert_eq!(letter.payload_bytes, Some(10 << 20));
        let json = serde_json::to_string(&letter).expect("json");
        assert!(json.len() < 8 * 1024, "{} bytes", json.len());
    }
}
