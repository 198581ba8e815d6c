//! The stats upkeep: done once a second for the whole fleet by whichever process holds a short
//! lease in Redis.
//!
//! Readers never write (see [`crate::stats`]). What the figures need over time (`current_rps`
//! and the other window figures recomputed from their per-second buckets, the stale buckets
//! pruned, the history sampled and folded into minutes) is done by one process at a time: the
//! holder of `upkeep_lease` (`SET … PX`), which renews it at every run. Gateways and ingest
//! APIs contend for it directly; workers take it through their heartbeat, which already runs, so
//! a worker that does not hold it costs Redis nothing more. When the holder stops it releases
//! the lease and another takes over within a second; when it dies the lease lapses after
//! [`LEASE`] and the first contender to see it free takes it. The history fills the gap.

use std::time::Duration;

use tokio::sync::watch;

use crate::CancellationToken;
use crate::keys::Keys;
use crate::lua;

/// How often the holder does the upkeep.
pub const PERIOD: Duration = Duration::from_secs(1);

/// How long the lease lasts without a renewal: three missed runs.
pub const LEASE: Duration = Duration::from_secs(3);

/// Longest run of seconds without a sample that the next sample fills in the history.
pub const HISTORY_GAP_FILL_SECS: u64 = 5;

pub use crate::lua::upkeep::Turn;

/// The upkeep of one process: its holder id and its keys.
#[derive(Debug, Clone)]
pub struct Upkeep {
    keys: Keys,
    holder: String,
    worker_fresh_ms: u64,
    replicas_wanted: u32,
}

impl Upkeep {
    /// The upkeep of the keys under `keys`' prefix, contending as `holder` (unique per
    /// process); workers count as alive in the history while their heartbeat is younger than
    /// `worker_fresh` (`worker.dead_after_ms`).
    pub fn new(keys: Keys, holder: impl Into<String>, worker_fresh: Duration) -> Self {
        Self {
            keys,
            holder: holder.into(),
            worker_fresh_ms: worker_fresh.as_millis() as u64,
            replicas_wanted: 0,
        }
    }

    /// Records `wanted` (`redis.ack_replicas`) as the replicas a push needs, beside those in
    /// sync, for the `replication_degraded` rule.
    pub fn wanting_replicas(mut self, wanted: u32) -> Self {
        self.replicas_wanted = wanted;
        self
    }

    /// Takes or renews the lease and does the upkeep, unless another process holds it.
    #[tracing::instrument(name = "redis.upkeep", skip_all, err(level = "debug"))]
    pub async fn run_once<C>(&self, conn: &mut C) -> redis::RedisResult<Turn>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        lua::call(conn, &self.keys, &self.call(false)).await
    }

    /// Gives the lease up if this process holds it, so another takes over at once.
    #[tracing::instrument(name = "redis.upkeep_release", skip_all, err(level = "debug"))]
    pub async fn release<C>(&self, conn: &mut C) -> redis::RedisResult<()>
    where
        C: redis::aio::ConnectionLike + Send,
    {
        lua::call(conn, &self.keys, &self.call(true)).await?;
        Ok(())
    }

    fn call(&self, release: bool) -> lua::upkeep::Upkeep<'_> {
        lua::upkeep::Upkeep {
            holder: &self.holder,
            release,
            worker_fresh_ms: self.worker_fresh_ms,
            replicas_wanted: self.replicas_wanted,
        }
    }

    /// Contends for the lease until shutdown, then releases it: runs every [`PERIOD`] while it
    /// holds the lease, and otherwise tries again only once the holder's lease could have
    /// lapsed. With `gate` (a worker's heartbeat, which takes a free lease), it runs only
    /// while the gate says this process holds it, and costs nothing otherwise.
    pub async fn run<C>(
        self,
        mut conn: C,
        mut gate: Option<watch::Receiver<bool>>,
        shutdown: CancellationToken,
    ) where
        C: redis::aio::ConnectionLike + Send,
    {
        let mut failing = false;
        loop {
            if let Some(held) = gate.as_mut()
                && !*held.borrow_and_update()
            {
                let open = tokio::select! {
                    changed = held.changed() => changed.is_ok(),
                    () = shutdown.cancelled() => false,
                };
                if !open {
                    break;
                }
                continue;
            }
            let delay = self.turn(&mut conn, &mut failing).await;
            if !crate::shutdown::sleep_unless(delay, &shutdown).await {
                break;
            }
        }
        match tokio::time::timeout(PERIOD, self.release(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(%e, "cannot release the upkeep lease; it lapses by itself")
            }
            Err(_) => tracing::debug!("releasing the upkeep lease timed out; it lapses by itself"),
        }
    }

    /// One attempt; returns how long to wait before the next.
    async fn turn<C>(&self, conn: &mut C, failing: &mut bool) -> Duration
    where
        C: redis::aio::ConnectionLike + Send,
    {
        match tokio::time::timeout(PERIOD, self.run_once(conn)).await {
            Ok(Ok(turn)) => {
                if std::mem::take(failing) {
                    tracing::info!("stats upkeep resumed");
                }
                match turn {
                    Turn::Done => PERIOD,
                    // A little past the lapse, so that the holder's renewal is seen first.
                    Turn::HeldElsewhere(left) => left.max(PERIOD / 4) + jitter(),
                }
            }
            Ok(Err(e)) => self.failed(&e.to_string(), failing),
            Err(_) => self.failed("timed out", failing),
        }
    }

    fn failed(&self, error: &str, failing: &mut bool) -> Duration {
        crate::metric::redis_error("upkeep");
        if !std::mem::replace(failing, true) {
            tracing::warn!(
                error,
                "cannot run the stats upkeep on {}; retrying every second",
                crate::connect::redis_name()
            );
        }
        PERIOD
    }
}

fn jitter() -> Duration {
    Duration::from_millis(rand::random_range(0..250))
}
