//! `alert_fire.lua`: fires an alert unless another gateway fired it first.

use std::sync::LazyLock;

use sluice_core::keys::ALERTS_RECENT_MAX;
use sluice_core::lua::{Argv, LuaScript, Script};

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct Fire<'a> {
    /// The rule's name.
    pub rule: &'a str,
    /// The alert, as JSON.
    pub alert: &'a str,
}

impl Script for Fire<'_> {
    /// Whether this call fired it.
    type Reply = bool;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| LuaScript::new(&[include_str!("alert_fire.lua")]));
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.rule).arg(self.alert).arg(ALERTS_RECENT_MAX);
    }
}
