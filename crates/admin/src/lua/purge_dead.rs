//! `purge_dead.lua`: deletes every dead letter at once.

use std::sync::LazyLock;

use sluice_core::lua::{Argv, LuaScript, Script};

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct PurgeDead;

impl Script for PurgeDead {
    /// How many there were.
    type Reply = u64;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| LuaScript::new(&[include_str!("purge_dead.lua")]));
        &SCRIPT
    }

    fn args<A: Argv>(&self, _: &mut A) {}
}
