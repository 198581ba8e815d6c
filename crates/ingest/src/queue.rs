//! The queue bound, and Redis's failures as the ingest API answers them; the pushes themselves
//! are [`crate::group`]'s.
//!
//! The bound (`ingest.max_queue_depth`) is checked by every push's script in the same atomic
//! step as the push, so the queue never passes it however many processes push at once. Every
//! process also keeps the queue depth in a [`Depth`] gauge, updated from each push's reply and by
//! a background LLEN every [`DEPTH_REFRESH`], to refuse at once, without sending them, requests
//! that would not fit a queue known to be full.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_core::CancellationToken;
use sluice_core::connect::{CallFailed, RedisConnection};
use sluice_core::outage::{Line, OutageLog};
use sluice_proto::message::Envelope;

use crate::error::ApiError;

/// Redis as this process's calls see it: an outage is logged once, with a reminder every 30 s,
/// not once per failed call (the gauge alone would log ten times a second).
static REDIS: OutageLog = OutageLog::new();

/// Redis's `maxmemory` as the pushes see it: logged once when a push is refused for it, with a
/// reminder every 30 s, and once when a push fits again.
static FULL: OutageLog = OutageLog::new();

/// Awaits a Redis call for at most `timeout`; an error or a timeout becomes
/// [`ApiError::RedisUnavailable`], the one way every handler treats Redis failing, except a
/// refusal for `maxmemory` (`OOM`), which is [`ApiError::RedisFull`]: Redis is there, and says
/// it has no room. `what` names the call in the log.
pub async fn within<T>(
    timeout: Duration,
    what: &'static str,
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, ApiError> {
    let result = match sluice_core::connect::within(timeout, what, call).await {
        Ok(value) => Ok(value),
        Err(CallFailed::Full) => {
            note_full(false);
            return Err(ApiError::RedisFull);
        }
        Err(failed) => Err(failed.to_string()),
    };
    match REDIS.record(result.is_ok(), std::time::Instant::now()) {
        Some(Line::Down) => {
            let error = result.as_ref().err().map_or("", String::as_str);
            let redis = sluice_core::connect::redis_name();
            let check = sluice_core::connect::redis_hint(error);
            tracing::warn!(
                error,
                check,
                "{redis} unavailable ({what} failed); answering 503 until it is back"
            );
        }
        Some(Line::StillDown { failures }) => {
            let redis = sluice_core::connect::redis_name();
            tracing::warn!(failures, "{redis} still unavailable");
        }
        Some(Line::Back) => tracing::info!("{} is back", sluice_core::connect::redis_name()),
        None => {}
    }
    result.map_err(|e| {
        tracing::debug!(error = %e, "{what} failed");
        ApiError::RedisUnavailable
    })
}

/// Records whether a push fitted in Redis's memory, logging the changes.
fn note_full(fitted: bool) {
    match FULL.record(fitted, std::time::Instant::now()) {
        Some(Line::Down) => tracing::warn!(
            "{} is full (maxmemory): answering pushes 503 redis_full until the workers drain the queue",
            sluice_core::connect::redis_name()
        ),
        Some(Line::StillDown { failures }) => {
            let redis = sluice_core::connect::redis_name();
            tracing::warn!(refused = failures, "{redis} still full (maxmemory)");
        }
        Some(Line::Back) => {
            tracing::info!("{} has room again", sluice_core::connect::redis_name());
        }
        None => {}
    }
}

/// How often the gauge re-reads the queue length, to see workers draining it.
pub const DEPTH_REFRESH: Duration = Duration::from_millis(100);

/// The last known length of `pending_messages`, and the bound.
#[derive(Debug)]
pub struct Depth {
    value: AtomicU64,
    max: u64,
}

impl Depth {
    /// A gauge for a queue bounded at `max`.
    pub fn new(max: u64) -> Self {
        Self {
            value: AtomicU64::new(0),
            max,
        }
    }

    /// The last known length.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Records a length Redis gave.
    pub fn set(&self, len: u64) {
        self.value.store(len, Ordering::Relaxed);
    }

    /// The bound, `ingest.max_queue_depth`.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Keeps the gauge current until shutdown.
    pub async fn refresh_periodically(
        &self,
        mut conn: RedisConnection,
        list: String,
        timeout: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticker = sluice_core::shutdown::Ticker::new(DEPTH_REFRESH, shutdown);
        while ticker.tick().await {
            if let Some(len) = length(&mut conn, &list, timeout).await {
                self.set(len);
            }
        }
    }
}

/// A script naming a key nobody gives: a programming error, answered like Redis failing.
pub fn unnamed_key(e: redis::RedisError) -> ApiError {
    tracing::error!(error = %e, "cannot build a script call");
    ApiError::RedisUnavailable
}

/// Envelopes as the JSON stored in Redis, encoded once, when a request is accepted, one after
/// the other in one buffer. Group commit needs each request's size before it builds the command,
/// and encoding an envelope three times (twice to count, once to send) cost more than any other
/// step of the push.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Encoded {
    json: Vec<u8>,
    /// Where each envelope's JSON ends in `json`.
    ends: Vec<usize>,
}

impl Encoded {
    /// Encodes the envelopes, freeing each as it goes: a batch is held twice at most (messages
    /// and JSON) while it is encoded, then twice (JSON and command) while its command is built.
    pub fn new(envelopes: Vec<Envelope>) -> Self {
        let mut encoded = Self {
            // About what a short message's envelope takes; a longer one grows the buffer.
            json: Vec::with_capacity(envelopes.len() * 192),
            ends: Vec::with_capacity(envelopes.len()),
        };
        for envelope in envelopes {
            envelope.write_json(&mut encoded.json);
            encoded.ends.push(encoded.json.len());
        }
        encoded
    }

    /// How many envelopes.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of JSON in all.
    pub fn bytes(&self) -> usize {
        self.json.len()
    }

    /// Each envelope's JSON, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.json[start..end])
    }

    /// Adds each envelope's JSON to `cmd` as one argument.
    pub fn add_to(&self, cmd: &mut redis::Cmd) {
        for json in self.iter() {
            cmd.arg(json);
        }
    }
}

/// How long, how many and how many bytes of `Idempotency-Key`s are remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `ingest.idempotency_ttl_secs`.
    pub ttl_secs: u64,
    /// `ingest.idempotency_max_keys`: past it the oldest keys are forgotten first.
    pub max_keys: u64,
    /// `ingest.idempotency_max_bytes`: likewise, counting what each entry costs Redis.
    pub max_bytes: u64,
}

/// A push Redis took: the gauge learns the new length, and a full Redis is logged as having
/// room again.
pub fn pushed(depth: &Depth, len: u64) {
    note_full(true);
    depth.set(len);
}

/// A push Redis refused: for `maxmemory` ([`ApiError::RedisFull`]) or any other reason
/// ([`ApiError::RedisUnavailable`]).
pub fn refused(e: &redis::RedisError) -> ApiError {
    if e.code() == Some("OOM") {
        note_full(false);
        return ApiError::RedisFull;
    }
    tracing::debug!(error = %e, "a push failed");
    sluice_core::metric::redis_error("push");
    ApiError::RedisUnavailable
}

/// Warns when Redis may evict keys to make room: with any `maxmemory-policy` but
/// `noeviction`, a full Redis drops keys, queued messages among them, where `noeviction`
/// refuses the pushes (503 `redis_full`) and keeps what was acknowledged. Also says when no
/// `maxmemory` is set: then only `ingest.max_queue_depth` bounds the queue. Silent when `CONFIG
/// GET` is not allowed (a managed Redis): the operator's provider decides.
pub async fn check_memory_policy(conn: &mut RedisConnection, timeout: Duration) {
    let mut get = redis::cmd("CONFIG");
    get.arg("GET").arg("maxmemory*");
    let Ok(Ok(config)) =
        tokio::time::timeout(timeout, get.query_async::<HashMap<String, String>>(conn)).await
    else {
        return tracing::debug!("cannot read Redis's maxmemory settings");
    };
    let policy = config.get("maxmemory-policy").map_or("", String::as_str);
    let max = config.get("maxmemory").map_or("0", String::as_str);
    if !policy.is_empty() && policy != "noeviction" {
        tracing::warn!(
            policy,
            "Redis's maxmemory-policy may evict queued messages when Redis is full; set it to \
             noeviction (then a full Redis refuses new messages with 503 and keeps the queue)"
        );
    } else if max == "0" {
        tracing::info!(
            "Redis has no maxmemory: only ingest.max_queue_depth bounds the queue; set maxmemory \
             (with maxmemory-policy noeviction) to bound it in bytes"
        );
    }
}

/// `LLEN pending_messages`, or `None` when Redis does not answer within `timeout`.
pub async fn length(conn: &mut RedisConnection, list: &str, timeout: Duration) -> Option<u64> {
    let mut llen = redis::cmd("LLEN");
    llen.arg(list);
    within(timeout, "LLEN", llen.query_async::<u64>(conn))
        .await
        .ok()
}

#[cfg(test)]
mod tests {
    use sluice_proto::message::NewMessage;

    use super::*;

    #[test]
    fn encoded_envelopes_are_each_envelopes_own_json_in_order() {
        let envelopes: Vec<Envelope> = ["a", "é \" \\ \n", "third"]
            .iter()
            .map(|content| {
                let body = serde_json::json!({"user_id": 7, "channel_id": 9, "content": content});
                sluice_core::clock::envelope(
                    NewMessage::from_json(body.to_string().as_bytes()).expect("valid"),
                )
            })
            .collect();
        let expected: Vec<Vec<u8>> = envelopes.iter().map(Envelope::to_json).collect();
        let encoded = Encoded::new(envelopes);
        assert_eq!(encoded.len(), 3);
        assert_eq!(
            encoded.bytes(),
            expected.iter().map(Vec::len).sum::<usize>()
        );
        let parts: Vec<Vec<u8>> = encoded.iter().map(<[u8]>::to_vec).collect();
        assert_eq!(parts, expected);
        let mut cmd = redis::cmd("LPUSH");
        encoded.add_to(&mut cmd);
        assert_eq!(cmd.args_iter().count(), 4);
        assert!(Encoded::new(Vec::new()).is_empty());
    }
}
