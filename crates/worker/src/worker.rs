//! The batching loop.
//!
//! One step ([`Worker::try_execute_task`]) takes a batch into the processing list, inserts it
//! in PostgreSQL, and records it in Redis; tests drive steps one at a time. [`Worker::run`]
//! repeats steps until shutdown, retrying failures with capped exponential backoff and jitter,
//! and logging each dependency's state changes once rather than every retry.

use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use sluice_core::backoff::Backoff;
use sluice_core::settings::{Settings, WorkerSettings};
use sluice_core::{CancellationToken, connect, schema};
use tokio::time::Instant;

use crate::batch::Batch;
use crate::queue::{Queue, Record};
use crate::store::{self, StoreError};

/// First retry delay after a failure.
const RETRY_BASE: Duration = Duration::from_millis(100);
/// Longest retry delay.
const RETRY_CAP: Duration = Duration::from_secs(5);
/// Pause between polls for more messages while a batch waits to fill.
const FILL_POLL: Duration = Duration::from_millis(1);

/// A step failed; the batch in hand (if any) stays in the processing list and is retried.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Redis failed or timed out.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// PostgreSQL failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] StoreError),
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing arrived within `idle_poll_ms`.
    Idle,
    /// A batch was committed and recorded.
    Committed {
        /// Entries taken from the queue.
        size: usize,
        /// Rows added to PostgreSQL.
        inserted: u64,
    },
}

/// Whether each dependency worked last time, so outages are logged once per change.
#[derive(Debug, Default)]
struct DependencyLog {
    redis_down: bool,
    postgres_down: bool,
}

impl DependencyLog {
    fn failed(&mut self, error: &StepError) {
        let (flag, name) = match error {
            StepError::Redis(_) => (&mut self.redis_down, "Redis"),
            StepError::Postgres(_) => (&mut self.postgres_down, "PostgreSQL"),
        };
        if !*flag {
            *flag = true;
            tracing::warn!(%error, "{name} unavailable; keeping the batch and retrying with backoff");
        }
    }

    fn redis_ok(&mut self) {
        if std::mem::take(&mut self.redis_down) {
            tracing::info!("Redis is back");
        }
    }

    fn postgres_ok(&mut self) {
        if std::mem::take(&mut self.postgres_down) {
            tracing::info!("PostgreSQL is back");
        }
    }
}

/// A batching worker.
pub struct Worker {
    id: String,
    settings: WorkerSettings,
    queue: Queue,
    pool: Pool,
    /// The batch taken but not yet recorded. While it is set, no new message is taken.
    in_hand: Option<Batch>,
    /// Whether the processing list may hold entries `in_hand` does not know about (at start,
    /// or after a Redis error while taking): the next step re-reads it before taking more.
    resync: bool,
    log: DependencyLog,
}

impl Worker {
    /// A worker configured by `settings`; connects lazily.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let id = if settings.worker.id.is_empty() {
            default_worker_id()
        } else {
            settings.worker.id.clone()
        };
        let max_block = Duration::from_millis(settings.worker.idle_poll_ms);
        Ok(Self {
            queue: Queue::new(&settings.redis, &id, max_block)?,
            pool: connect::postgres_pool(&settings.postgres)?,
            settings: settings.worker.clone(),
            id,
            in_hand: None,
            resync: true,
            log: DependencyLog::default(),
        })
    }

    /// This worker's id; its processing list is `processing:<id>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The worker's Redis queue handle.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Creates or migrates the schema; safe while other workers do the same.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let mut client = self.pool.get().await?;
        schema::migrate(&mut client).await?;
        Ok(())
    }

    /// One step: take a batch (unless one is in hand), insert it, record it.
    pub async fn try_execute_task(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, StepError> {
        if self.in_hand.is_none() {
            let entries = if self.resync {
                let entries = self.queue.in_hand().await?;
                self.resync = false;
                if !entries.is_empty() {
                    tracing::info!(
                        count = entries.len(),
                        "resuming the batch left in the processing list"
                    );
                }
                entries
            } else {
                Vec::new()
            };
            let entries = if entries.is_empty() {
                match self.collect(shutdown).await {
                    Ok(entries) => entries,
                    Err(e) => {
                        self.resync = true;
                        return Err(e.into());
                    }
                }
            } else {
                entries
            };
            self.log.redis_ok();
            if entries.is_empty() {
                return Ok(Outcome::Idle);
            }
            self.in_hand = Some(Batch::parse(entries, &self.id));
        }
        self.commit_in_hand().await
    }

    /// Inserts and records the batch in hand, resuming wherever a previous attempt stopped.
    async fn commit_in_hand(&mut self) -> Result<Outcome, StepError> {
        let Some(batch) = self.in_hand.as_mut() else {
            return Ok(Outcome::Idle);
        };
        let (inserted, committed_at) = match batch.committed {
            Some(done) => done,
            None => {
                let envelopes: Vec<_> = batch.envelopes.iter().collect();
                let inserted = store::insert(&self.pool, &envelopes).await?;
                self.log.postgres_ok();
                let done = (inserted, Utc::now());
                batch.committed = Some(done);
                done
            }
        };
        let event = serde_json::to_string(&batch.event(&self.id, inserted, committed_at))
            .unwrap_or_default();
        let applied = self
            .queue
            .record(&Record {
                inserted,
                event: &event,
                dead_letters: &batch.dead_letters,
            })
            .await?;
        self.log.redis_ok();
        if !applied {
            tracing::debug!(batch_id = %batch.id, "batch was already recorded");
        }
        let size = batch.size;
        tracing::debug!(batch_id = %batch.id, size, inserted, "batch committed");
        self.in_hand = None;
        Ok(Outcome::Committed { size, inserted })
    }

    /// Takes up to `batch_max_size` messages: blocks up to `idle_poll_ms` for the first, then
    /// keeps taking until the batch is full or `batch_max_wait_ms` after the first arrived.
    ///
    /// The wait for stragglers polls with [`FILL_POLL`] sleeps instead of a short BLMOVE:
    /// Redis only checks blocked-client timeouts about every 100 ms (its `hz`), so a 5 ms
    /// BLMOVE could hold a lone message for 100 ms.
    async fn collect(&mut self, shutdown: &CancellationToken) -> redis::RedisResult<Vec<Vec<u8>>> {
        let max = self.settings.batch_max_size;
        let Some(first) = self
            .queue
            .wait_one(Duration::from_millis(self.settings.idle_poll_ms))
            .await?
        else {
            return Ok(Vec::new());
        };
        let deadline = Instant::now() + Duration::from_millis(self.settings.batch_max_wait_ms);
        let mut entries = Vec::with_capacity(max.min(4096));
        entries.push(first);
        while entries.len() < max {
            let want = max - entries.len();
            let more = self.queue.take(want).await?;
            let drained = more.len() < want;
            entries.extend(more);
            if !drained {
                continue;
            }
            let now = Instant::now();
            if now >= deadline || shutdown.is_cancelled() {
                break;
            }
            tokio::time::sleep((deadline - now).min(FILL_POLL)).await;
        }
        Ok(entries)
    }

    /// Runs steps until `shutdown` fires, then commits the batch in hand; if that cannot be
    /// done, gives it back to `pending_messages` (or, when even that fails, leaves it in the
    /// processing list). Nothing taken is ever dropped.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(worker_id = %self.id, processing = %self.queue.processing(), "worker starting");
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        while !shutdown.is_cancelled() {
            match self.migrate().await {
                Ok(()) => break,
                Err(e) => {
                    if backoff.attempts() == 0 {
                        tracing::warn!(error = %format!("{e:#}"), "cannot migrate the schema yet; retrying");
                    }
                    sleep_or_shutdown(backoff.next_delay(), &shutdown).await;
                }
            }
        }
        backoff.reset();
        let rate = tokio::spawn(crate::rate::refresh_periodically(
            self.queue.shared_connection(),
            self.queue.keys().clone(),
            shutdown.clone(),
        ));
        while !shutdown.is_cancelled() {
            match self.try_execute_task(&shutdown).await {
                Ok(_) => backoff.reset(),
                Err(e) => {
                    self.log.failed(&e);
                    if sleep_or_shutdown(backoff.next_delay(), &shutdown).await {
                        break;
                    }
                }
            }
        }
        self.finish().await;
        let _ = rate.await;
        tracing::info!(worker_id = %self.id, "worker stopped");
        Ok(())
    }

    /// Shutdown: one more attempt at the batch in hand, else hand it back.
    async fn finish(&mut self) {
        if self.in_hand.is_none() && !self.resync {
            return;
        }
        if self.in_hand.is_some() {
            match self.commit_in_hand().await {
                Ok(outcome) => {
                    tracing::info!(?outcome, "committed the batch in hand before exiting");
                    return;
                }
                Err(e) => tracing::warn!(%e, "cannot commit the batch in hand"),
            }
        }
        let committed = self.in_hand.as_ref().is_some_and(|b| b.committed.is_some());
        if committed {
            // PostgreSQL has the rows; requeueing would only make them count as duplicates.
            tracing::warn!(
                processing = %self.queue.processing(),
                "batch is in PostgreSQL but not yet counted; leaving it in the processing list"
            );
            return;
        }
        match self.queue.requeue().await {
            Ok(moved) => {
                tracing::info!(moved, "gave the uncommitted batch back to pending_messages")
            }
            Err(e) => tracing::error!(
                %e,
                processing = %self.queue.processing(),
                "cannot give the batch back; it stays in the processing list"
            ),
        }
    }
}

/// Sleeps `delay` unless shutdown comes first; returns whether shutdown came.
async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = shutdown.cancelled() => true,
    }
}

/// `<hostname>-<pid>-<random>`: unique per process, readable in `redis-cli KEYS processing:*`.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| {
            h.trim()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let suffix: u32 = rand::random();
    format!("{host}-{}-{:08x}", std::process::id(), suffix)
}
