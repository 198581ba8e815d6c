//! Where each message's time went in an `e2e` run, from the `batch_events` the workers publish.
//!
//! Every event names its messages and carries `taken_at` (the worker had the batch and began
//! to insert) and `committed_at` (PostgreSQL confirmed the commit); the event itself is
//! published by the script that counts the batch, so its arrival is when the batch was
//! recorded. With each message's `created_at` (when the ingest API accepted it) that splits
//! POST → recorded into three stages:
//!
//! - **queue**: `created_at` → `taken_at`: waiting in `pending_messages` for a worker (and
//!   for the batch to fill, when `worker.batch_max_wait_ms` is set);
//! - **insert**: `taken_at` → `committed_at`: the lease check, the insert and the commit;
//! - **record**: `committed_at` → the event's arrival: counting the batch in Redis and
//!   publishing it.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use sluice_proto::events::BatchEvent;
use uuid::Uuid;

use sluice_client::summary::LatencyPercentiles;

/// The moments of one message's batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchTimes {
    /// The worker had the batch.
    pub taken_at: Option<DateTime<Utc>>,
    /// PostgreSQL confirmed the commit.
    pub committed_at: DateTime<Utc>,
    /// The event arrived here.
    pub received_at: DateTime<Utc>,
}

/// A subscription to `batch_events` that records every message's batch times.
pub struct Listener {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<HashMap<Uuid, BatchTimes>>,
}

impl Listener {
    /// Subscribes to `channel`; returns once the subscription is in place, so no event
    /// published after it is missed.
    pub async fn start(redis_url: &str, channel: &str) -> anyhow::Result<Self> {
        let mut pubsub = redis::Client::open(redis_url)?
            .get_async_pubsub()
            .await
            .context("subscribing to batch events")?;
        pubsub.subscribe(channel).await?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut times = HashMap::new();
            let mut messages = pubsub.into_on_message();
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(message) => record(&mut times, message.get_payload_bytes()),
                        None => break,
                    },
                    _ = &mut stopped => break,
                }
            }
            times
        });
        Ok(Self { stop, task })
    }

    /// Stops listening; returns each message's batch times.
    pub async fn finish(self) -> anyhow::Result<HashMap<Uuid, BatchTimes>> {
        let _ = self.stop.send(());
        Ok(self.task.await?)
    }
}

fn record(times: &mut HashMap<Uuid, BatchTimes>, payload: &[u8]) {
    let received_at = Utc::now();
    let Ok(event) = serde_json::from_slice::<BatchEvent>(payload) else {
        return;
    };
    let batch = BatchTimes {
        taken_at: event.taken_at,
        committed_at: event.committed_at,
        received_at,
    };
    for id in event.message_ids {
        times.insert(id, batch);
    }
}

/// The per-stage percentiles of a run, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Stages {
    /// Messages the breakdown covers (those whose batch event arrived).
    pub messages: u64,
    /// POST → commit as the worker saw it (`committed_at − created_at`).
    pub commit: Option<LatencyPercentiles>,
    /// `created_at` → `taken_at`.
    pub queue: Option<LatencyPercentiles>,
    /// `taken_at` → `committed_at`.
    pub insert: Option<LatencyPercentiles>,
    /// `committed_at` → the event's arrival.
    pub record: Option<LatencyPercentiles>,
}

/// The breakdown of the messages in `created` (id → `created_at`) found in `times`.
pub fn breakdown(created: &[(Uuid, DateTime<Utc>)], times: &HashMap<Uuid, BatchTimes>) -> Stages {
    let ms = |from: DateTime<Utc>, to: DateTime<Utc>| {
        (to - from).num_microseconds().unwrap_or(0) as f64 / 1_000.0
    };
    let (mut commit, mut queue, mut insert, mut record) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, created_at) in created {
        let Some(batch) = times.get(id) else { continue };
        commit.push(ms(*created_at, batch.committed_at));
        record.push(ms(batch.committed_at, batch.received_at));
        if let Some(taken_at) = batch.taken_at {
            queue.push(ms(*created_at, taken_at));
            insert.push(ms(taken_at, batch.committed_at));
        }
    }
    Stages {
        messages: commit.len() as u64,
        commit: LatencyPercentiles::of(&commit),
        queue: LatencyPercentiles::of(&queue),
        insert: LatencyPercentiles::of(&insert),
        record: LatencyPercentiles::of(&record),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).expect("in range")
    }

    #[test]
    fn each_message_is_split_at_its_batch_times() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let batch = BatchTimes {
            taken_at: Some(at(10)),
            committed_at: at(14),
            received_at: at(15),
        };
        let times = HashMap::from([(a, batch), (b, batch)]);
        // c's event never arrived: it is left out, not counted as zero.
        let stages = breakdown(&[(a, at(0)), (b, at(8)), (c, at(9))], &times);
        assert_eq!(stages.messages, 2);
        // The quantiles come from a histogram of three significant digits.
        let close = |got: f64, want: f64| {
            assert!((got - want).abs() <= want / 1_000.0, "{got} is not {want}");
        };
        let queue = stages.queue.expect("two samples");
        close(queue.p50, 2.0);
        close(queue.p99, 10.0);
        close(stages.insert.expect("samples").p99, 4.0);
        close(stages.record.expect("samples").p99, 1.0);
        close(stages.commit.expect("samples").p99, 14.0);
    }

    #[test]
    fn events_are_read_as_the_workers_publish_them() {
        let id = Uuid::now_v7();
        let payload = serde_json::json!({
            "batch_id": Uuid::now_v7(), "worker_id": "w", "size": 1, "inserted": 1,
            "taken_at": "2026-11-29T10:00:00.010Z", "committed_at": "2026-11-29T10:00:00.014Z",
            "message_ids": [id],
        });
        let mut times = HashMap::new();
        record(&mut times, payload.to_string().as_bytes());
        record(&mut times, b"not json");
        let batch = times.get(&id).expect("recorded");
        assert_eq!(
            (batch.committed_at - batch.taken_at.expect("present")).num_milliseconds(),
            4
        );
        assert_eq!(times.len(), 1);
    }
}
