//! `commit.lua`: records a batch PostgreSQL committed, in one atomic step.

use std::sync::LazyLock;

use sluice_core::lua::{Argv, LuaScript, Script};

/// How long the rate window hash lives without a new batch.
const RATE_WINDOW_TTL_SECS: u64 = 120;

/// What is recorded of one committed batch.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Rows the INSERT added.
    pub inserted: u64,
    /// JSON published on `batch_events`.
    pub event: &'a str,
    /// JSON entries for `dead_messages`.
    pub dead_letters: &'a [String],
    /// The batch's POST→commit latencies, `bucket:count,…` (see
    /// `sluice_core::stats::latency_histogram`).
    pub latency: &'a str,
    /// Most entries `dead_messages` keeps (`worker.dead_letters_max`).
    pub dead_letters_max: u64,
}

/// One call.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// The worker's processing list, which the batch leaves.
    pub processing: &'a str,
    /// The worker.
    pub worker_id: &'a str,
    /// What is recorded.
    pub record: &'a Record<'a>,
}

impl Script for Commit<'_> {
    /// `false` when it had already been recorded (a retry after a lost reply).
    type Reply = bool;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| super::script(&[super::IN_FLIGHT], include_str!("commit.lua")));
        &SCRIPT
    }

    fn own_keys(&self) -> Vec<(&'static str, &str)> {
        vec![("processing", self.processing)]
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        let record = self.record;
        argv.arg(record.inserted)
            .arg(record.event)
            .arg(RATE_WINDOW_TTL_SECS)
            .arg(record.latency)
            .arg(record.dead_letters_max)
            .arg(self.worker_id)
            .arg(record.dead_letters);
    }
}
