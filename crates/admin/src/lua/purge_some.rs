//! `purge_some.lua`: deletes, one chunk of the oldest entries at a time, those whose reason
//! matches a filter, or those requeue cannot read.

use std::sync::LazyLock;

use sluice_core::lua::{Argv, LuaScript, Script};

use super::{CHUNK_BYTES, Chunk};

/// One call, on the oldest `limit` entries at most.
#[derive(Debug, Clone, Copy)]
pub struct PurgeSome<'a> {
    /// Most entries examined (at most [`super::CHUNK_ENTRIES`]).
    pub limit: u64,
    /// The letters whose reason contains this (lower-case) are deleted; when empty, the
    /// entries requeue cannot read.
    pub reason: &'a str,
}

impl Script for PurgeSome<'_> {
    /// `[purged]`, and the entries examined.
    type Reply = Chunk<1>;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| {
            let own = include_str!("purge_some.lua");
            LuaScript::new(&[super::DEAD_PAYLOAD, super::REASON, super::OLDEST, own])
        });
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.limit).arg(CHUNK_BYTES).arg(self.reason);
    }
}
