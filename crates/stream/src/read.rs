//! How the stream reads Redis for a request: within the Redis timeout, a failure or a timeout
//! being `None` (logged at debug), which the caller answers with 503 or its last reading.

use std::future::Future;
use std::time::Duration;

use sluice_core::connect::RedisConnection;

/// `read` on a clone of `redis`, within `timeout`; `what` names it in the log.
pub async fn within<T, F, Fut>(
    redis: &RedisConnection,
    timeout: Duration,
    what: &str,
    read: F,
) -> Option<T>
where
    F: FnOnce(RedisConnection) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    match tokio::time::timeout(timeout, read(redis.clone())).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => {
            tracing::debug!(%e, "cannot read {what}");
            None
        }
        Err(_) => {
            tracing::debug!(?timeout, "reading {what} timed out");
            None
        }
    }
}
