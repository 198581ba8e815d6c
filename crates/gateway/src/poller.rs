//! The one Redis reader of a gateway process.
//!
//! Every tick it takes one stats reading (one round trip; see `sluice_core::stats`) and
//! publishes it to all sessions, whatever their number. A failed read keeps the last snapshot
//! and marks Redis down; the connection reconnects by itself.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redis::aio::ConnectionManager;
use sluice_core::CancellationToken;
use sluice_core::stats::{Stats, StatsReader};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::hub::{Hub, RedisState, Snapshot};

/// Reads stats every [`Hub::tick`] while at least one stream is open, until shutdown. With no
/// stream open it rests, and the first stream to open wakes it for an immediate read.
pub async fn run(
    hub: Arc<Hub>,
    sender: watch::Sender<Option<Arc<Snapshot>>>,
    reader: StatsReader,
    mut redis: ConnectionManager,
    timeout: std::time::Duration,
    shutdown: CancellationToken,
) {
    let mut seq = 0u64;
    loop {
        if hub.active_connections() == 0 {
            hub.poller_running.store(false, Ordering::Relaxed);
            tokio::select! {
                () = hub.wake.notified() => continue,
                () = shutdown.cancelled() => break,
            }
        }
        let read_at = Instant::now();
        match tokio::time::timeout(timeout, reader.read(&mut redis)).await {
            Ok(Ok(stats)) => {
                if set_state(&hub, RedisState::Up) {
                    tracing::info!("reading stats from Redis");
                }
                seq += 1;
                sender.send_replace(Some(Arc::new(snapshot(seq, stats))));
            }
            Ok(Err(e)) => mark_down(&hub, &e.to_string()),
            Err(_) => mark_down(&hub, "timed out"),
        }
        // Only now: a session arriving between the wake-up and this read must not take the
        // snapshot from before the rest for a fresh one (`Hub::fresh`), and waits for this one.
        hub.poller_running.store(true, Ordering::Relaxed);
        loop {
            // Recomputed after every wake-up: a faster stream shortens the tick at once,
            // without an extra read.
            let next = (read_at + hub.tick()).max(Instant::now());
            tokio::select! {
                () = tokio::time::sleep_until(next) => break,
                () = hub.wake.notified() => {}
                () = shutdown.cancelled() => {
                    hub.poller_running.store(false, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
    hub.poller_running.store(false, Ordering::Relaxed);
}

/// Records Redis's state; notifies sessions and returns true only when it changed.
fn set_state(hub: &Hub, state: RedisState) -> bool {
    hub.redis_state.send_if_modified(|current| {
        let changed = *current != state;
        *current = state;
        changed
    })
}

fn mark_down(hub: &Hub, error: &str) {
    if set_state(hub, RedisState::Down) {
        tracing::warn!(error, "cannot read stats from Redis; retrying every tick");
    }
}

/// Serializes a reading once for every session.
pub fn snapshot(seq: u64, stats: Stats) -> Snapshot {
    let json = serde_json::to_string(&stats).unwrap_or_default();
    Snapshot {
        seq,
        taken_at: Instant::now(),
        stats,
        json: json.into(),
    }
}
