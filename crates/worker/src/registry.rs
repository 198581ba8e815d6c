//! Worker heartbeats and the detection of dead peers.
//!
//! Each worker writes its heartbeat into the `workers` sorted set (score: the Redis clock in
//! ms) four times per `dead_after_ms`, from a task of its own so a long retry in the batching
//! loop never makes a live worker look dead. Each beat also returns the peers that have been
//! silent for longer than `dead_after_ms`; the batching loop reclaims their batches between
//! batches of its own.

use std::time::Duration;

use redis::Script;
use redis::aio::ConnectionManager;
use sluice_core::{CancellationToken, Keys};
use tokio::sync::watch;

/// How many heartbeats fit in one `dead_after_ms`.
pub const BEATS_PER_PERIOD: u32 = 4;

/// Beats until shutdown, publishing the ids of dead peers on `dead`.
pub async fn beat_periodically(
    mut redis: ConnectionManager,
    keys: Keys,
    worker_id: String,
    dead_after: Duration,
    dead: watch::Sender<Vec<String>>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(dead_after / BEATS_PER_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match beat(&mut redis, &keys, &worker_id, dead_after).await {
            Ok(peers) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("heartbeats resumed");
                }
                // Published every beat, so a reclaim that failed is retried at the next one.
                dead.send_replace(peers);
            }
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%e, "cannot write heartbeat; retrying");
                }
            }
        }
    }
}

/// Writes one heartbeat and returns the peers silent for longer than `dead_after` (by the
/// Redis clock, so the workers' clocks need not agree).
#[tracing::instrument(name = "redis.heartbeat", skip(redis, keys), err(level = "debug"))]
pub async fn beat(
    redis: &mut ConnectionManager,
    keys: &Keys,
    worker_id: &str,
    dead_after: Duration,
) -> redis::RedisResult<Vec<String>> {
    static SCRIPT: std::sync::LazyLock<Script> =
        std::sync::LazyLock::new(|| Script::new(include_str!("lua/heartbeat.lua")));
    let mut peers: Vec<String> = SCRIPT
        .key(&keys.workers)
        .arg(worker_id)
        .arg(dead_after.as_millis() as u64)
        .invoke_async(redis)
        .await?;
    peers.retain(|id| id != worker_id);
    Ok(peers)
}
