//! `GET /workers`: the workers in the registry, for the dashboard's worker list.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use sluice_core::Keys;
use sluice_core::lua;
use sluice_core::settings::limits;
use sluice_proto::api::{Departure, GoneWorker, WorkerInfo, WorkerList, WorkerOutput, WorkerState};

pub use crate::lua::workers::MAX_LISTED;
use crate::lua::workers::{ListWorkers, Registry};

/// Reads the worker list in one round trip.
pub async fn read<C>(
    conn: &mut C,
    keys: &Keys,
    dead_after: Duration,
) -> redis::RedisResult<WorkerList>
where
    C: redis::aio::ConnectionLike + Send,
{
    let processing_prefix = keys.processing("");
    let list = ListWorkers {
        processing_prefix: &processing_prefix,
    };
    let registry = lua::call(conn, keys, &list).await?;
    Ok(describe(registry, dead_after.as_millis() as u64))
}

/// The registry as the API lists it: each worker's state from its heartbeat's age, its rate
/// only while it is up, and the workers that left lately with how.
fn describe(registry: Registry, dead_after_ms: u64) -> WorkerList {
    let late_after_ms = limits::late_after_ms(dead_after_ms);
    let workers = registry
        .workers
        .into_iter()
        .map(|w| {
            let age = registry.now_ms.saturating_sub(w.seen_ms);
            let state = WorkerState::of(age, late_after_ms, dead_after_ms);
            let output = WorkerOutput::from_field(&w.output);
            let up = state == WorkerState::Up;
            let (since, server) = match w.postgres_server.split_once(' ') {
                Some((since, server)) => (since.parse::<u64>().ok().map(rfc3339), Some(server)),
                None => (None, None),
            };
            WorkerInfo {
                postgres_server: server.map(str::to_owned),
                postgres_server_since: since,
                last_heartbeat: rfc3339(w.seen_ms),
                heartbeat_age_ms: age,
                in_hand: w.in_hand,
                alive: state != WorkerState::PresumedDead,
                late: state == WorkerState::Late,
                state,
                postgres: if w.postgres.is_empty() {
                    "unknown".into()
                } else {
                    w.postgres
                },
                batches: output.map(|o| o.batches),
                persisted: output.map(|o| o.persisted),
                // Silent: what it does now is unknown. Up and idle in the window: 0.
                persisted_per_second: up.then(|| w.rate.unwrap_or(0.0)),
                id: w.id,
            }
        })
        .collect();
    let gone = registry
        .gone
        .into_iter()
        .filter_map(|g| {
            Some(GoneWorker {
                state: WorkerState::Gone,
                left_at: rfc3339(g.at_ms),
                left_ago_ms: registry.now_ms.saturating_sub(g.at_ms),
                departure: Departure::from_field(&g.how)?,
                id: g.id,
            })
        })
        .collect();
    WorkerList {
        workers,
        gone,
        dead_after_ms,
        late_after_ms,
    }
}

fn rfc3339(ms: u64) -> String {
    DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(reply: &[&str]) -> Registry {
        let reply = reply
            .iter()
            .map(|s| redis::Value::BulkString(s.as_bytes().to_vec()))
            .collect();
        redis::from_redis_value(redis::Value::Array(reply)).expect("a registry")
    }

    #[test]
    fn each_worker_gets_its_state_and_only_an_up_one_a_rate() {
        let reply = [
            "1700000010000",
            "4",
            "w1",
            "1700000009500",
            "12",
            "up",
            "4 1200 40.5",
            "38.20",
            "1700000002000 10.0.0.12:5432",
            "w3",
            "1700000007000",
            "0",
            "up",
            "1 10 0.0",
            "5.00",
            "1700000002000 a local socket",
            "w2",
            "1700000000000",
            "3",
            "",
            "",
            "",
            "",
            "w4",
            "1700000009900",
            "0",
            "up",
            "",
            "",
            "",
            "w5",
            "1700000004000",
            "exit",
            "w6",
            "1700000001000",
            "reclaimed w1",
            "w7",
            "1700000001000",
            "garbage",
        ];
        let list = describe(registry(&reply), 10_000);
        assert_eq!(list.late_after_ms, 2_500);
        let states: Vec<_> = list
            .workers
            .iter()
            .map(|w| (w.id.as_str(), w.state))
            .collect();
        assert_eq!(
            states,
            [
                ("w1", WorkerState::Up),
                ("w3", WorkerState::Late),
                ("w2", WorkerState::PresumedDead),
                ("w4", WorkerState::Up),
            ]
        );
        let w1 = &list.workers[0];
        assert_eq!((w1.batches, w1.persisted), (Some(4), Some(1200)));
        assert_eq!(
            w1.persisted_per_second,
            Some(38.2),
            "the window's, not its own"
        );
        assert_eq!((w1.heartbeat_age_ms, w1.in_hand), (500, 12));
        assert_eq!(w1.last_heartbeat, "2023-11-14T22:13:29.500Z");
        assert!(w1.alive && !w1.late);
        assert_eq!(w1.postgres_server.as_deref(), Some("10.0.0.12:5432"));
        assert_eq!(
            w1.postgres_server_since.as_deref(),
            Some("2023-11-14T22:13:22.000Z")
        );
        let late = &list.workers[1];
        assert_eq!(late.postgres_server.as_deref(), Some("a local socket"));
        assert_eq!(
            late.persisted_per_second, None,
            "a late worker's rate is unknown"
        );
        assert!(late.alive && late.late);
        let dead = &list.workers[2];
        assert_eq!(dead.persisted_per_second, None);
        assert!(!dead.alive && !dead.late);
        assert_eq!(dead.postgres, "unknown");
        assert_eq!(
            (&dead.postgres_server, &dead.postgres_server_since),
            (&None, &None)
        );
        assert_eq!(dead.batches, None, "a worker that does not report it");
        assert_eq!(
            list.workers[3].persisted_per_second,
            Some(0.0),
            "up and idle in the window"
        );
        let gone: Vec<_> = list
            .gone
            .iter()
            .map(|g| (g.id.as_str(), g.departure.label(), g.left_ago_ms))
            .collect();
        assert_eq!(
            gone,
            [
                ("w5", "exited".to_owned(), 6_000),
                ("w6", "reclaimed by w1".to_owned(), 9_000),
            ],
            "an unreadable departure is left out"
        );
        assert!(list.gone.iter().all(|g| g.state == WorkerState::Gone));
        let empty = describe(registry(&["1", "0"]), 1);
        assert!(empty.workers.is_empty() && empty.gone.is_empty());
        let short = redis::Value::Array(vec![redis::Value::BulkString(b"1".to_vec())]);
        assert!(redis::from_redis_value::<Registry>(short).is_err());
    }
}
