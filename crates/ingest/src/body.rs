//! Reading a JSON request body within its size limit, its time limit and the process-wide
//! budget of buffered bytes, before any parsing.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web::{self, Bytes};
use futures_util::StreamExt;
use sluice_core::settings::limits::{BATCH_SHARE, MESSAGE_COST, QUEUE_COST};
use sluice_http::Hangup;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Largest buffer reserved up front for a body, whatever its `Content-Length` says: a client
/// that declares 8 MiB and sends nothing holds no more than this.
pub const INITIAL_CAPACITY_MAX: usize = 64 * 1024;

/// The request bytes all connections may hold in memory at once (`ingest.max_buffered_bytes`),
/// shared by every HTTP worker thread. A body's buffer is counted as it grows, so a client
/// holds only what it actually sent (rounded up to the buffer's capacity, which never passes
/// the declared `Content-Length`); once it is complete, what parsing and queueing it costs
/// ([`QUEUE_COST`] times its size, and [`MESSAGE_COST`] per message) is counted too. All of it
/// is given back the moment the messages are queued, before any `Prefer: wait`.
///
/// Batch bodies may hold at most [`BATCH_SHARE`] of it: however many batch uploads stall, the
/// rest stays free for single messages.
#[derive(Debug, Clone)]
pub struct Budget {
    all: Arc<Semaphore>,
    batches: Arc<Semaphore>,
    total: usize,
}

/// Which part of the budget a body draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// `POST /messages` and every other small body: the whole budget.
    Single,
    /// `POST /messages/batch`: at most [`BATCH_SHARE`] of it.
    Batch,
}

/// What one request holds of the [`Budget`]: its body's bytes as they arrive, then what
/// parsing and queueing them costs, until its messages are queued.
#[derive(Debug)]
pub struct Charge {
    budget: Budget,
    share: Share,
    all: Option<OwnedSemaphorePermit>,
    batches: Option<OwnedSemaphorePermit>,
}

impl Budget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        let batches = total / BATCH_SHARE.1 * BATCH_SHARE.0;
        Self {
            all: Arc::new(Semaphore::new(total)),
            batches: Arc::new(Semaphore::new(batches)),
            total,
        }
    }

    /// Bytes held by requests right now.
    pub fn held(&self) -> usize {
        self.total.saturating_sub(self.all.available_permits())
    }

    /// An empty charge on this budget's `share`.
    pub fn charge(&self, share: Share) -> Charge {
        Charge {
            budget: self.clone(),
            share,
            all: None,
            batches: None,
        }
    }
}

impl Charge {
    /// Takes `n` more bytes, or fails at once if the budget cannot spare them.
    pub fn take(&mut self, n: usize) -> Result<(), ApiError> {
        let budget = &self.budget;
        let busy = || ApiError::BufferBudgetExhausted {
            budget: budget.total,
        };
        let n = u32::try_from(n).map_err(|_| busy())?;
        if self.share == Share::Batch {
            add(&mut self.batches, &budget.batches, n).ok_or_else(busy)?;
        }
        add(&mut self.all, &budget.all, n).ok_or_else(busy)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.all
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

fn add(held: &mut Option<OwnedSemaphorePermit>, from: &Arc<Semaphore>, n: u32) -> Option<()> {
    let permit = Arc::clone(from).try_acquire_many_owned(n).ok()?;
    match held {
        Some(held) => held.merge(permit),
        None => *held = Some(permit),
    }
    Some(())
}

/// A body read in full, holding its share of the [`Budget`], and what parsing and queueing it
/// will cost, until dropped or parsed.
#[derive(Debug)]
pub struct Body {
    /// The bytes.
    pub bytes: Bytes,
    charge: Charge,
}

impl Body {
    /// Frees the bytes once parsed into `messages` messages, keeping the charge for what
    /// queueing them costs (with [`MESSAGE_COST`] more per message); drop the charge once
    /// they are queued.
    pub fn parsed(self, messages: usize) -> Result<Charge, ApiError> {
        let Self { bytes, mut charge } = self;
        drop(bytes);
        charge.take(messages.saturating_mul(MESSAGE_COST))?;
        Ok(charge)
    }
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
    /// Which part of it the body draws on.
    pub share: Share,
}

/// Checks the `Content-Type` is JSON (`application/json`, any parameters, or a `+json` type)
/// and the body is not encoded.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    require_identity(headers)?;
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

/// Checks the body has no `Content-Encoding` but `identity`: a compressed body would
/// otherwise be parsed as if it were JSON (and answered `malformed_json`), and an unknown
/// coding silently ignored.
fn require_identity(headers: &HeaderMap) -> Result<(), ApiError> {
    let codings = headers
        .get_all(header::CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .flat_map(|v| {
            v.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty() && c != "identity")
        .collect::<Vec<_>>();
    match codings.is_empty() {
        true => Ok(()),
        false => Err(ApiError::UnsupportedEncoding(codings.join(", "))),
    }
}

/// Reads the whole body within `limits`: more than `max_bytes` is refused at once when
/// `Content-Length` says so, or as soon as a chunked body grows past it; a body still
/// incomplete after `timeout` (a stalled upload, or one shorter than its `Content-Length`) gets
/// 408; a chunk the budget cannot hold gets 503.
///
/// Every such refusal leaves the body unread, so it also ends the connection's reading side
/// after a short linger ([`sluice_http::Hangup`]): actix would otherwise go on draining a
/// chunked body, however slowly it comes, to keep the connection alive.
pub async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    limits: Limits<'_>,
) -> Result<Body, ApiError> {
    let result = read_within(req.headers(), payload, limits).await;
    if result.as_ref().is_err_and(ApiError::leaves_body_unread)
        && let Some(hangup) = req.conn_data::<Hangup>()
    {
        hangup.now();
    }
    result
}

async fn read_within(
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
    let declared = declared.map(|len| len as usize);
    tokio::time::timeout(limits.timeout, read_chunks(payload, declared, limits))
        .await
        .unwrap_or(Err(ApiError::BodyTimeout {
            timeout_ms: limits.timeout.as_millis() as u64,
        }))
}

async fn read_chunks(
    mut payload: web::Payload,
    declared: Option<usize>,
    limits: Limits<'_>,
) -> Result<Body, ApiError> {
    let initial = declared.map_or(1024, |len| len.min(INITIAL_CAPACITY_MAX));
    let mut body = Vec::with_capacity(initial);
    let mut charge = limits.budget.charge(limits.share);
    charge.take(body.capacity())?;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::UnreadableBody(e.to_string()))?;
        let len = body.len() + chunk.len();
        if len > limits.max_bytes {
            return Err(ApiError::PayloadTooLarge {
                limit: limits.max_bytes,
            });
        }
        if len > body.capacity() {
            let ceiling = declared.unwrap_or(limits.max_bytes).max(len);
            let capacity = (body.capacity() * 2).clamp(len, ceiling);
            charge.take(capacity - body.capacity())?;
            body.reserve_exact(capacity - body.len());
        }
        body.extend_from_slice(&chunk);
    }
    charge.take(body.len() * QUEUE_COST)?;
    Ok(Body {
        bytes: Bytes::from(body),
        charge,
    })
}
