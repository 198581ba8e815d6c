//! `heartbeat.lua`: a worker's heartbeat, which also finds its dead peers.

use std::sync::LazyLock;

use redis::FromRedisValue;
use sluice_core::lua::{Argv, LuaScript, Script, TAKE_LEASE, unexpected};
use sluice_core::settings::limits;
use sluice_core::upkeep::LEASE;

/// One beat.
#[derive(Debug, Clone, Copy)]
pub struct Beat<'a> {
    /// The worker's processing list, whose length it recounts.
    pub processing: &'a str,
    /// The worker.
    pub worker_id: &'a str,
    /// Silence after which a peer is presumed dead, ms (`worker.dead_after_ms`), which also sets
    /// this worker's heartbeat period.
    pub dead_after_ms: u64,
    /// Whether PostgreSQL answers, as this worker sees it.
    pub postgres_up: bool,
    /// Its output, `'<batches> <rows> <rows/s>'`.
    pub output: &'a str,
    /// The PostgreSQL server it reaches, `'<since ms> <address>'`, or empty.
    pub postgres_server: &'a str,
}

/// What one heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeatReply {
    /// Whether this worker holds the stats upkeep lease.
    pub holds_upkeep: bool,
    /// Workers silent for longer than `dead_after_ms`, this one aside.
    pub dead_peers: Vec<String>,
}

impl Script for Beat<'_> {
    type Reply = BeatReply;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| {
            let shared = [super::IN_FLIGHT, TAKE_LEASE, super::LIVENESS];
            super::script(&shared, include_str!("heartbeat.lua"))
        });
        &SCRIPT
    }

    fn own_keys(&self) -> Vec<(&'static str, &str)> {
        vec![("processing", self.processing)]
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.worker_id)
            .arg(self.dead_after_ms)
            .arg(if self.postgres_up { "up" } else { "down" })
            .arg(LEASE.as_millis() as u64)
            .arg(self.output)
            .arg(limits::heartbeat_period_ms(self.dead_after_ms))
            .arg(limits::HEARTBEATS_MISSED)
            .arg(self.postgres_server);
    }
}

impl FromRedisValue for BeatReply {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let reply = Vec::<String>::from_redis_value(v)?;
        let Some((holds, dead)) = reply.split_first() else {
            return Err(unexpected("heartbeat.lua", &reply));
        };
        Ok(Self {
            holds_upkeep: holds == "1",
            dead_peers: dead.to_vec(),
        })
    }
}
