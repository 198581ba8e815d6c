//! A batch in hand: the raw entries of the processing list, parsed at this edge into envelopes
//! and dead letters.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sluice_proto::events::{BatchEvent, DeadLetter};
use sluice_proto::message::Envelope;
use uuid::Uuid;

/// The messages a worker holds in its processing list, and how far their commit has got.
#[derive(Debug)]
pub struct Batch {
    /// Unique id of this batch (UUIDv7).
    pub id: Uuid,
    /// Entries taken from the queue, including duplicates and poison.
    pub size: usize,
    /// Envelopes to insert: each id once, in consumption order.
    pub envelopes: Vec<Envelope>,
    /// JSON `dead_messages` entries for entries that are not valid envelopes.
    pub dead_letters: Vec<String>,
    /// Ids of the envelopes PostgreSQL refused (now among `dead_letters`).
    pub rejected_ids: Vec<Uuid>,
    /// Whether the batch was read back from a processing list (after a restart, an error, or
    /// a reclaim) rather than freshly taken: an earlier insert of it may have committed
    /// without being counted, so its rows already in PostgreSQL count too.
    pub resumed: bool,
    /// When the batch was in hand (taken off the queue, or read back from a processing list).
    pub taken_at: DateTime<Utc>,
    /// Set once PostgreSQL has committed the batch: rows to count and when.
    pub committed: Option<(u64, DateTime<Utc>)>,
    /// The server that committed it.
    pub committed_on: Option<sluice_core::primary::Server>,
    /// `worker.dead_letter_max_bytes`: most of an entry a dead letter keeps.
    letter_max_bytes: usize,
}

/// Batches of more bytes than this are parsed on the blocking pool: the worker runs on one
/// thread, and its heartbeat must not wait for megabytes of JSON (100,000 short messages take
/// about 100 ms; as many of the longest, seconds).
pub const PARSE_INLINE_BYTES: usize = 1 << 20;

impl Batch {
    /// [`Batch::parse`], on the blocking pool when the entries hold more than
    /// [`PARSE_INLINE_BYTES`], so that the thread's other tasks (the heartbeat) run meanwhile.
    pub async fn parse_off_thread(
        entries: Vec<Vec<u8>>,
        worker_id: &str,
        resumed: bool,
        letter_max_bytes: usize,
    ) -> Self {
        let bytes: usize = entries.iter().map(Vec::len).sum();
        if bytes <= PARSE_INLINE_BYTES {
            return Self::parse(entries, worker_id, resumed, letter_max_bytes);
        }
        let id = worker_id.to_owned();
        tokio::task::spawn_blocking(move || Self::parse(entries, &id, resumed, letter_max_bytes))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Parses raw entries (oldest first). Entries that are not valid envelopes become dead
    /// letters, keeping at most `letter_max_bytes` of each; an id seen twice is kept once.
    pub fn parse(
        entries: Vec<Vec<u8>>,
        worker_id: &str,
        resumed: bool,
        letter_max_bytes: usize,
    ) -> Self {
        let size = entries.len();
        let mut seen = HashSet::with_capacity(size);
        let mut envelopes = Vec::with_capacity(size);
        let mut dead_letters = Vec::new();
        for raw in entries {
            match Envelope::from_json(&raw) {
                Ok(envelope) => {
                    if seen.insert(envelope.id) {
                        envelopes.push(envelope);
                    }
                }
                Err(e) => {
                    let reason = format!("not a valid message envelope: {e}");
                    tracing::warn!(%reason, "dead-lettering a poison message");
                    dead_letters.push(dead_letter(&raw, reason, worker_id, letter_max_bytes));
                }
            }
        }
        Self {
            id: sluice_core::clock::new_id(),
            size,
            envelopes,
            dead_letters,
            rejected_ids: Vec::new(),
            resumed,
            taken_at: sluice_core::clock::now(),
            committed: None,
            committed_on: None,
            letter_max_bytes,
        }
    }

    /// Sets aside envelopes PostgreSQL rejected, with its reason.
    pub fn reject(&mut self, rejected: Vec<(Uuid, String)>, worker_id: &str) {
        for (id, reason) in rejected {
            if let Some(at) = self.envelopes.iter().position(|e| e.id == id) {
                let envelope = self.envelopes.remove(at);
                self.rejected_ids.push(envelope.id);
                self.dead_letters.push(dead_letter(
                    &envelope.to_json(),
                    format!("rejected by PostgreSQL: {reason}"),
                    worker_id,
                    self.letter_max_bytes,
                ));
            }
        }
    }

    /// The POST→commit latencies of the batch's messages, as the histogram the commit script
    /// adds to `commit_latency` (a clock running behind the ingest API's counts as 0).
    pub fn latency_histogram(&self, committed_at: DateTime<Utc>) -> String {
        sluice_core::stats::latency_histogram(self.latencies_us(committed_at))
    }

    /// Each envelope's POST→commit latency in microseconds (0 for a clock running behind).
    fn latencies_us(&self, committed_at: DateTime<Utc>) -> impl Iterator<Item = u64> + '_ {
        self.envelopes.iter().map(move |e| {
            (committed_at - e.created_at)
                .num_microseconds()
                .map_or(0, |us| us.max(0) as u64)
        })
    }

    /// Adds the recorded batch to this process's metrics: rows persisted (as counted in
    /// `total_messages`), dead letters, the batch size, and each message's POST→commit latency.
    pub fn record_metrics(&self, counted: u64, committed_at: DateTime<Utc>) {
        use sluice_core::metric;
        metrics::counter!(metric::MESSAGES_PERSISTED).increment(counted);
        metrics::counter!(metric::DEAD_LETTERS).increment(self.dead_letters.len() as u64);
        metrics::histogram!(metric::BATCH_SIZE).record(self.size as f64);
        let latency = metrics::histogram!(metric::COMMIT_LATENCY);
        for micros in self.latencies_us(committed_at) {
            latency.record(micros as f64 / 1e6);
        }
    }

    /// The event announcing this batch once committed.
    pub fn event(&self, worker_id: &str, inserted: u64, committed_at: DateTime<Utc>) -> BatchEvent {
        BatchEvent {
            batch_id: self.id,
            worker_id: worker_id.to_owned(),
            size: self.size as u64,
            inserted,
            taken_at: Some(self.taken_at),
            committed_at,
            message_ids: self.envelopes.iter().map(|e| e.id).collect(),
            dead_letter_ids: self.rejected_ids.clone(),
        }
    }
}

fn dead_letter(raw: &[u8], reason: String, worker_id: &str, max_bytes: usize) -> String {
    let letter = DeadLetter::new(raw, reason, sluice_core::clock::now(), worker_id, max_bytes);
    serde_json::to_string(&letter).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::message::NewMessage;

    fn envelope(content: &str) -> Envelope {
        let body = serde_json::json!({"user_id": 1, "channel_id": 2, "content": content});
        sluice_core::clock::envelope(
            NewMessage::from_json(body.to_string().as_bytes()).expect("valid"),
        )
    }

    /// A batch past a megabyte goes through the blocking pool and comes back the same as one
    /// parsed in place: each id once, poison set aside, consumption order kept.
    #[tokio::test]
    async fn a_large_batch_parsed_off_the_thread_is_the_same_batch() {
        let long = "x".repeat(2_000);
        let mut entries: Vec<Vec<u8>> = (0..600).map(|_| envelope(&long).to_json()).collect();
        entries.push(b"not json".to_vec());
        entries.push(entries[0].clone());
        let bytes: usize = entries.iter().map(Vec::len).sum();
        assert!(bytes > PARSE_INLINE_BYTES, "{bytes}");
        let inline = Batch::parse(entries.clone(), "w", false, 1 << 14);
        let off = Batch::parse_off_thread(entries, "w", false, 1 << 14).await;
        let ids = |b: &Batch| b.envelopes.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&off), ids(&inline));
        assert_eq!(off.envelopes.len(), 600);
        assert_eq!((off.size, off.dead_letters.len()), (602, 1));
    }

    #[test]
    fn poison_becomes_dead_letters_and_duplicates_collapse() {
        let a = envelope("a");
        let b = envelope("b");
        let entries = vec![a.to_json(), b"not json".to_vec(), b.to_json(), a.to_json()];
        let batch = Batch::parse(entries, "w1", false, 1 << 14);
        assert_eq!(batch.size, 4);
        assert_eq!(batch.envelopes, vec![a, b]);
        assert_eq!(batch.dead_letters.len(), 1);
        let letter: DeadLetter = serde_json::from_str(&batch.dead_letters[0]).expect("json");
        assert_eq!(letter.payload, "not json");
        assert_eq!(letter.worker_id, "w1");
        assert!(letter.reason.contains("not a valid message envelope"));
    }

    #[test]
    fn event_lists_the_ids_in_consumption_order() {
        let (a, b) = (envelope("a"), envelope("b"));
        let batch = Batch::parse(vec![a.to_json(), b.to_json()], "w", false, 1 << 14);
        let event = batch.event("w", 2, Utc::now());
        assert_eq!(event.message_ids, vec![a.id, b.id]);
        assert_eq!(event.size, 2);
        assert_eq!(event.batch_id, batch.id);
    }
}
