//! `take_allowance.lua`: takes messages from a caller's fleet-wide allowance.

use std::sync::LazyLock;
use std::time::Duration;

use redis::FromRedisValue;
use sluice_core::auth::Limit;
use sluice_core::lua::{Argv, LuaScript, Script, unexpected};

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct TakeAllowance<'a> {
    /// The key `allowance:<key id>`.
    pub key: &'a str,
    /// The caller's limit.
    pub limit: Limit,
    /// How many messages to take, at most.
    pub want: u32,
}

/// What the script granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// Messages taken.
    pub granted: u32,
    /// Until the next token, when the allowance is spent.
    pub wait: Duration,
}

impl Script for TakeAllowance<'_> {
    type Reply = Granted;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| LuaScript::new(&[include_str!("take_allowance.lua")]));
        &SCRIPT
    }

    fn own_keys(&self) -> Vec<(&'static str, &str)> {
        vec![("allowance", self.key)]
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.limit.rate)
            .arg(self.limit.burst)
            .arg(self.want);
    }
}

impl FromRedisValue for Granted {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let reply = Vec::<u64>::from_redis_value(v)?;
        match reply[..] {
            [granted, wait] => Ok(Self {
                granted: u32::try_from(granted).unwrap_or(u32::MAX),
                wait: Duration::from_micros(wait),
            }),
            _ => Err(unexpected("take_allowance.lua", &reply)),
        }
    }
}
