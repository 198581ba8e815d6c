//! `take_one.lua`: looks for one dead letter among a chunk of entries, and requeues or
//! deletes it.

use std::sync::LazyLock;

use redis::FromRedisValue;
use sluice_core::lua::{Argv, LuaScript, Script, unexpected};

use super::CHUNK_BYTES;

/// What to do with the dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Put its exact bytes back in the queue, behind what is pending.
    Requeue,
    /// Drop it.
    Delete,
}

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct TakeOne<'a> {
    /// Its id, the SHA-1 of its bytes.
    pub id: &'a str,
    /// The first position examined (0 = newest).
    pub from: u64,
    /// Most entries examined.
    pub count: u64,
    /// What to do with it.
    pub action: Action,
}

/// What the call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// It was taken out.
    Taken,
    /// It is there, but requeue cannot know its bytes (unreadable, or cut).
    Unreadable,
    /// Not among the entries examined (0: there were none).
    NotAmong(u64),
}

impl Script for TakeOne<'_> {
    type Reply = Found;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| {
            LuaScript::new(&[
                super::DEAD_PAYLOAD,
                super::ENTRIES,
                include_str!("take_one.lua"),
            ])
        });
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        let action = match self.action {
            Action::Requeue => "requeue",
            Action::Delete => "delete",
        };
        argv.arg(self.id)
            .arg(self.from)
            .arg(self.count)
            .arg(CHUNK_BYTES)
            .arg(action);
    }
}

impl FromRedisValue for Found {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let (found, examined) = <(i64, u64)>::from_redis_value(v)?;
        match found {
            1 => Ok(Self::Taken),
            -1 => Ok(Self::Unreadable),
            0 => Ok(Self::NotAmong(examined)),
            _ => Err(unexpected("take_one.lua", &(found, examined))),
        }
    }
}
