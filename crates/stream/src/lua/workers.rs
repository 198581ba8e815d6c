//! `workers.lua`: the registry, with what each worker holds.

use std::sync::LazyLock;

use redis::FromRedisValue;
use sluice_core::lua::{Argv, LuaScript, Script, unexpected};

/// Most workers listed (most recent heartbeat first).
pub const MAX_LISTED: usize = 500;

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
}

impl Script for ListWorkers<'_> {
    type Reply = Registry;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| LuaScript::new(&[include_str!("workers.lua")]));
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.processing_prefix).arg(MAX_LISTED);
    }
}

impl FromRedisValue for Registry {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let reply = Vec::<String>::from_redis_value(v)?;
        let Some((now, rest)) = reply.split_first() else {
            return Err(unexpected("workers.lua", &reply));
        };
        let workers = rest
            .chunks_exact(5)
            .map(|w| Listed {
                id: w[0].clone(),
                seen_ms: w[1].parse::<f64>().map_or(0, |ms| ms as u64),
                in_hand: w[2].parse().unwrap_or(0),
                postgres: w[3].clone(),
                output: w[4].clone(),
            })
            .collect();
        Ok(Self {
            now_ms: now.parse().map_err(|_| unexpected("workers.lua", &reply))?,
            workers,
        })
    }
}
