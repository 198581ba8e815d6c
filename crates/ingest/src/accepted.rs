//! Counting accepted messages (`accepted_total`, `accepted_window`) off the hot path.
//!
//! A request that queued messages adds them to a per-process counter, one atomic add; a
//! background task moves the count into Redis every [`FLUSH_EVERY`], in one script call that
//! also fills the per-second window `accepted_per_second` is derived from. A failed flush keeps
//! the count for the next one, and shutdown flushes after the last request is answered, so the
//! total is exact; only a process killed outright loses what it counted since the last flush.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_core::connect::RedisConnection;
use sluice_core::keys::RATE_WINDOW_SECS;
use sluice_core::lua::LuaScript;
use sluice_core::shutdown::Ticker;
use sluice_core::{CancellationToken, Keys};

/// How often the count moves into Redis.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How long the window hash lives without a new count.
const WINDOW_TTL_SECS: u64 = 120;
/// How long shutdown keeps trying to flush.
const FINAL_FLUSH_FOR: Duration = Duration::from_secs(3);

/// Messages queued by this process and not yet added to `accepted_total`, and this process's
/// `sluice_messages_accepted_total`.
#[derive(Debug)]
pub struct Accepted {
    pending: AtomicU64,
    metric: metrics::Counter,
}

impl Default for Accepted {
    fn default() -> Self {
        Self {
            pending: AtomicU64::new(0),
            metric: metrics::counter!(sluice_core::metric::MESSAGES_ACCEPTED),
        }
    }
}

impl Accepted {
    /// Counts `n` messages answered 202 and queued.
    pub fn add(&self, n: u64) {
        self.pending.fetch_add(n, Ordering::Relaxed);
        self.metric.increment(n);
    }

    /// Flushes every [`FLUSH_EVERY`] until shutdown, then once more (retrying for a few
    /// seconds if Redis fails).
    pub async fn flush_periodically(
        &self,
        mut conn: RedisConnection,
        keys: Keys,
        timeout: Duration,
        stopped: CancellationToken,
    ) {
        let mut ticker = Ticker::new(FLUSH_EVERY, stopped);
        while ticker.tick().await {
            self.flush(&mut conn, &keys, timeout).await;
        }
        let deadline = tokio::time::Instant::now() + FINAL_FLUSH_FOR;
        while !self.flush(&mut conn, &keys, timeout).await {
            if tokio::time::Instant::now() >= deadline {
                let lost = self.pending.load(Ordering::Relaxed);
                tracing::warn!(
                    lost,
                    "cannot add the last accepted messages to accepted_total"
                );
                return;
            }
            tokio::time::sleep(FLUSH_EVERY).await;
        }
    }

    /// Moves the pending count into Redis; returns false (keeping the count) if that failed.
    pub async fn flush(&self, conn: &mut RedisConnection, keys: &Keys, timeout: Duration) -> bool {
        static SCRIPT: std::sync::LazyLock<LuaScript> =
            std::sync::LazyLock::new(|| LuaScript::new(include_str!("lua/count_accepted.lua")));
        let n = self.pending.swap(0, Ordering::Relaxed);
        if n == 0 {
            return true;
        }
        let call = async {
            SCRIPT
                .keyed(keys, &[])?
                .arg(n)
                .arg(WINDOW_TTL_SECS)
                .arg(RATE_WINDOW_SECS)
                .invoke_async::<()>(conn)
                .await
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(())) => true,
            outcome => {
                // A timed-out call may still have applied: rare, and it counts once more at
                // worst, where dropping the count would lose it for sure.
                tracing::debug!(?outcome, "cannot flush the accepted count; keeping it");
                sluice_core::metric::redis_error("count_accepted");
                self.pending.fetch_add(n, Ordering::Relaxed);
                false
            }
        }
    }
}
