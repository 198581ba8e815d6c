//! `alert_refresh.lua`: refreshes the text of an alert still firing.

use std::sync::LazyLock;

use sluice_core::lua::{Argv, LuaScript, Script};

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct Refresh<'a> {
    /// The rule's name.
    pub rule: &'a str,
    /// When the alert started, as recorded.
    pub started_at: &'a str,
    /// The alert, as JSON.
    pub alert: &'a str,
}

impl Script for Refresh<'_> {
    /// Whether the alert was still the one that started then.
    type Reply = bool;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| LuaScript::new(&[include_str!("alert_refresh.lua")]));
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.rule).arg(self.started_at).arg(self.alert);
    }
}
