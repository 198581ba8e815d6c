//! The 5xx answers this process gives, by error code: counted per second in memory and added
//! to Redis's `errors_window` once a second, where the upkeep turns the fleet's into the stats'
//! `errors_per_second` (read by the gateway's `error_rate` and `replication_degraded` rules).
//!
//! A second with no error costs Redis nothing. Answers given while Redis is down are kept and
//! added once it is back, in the seconds they were given, as long as those seconds are still in
//! the rate window: an outage is counted when it ends, not lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use sluice_core::keys::RATE_WINDOW_SECS;
use sluice_core::{CancellationToken, Keys, clock, metric};

use crate::error::ApiError;
use crate::state::AppState;

/// How often the counts go to Redis.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Most (second, code) buckets held while Redis cannot take them: a window's worth of every
/// code, many times over.
const MAX_BUCKETS: usize = 1_024;

/// Per-second counts of the 5xx answers not yet in Redis, by (unix second, code).
#[derive(Debug, Default)]
pub struct ErrorTally {
    buckets: Mutex<BTreeMap<(u64, &'static str), u64>>,
}

impl ErrorTally {
    /// Counts one 5xx answer with `code`, in the current second.
    pub fn count(&self, code: &'static str) {
        metrics::counter!(metric::ERRORS, "code" => code).increment(1);
        let second = clock::now().timestamp().max(0) as u64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        *buckets.entry((second, code)).or_default() += 1;
        while buckets.len() > MAX_BUCKETS {
            buckets.pop_first();
        }
    }

    /// Takes every count, leaving none.
    fn take(&self) -> BTreeMap<(u64, &'static str), u64> {
        std::mem::take(&mut *self.buckets.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts back counts Redis did not take, but only those still inside the rate window.
    fn put_back(&self, counts: BTreeMap<(u64, &'static str), u64>) {
        let oldest = (clock::now().timestamp().max(0) as u64).saturating_sub(RATE_WINDOW_SECS);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        for ((second, code), n) in counts {
            if second >= oldest {
                *buckets.entry((second, code)).or_default() += n;
            }
        }
    }

    /// Adds the counts to `errors_window` every [`FLUSH_EVERY`] until `stop`, then once more.
    pub async fn flush_periodically(
        self: Arc<Self>,
        mut conn: impl redis::aio::ConnectionLike + Send,
        keys: Keys,
        timeout: Duration,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                () = stop.cancelled() => true,
            };
            self.flush(&mut conn, &keys, timeout).await;
            if stopping {
                return;
            }
        }
    }

    async fn flush(
        &self,
        conn: &mut (impl redis::aio::ConnectionLike + Send),
        keys: &Keys,
        timeout: Duration,
    ) {
        let counts = self.take();
        if counts.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for ((second, code), n) in &counts {
            pipe.hincr(&keys.errors_window, format!("{second}:{code}"), *n)
                .ignore();
        }
        // Longer than the window, as the other per-second buckets: the upkeep prunes them.
        pipe.expire(&keys.errors_window, 2 * RATE_WINDOW_SECS as i64)
            .ignore();
        let sent = tokio::time::timeout(timeout, pipe.query_async::<()>(conn)).await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::debug!("cannot add the error counts to Redis; kept for the next try");
            self.put_back(counts);
        }
    }
}

/// Middleware (`App::wrap(from_fn(tally::record))`): counts every answer that is an
/// [`ApiError`] with a 5xx status in the process's [`ErrorTally`].
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let tally = req
        .app_data::<web::Data<AppState>>()
        .map(|state| Arc::clone(&state.errors));
    let res = next.call(req).await?;
    if let Some(tally) = tally
        && res.status().is_server_error()
        && let Some(error) = res
            .response()
            .error()
            .and_then(|e| e.as_error::<ApiError>())
    {
        tally.count(error.code());
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_second_and_code_and_keeps_only_the_window_when_put_back() {
        let tally = ErrorTally::default();
        tally.count("not_replicated");
        tally.count("not_replicated");
        tally.count("redis_unavailable");
        let mut taken = tally.take();
        assert_eq!(taken.values().sum::<u64>(), 3);
        assert!(tally.take().is_empty(), "taken once");
        let now = clock::now().timestamp() as u64;
        taken.insert((now - RATE_WINDOW_SECS - 5, "server_busy"), 7);
        tally.put_back(taken);
        let back = tally.take();
        assert_eq!(
            back.values().sum::<u64>(),
            3,
            "the second outside the window is dropped"
        );
        assert!(back.keys().all(|(_, code)| *code != "server_busy"));
    }

    #[test]
    fn holds_a_bounded_number_of_buckets() {
        let tally = ErrorTally::default();
        let mut buckets = tally.buckets.lock().expect("not poisoned");
        for second in 0..(MAX_BUCKETS as u64 + 10) {
            buckets.insert((second, "x"), 1);
        }
        drop(buckets);
        tally.count("redis_unavailable");
        assert_eq!(tally.take().len(), MAX_BUCKETS);
    }
}
