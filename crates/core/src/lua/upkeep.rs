//! `upkeep.lua`: the fleet's stats upkeep, run by the holder of the upkeep lease.

use std::sync::LazyLock;
use std::time::Duration;

use redis::FromRedisValue;

use super::{Argv, LuaScript, Script, TAKE_LEASE};
use crate::keys::{HISTORY_1M_POINTS, HISTORY_1S_POINTS, RATE_WINDOW_SECS};
use crate::stats::LATENCY_BUCKETS_PER_OCTAVE;
use crate::upkeep::{HISTORY_GAP_FILL_SECS, LEASE};

/// One call: the upkeep if the lease is this process's or free, or the lease given up.
#[derive(Debug, Clone, Copy)]
pub struct Upkeep<'a> {
    /// The contender, unique per process.
    pub holder: &'a str,
    /// `false` to run, `true` to release the lease if `holder` holds it.
    pub release: bool,
    /// Workers count as alive in the history while their heartbeat is younger than this.
    pub worker_fresh_ms: u64,
    /// Replicas a push needs (`redis.ack_replicas`), recorded beside the replicas in sync.
    pub replicas_wanted: u32,
}

/// What one call of the upkeep script found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// This process holds the lease and did the upkeep.
    Done,
    /// Another process holds the lease for this much longer (zero after a release).
    HeldElsewhere(Duration),
}

impl Script for Upkeep<'_> {
    type Reply = Turn;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| LuaScript::new(&[TAKE_LEASE, include_str!("upkeep.lua")]));
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.holder)
            .arg(LEASE.as_millis() as u64)
            .arg(if self.release { "release" } else { "run" })
            .arg(RATE_WINDOW_SECS)
            .arg(self.worker_fresh_ms)
            .arg(HISTORY_1S_POINTS)
            .arg(HISTORY_1M_POINTS)
            .arg(HISTORY_GAP_FILL_SECS)
            .arg(LATENCY_BUCKETS_PER_OCTAVE)
            .arg(self.replicas_wanted)
            .arg(crate::settings::limits::REPLICA_LAG_MAX_SECS);
    }
}

impl FromRedisValue for Turn {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let (done, ms) = <(u8, i64)>::from_redis_value(v)?;
        Ok(match done {
            1 => Turn::Done,
            _ => Turn::HeldElsewhere(Duration::from_millis(ms.max(0) as u64)),
        })
    }
}
