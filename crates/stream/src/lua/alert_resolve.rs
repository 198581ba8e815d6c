//! `alert_resolve.lua`: resolves an active alert.

use std::sync::LazyLock;

use sluice_core::keys::ALERTS_RECENT_MAX;
use sluice_core::lua::{Argv, LuaScript, Script};

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct Resolve<'a> {
    /// The rule's name.
    pub rule: &'a str,
    /// When, RFC 3339.
    pub resolved_at: &'a str,
    /// The rule's value now.
    pub value: f64,
    /// Its summary now.
    pub summary: &'a str,
}

impl Script for Resolve<'_> {
    /// Whether this call resolved it (`false`: it was not active).
    type Reply = bool;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| LuaScript::new(&[include_str!("alert_resolve.lua")]));
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.rule)
            .arg(self.resolved_at)
            .arg(self.value)
            .arg(self.summary)
            .arg(ALERTS_RECENT_MAX);
    }
}
