//! Wait for persistence (`Prefer: wait=N`): a request that asks to wait registers its message
//! ids here before it pushes them, and answers once the workers' commit of every one of them is
//! announced on `batch_events`, or once the wait runs out.
//!
//! One Redis subscription per ingest process feeds every waiting request ([`listen`]); nothing
//! polls. The registry is bounded (`ingest.max_waiters`): past it, a request is answered as if
//! it had not asked to wait. Requests waiting for the same ids (retries of one
//! `Idempotency-Key`) each get their own answer. A waiter whose request goes away is removed
//! with it: the HTTP edge drops a request whose client hung up the moment its socket reads end
//! of stream or a reset (`sluice_http`), and shutdown releases them all, so nothing outlives
//! its request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::CancellationToken;
use sluice_proto::events::BatchEvent;
use tokio::sync::oneshot;
use uuid::Uuid;

/// What became of one message a request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// In PostgreSQL, committed at this time.
    Persisted(DateTime<Utc>),
    /// PostgreSQL refused it; it is in `dead_messages`.
    DeadLettered,
}

/// The ids requests wait for, each with the channels its outcome goes to: any number of
/// requests may wait for the same id (retries of one `Idempotency-Key`), each on its own.
#[derive(Debug)]
pub struct Waiters {
    pending: Mutex<Pending>,
    count: AtomicUsize,
    max: usize,
}

/// Per id, the requests waiting for it, each named by its registration's serial number.
#[derive(Debug, Default)]
struct Pending {
    by_id: HashMap<Uuid, Vec<(u64, oneshot::Sender<Fate>)>>,
    /// Channels in `by_id`: what the bound counts.
    channels: usize,
    next_serial: u64,
}

impl Waiters {
    /// An empty registry holding at most `max` waited-for ids, counted once per request.
    pub fn new(max: usize) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            count: AtomicUsize::new(0),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `ids`; `None` when they would not fit.
    pub fn register(self: &Arc<Self>, ids: &[Uuid]) -> Option<Registration> {
        let mut pending = self.lock();
        if pending.channels + ids.len() > self.max {
            return None;
        }
        pending.next_serial += 1;
        let serial = pending.next_serial;
        let receivers = ids
            .iter()
            .map(|id| {
                let (tx, rx) = oneshot::channel();
                pending.by_id.entry(*id).or_default().push((serial, tx));
                rx
            })
            .collect();
        pending.channels += ids.len();
        self.count.store(pending.channels, Ordering::Relaxed);
        Some(Registration {
            waiters: Arc::clone(self),
            serial,
            ids: ids.to_vec(),
            receivers,
        })
    }

    /// Ids waited for now, counted once per waiting request.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether no id is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves the waiters of one `batch_events` message.
    pub fn on_event(&self, payload: &[u8]) {
        if self.is_empty() {
            return;
        }
        let event: BatchEvent = match serde_json::from_slice(payload) {
            Ok(event) => event,
            Err(e) => return tracing::debug!(%e, "ignoring a batch event that does not parse"),
        };
        let persisted = Fate::Persisted(event.committed_at);
        let outcomes = event.message_ids.iter().map(|id| (id, persisted)).chain(
            event
                .dead_letter_ids
                .iter()
                .map(|id| (id, Fate::DeadLettered)),
        );
        self.resolve(outcomes);
    }

    /// Sends each outcome to every request waiting for its id.
    pub fn resolve<'a>(&self, outcomes: impl IntoIterator<Item = (&'a Uuid, Fate)>) {
        let mut pending = self.lock();
        for (id, outcome) in outcomes {
            if let Some(waiting) = pending.by_id.remove(id) {
                pending.channels -= waiting.len();
                for (_, tx) in waiting {
                    let _ = tx.send(outcome);
                }
            }
        }
        self.count.store(pending.channels, Ordering::Relaxed);
    }

    /// Releases every waiter: each answers as if its wait had run out.
    pub fn release_all(&self) {
        let mut pending = self.lock();
        pending.by_id.clear();
        pending.channels = 0;
        self.count.store(0, Ordering::Relaxed);
    }

    /// Removes what registration `serial` still waits for, and nobody else's.
    fn forget(&self, serial: u64, ids: &[Uuid]) {
        let mut pending = self.lock();
        for id in ids {
            let Some(waiting) = pending.by_id.get_mut(id) else {
                continue;
            };
            let before = waiting.len();
            waiting.retain(|(s, _)| *s != serial);
            let removed = before - waiting.len();
            if waiting.is_empty() {
                pending.by_id.remove(id);
            }
            pending.channels -= removed;
        }
        self.count.store(pending.channels, Ordering::Relaxed);
    }
}

/// The ids one request waits for; dropping it (answered, failed, or the client gone) removes
/// those still registered.
#[derive(Debug)]
pub struct Registration {
    waiters: Arc<Waiters>,
    serial: u64,
    ids: Vec<Uuid>,
    receivers: Vec<oneshot::Receiver<Fate>>,
}

impl Registration {
    /// The outcome of every id, in order, or `None` when `wait` ran out first (or the process
    /// is shutting down).
    pub async fn wait(&mut self, wait: Duration) -> Option<Vec<Fate>> {
        let all = futures_util::future::join_all(self.receivers.iter_mut());
        let outcomes = tokio::time::timeout(wait, all).await.ok()?;
        outcomes.into_iter().collect::<Result<Vec<_>, _>>().ok()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.waiters.forget(self.serial, &self.ids);
    }
}

/// Feeds `waiters` from `batch_events` until shutdown, then releases them all.
pub async fn listen(
    waiters: Arc<Waiters>,
    clients: sluice_core::connect::Subscriptions,
    channel: String,
    shutdown: CancellationToken,
) {
    let on_message = |_: &str, payload: &[u8]| waiters.on_event(payload);
    sluice_core::pubsub::listen(clients, &[channel], "batch events", on_message, shutdown).await;
    waiters.release_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(persisted: &[Uuid], dead: &[Uuid]) -> Vec<u8> {
        let event = BatchEvent {
            batch_id: Uuid::now_v7(),
            worker_id: "w".into(),
            size: (persisted.len() + dead.len()) as u64,
            inserted: persisted.len() as u64,
            taken_at: None,
            committed_at: Utc::now(),
            message_ids: persisted.to_vec(),
            dead_letter_ids: dead.to_vec(),
        };
        serde_json::to_vec(&event).expect("json")
    }

    #[tokio::test]
    async fn outcomes_reach_their_waiters_and_nothing_outlives_a_request() {
        let waiters = Arc::new(Waiters::new(3));
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let mut both = waiters.register(&ids[..2]).expect("fits");
        assert!(waiters.register(&ids[1..]).is_none(), "past the bound");
        let third = waiters.register(&ids[2..]).expect("fits");
        assert_eq!(waiters.len(), 3);
        drop(third);
        assert_eq!(waiters.len(), 2, "a dropped request forgets its ids");

        waiters.on_event(&event(&[ids[0]], &[ids[1]]));
        let outcomes = both
            .wait(Duration::from_secs(1))
            .await
            .expect("both resolved");
        assert!(matches!(outcomes[0], Fate::Persisted(_)));
        assert_eq!(outcomes[1], Fate::DeadLettered);
        assert!(waiters.is_empty());

        let mut late = waiters.register(&ids[2..]).expect("fits");
        let mut retry = waiters.register(&ids[2..]).expect("fits");
        drop(waiters.register(&ids[2..]).expect("fits"));
        assert_eq!(
            waiters.len(),
            2,
            "each request counts; a dropped one only itself"
        );
        waiters.on_event(&event(&[], &[ids[2]]));
        assert_eq!(
            retry.wait(Duration::from_secs(1)).await,
            Some(vec![Fate::DeadLettered]),
            "a second request for the same id gets its own answer"
        );
        assert_eq!(
            late.wait(Duration::from_secs(1)).await,
            Some(vec![Fate::DeadLettered]),
            "and so does the first"
        );
        let mut late = waiters.register(&ids[2..]).expect("fits");
        assert_eq!(late.wait(Duration::from_millis(50)).await, None, "ran out");
        waiters.release_all();
        assert_eq!(
            late.wait(Duration::from_secs(5)).await,
            None,
            "released at shutdown"
        );
    }
}
