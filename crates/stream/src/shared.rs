//! A Redis read shared by every request for a short while: `GET /alerts` and `GET /workers`
//! cost one read per second however many dashboards ask.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a shared read is reused.
pub const SHARED_TTL: Duration = Duration::from_secs(1);

/// The latest successful read, reused for [`SHARED_TTL`].
#[derive(Debug)]
pub struct SharedRead<T> {
    slot: Mutex<Option<(Instant, T)>>,
}

impl<T> Default for SharedRead<T> {
    fn default() -> Self {
        Self {
            slot: Mutex::new(None),
        }
    }
}

impl<T: Clone> SharedRead<T> {
    /// The cached value while fresh, else what `read` returns (cached when `Some`). Concurrent
    /// callers wait for the one read instead of each making their own.
    pub async fn get<F, Fut>(&self, read: F) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, value)) = slot.as_ref()
            && at.elapsed() < SHARED_TTL
        {
            return Some(value.clone());
        }
        let value = read().await?;
        *slot = Some((Instant::now(), value.clone()));
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fresh_value_is_reused_and_a_failure_is_not_cached() {
        let shared = SharedRead::<u32>::default();
        assert_eq!(shared.get(|| async { None }).await, None);
        assert_eq!(shared.get(|| async { Some(1) }).await, Some(1));
        assert_eq!(shared.get(|| async { Some(2) }).await, Some(1), "reused");
    }
}
