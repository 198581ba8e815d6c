//! `take.lua`: moves what is waiting into a worker's processing list.

use std::sync::LazyLock;

use sluice_core::lua::{Argv, LuaScript, Script};

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct Take<'a> {
    /// The worker's processing list.
    pub processing: &'a str,
    /// Most messages taken.
    pub limit: usize,
    /// The worker.
    pub worker_id: &'a str,
    /// Messages the worker moved itself just before (BLMOVE the batch's first: 1, else 0),
    /// counted in `in_flight` with these.
    pub moved_before: u64,
}

impl Script for Take<'_> {
    /// The messages taken, oldest first.
    type Reply = Vec<Vec<u8>>;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> = LazyLock::new(|| {
            super::script(
                &[sluice_core::lua::PUSH_LIST, super::IN_FLIGHT],
                include_str!("take.lua"),
            )
        });
        &SCRIPT
    }

    fn own_keys(&self) -> Vec<(&'static str, &str)> {
        vec![("processing", self.processing)]
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.limit)
            .arg(self.worker_id)
            .arg(self.moved_before);
    }
}
