//! Pushing envelopes onto `pending_messages`.

use std::time::Duration;

use redis::aio::ConnectionManager;
use sluice_core::message::Envelope;

use crate::error::ApiError;

/// LPUSHes `envelopes` in one command and returns once Redis confirmed it. The list is consumed
/// from the tail, so envelopes pushed together are consumed in the order given.
///
/// Fails with [`ApiError::RedisUnavailable`] when Redis errors or does not answer within
/// `timeout`; the caller must then not report the messages as queued.
#[tracing::instrument(name = "redis.lpush", skip_all, fields(count = envelopes.len()), err(level = "warn"))]
pub async fn push(
    conn: &mut ConnectionManager,
    list: &str,
    envelopes: &[Envelope],
    timeout: Duration,
) -> Result<u64, ApiError> {
    let mut cmd = redis::cmd("LPUSH");
    cmd.arg(list);
    for envelope in envelopes {
        cmd.arg(envelope.to_json());
    }
    match tokio::time::timeout(timeout, cmd.query_async::<u64>(conn)).await {
        Ok(Ok(len)) => Ok(len),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "LPUSH failed");
            Err(ApiError::RedisUnavailable)
        }
        Err(_) => {
            tracing::warn!(?timeout, "LPUSH timed out");
            Err(ApiError::RedisUnavailable)
        }
    }
}

/// `LLEN pending_messages`, or `None` when Redis does not answer within `timeout`.
pub async fn length(conn: &mut ConnectionManager, list: &str, timeout: Duration) -> Option<u64> {
    let mut llen = redis::cmd("LLEN");
    llen.arg(list);
    tokio::time::timeout(timeout, llen.query_async::<u64>(conn))
        .await
        .ok()?
        .ok()
}
