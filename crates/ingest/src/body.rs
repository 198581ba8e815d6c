//! Reading a JSON request body within its size limit, its time limit and the process-wide
//! budget of buffered bytes, before any parsing.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap};
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Largest buffer reserved up front for a body, whatever its `Content-Length` says: a client
/// that declares 8 MiB and sends nothing holds no more than this.
pub const INITIAL_CAPACITY_MAX: usize = 64 * 1024;

/// The request bytes all connections may hold in memory at once (`ingest.max_buffered_bytes`),
/// shared by every HTTP worker thread. Bytes are counted as they arrive, so a client holds only
/// what it actually sent, and are given back when the request is done.
#[derive(Debug, Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl Budget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            total,
        }
    }

    /// Bytes held by requests right now.
    pub fn held(&self) -> usize {
        self.total
            .min(Semaphore::MAX_PERMITS)
            .saturating_sub(self.bytes.available_permits())
    }

    /// Takes `n` more bytes for `held`, or fails at once if the budget cannot spare them.
    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, n: usize) -> Result<(), ApiError> {
        let busy = || ApiError::BufferBudgetExhausted { budget: self.total };
        let n = u32::try_from(n).map_err(|_| busy())?;
        let permit = Arc::clone(&self.bytes)
            .try_acquire_many_owned(n)
            .map_err(|_| busy())?;
        match held {
            Some(held) => held.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A body read in full, holding its share of the [`Budget`] until dropped.
#[derive(Debug)]
pub struct Body {
    /// The bytes.
    pub bytes: Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

/// How a body is read.
#[derive(Debug, Clone, Copy)]
pub struct Limits<'a> {
    /// Most bytes; more get 413.
    pub max_bytes: usize,
    /// Longest the whole body may take; slower bodies get 408.
    pub timeout: Duration,
    /// The process-wide budget of buffered bytes.
    pub budget: &'a Budget,
}

/// Checks the `Content-Type` is JSON (`application/json`, any parameters, or a `+json` type).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(
            "Content-Type is missing; send application/json".into(),
        ));
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {:?} is not supported; send application/json",
            String::from_utf8_lossy(value.as_bytes())
        )))
    }
}

/// Reads the whole body within `limits`: more than `max_bytes` is refused at once when
/// `Content-Length` says so, or as soon as a chunked body grows past it; a body still
/// incomplete after `timeout` (a stalled upload, or one shorter than its `Content-Length`) gets
/// 408; a chunk the budget cannot hold gets 503.
pub async fn read_limited(
    headers: &HeaderMap,
    payload: web::Payload,
    limits: Limits<'_>,
) -> Result<Body, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_bytes as u64) {
        return Err(ApiError::PayloadTooLarge {
            limit: limits.max_bytes,
        });
    }
    let capacity = declared.map_or(1024, |len| (len as usize).min(INITIAL_CAPACITY_MAX));
    tokio::time::timeout(limits.timeout, read_chunks(payload, capacity, limits))
        .await
        .unwrap_or(Err(ApiError::BodyTimeout {
            timeout_ms: limits.timeout.as_millis() as u64,
        }))
}

async fn read_chunks(
    mut payload: web::Payload,
    capacity: usize,
    limits: Limits<'_>,
) -> Result<Body, ApiError> {
    let mut body = BytesMut::with_capacity(capacity);
    let mut held = None;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::UnreadableBody(e.to_string()))?;
        if body.len() + chunk.len() > limits.max_bytes {
            return Err(ApiError::PayloadTooLarge {
                limit: limits.max_bytes,
            });
        }
        limits.budget.take(&mut held, chunk.len())?;
        body.extend_from_slice(&chunk);
    }
    Ok(Body {
        bytes: body.freeze(),
        _held: held,
    })
}
