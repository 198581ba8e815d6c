//! `claim.lua`: takes over a dead worker's batch.

use std::sync::LazyLock;

use redis::FromRedisValue;
use sluice_core::keys;
use sluice_core::lua::{Argv, LuaScript, Script};
use sluice_core::settings::limits;

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The dead worker's processing list.
    pub dead_processing: &'a str,
    /// The claimer's.
    pub processing: &'a str,
    /// The dead worker.
    pub dead_id: &'a str,
    /// Silence after which it is dead, ms.
    pub dead_after_ms: u64,
    /// The claimer.
    pub claimer: &'a str,
}

/// How many messages moved, or `None` when the worker came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed(pub Option<u64>);

impl Script for Claim<'_> {
    type Reply = Claimed;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| {
            let shared = [super::IN_FLIGHT, super::FORGET, super::LIVENESS];
            super::script(&shared, include_str!("claim.lua"))
        });
        &SCRIPT
    }

    fn own_keys(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("dead_processing", self.dead_processing),
            ("processing", self.processing),
        ]
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.dead_id)
            .arg(self.dead_after_ms)
            .arg(self.claimer)
            .arg(limits::HEARTBEATS_MISSED)
            .arg(keys::WORKERS_GONE_KEPT_MS)
            .arg(keys::WORKERS_GONE_MAX);
    }
}

impl FromRedisValue for Claimed {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        Ok(Self(u64::try_from(i64::from_redis_value(v)?).ok()))
    }
}
