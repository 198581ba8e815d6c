//! Parsing request bodies off the threads that serve requests. A body larger than
//! [`INLINE_BYTES`] is parsed, and its messages stamped and encoded for Redis, on the runtime's
//! blocking pool, at most [`Parsers`]' permits at once; a small one is parsed where it is. So a
//! client's 8 MiB batches, which take tens of milliseconds each to parse, never hold up the
//! other requests of the thread that received them, and never take every core.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Bodies up to this size are parsed inline: a single message's body (at most
/// `ingest.max_body_bytes`, 64 KiB by default) parses in well under a millisecond.
pub const INLINE_BYTES: usize = 64 * 1024;

/// The parses of large bodies that may run at once, shared by every HTTP worker thread.
#[derive(Debug, Clone)]
pub struct Parsers {
    permits: Arc<Semaphore>,
}

impl Parsers {
    /// `parallel` parses at once.
    pub fn new(parallel: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(parallel.max(1))),
        }
    }

    /// One fewer than this machine's cores (at least one): large parses never take every core
    /// from the threads that answer the small requests.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cores.saturating_sub(1))
    }

    /// Runs `job` for a body of `bytes` bytes: inline when it is small, else on the blocking
    /// pool once a permit is free. A request waiting for one holds only its body, which the
    /// buffer budget (`ingest.max_buffered_bytes`) already bounds.
    pub async fn run<T: Send + 'static>(
        &self,
        bytes: usize,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        if bytes <= INLINE_BYTES {
            return job();
        }
        // The semaphore is never closed.
        let _permit = self.permits.acquire().await;
        match tokio::task::spawn_blocking(job).await {
            Ok(value) => value,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}
