//! The one Redis reader of a gateway process.
//!
//! Every tick it takes one stats reading (one round trip that writes nothing; see
//! `sluice_core::stats`) and publishes it to all sessions, whatever their number, and to the
//! observers of [`Reading`]s (a gateway's alert rules). It runs whether or not any dashboard is
//! open. A failed read keeps the last snapshot and marks Redis down; the connection reconnects
//! by itself.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sluice_core::CancellationToken;
use sluice_core::connect::RedisConnection;
use sluice_core::stats::StatsReader;
use sluice_proto::stats::Stats;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::hub::Hub;
use crate::snapshot::{Reading, RedisState, Snapshot};

/// Reads stats every [`Hub::tick`] until shutdown.
pub async fn run(
    hub: Arc<Hub>,
    sender: watch::Sender<Option<Arc<Snapshot>>>,
    readings: watch::Sender<Reading>,
    reader: StatsReader,
    mut redis: RedisConnection,
    timeout: std::time::Duration,
    shutdown: CancellationToken,
) {
    let mut seq = 0u64;
    loop {
        let read_at = Instant::now();
        match tokio::time::timeout(timeout, reader.read(&mut redis)).await {
            Ok(Ok(stats)) => {
                if set_state(&hub, RedisState::Up) {
                    tracing::info!("reading stats from Redis");
                }
                seq += 1;
                sluice_core::metric::record_stats(&stats);
                let snapshot = Arc::new(snapshot(seq, stats));
                sender.send_replace(Some(Arc::clone(&snapshot)));
                readings.send_replace(Reading::Taken(snapshot));
            }
            Ok(Err(e)) => {
                mark_down(&hub, &e.to_string());
                sluice_core::metric::record_stats_failed();
                readings.send_replace(Reading::Failed(read_at));
            }
            Err(_) => {
                mark_down(&hub, "timed out");
                sluice_core::metric::record_stats_failed();
                readings.send_replace(Reading::Failed(read_at));
            }
        }
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
}

/// Records Redis's state; notifies sessions and returns true only when it changed.
fn set_state(hub: &Hub, state: RedisState) -> bool {
    hub.redis_state.send_if_modified(|current| {
        let changed = *current != state;
        *current = state;
        changed
    })
}

/// Logs an outage once, when it starts; and once more if that first line had no cause to
/// name (a timeout, on a busy host) and a later failure names one (a certificate refused).
fn mark_down(hub: &Hub, error: &str) {
    let check = sluice_core::connect::redis_hint(error);
    let started = set_state(hub, RedisState::Down);
    let cause_now_known = check.is_some() && !hub.outage_cause_logged.load(Ordering::Relaxed);
    if started || cause_now_known {
        hub.outage_cause_logged
            .store(check.is_some(), Ordering::Relaxed);
        let redis = sluice_core::connect::redis_name();
        tracing::warn!(
            error,
            check,
            "cannot read stats from {redis}; retrying every tick"
        );
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
