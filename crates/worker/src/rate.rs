//! Keeps `current_rps` and the stats history current, with or without a gateway.
//!
//! Each committed batch adds to a per-second bucket of `rate_window`; `current_rps` is
//! recomputed from the window by every stats read, and each read records the history sample
//! of its second if no process has yet. This task reads [`READS_PER_SECOND`] times a second,
//! so the key falls back to 0 after the pipeline goes idle instead of freezing at its last
//! value, and every second of history gets its sample even when one read comes late.

use std::time::Duration;

use sluice_core::connect::RedisConnection;
use sluice_core::stats::StatsReader;
use sluice_core::{CancellationToken, Keys};

/// Stats reads per second.
pub const READS_PER_SECOND: u32 = 2;

/// Reads the stats [`READS_PER_SECOND`] times a second until shutdown; `dead_after` is the
/// heartbeat age past which a worker no longer counts as alive.
pub async fn refresh_periodically(
    mut redis: RedisConnection,
    keys: Keys,
    dead_after: Duration,
    shutdown: CancellationToken,
) {
    let reader = StatsReader::new(keys).with_worker_fresh(dead_after);
    let period = Duration::from_secs(1) / READS_PER_SECOND;
    let mut ticker = sluice_core::shutdown::Ticker::new(period, shutdown);
    while ticker.tick().await {
        match reader.refresh(&mut redis).await {
            Ok(stats) => sluice_core::metric::record_stats(&stats),
            Err(e) => {
                tracing::debug!(%e, "cannot refresh current_rps");
                sluice_core::metric::record_stats_failed();
            }
        }
    }
}
