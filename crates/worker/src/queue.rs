//! The worker's side of Redis: taking messages into its processing list, recording committed
//! batches, and giving messages back.
//!
//! A message is never held in process memory alone: it moves atomically from
//! `pending_messages` into `processing:<worker_id>` (BLMOVE, or LMOVE in a script) and leaves
//! that list only in the same atomic step that counts it as persisted.

use std::time::Duration;

use redis::RedisResult;
use sluice_core::connect::RedisConnection;
use sluice_core::settings::RedisSettings;
use sluice_core::{Keys, connect, lua};

pub use crate::lua::commit::Record;
use crate::lua::{claim::Claim, commit::Commit, take::Take, unregister::Unregister};

/// One worker's handle on the queue.
pub struct Queue {
    keys: Keys,
    processing: String,
    /// Shared multiplexed connection for every non-blocking command.
    redis: RedisConnection,
    /// Connection of its own for BLMOVE, which would stall a shared one while it blocks.
    /// Dropped after an error and reopened on next use.
    blocking: Option<RedisConnection>,
    settings: RedisSettings,
    /// Longest single BLMOVE; the blocking connection's response timeout exceeds it.
    max_block: Duration,
    /// Whether the last BLMOVE waited its whole timeout for nothing: the queue was empty.
    idle: bool,
    worker_id: String,
}

impl Queue {
    /// A queue handle for worker `worker_id`; `max_block` bounds every blocking wait.
    pub fn new(
        settings: &RedisSettings,
        worker_id: &str,
        max_block: Duration,
    ) -> RedisResult<Self> {
        let keys = Keys::new(&settings.effective_key_prefix());
        Ok(Self {
            processing: keys.processing(worker_id),
            keys,
            // Its WAITs (with redis.ack_replicas) may take their own timeout besides.
            redis: connect::redis_manager_within(settings, settings.confirmed_timeout())?,
            blocking: None,
            settings: settings.clone(),
            max_block,
            idle: false,
            worker_id: worker_id.to_owned(),
        })
    }

    /// The key names in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// This worker's processing list.
    pub fn processing(&self) -> &str {
        &self.processing
    }

    /// Longest wait for one Redis answer (`redis.response_timeout_ms`).
    pub fn response_timeout(&self) -> Duration {
        self.settings.response_timeout()
    }

    /// A clone of the shared connection, for other tasks of this worker.
    pub fn shared_connection(&self) -> RedisConnection {
        self.redis.clone()
    }

    /// Waits up to `timeout` (at most `max_block`) for one message and moves it into the
    /// processing list. `None` when nothing arrived in time.
    #[tracing::instrument(name = "redis.blmove", skip(self), err(level = "debug"))]
    pub async fn wait_one(&mut self, timeout: Duration) -> RedisResult<Option<Vec<u8>>> {
        // BLMOVE's timeout 0 means "forever"; a millisecond is its useful resolution.
        let timeout = timeout.clamp(Duration::from_millis(1), self.max_block);
        let conn = match self.blocking.as_mut() {
            Some(conn) => conn,
            None => {
                let conn = connect::redis_dedicated(
                    &self.settings,
                    self.max_block + self.settings.response_timeout(),
                )
                .await?;
                self.blocking.insert(conn)
            }
        };
        let result = redis::cmd("BLMOVE")
            .arg(&self.keys.pending_messages)
            .arg(&self.processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(timeout.as_secs_f64())
            .query_async(conn)
            .await;
        if result.is_err() {
            self.blocking = None;
        }
        self.idle = matches!(result, Ok(None));
        result
    }

    /// Whether the last [`Self::wait_one`] found nothing in its whole wait, so that an idle
    /// worker waits again at once, without a take that would find nothing either: one command
    /// per `worker.idle_poll_ms` is all its loop costs Redis.
    pub fn idle(&self) -> bool {
        self.idle
    }

    /// Moves up to `limit` messages that are already waiting into the processing list, in one
    /// round trip; returns them oldest first. `moved_before` messages this worker moved into its
    /// list itself just before (the batch's first, by BLMOVE) are counted in `in_flight` with
    /// them.
    #[tracing::instrument(name = "redis.take", skip(self), err(level = "debug"))]
    pub async fn take(&mut self, limit: usize, moved_before: u64) -> RedisResult<Vec<Vec<u8>>> {
        let take = Take {
            processing: &self.processing,
            limit,
            worker_id: &self.worker_id,
            moved_before,
        };
        lua::call(&mut self.redis, &self.keys, &take).await
    }

    /// Everything in the processing list, oldest first: the batch in hand after a restart or
    /// after an error left the worker unsure what it holds.
    #[tracing::instrument(name = "redis.lrange_processing", skip(self), err(level = "debug"))]
    pub async fn in_hand(&mut self) -> RedisResult<Vec<Vec<u8>>> {
        let mut items: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(&self.processing)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.redis)
            .await?;
        items.reverse();
        Ok(items)
    }

    /// How many replicas hold every write of this connection, waiting up to `timeout` for
    /// `replicas` of them (`WAIT`). With `touch`, it first adds 0 to this worker's count in
    /// `in_flight_by_worker`: a write that changes nothing, after which the `WAIT` covers
    /// everything written before it by any connection (a processing list this worker resumes,
    /// a message its blocking connection moved).
    #[tracing::instrument(name = "redis.wait", skip(self), err(level = "debug"))]
    pub async fn confirm(
        &mut self,
        replicas: u32,
        timeout: Duration,
        touch: bool,
    ) -> RedisResult<u64> {
        let mut pipe = redis::pipe();
        if touch {
            pipe.cmd("HINCRBY")
                .arg(&self.keys.in_flight_by_worker)
                .arg(&self.worker_id)
                .arg(0)
                .ignore();
        }
        pipe.cmd("WAIT")
            .arg(replicas)
            .arg(timeout.as_millis() as u64);
        let (confirmed,): (u64,) = pipe.query_async(&mut self.redis).await?;
        Ok(confirmed)
    }

    /// Records a committed batch in one atomic step (see `lua/commit.lua`). Returns `false` if
    /// it had already been recorded (a retry after a lost reply).
    #[tracing::instrument(name = "redis.record_batch", skip_all, fields(inserted = record.inserted), err(level = "debug"))]
    pub async fn record(&mut self, record: &Record<'_>) -> RedisResult<bool> {
        let commit = Commit {
            processing: &self.processing,
            worker_id: &self.worker_id,
            record,
        };
        lua::call(&mut self.redis, &self.keys, &commit).await
    }

    /// Moves dead worker `dead_id`'s processing list into this worker's, if it is still
    /// silent. Returns how many messages moved, or `None` if the worker came back.
    #[tracing::instrument(name = "redis.claim", skip(self), err(level = "debug"))]
    pub async fn claim(&mut self, dead_id: &str, dead_after: Duration) -> RedisResult<Option<u64>> {
        let dead_processing = self.keys.processing(dead_id);
        let claim = Claim {
            dead_processing: &dead_processing,
            processing: &self.processing,
            dead_id,
            dead_after_ms: dead_after.as_millis() as u64,
            claimer: &self.worker_id,
        };
        Ok(lua::call(&mut self.redis, &self.keys, &claim).await?.0)
    }

    /// Leaves the registry (graceful shutdown).
    pub async fn unregister(&mut self) -> RedisResult<()> {
        let unregister = Unregister {
            worker_id: &self.worker_id,
        };
        lua::call(&mut self.redis, &self.keys, &unregister).await
    }
}
