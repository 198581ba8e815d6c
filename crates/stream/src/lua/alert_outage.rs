//! `alert_outage.lua`: records a Redis outage a gateway lived through, once for the fleet.

use std::sync::LazyLock;

use sluice_core::keys::ALERTS_RECENT_MAX;
use sluice_core::lua::{Argv, LuaScript, Script};

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct Outage<'a> {
    /// The `redis_down` alert as it fired, JSON.
    pub firing: &'a str,
    /// The same, resolved, JSON.
    pub resolved: &'a str,
    /// When it started, RFC 3339.
    pub started_at: &'a str,
}

impl Script for Outage<'_> {
    /// Whether this call recorded it (`false`: another gateway had).
    type Reply = bool;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| LuaScript::new(&[include_str!("alert_outage.lua")]));
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.firing)
            .arg(self.resolved)
            .arg(self.started_at)
            .arg(ALERTS_RECENT_MAX);
    }
}
