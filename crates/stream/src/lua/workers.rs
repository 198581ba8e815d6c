//! `workers.lua`: the registry, with what each worker holds.

use std::sync::LazyLock;

use redis::FromRedisValue;
use sluice_core::lua::{Argv, LuaScript, Script, unexpected};

/// Most workers listed (most recent heartbeat first).
pub const MAX_LISTED: usize = 500;

/// Most departures listed (most recent first).
pub const MAX_GONE_LISTED: usize = 100;

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct ListWorkers<'a> {
    /// What a worker's processing list is named before its id.
    pub processing_prefix: &'a str,
}

/// The registry as the script read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    /// The Redis clock, ms.
    pub now_ms: u64,
    /// The workers, most recent heartbeat first.
    pub workers: Vec<Listed>,
    /// The workers that left lately, most recent first.
    pub gone: Vec<Left>,
}

/// One worker as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Its id.
    pub id: String,
    /// Its last heartbeat, ms, Redis clock.
    pub seen_ms: u64,
    /// Messages in its processing list.
    pub in_hand: u64,
    /// PostgreSQL as it sees it: `up`, `down`, or empty when it never said.
    pub postgres: String,
    /// Its output, `workers_output`'s field, or empty.
    pub output: String,
    /// Its rows per second over the window of `current_rps`, when it persisted any in it.
    pub rate: Option<f64>,
    /// The PostgreSQL server it reaches, `workers_postgres_server`'s field, or empty.
    pub postgres_server: String,
}

/// One departure as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Left {
    /// The worker's id.
    pub id: String,
    /// When it left, ms, Redis clock.
    pub at_ms: u64,
    /// `workers_gone_how`'s field: `exit` or `reclaimed <peer>`.
    pub how: String,
}

impl Script for ListWorkers<'_> {
    type Reply = Registry;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| LuaScript::new(&[include_str!("workers.lua")]));
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.processing_prefix)
            .arg(MAX_LISTED)
            .arg(sluice_core::keys::WORKERS_GONE_KEPT_MS)
            .arg(MAX_GONE_LISTED);
    }
}

impl FromRedisValue for Registry {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let reply = Vec::<String>::from_redis_value(v)?;
        let bad = || unexpected("workers.lua", &reply);
        let [now, listed, rest @ ..] = reply.as_slice() else {
            return Err(bad());
        };
        let listed: usize = listed.parse().map_err(|_| bad())?;
        let (registry, gone) = rest.split_at_checked(listed * 7).ok_or_else(bad)?;
        let ms = |s: &str| s.parse::<f64>().map_or(0, |ms| ms as u64);
        let workers = registry
            .chunks_exact(7)
            .map(|w| Listed {
                id: w[0].clone(),
                seen_ms: ms(&w[1]),
                in_hand: w[2].parse().unwrap_or(0),
                postgres: w[3].clone(),
                output: w[4].clone(),
                rate: w[5].parse().ok(),
                postgres_server: w[6].clone(),
            })
            .collect();
        let gone = gone
            .chunks_exact(3)
            .map(|g| Left {
                id: g[0].clone(),
                at_ms: ms(&g[1]),
                how: g[2].clone(),
            })
            .collect();
        Ok(Self {
            now_ms: now.parse().map_err(|_| bad())?,
            workers,
            gone,
        })
    }
}
