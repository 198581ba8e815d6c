//! Pushing envelopes onto `pending_messages`, within the queue bound.
//!
//! The bound (`ingest.max_queue_depth`) is checked without a Redis round trip of its own: every
//! process keeps the queue depth in a [`Depth`] gauge, updated from each LPUSH reply and by a
//! background LLEN every [`DEPTH_REFRESH`]. Far from the bound a push is a plain LPUSH; close
//! to it, the push is a script that checks and pushes atomically, so the queue never passes
//! the bound however many processes push at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_core::CancellationToken;
use sluice_core::Keys;
use sluice_core::connect::{CallFailed, RedisConnection};
use sluice_core::lua::LuaScript;
use sluice_core::message::Envelope;
use sluice_core::outage::{Line, OutageLog};

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
        Err(CallFailed::Unavailable(e)) => Err(e),
    };
    match REDIS.record(result.is_ok(), std::time::Instant::now()) {
        Some(Line::Down) => {
            let error = result.as_ref().err().map_or("", String::as_str);
            let redis = sluice_core::connect::redis_name();
            tracing::warn!(
                error,
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
    /// Above `max - margin`, pushes go through the checking script.
    margin: u64,
}

impl Depth {
    /// A gauge for a queue bounded at `max`.
    pub fn new(max: u64) -> Self {
        Self {
            value: AtomicU64::new(0),
            max,
            margin: (max / 10).clamp(1_000.min(max), max),
        }
    }

    /// The last known length.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    fn set(&self, len: u64) {
        self.value.store(len, Ordering::Relaxed);
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
fn unnamed_key(e: redis::RedisError) -> ApiError {
    tracing::error!(error = %e, "cannot build a script call");
    ApiError::RedisUnavailable
}

/// The bytes of every envelope's JSON.
fn json_bytes(envelopes: &[Envelope]) -> usize {
    envelopes.iter().map(Envelope::json_len).sum()
}

/// Writes each envelope's JSON into `cmd` as one argument, through one scratch buffer, then
/// frees the envelopes: a batch is held twice at most (messages and command) while its command
/// is built, and once (the command) while it is sent.
fn add_envelopes(cmd: &mut redis::Cmd, envelopes: Vec<Envelope>) {
    let mut scratch = Vec::with_capacity(1024);
    for envelope in &envelopes {
        scratch.clear();
        envelope.write_json(&mut scratch);
        cmd.arg(&scratch[..]);
    }
}

/// LPUSHes `envelopes` in one round trip and returns once Redis confirmed it. The list is
/// consumed from the tail, so envelopes pushed together are consumed in the order given.
///
/// Fails with [`ApiError::QueueFull`] when the push would take the queue past its bound, and
/// with [`ApiError::RedisUnavailable`] when Redis errors or does not answer within `timeout`;
/// either way nothing was queued.
#[tracing::instrument(name = "redis.lpush", skip_all, fields(count = envelopes.len()), err(level = "debug"))]
pub async fn push(
    conn: &mut RedisConnection,
    keys: &Keys,
    envelopes: Vec<Envelope>,
    depth: &Depth,
    timeout: Duration,
) -> Result<u64, ApiError> {
    static BOUNDED: std::sync::LazyLock<LuaScript> =
        std::sync::LazyLock::new(|| LuaScript::new(include_str!("lua/push_bounded.lua")));
    let n = envelopes.len() as u64;
    let known = depth.get();
    if known + n > depth.max {
        return Err(ApiError::QueueFull { depth: known });
    }
    let (count, bytes) = (envelopes.len(), json_bytes(&envelopes));
    let reply = if known + n > depth.max - depth.margin {
        let mut cmd = BOUNDED
            .command(keys, &[], 1 + count, 20 + bytes)
            .map_err(unnamed_key)?;
        cmd.arg(depth.max);
        add_envelopes(&mut cmd, envelopes);
        within(timeout, "bounded LPUSH", BOUNDED.run::<i64>(&cmd, conn)).await?
    } else {
        let key = &keys.pending_messages;
        let mut cmd = redis::Cmd::with_capacity(2 + count, 5 + key.len() + bytes);
        cmd.arg("LPUSH").arg(key);
        add_envelopes(&mut cmd, envelopes);
        within(timeout, "LPUSH", cmd.query_async::<i64>(conn)).await?
    };
    if reply >= 0 {
        note_full(true);
        depth.set(reply as u64);
        Ok(reply as u64)
    } else {
        let len = (-reply - 1) as u64;
        depth.set(len);
        Err(ApiError::QueueFull { depth: len })
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

/// What [`push_idempotent`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The envelopes were queued.
    Queued,
    /// The key was used before: nothing was queued; this is the first request's answer.
    Replay(String),
}

/// The keys an idempotent push touches, and how long the client's key is kept.
#[derive(Debug, Clone, Copy)]
pub struct IdempotentKeys<'a> {
    /// The deployment's keys (`pending_messages`, `idempotency_keys`).
    pub keys: &'a Keys,
    /// `idempotency:<key>`.
    pub key: &'a str,
    /// TTL and cap.
    pub retention: Retention,
}

/// Queues `envelopes` under the client's idempotency key (a full Redis key) and
/// records `answer`, in one round trip: a retry with the same key queues nothing and gets the
/// first answer back, even when the first answer was lost (for example when Redis went down
/// just after queueing).
#[tracing::instrument(name = "redis.lpush_idempotent", skip_all, fields(count = envelopes.len()), err(level = "debug"))]
pub async fn push_idempotent(
    conn: &mut RedisConnection,
    keys: IdempotentKeys<'_>,
    envelopes: Vec<Envelope>,
    answer: &str,
    depth: &Depth,
    timeout: Duration,
) -> Result<Pushed, ApiError> {
    static SCRIPT: std::sync::LazyLock<LuaScript> =
        std::sync::LazyLock::new(|| LuaScript::new(include_str!("lua/push_idempotent.lua")));
    let bytes = 80 + answer.len() + json_bytes(&envelopes);
    let extra = [("idempotency", keys.key)];
    let mut cmd = SCRIPT
        .command(keys.keys, &extra, 5 + envelopes.len(), bytes)
        .map_err(unnamed_key)?;
    cmd.arg(depth.max)
        .arg(keys.retention.ttl_secs)
        .arg(keys.retention.max_keys)
        .arg(keys.retention.max_bytes)
        .arg(answer);
    add_envelopes(&mut cmd, envelopes);
    let call = SCRIPT.run::<(i64, redis::Value)>(&cmd, conn);
    let reply = within(timeout, "idempotent LPUSH", call).await?;
    match reply {
        (1, len) => {
            note_full(true);
            if let Ok(len) = redis::from_redis_value::<u64>(len) {
                depth.set(len);
            }
            Ok(Pushed::Queued)
        }
        (0, previous) => Ok(Pushed::Replay(
            redis::from_redis_value::<String>(previous).unwrap_or_default(),
        )),
        (_, len) => {
            let len = redis::from_redis_value::<u64>(len).unwrap_or(depth.max);
            depth.set(len);
            Err(ApiError::QueueFull { depth: len })
        }
    }
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
mod script_tests {
    use sluice_core::Keys;
    use sluice_core::lua::LuaScript;

    #[test]
    fn every_ingest_script_names_only_keys_it_is_given() {
        let keys = Keys::new("");
        for source in [
            include_str!("lua/push_bounded.lua"),
            include_str!("lua/push_idempotent.lua"),
            include_str!("lua/count_accepted.lua"),
        ] {
            let script = LuaScript::new(source);
            assert!(!script.key_names().is_empty());
            let extra = [("idempotency", "idempotency:k")];
            assert!(
                script.keyed(&keys, &extra).is_ok(),
                "{:?}",
                script.key_names()
            );
        }
    }
}
