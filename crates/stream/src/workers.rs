//! `GET /workers`: the workers in the registry, for the dashboard's worker list.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use sluice_core::Keys;
use sluice_core::lua;
use sluice_core::settings::limits;
use sluice_proto::api::{WorkerInfo, WorkerList, WorkerOutput};

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

/// The registry as the API lists it: each worker's age, and whether it is late or dead.
fn describe(registry: Registry, dead_after_ms: u64) -> WorkerList {
    let workers = registry
        .workers
        .into_iter()
        .map(|w| {
            let age = registry.now_ms.saturating_sub(w.seen_ms);
            let output = WorkerOutput::from_field(&w.output);
            WorkerInfo {
                last_heartbeat: DateTime::from_timestamp_millis(w.seen_ms as i64)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                    .unwrap_or_default(),
                heartbeat_age_ms: age,
                in_hand: w.in_hand,
                alive: age < dead_after_ms,
                late: age >= late_after(dead_after_ms) && age < dead_after_ms,
                postgres: if w.postgres.is_empty() {
                    "unknown".into()
                } else {
                    w.postgres
                },
                batches: output.map(|o| o.batches),
                persisted: output.map(|o| o.persisted),
                persisted_per_second: output.map(|o| o.persisted_per_second),
                id: w.id,
            }
        })
        .collect();
    WorkerList {
        workers,
        dead_after_ms,
        late_after_ms: late_after(dead_after_ms),
    }
}

/// The heartbeat age past which a worker is late: a quarter of `dead_after_ms`, at least two
/// heartbeat periods (see `limits::heartbeat_period_ms`).
pub fn late_after(dead_after_ms: u64) -> u64 {
    (dead_after_ms / 4).max(2 * limits::heartbeat_period_ms(dead_after_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_script_reply() {
        let reply = [
            "1700000010000",
            "w1",
            "1700000009500",
            "12",
            "up",
            "4 1200 40.5",
            "w2",
            "1700000000000",
            "3",
            "",
            "",
            "w3",
            "1700000008000",
            "0",
            "up",
            "1 10 0.0",
        ]
        .map(|s| redis::Value::BulkString(s.into()))
        .to_vec();
        let registry = redis::from_redis_value(redis::Value::Array(reply)).expect("a registry");
        let list = describe(registry, 5_000);
        assert_eq!(list.workers.len(), 3);
        assert_eq!(list.late_after_ms, 1_250);
        let w1 = &list.workers[0];
        assert_eq!((w1.batches, w1.persisted), (Some(4), Some(1200)));
        assert_eq!(w1.persisted_per_second, Some(40.5));
        assert!(!w1.late);
        assert!(
            list.workers[2].late && list.workers[2].alive,
            "2 s late of 5"
        );
        assert!(!list.workers[1].late, "dead, not late");
        assert_eq!(
            list.workers[1].batches, None,
            "a worker that does not report it"
        );
        assert_eq!(list.workers[0].id, "w1");
        assert_eq!(list.workers[0].heartbeat_age_ms, 500);
        assert_eq!(list.workers[0].in_hand, 12);
        assert!(list.workers[0].alive);
        assert_eq!(list.workers[0].last_heartbeat, "2023-11-14T22:13:29.500Z");
        assert!(!list.workers[1].alive);
        assert_eq!(list.workers[1].postgres, "unknown");
        assert!(describe(Registry::default(), 1).workers.is_empty());
        let empty = redis::Value::Array(vec![]);
        assert!(redis::from_redis_value::<Registry>(empty).is_err());
    }
}
