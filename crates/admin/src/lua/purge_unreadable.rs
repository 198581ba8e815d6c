//! `purge_unreadable.lua`: deletes, one chunk of the oldest entries at a time, those requeue
//! cannot read.

use std::sync::LazyLock;

use sluice_core::lua::{Argv, LuaScript, Script};

use super::{CHUNK_BYTES, Chunk};

/// One call, on the oldest `limit` entries at most.
#[derive(Debug, Clone, Copy)]
pub struct PurgeUnreadable {
    /// Most entries examined (at most [`super::CHUNK_ENTRIES`]).
    pub limit: u64,
}

impl Script for PurgeUnreadable {
    /// `[purged]`, and the entries examined.
    type Reply = Chunk<1>;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| {
            LuaScript::new(&[super::DEAD_PAYLOAD, include_str!("purge_unreadable.lua")])
        });
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.limit).arg(CHUNK_BYTES);
    }
}
