//! `stats.lua`: every stats figure in one round trip, writing nothing.

use std::sync::LazyLock;

use redis::FromRedisValue;
use sluice_proto::stats::{Latency, Stats};

use super::{Argv, LuaScript, Script};

/// One reading.
#[derive(Debug, Clone, Copy)]
pub struct ReadStats {
    /// Workers count as alive while their last heartbeat is younger than this.
    pub worker_fresh_ms: u64,
}

/// The stats read.
#[derive(Debug, Clone)]
pub struct Reply(pub Stats);

impl Script for ReadStats {
    type Reply = Reply;

    fn script() -> &'static LuaScript {
        static SCRIPT: LazyLock<LuaScript> =
            LazyLock::new(|| LuaScript::new(&[include_str!("stats.lua")]));
        &SCRIPT
    }

    fn args<A: Argv>(&self, argv: &mut A) {
        argv.arg(self.worker_fresh_ms)
            .arg(crate::settings::limits::late_after_ms(self.worker_fresh_ms))
            .arg(crate::keys::WORKERS_GONE_KEPT_MS)
            .arg(sluice_proto::stats::NAMED_WORKERS);
    }
}

impl FromRedisValue for Reply {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let reply = Vec::<String>::from_redis_value(v)?;
        from_reply(&reply)
            .map(Reply)
            .ok_or_else(|| super::unexpected("stats.lua", &reply))
    }
}

fn decimal(s: &str) -> f64 {
    s.parse().unwrap_or(0.0)
}

fn millis(s: &str) -> Option<f64> {
    s.parse().ok()
}

fn ids(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// `'<name>:<rate>,…'`, as the upkeep writes rates by name; a malformed part is skipped.
pub fn rates_by_name(s: &str) -> std::collections::BTreeMap<String, f64> {
    s.split(',')
        .filter_map(|part| {
            let (name, rate) = part.rsplit_once(':')?;
            Some((name.to_owned(), rate.parse().ok()?))
        })
        .collect()
}

/// The stats from the script's reply, in its order, taken now.
fn from_reply(reply: &[String]) -> Option<Stats> {
    let [
        total,
        batches,
        queue,
        rps,
        accepted,
        accepted_rps,
        in_flight,
        alive,
        rest @ ..,
    ] = reply
    else {
        return None;
    };
    let [
        pg_down,
        dead,
        dead_total,
        oldest,
        p50,
        p95,
        p99,
        _now_ms,
        fleet @ ..,
    ] = rest
    else {
        return None;
    };
    let [late, lost, late_ids, lost_ids, in_sync, wanted, errors] = fleet else {
        return None;
    };
    let int = |s: &String| s.parse::<u64>().ok();
    let (queue, in_flight) = (int(queue)?, int(in_flight)?);
    Some(Stats {
        accepted_total: int(accepted)?,
        accepted_per_second: decimal(accepted_rps),
        in_flight,
        backlog: queue + in_flight,
        workers_alive: int(alive)?,
        workers_postgres_down: int(pg_down)?,
        dead_letters: int(dead)?,
        dead_letters_total: int(dead_total)?,
        oldest_pending_age_ms: int(oldest)?,
        commit_latency_ms: Latency {
            p50: millis(p50),
            p95: millis(p95),
            p99: millis(p99),
        },
        workers_late: int(late)?,
        workers_lost: int(lost)?,
        late_worker_ids: ids(late_ids),
        lost_worker_ids: ids(lost_ids),
        replicas_in_sync: int(in_sync),
        replicas_wanted: int(wanted).unwrap_or(0),
        errors_per_second: rates_by_name(errors),
        ..Stats::at(
            crate::clock::now(),
            int(total)?,
            int(batches)?,
            queue,
            decimal(rps),
        )
    })
}
