//! The batching loop.
//!
//! One step ([`Worker::try_execute_task`]) takes a batch into the processing list, inserts it
//! in PostgreSQL, and records it in Redis; tests drive steps one at a time. [`Worker::run`]
//! repeats steps until shutdown, retrying failures with capped exponential backoff and jitter,
//! and logging each dependency's state changes once rather than every retry.

use sluice_core::shutdown::joined;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use sluice_core::metric;
use sluice_core::partitions::Plan;
use sluice_core::primary::{self, Server};
use sluice_core::settings::{Replication, Settings, WorkerSettings};
use sluice_core::upkeep::Upkeep;
use sluice_core::{CancellationToken, connect, schema};
use sluice_proto::backoff::Backoff;
use sluice_proto::message::Envelope;
use tokio::time::Instant;

use tokio::sync::watch;

use crate::batch::Batch;
use crate::fill::Intake;
use crate::queue::{Queue, Record};
use crate::recheck::Recent;
use crate::registry;
use crate::store::{self, Lease, StoreError};

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
    /// Fewer replicas than `redis.ack_replicas` confirmed this worker's writes in time.
    #[error(
        "Redis: {confirmed} of the {wanted} replicas required confirmed the worker's writes in time"
    )]
    NotReplicated {
        /// Replicas that confirmed.
        confirmed: u64,
        /// `redis.ack_replicas`.
        wanted: u32,
    },
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing arrived within `idle_poll_ms`.
    Idle,
    /// A batch was committed and recorded.
    Committed {
        /// Entries taken from the queue.
        size: usize,
        /// Rows counted in `total_messages`: rows added, plus (for a resumed batch) rows an
        /// earlier, uncounted insert had added.
        inserted: u64,
    },
    /// A peer presumed this worker dead and revoked its lease: nothing was inserted, the
    /// batch was dropped from memory (it stays in a processing list), and the worker
    /// registered again.
    Fenced,
}

/// Whether each dependency worked last time, so outages are logged once per change. The
/// PostgreSQL flag is shared with the heartbeat task, which reports it.
#[derive(Debug, Default)]
struct DependencyLog {
    redis_down: bool,
    postgres_down: Arc<AtomicBool>,
}

impl DependencyLog {
    fn failed(&mut self, error: &StepError) {
        let was_down = match error {
            StepError::Redis(_) | StepError::NotReplicated { .. } => {
                std::mem::replace(&mut self.redis_down, true)
            }
            StepError::Postgres(_) => self.postgres_down.swap(true, Ordering::Relaxed),
        };
        let text = error.to_string();
        let (name, check) = match error {
            StepError::Redis(_) | StepError::NotReplicated { .. } => {
                metric::redis_error("batch");
                (connect::redis_name(), connect::redis_hint(&text))
            }
            StepError::Postgres(_) => {
                metric::postgres_error("batch");
                (connect::postgres_name(), connect::postgres_hint(&text))
            }
        };
        if !was_down {
            tracing::warn!(
                error = text,
                check,
                "{name} unavailable; keeping the batch and retrying with backoff"
            );
        }
    }

    fn redis_ok(&mut self) {
        if std::mem::take(&mut self.redis_down) {
            tracing::info!("{} is back", connect::redis_name());
        }
    }

    fn postgres_ok(&mut self) {
        if self.postgres_down.swap(false, Ordering::Relaxed) {
            tracing::info!("{} is back", connect::postgres_name());
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
    /// after a Redis error while taking, after a reclaim or after being fenced): the next step
    /// re-reads it, as a resumed batch, before taking more.
    resync: bool,
    /// The lease inserts are fenced by; `None` until registered, and again after being fenced.
    lease: Option<Lease>,
    /// Peers the heartbeat found dead, published by the heartbeat task.
    dead_peers: watch::Receiver<Vec<String>>,
    dead_peers_tx: watch::Sender<Vec<String>>,
    log: DependencyLog,
    status: Arc<crate::http::Status>,
    /// The partitions of `messages` to keep (`postgres.partition_hours` and friends).
    partitions: Plan,
    /// What this worker has persisted, reported by its heartbeats.
    output: Arc<registry::Output>,
    /// The rate of [`Self::heartbeat`]'s reports (the heartbeat task keeps its own).
    output_rate: registry::OutputRate,
    /// `redis.ack_replicas` and `redis.ack_timeout_ms`, when acknowledgements are on.
    acks: Option<(u32, Duration)>,
    /// What this worker takes a second, which decides whether a batch waits to fill.
    intake: Intake,
    /// The batches committed last, checked again on another server.
    recent: Recent,
    /// `postgres.replication`, checked against each server reached.
    replication: Replication,
    /// The count of servers reached ([`primary::PrimaryWatch::changes`]) when every batch of
    /// `recent` was last known to be on the current one: until it moves, a step need not look.
    recent_checked_at: u64,
}

impl Worker {
    /// A worker configured by `settings`; connects lazily.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let id = if settings.worker.id.is_empty() {
            sluice_core::cli::process_id()
        } else {
            settings.worker.id.clone()
        };
        let max_block = Duration::from_millis(settings.worker.idle_poll_ms);
        let (dead_peers_tx, dead_peers) = watch::channel(Vec::new());
        Ok(Self {
            queue: Queue::new(&settings.redis, &id, max_block)?,
            pool: connect::postgres_pool(&settings.postgres)?,
            settings: settings.worker.clone(),
            id,
            in_hand: None,
            resync: true,
            lease: None,
            dead_peers,
            dead_peers_tx,
            log: DependencyLog::default(),
            status: Arc::default(),
            partitions: Plan::from_settings(&settings.postgres),
            output: Arc::default(),
            output_rate: registry::OutputRate::default(),
            acks: settings.redis.acks(),
            intake: Intake::default(),
            recent: Recent::new(settings.worker.recheck_max_bytes),
            replication: settings.postgres.replication,
            recent_checked_at: 0,
        })
    }

    /// What `/ready` reports, kept current by the heartbeat while [`Self::run`] runs.
    pub fn status(&self) -> Arc<crate::http::Status> {
        Arc::clone(&self.status)
    }

    fn dead_after(&self) -> Duration {
        Duration::from_millis(self.settings.dead_after_ms)
    }

    /// Writes one full heartbeat now and notes the dead peers it reports (the heartbeat task
    /// does this periodically in [`Worker::run`]).
    pub async fn heartbeat(&mut self) -> redis::RedisResult<Vec<String>> {
        let mut conn = self.queue.shared_connection();
        let output = self
            .output_rate
            .report(&self.output, tokio::time::Instant::now());
        let processing = self.queue.processing().to_owned();
        let beat = registry::Beat {
            processing: &processing,
            worker_id: &self.id,
            dead_after_ms: self.settings.dead_after_ms,
            postgres_up: !self.log.postgres_down.load(Ordering::Relaxed),
            output: &output,
            postgres_server: &self.status.primary.registry_field(),
        };
        let reply = registry::beat(&mut conn, self.queue.keys(), &beat).await?;
        self.dead_peers_tx.send_replace(reply.dead_peers.clone());
        Ok(reply.dead_peers)
    }

    /// The lease, registering one first if needed.
    async fn lease(&mut self) -> Result<Lease, StoreError> {
        if let Some(lease) = &self.lease {
            return Ok(lease.clone());
        }
        let lease = store::register(&self.pool, &self.id).await?;
        self.lease = Some(lease.clone());
        Ok(lease)
    }

    /// Takes over the batches of the peers the heartbeat found dead: revokes each one's lease
    /// (after which it can commit nothing), then moves its processing list into this worker's.
    /// The moved messages become this worker's next, resumed, batch.
    pub async fn reclaim_dead_peers(&mut self) -> Result<u64, StepError> {
        let dead = self.dead_peers.borrow_and_update().clone();
        let mut total = 0;
        for peer in dead {
            store::revoke(&self.pool, &peer).await?;
            match self.queue.claim(&peer, self.dead_after()).await? {
                Some(moved) => {
                    tracing::warn!(peer = %peer, moved, "reclaimed the batch of a worker presumed dead");
                    total += moved;
                    self.resync = true;
                }
                None => tracing::info!(peer = %peer, "worker presumed dead is back; leaving it"),
            }
        }
        Ok(total)
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
    ) -> Result<Step, StepError> {
        if self.in_hand.is_none() {
            if self.dead_peers.has_changed().unwrap_or(false) {
                self.reclaim_dead_peers().await?;
            }
            self.restore_elsewhere().await?;
            let letter_max = self.settings.dead_letter_max_bytes;
            let mut resumed = Vec::new();
            if self.resync {
                resumed = self.queue.in_hand().await?;
                self.resync = false;
                if !resumed.is_empty() {
                    tracing::info!(
                        count = resumed.len(),
                        "resuming the batch left in the processing list"
                    );
                }
            }
            let batch = if resumed.is_empty() {
                let entries = match self.collect(shutdown).await {
                    Ok(entries) => entries,
                    Err(e) => {
                        // Some messages may have moved before the error: re-read the list.
                        self.resync = true;
                        return Err(e.into());
                    }
                };
                if entries.is_empty() {
                    self.log.redis_ok();
                    return Ok(Step::Idle);
                }
                Batch::parse_off_thread(entries, &self.id, false, letter_max).await
            } else {
                Batch::parse_off_thread(resumed, &self.id, true, letter_max).await
            };
            self.log.redis_ok();
            self.in_hand = Some(batch);
        }
        self.commit_in_hand().await
    }

    /// Inserts and records the batch in hand, resuming wherever a previous attempt stopped.
    async fn commit_in_hand(&mut self) -> Result<Step, StepError> {
        if self.in_hand.as_ref().is_some_and(|b| b.committed.is_none())
            && let Some(step) = self.insert_in_hand().await?
        {
            return Ok(step);
        }
        let Some(batch) = self.in_hand.as_mut() else {
            return Ok(Step::Idle);
        };
        let Some((inserted, committed_at)) = batch.committed else {
            return Ok(Step::Idle);
        };
        let event = serde_json::to_string(&batch.event(&self.id, inserted, committed_at))
            .unwrap_or_default();
        let latency = batch.latency_histogram(committed_at);
        let applied = self
            .queue
            .record(&Record {
                inserted,
                event: &event,
                dead_letters: &batch.dead_letters,
                latency: &latency,
                dead_letters_max: self.settings.dead_letters_max,
            })
            .await?;
        self.log.redis_ok();
        if let Err(e) = self.confirm_replicated(false).await {
            // Unconfirmed, the record may be lost in a failover, and the batch back in the
            // processing list: look there before taking more.
            self.resync = true;
            self.in_hand = None;
            return Err(e);
        }
        let Some(batch) = self.in_hand.as_mut() else {
            return Ok(Step::Idle);
        };
        if applied {
            batch.record_metrics(inserted, committed_at);
            self.output.add(inserted);
        } else {
            tracing::info!(
                batch_id = %batch.id,
                "batch already recorded, or taken over by a peer while this worker was away"
            );
        }
        let size = batch.size;
        tracing::debug!(batch_id = %batch.id, size, inserted, "batch committed");
        if let Some(batch) = self.in_hand.take()
            && let Some(server) = batch.committed_on
        {
            if !self.status.primary.is_current(&server) {
                // Committed on a server the probe has already left: look at the next step.
                self.recent_checked_at = u64::MAX;
            }
            self.recent.keep(server, batch.envelopes);
        }
        Ok(Step::Committed { size, inserted })
    }

    /// Inserts the batch in hand into PostgreSQL and marks it committed; `Some` ends the step
    /// there (fenced, or nothing in hand).
    async fn insert_in_hand(&mut self) -> Result<Option<Step>, StepError> {
        // Nothing goes into PostgreSQL that a failover could put back in the queue (the
        // take), or back in the processing list (the last batch's record).
        self.confirm_replicated(true).await?;
        let lease = self.lease().await?;
        let Some(batch) = self.in_hand.as_ref() else {
            return Ok(Some(Step::Idle));
        };
        let envelopes: Vec<_> = batch.envelopes.iter().collect();
        let started = std::time::Instant::now();
        let inserted = store::insert_isolating(&self.pool, &lease, &envelopes, batch.resumed).await;
        let (done, rejected) = match inserted {
            Ok(done) => done,
            Err(e) => {
                // A statement that failed on its way (the server died, or failed over, during
                // the commit) may have committed all the same: the retry counts the batch's
                // rows already there, as for a batch read back.
                if let (StoreError::Query(_), Some(batch)) = (&e, self.in_hand.as_mut()) {
                    batch.resumed = true;
                }
                return Err(e.into());
            }
        };
        metrics::histogram!(metric::BATCH_INSERT_DURATION).record(started.elapsed().as_secs_f64());
        self.log.postgres_ok();
        if let Some(server) = &done.server {
            self.reached(server).await;
        }
        let Some(batch) = self.in_hand.as_mut() else {
            return Ok(Some(Step::Idle));
        };
        if !done.leased {
            tracing::warn!(
                worker_id = %self.id,
                "a peer presumed this worker dead and took over its batch; registering again"
            );
            self.lease = None;
            self.in_hand = None;
            self.resync = true;
            return Ok(Some(Step::Fenced));
        }
        batch.reject(rejected, &self.id);
        batch.committed = Some((done.inserted + done.existing, sluice_core::clock::now()));
        batch.committed_on = done.server;
        Ok(None)
    }

    /// Notes the server that committed a batch; when it is another one than before, says
    /// whether it gives the replication `postgres.replication` wants.
    async fn reached(&self, server: &Server) {
        if self
            .status
            .primary
            .observe(server, sluice_core::clock::now())
            .is_some()
        {
            self.check_replication().await;
        }
    }

    /// Asks the server what it gives commits and warns when `postgres.replication` wants
    /// otherwise (or when it is a standby).
    async fn check_replication(&self) {
        let Some(found) = primary::probe(&self.pool).await else {
            return;
        };
        match primary::judge(self.replication, &found) {
            Some(warning) => tracing::warn!(server = %found.server, "{warning}"),
            None if self.replication == Replication::Unchecked => {}
            None => tracing::info!(
                server = %found.server,
                synchronous_commit = %found.synchronous_commit,
                synchronous_standby_names = %found.synchronous_standby_names,
                "PostgreSQL replication as postgres.replication wants"
            ),
        }
    }

    /// Once the worker reaches another server than the one that committed some of its last
    /// batches, inserts them again there, skipping what it has (see [`Recent`]): consecutive
    /// batches together, up to `batch_max_size` messages a statement. Looks only when the
    /// count of servers reached moved since it last found every batch on the current one.
    async fn restore_elsewhere(&mut self) -> Result<(), StepError> {
        let changes = self.status.primary.changes();
        if changes == self.recent_checked_at {
            return Ok(());
        }
        let Some(current) = self.status.primary.current() else {
            return Ok(());
        };
        let (mut at, mut checked, mut restored) = (0, 0, 0);
        while at < self.recent.len() {
            let run = self
                .recent
                .run_elsewhere(at, &current, self.settings.batch_max_size);
            if run.is_empty() {
                at += 1;
                continue;
            }
            let lease = self.lease().await?;
            let envelopes = self.recent.envelopes(run.clone());
            let done = store::restore(&self.pool, &lease, &envelopes).await?;
            if !done.leased {
                // Registered again at the next step, which looks again.
                self.lease = None;
                return Ok(());
            }
            if done.server.as_ref() != Some(&current) {
                // Another change meanwhile: the next step looks again.
                return Ok(());
            }
            checked += envelopes.len();
            restored += done.inserted;
            self.recent.moved(run.clone(), &current);
            at = run.end;
        }
        self.recent_checked_at = changes;
        metrics::counter!(metric::ROWS_RESTORED).increment(restored);
        if restored > 0 {
            tracing::warn!(server = %current, checked, restored, "checked the last batches on the new server: inserted again the rows it lacked");
        } else if checked > 0 {
            tracing::info!(server = %current, checked, restored, "checked the last batches on the new server");
        }
        Ok(())
    }

    /// With `redis.ack_replicas`, waits until that many replicas hold every write this worker
    /// made (see [`Queue::confirm`]; `touch` for writes made by another connection). Unconfirmed,
    /// the worker re-reads its processing list before its next step.
    async fn confirm_replicated(&mut self, touch: bool) -> Result<(), StepError> {
        let Some((wanted, timeout)) = self.acks else {
            return Ok(());
        };
        let confirmed = match self.queue.confirm(wanted, timeout, touch).await {
            Ok(confirmed) => confirmed,
            Err(e) => {
                self.resync = true;
                return Err(e.into());
            }
        };
        if confirmed < u64::from(wanted) {
            self.resync = true;
            self.in_hand = None;
            return Err(StepError::NotReplicated { confirmed, wanted });
        }
        Ok(())
    }

    /// Takes up to `batch_max_size` messages: what is waiting, or else blocks up to
    /// `idle_poll_ms` for the first (at once when the last wait found the queue empty); then
    /// keeps taking until the batch is full or `batch_max_wait_ms` after the first arrived,
    /// and, when the intake is fast enough, until it holds `batch_fill_size` (see [`fill`]).
    ///
    /// What is waiting is taken by the take script, not BLMOVE: the script may run when Redis
    /// is full (`allow-oom`), BLMOVE may not, and a full Redis is one whose queue must drain.
    /// The wait for stragglers polls with [`FILL_POLL`] sleeps instead of a short BLMOVE:
    /// Redis only checks blocked-client timeouts about every 100 ms (its `hz`), so a 5 ms
    /// BLMOVE could hold a lone message for 100 ms.
    ///
    /// [`fill`]: crate::fill
    async fn collect(&mut self, shutdown: &CancellationToken) -> redis::RedisResult<Vec<Vec<u8>>> {
        let max = self.settings.batch_max_size;
        if shutdown.is_cancelled() {
            return Ok(Vec::new());
        }
        let mut entries = if self.queue.idle() {
            Vec::new()
        } else {
            self.queue.take(max, 0).await?
        };
        // A message BLMOVE moved alone is counted in `in_flight` by the next take.
        let mut uncounted = 0;
        if entries.is_empty() {
            let wait = Duration::from_millis(self.settings.idle_poll_ms);
            let Some(first) = self.queue.wait_one(wait).await? else {
                self.intake.record(0, Instant::now());
                return Ok(Vec::new());
            };
            entries.push(first);
            uncounted = 1;
        }
        let start = Instant::now();
        let fixed = start + Duration::from_millis(self.settings.batch_max_wait_ms);
        // A sender waiting for its commit (`Prefer: wait`) is not kept waiting for a fill.
        let awaited = |taken: &[Vec<u8>]| taken.iter().any(|e| Envelope::json_is_awaited(e));
        let mut fill = self.intake.fill(
            self.settings.batch_fill_size.min(max),
            Duration::from_millis(self.settings.batch_fill_max_wait_ms),
        );
        if awaited(&entries) {
            fill = None;
        }
        while entries.len() < max {
            let want = max - entries.len();
            let more = self
                .queue
                .take(want, std::mem::take(&mut uncounted))
                .await?;
            let drained = more.len() < want;
            if awaited(&more) {
                fill = None;
            }
            entries.extend(more);
            if !drained {
                continue;
            }
            let now = Instant::now();
            // The fixed wait polls every FILL_POLL; the fill, when the rest should be in.
            let fixed_pause = (now < fixed).then(|| (fixed - now).min(FILL_POLL));
            let fill_pause = fill
                .filter(|f| entries.len() < f.size && now < start + f.within)
                .map(|f| {
                    f.pause(entries.len(), FILL_POLL)
                        .min(start + f.within - now)
                });
            let pause = [fixed_pause, fill_pause].into_iter().flatten().min();
            match pause {
                Some(pause) if !shutdown.is_cancelled() => tokio::time::sleep(pause).await,
                _ => break,
            }
        }
        self.intake.record(entries.len(), Instant::now());
        Ok(entries)
    }

    /// Runs steps until `shutdown` fires, then commits the batch in hand. If that cannot be
    /// done (PostgreSQL or Redis down), the batch stays in the processing list and the worker
    /// stays in the registry, so a peer reclaims it once the heartbeat is stale (or this worker
    /// resumes it when restarted with the same id). Nothing taken is ever dropped.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(worker_id = %self.id, processing = %self.queue.processing(), "worker starting");
        let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP);
        while !shutdown.is_cancelled() {
            match self.prepare().await {
                Ok(()) => break,
                Err(e) => {
                    self.probe_before_start(&e).await;
                    if backoff.attempts() == 0 {
                        let error = format!("{e:#}");
                        // Preparing needs both: the hint names the hop the error is about.
                        let check = connect::postgres_hint(&error)
                            .filter(|_| error.contains("PostgreSQL"))
                            .or_else(|| connect::redis_hint(&error));
                        tracing::warn!(error, check, "cannot start yet; retrying");
                    }
                    sluice_core::shutdown::sleep_unless(backoff.next_delay(), &shutdown).await;
                }
            }
        }
        backoff.reset();
        let background = self.spawn_background(&shutdown);
        while !shutdown.is_cancelled() {
            match self.try_execute_task(&shutdown).await {
                Ok(_) => backoff.reset(),
                Err(e) => {
                    self.log.failed(&e);
                    if !sluice_core::shutdown::sleep_unless(backoff.next_delay(), &shutdown).await {
                        break;
                    }
                }
            }
        }
        let [heartbeat, upkeep, maintenance] = background;
        joined("heartbeat", heartbeat).await;
        if self.finish(&shutdown).await {
            self.leave().await;
        } else if self.in_hand.is_some() {
            tracing::warn!(
                processing = %self.queue.processing(),
                "leaving the batch in hand in the processing list; a peer will reclaim it"
            );
        } else {
            // Nothing in hand, but Redis could not be asked what the list holds.
            tracing::warn!(
                processing = %self.queue.processing(),
                "cannot check the processing list (Redis unreachable); a peer will reclaim \
                 anything it holds"
            );
        }
        joined("upkeep", upkeep).await;
        joined("partition maintenance", maintenance).await;
        tracing::info!(worker_id = %self.id, "worker stopped");
        Ok(())
    }

    /// The tasks beside the batching loop: the heartbeat (which also takes the stats upkeep
    /// lease when it is free), the upkeep while this worker holds it, and partition
    /// maintenance. Each stops when `shutdown` fires.
    fn spawn_background(&self, shutdown: &CancellationToken) -> [tokio::task::JoinHandle<()>; 3] {
        let (upkeep_gate, upkeep_held) = tokio::sync::watch::channel(false);
        let heartbeat = tokio::spawn(registry::beat_periodically(
            self.queue.shared_connection(),
            registry::Heartbeat {
                keys: self.queue.keys().clone(),
                worker_id: self.id.clone(),
                dead_after: self.dead_after(),
                postgres: registry::PostgresView {
                    pool: self.pool.clone(),
                    loop_down: Arc::clone(&self.log.postgres_down),
                    status: Arc::clone(&self.status),
                },
                status: Arc::clone(&self.status),
                upkeep: upkeep_gate,
                output: Arc::clone(&self.output),
            },
            self.dead_peers_tx.clone(),
            shutdown.clone(),
        ));
        let upkeep = Upkeep::new(
            self.queue.keys().clone(),
            self.id.clone(),
            self.dead_after(),
        )
        .wanting_replicas(self.acks.map_or(0, |(wanted, _)| wanted));
        let upkeep = tokio::spawn(upkeep.run(
            self.queue.shared_connection(),
            Some(upkeep_held),
            shutdown.clone(),
        ));
        let maintenance = tokio::spawn(crate::maintenance::maintain_periodically(
            self.pool.clone(),
            self.partitions,
            shutdown.clone(),
        ));
        [heartbeat, upkeep, maintenance]
    }

    /// Start-up: schema, lease, and a first heartbeat before anything is taken.
    /// Until its first heartbeat, `/ready` learns from here which dependency keeps the worker
    /// from starting: Redis answers a PING or not, and PostgreSQL is down when the failure was
    /// PostgreSQL's; so a worker waiting for PostgreSQL does not report Redis down.
    async fn probe_before_start(&self, error: &anyhow::Error) {
        let mut conn = self.queue.shared_connection();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut conn);
        let timeout = self.queue.response_timeout();
        let redis_up = matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_)));
        let postgres_failed = format!("{error:#}").contains("PostgreSQL");
        self.status.redis_up.store(redis_up, Ordering::Relaxed);
        self.status
            .postgres_up
            .store(!postgres_failed, Ordering::Relaxed);
    }

    async fn prepare(&mut self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let postgres = format!(
            "cannot prepare the schema and lease in {}",
            connect::postgres_name()
        );
        let redis = format!(
            "cannot write the first heartbeat to {}",
            connect::redis_name()
        );
        self.migrate().await.context(postgres.clone())?;
        // Without its partitions, rows go to messages_default: nothing is lost if this fails.
        if let Err(e) = crate::maintenance::run_once(&self.pool, &self.partitions).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot create the partitions of messages yet");
        }
        self.lease().await.context(postgres)?;
        self.check_replication().await;
        self.heartbeat().await.context(redis)?;
        Ok(())
    }

    /// Shutdown: one more attempt at the batch in hand (or at whatever the processing list
    /// holds), taking nothing new. Returns whether the processing list is known to be empty.
    async fn finish(&mut self, shutdown: &CancellationToken) -> bool {
        if self.in_hand.is_some() || self.resync {
            match self.try_execute_task(shutdown).await {
                Ok(Step::Committed { size, inserted }) => {
                    tracing::info!(size, inserted, "committed the batch in hand before exiting");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%e, "cannot commit the batch in hand"),
            }
        }
        self.in_hand.is_none() && !self.resync
    }

    /// Leaves the registry and gives up the lease, after a clean shutdown.
    async fn leave(&mut self) {
        if let Err(e) = self.queue.unregister().await {
            tracing::warn!(%e, "cannot leave the worker registry; peers will drop this worker after dead_after_ms");
        }
        if let Err(e) = store::revoke(&self.pool, &self.id).await {
            tracing::debug!(%e, "cannot give up the lease");
        }
    }
}
