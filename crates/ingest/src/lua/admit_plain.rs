//! `admit_plain.lua`: keeps or takes out, whole, each plain request of a group against the
//! bound, in the transaction that pushed them.

use std::sync::LazyLock;

use redis::FromRedisValue;
use sluice_core::keys::RATE_WINDOW_SECS;
use sluice_core::lua::{Argv, LuaScript, Script, unexpected};

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct AdmitPlain<'a> {
    /// `ingest.max_queue_depth`.
    pub bound: u64,
    /// The second of `accepted_window` the transaction counted them in.
    pub second: i64,
    /// Whether to trim `accepted_window` (once a second per thread).
    pub trim: bool,
    /// Each request's message count, in the order they were pushed.
    pub counts: &'a [usize],
}

/// What the script kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The queue's length after.
    pub len: u64,
    /// Per request, whether it stays queued.
    pub kept: Vec<bool>,
}

impl Script for AdmitPlain<'_> {
    type Reply = Admitted;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| {
            LuaScript::new(&[
                sluice_core::lua::PUSH_LIST,
                super::ADMIT,
                include_str!("admit_plain.lua"),
            ])
        });
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.bound)
            .arg(RATE_WINDOW_SECS)
            .arg(self.second)
            .arg(u8::from(self.trim))
            .arg(self.counts.len())
            .arg(self.counts);
    }
}

impl FromRedisValue for Admitted {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let flags = Vec::<u64>::from_redis_value(v)?;
        let Some((len, kept)) = flags.split_first() else {
            return Err(unexpected("admit_plain.lua", &flags));
        };
        Ok(Self {
            len: *len,
            kept: kept.iter().map(|&flag| flag == 1).collect(),
        })
    }
}
