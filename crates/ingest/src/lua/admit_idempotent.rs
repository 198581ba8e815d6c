//! `admit_idempotent.lua`: keeps one request under an `Idempotency-Key` and records the key,
//! or takes its messages out again, in the transaction that pushed them.

use std::sync::LazyLock;

use redis::FromRedisValue;
use sluice_core::keys::{ACCEPTED_WINDOW_TTL_SECS, RATE_WINDOW_SECS};
use sluice_core::lua::{Argv, LuaScript, Script, unexpected};

use crate::queue::Retention;

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct AdmitIdempotent<'a> {
    /// The full key, `idempotency:<key>`.
    pub key: &'a str,
    /// `ingest.max_queue_depth` (0: none).
    pub bound: u64,
    /// How keys are kept.
    pub retention: Retention,
    /// The answer a retry gets back, JSON.
    pub answer: &'a str,
    /// The messages pushed.
    pub count: usize,
}

/// What the script did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Kept; the queue's length after.
    Queued(u64),
    /// The key was used before: nothing stays queued; the first request's answer.
    Replay(String),
    /// Taken out: the queue would pass its bound; its length.
    Full(u64),
    /// Taken out: a key is unusable (of another type); Redis's error.
    Unusable(String),
}

impl Script for AdmitIdempotent<'_> {
    type Reply = Admitted;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| {
            LuaScript::new(&[
                sluice_core::lua::PUSH_LIST,
                super::ADMIT,
                include_str!("admit_idempotent.lua"),
            ])
        });
        &SCRIPT
    }

    fn own_keys(&self) -> Vec<(&'static str, &str)> {
        vec![("idempotency", self.key)]
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        let retention = self.retention;
        argv.arg(self.bound)
            .arg(retention.ttl_secs)
            .arg(retention.max_keys)
            .arg(retention.max_bytes)
            .arg(self.answer)
            .arg(RATE_WINDOW_SECS)
            .arg(ACCEPTED_WINDOW_TTL_SECS)
            .arg(self.count);
    }
}

impl FromRedisValue for Admitted {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let (code, value) = <(i64, redis::Value)>::from_redis_value(v)?;
        Ok(match code {
            1 => Self::Queued(u64::from_redis_value(value)?),
            0 => Self::Replay(String::from_redis_value(value)?),
            -1 => Self::Full(u64::from_redis_value(value)?),
            -2 => Self::Unusable(String::from_redis_value(value)?),
            _ => return Err(unexpected("admit_idempotent.lua", &(code, value))),
        })
    }
}
