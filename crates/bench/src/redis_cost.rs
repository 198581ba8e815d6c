//! What a running fleet costs its Redis: `INFO commandstats` and `INFO cpu` read twice, a window
//! apart, and the deltas as rates.
//!
//! Run it against a private Redis that only the fleet under test uses: every command counts.
//! `scripts/bench redis-cost` starts one ingest API, one gateway and 1, 8 and 32 workers, idle
//! and under a steady load, and runs this for each.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

/// One command's counters from `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct CommandStat {
    calls: u64,
    usec: u64,
}

/// The counters read at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sample {
    commands: BTreeMap<String, CommandStat>,
    /// `used_cpu_user_main_thread + used_cpu_sys_main_thread`, in seconds.
    main_thread_cpu: f64,
}

/// The rates over a window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RedisCost {
    /// Length of the window, in seconds.
    pub window_secs: f64,
    /// Every command Redis executed per second, those run inside scripts included.
    pub commands_per_sec: f64,
    /// `EVAL`, `EVALSHA` and their read-only forms per second.
    pub script_calls_per_sec: f64,
    /// Microseconds per second Redis spent executing commands (`INFO commandstats` usec).
    pub command_usec_per_sec: f64,
    /// Milliseconds of CPU per second of Redis's main thread (`INFO cpu`).
    pub main_thread_cpu_ms_per_sec: f64,
    /// Calls per second of each command, busiest first (at most ten).
    pub top_commands: Vec<(String, f64)>,
}

/// Reads the counters, waits `window`, reads them again, and returns the rates. The two `INFO`
/// calls of this tool are left out.
pub async fn measure(redis_url: &str, window: Duration) -> anyhow::Result<RedisCost> {
    let client = redis::Client::open(redis_url).context("Redis URL")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("cannot connect to Redis at {redis_url}"))?;
    let before = sample(&mut conn).await?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let after = sample(&mut conn).await?;
    Ok(rates(&before, &after, started.elapsed().as_secs_f64()))
}

async fn sample(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Sample> {
    let commands: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let cpu: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    Ok(parse(&commands, &cpu))
}

/// The counters of `INFO commandstats` and `INFO cpu` replies.
fn parse(commandstats: &str, cpu: &str) -> Sample {
    let mut commands = BTreeMap::new();
    for line in commandstats.lines() {
        let Some((name, fields)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let field = |key: &str| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let stat = CommandStat {
            calls: field("calls"),
            usec: field("usec"),
        };
        commands.insert(name.to_owned(), stat);
    }
    let seconds = |key: &str| {
        cpu.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Sample {
        commands,
        main_thread_cpu: seconds("used_cpu_user_main_thread") + seconds("used_cpu_sys_main_thread"),
    }
}

fn rates(before: &Sample, after: &Sample, secs: f64) -> RedisCost {
    let mut deltas: Vec<(String, CommandStat)> = after
        .commands
        .iter()
        .map(|(name, a)| {
            let b = before.commands.get(name).copied().unwrap_or_default();
            let mut d = CommandStat {
                calls: a.calls.saturating_sub(b.calls),
                usec: a.usec.saturating_sub(b.usec),
            };
            // This tool's own INFO calls: the second pair counts its first half before answering.
            if name == "info" {
                d.calls = d.calls.saturating_sub(2);
            }
            (name.clone(), d)
        })
        .filter(|(_, d)| d.calls > 0)
        .collect();
    deltas.sort_by_key(|(_, d)| std::cmp::Reverse(d.calls));
    let per_sec = |x: u64| x as f64 / secs;
    let total = |f: fn(&CommandStat) -> u64| per_sec(deltas.iter().map(|(_, d)| f(d)).sum());
    let scripts = deltas
        .iter()
        .filter(|(name, _)| name.starts_with("eval"))
        .map(|(_, d)| d.calls)
        .sum();
    RedisCost {
        window_secs: secs,
        commands_per_sec: total(|d| d.calls),
        script_calls_per_sec: per_sec(scripts),
        command_usec_per_sec: total(|d| d.usec),
        main_thread_cpu_ms_per_sec: (after.main_thread_cpu - before.main_thread_cpu) * 1000.0
            / secs,
        top_commands: deltas
            .iter()
            .take(10)
            .map(|(name, d)| (name.clone(), per_sec(d.calls)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS_A: &str = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=500,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\ncmdstat_get:calls=100,usec=100,usec_per_call=1.00\r\ncmdstat_info:calls=4,usec=40\r\n";
    const STATS_B: &str = "# Commandstats\r\ncmdstat_evalsha:calls=30,usec=1500,usec_per_call=50.00\r\ncmdstat_get:calls=300,usec=300\r\ncmdstat_info:calls=6,usec=60\r\ncmdstat_eval_ro:calls=4,usec=8\r\n";

    #[test]
    fn deltas_become_rates_without_our_own_info_calls() {
        let before = parse(
            STATS_A,
            "used_cpu_user_main_thread:1.5\r\nused_cpu_sys_main_thread:0.5\r\n",
        );
        let after = parse(
            STATS_B,
            "used_cpu_user_main_thread:1.6\r\nused_cpu_sys_main_thread:0.6\r\n",
        );
        let cost = rates(&before, &after, 2.0);
        assert_eq!(cost.commands_per_sec, (20.0 + 200.0 + 4.0) / 2.0);
        assert_eq!(cost.script_calls_per_sec, 12.0);
        assert_eq!(cost.command_usec_per_sec, (1000.0 + 200.0 + 8.0) / 2.0);
        assert!((cost.main_thread_cpu_ms_per_sec - 100.0).abs() < 1e-9);
        assert_eq!(cost.top_commands[0], ("get".to_owned(), 100.0));
        assert!(cost.top_commands.iter().all(|(name, _)| name != "info"));
    }
}
