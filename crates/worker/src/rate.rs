//! Keeps `current_rps` current while the pipeline is idle.
//!
//! Each committed batch adds to a per-second bucket of `rate_window`; `current_rps` is
//! recomputed from the window by every stats read. This task reads once a second so the key
//! falls back to 0 after the pipeline goes idle instead of freezing at its last value.

use std::time::Duration;

use redis::aio::ConnectionManager;
use sluice_core::stats::StatsReader;
use sluice_core::{CancellationToken, Keys};

/// How often `current_rps` is refreshed.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// Refreshes `current_rps` every [`REFRESH_EVERY`] until shutdown.
pub async fn refresh_periodically(
    mut redis: ConnectionManager,
    keys: Keys,
    shutdown: CancellationToken,
) {
    let reader = StatsReader::new(keys);
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = reader.read(&mut redis).await {
                    tracing::debug!(%e, "cannot refresh current_rps");
                }
            }
            () = shutdown.cancelled() => return,
        }
    }
}
