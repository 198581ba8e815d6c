//! `unregister.lua`: a worker that stops leaves the registry, remembered as gone by `exit`.

use std::sync::LazyLock;

use sluice_core::keys;
use sluice_core::lua::{Argv, LuaScript, Script};

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct Unregister<'a> {
    /// The worker.
    pub worker_id: &'a str,
}

impl Script for Unregister<'_> {
    type Reply = ();

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| super::script(&[super::FORGET], include_str!("unregister.lua")));
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.worker_id)
            .arg(keys::WORKERS_GONE_KEPT_MS)
            .arg(keys::WORKERS_GONE_MAX);
    }
}
