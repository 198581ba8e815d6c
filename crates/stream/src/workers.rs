//! `GET /workers`: the workers in the registry, for the dashboard's worker list.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use sluice_core::Keys;
use sluice_core::lua::LuaScript;
use sluice_proto::api::{WorkerInfo, WorkerList, WorkerOutput};

/// Most workers listed (most recent heartbeat first).
pub const MAX_LISTED: usize = 500;

/// Reads the worker list in one round trip.
pub async fn read<C>(
    conn: &mut C,
    keys: &Keys,
    dead_after: Duration,
) -> redis::RedisResult<WorkerList>
where
    C: redis::aio::ConnectionLike + Send,
{
    static SCRIPT: std::sync::LazyLock<LuaScript> =
        std::sync::LazyLock::new(|| LuaScript::new(include_str!("lua/workers.lua")));
    let mut invocation = SCRIPT.keyed(keys, &[])?;
    invocation.arg(keys.processing("")).arg(MAX_LISTED);
    let reply: Vec<String> = invocation.invoke_async(conn).await?;
    Ok(parse(&reply, dead_after.as_millis() as u64))
}

fn parse(reply: &[String], dead_after_ms: u64) -> WorkerList {
    let now: u64 = reply.first().and_then(|s| s.parse().ok()).unwrap_or(0);
    let workers = reply
        .get(1..)
        .unwrap_or_default()
        .chunks_exact(5)
        .map(|w| {
            let seen: u64 = w[1].parse::<f64>().map_or(0, |ms| ms as u64);
            let age = now.saturating_sub(seen);
            let output = WorkerOutput::from_field(&w[4]);
            WorkerInfo {
                id: w[0].clone(),
                last_heartbeat: DateTime::from_timestamp_millis(seen as i64)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                    .unwrap_or_default(),
                heartbeat_age_ms: age,
                in_hand: w[2].parse().unwrap_or(0),
                alive: age < dead_after_ms,
                late: age >= late_after(dead_after_ms) && age < dead_after_ms,
                postgres: if w[3].is_empty() {
                    "unknown".into()
                } else {
                    w[3].clone()
                },
                batches: output.map(|o| o.batches),
                persisted: output.map(|o| o.persisted),
                persisted_per_second: output.map(|o| o.persisted_per_second),
            }
        })
        .collect();
    WorkerList {
        workers,
        dead_after_ms,
        late_after_ms: late_after(dead_after_ms),
    }
}

/// The heartbeat age past which a worker is late: a quarter of `dead_after_ms`, at least a
/// second (four heartbeats).
pub fn late_after(dead_after_ms: u64) -> u64 {
    (dead_after_ms / 4).max(1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_script_reply() {
        let reply: Vec<String> = [
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
        .map(String::from)
        .to_vec();
        let list = parse(&reply, 5_000);
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
        assert!(parse(&[], 1).workers.is_empty());
    }
}
