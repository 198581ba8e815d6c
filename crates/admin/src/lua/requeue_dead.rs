//! `requeue_dead.lua`: moves one chunk of the oldest dead letters back to the queue.

use std::sync::LazyLock;

use sluice_core::lua::{Argv, LuaScript, Script};

use super::{CHUNK_BYTES, Chunk};

/// One call, on the oldest `limit` entries at most.
#[derive(Debug, Clone, Copy)]
pub struct RequeueDead<'a> {
    /// Most entries examined (at most [`super::CHUNK_ENTRIES`]).
    pub limit: u64,
    /// Only the letters whose reason contains this (lower-case); all when empty.
    pub reason: &'a str,
}

impl Script for RequeueDead<'_> {
    /// `[requeued, unreadable]`, and the entries examined.
    type Reply = Chunk<2>;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| {
            let own = include_str!("requeue_dead.lua");
            LuaScript::new(&[super::DEAD_PAYLOAD, super::REASON, super::OLDEST, own])
        });
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.limit).arg(CHUNK_BYTES).arg(self.reason);
    }
}
