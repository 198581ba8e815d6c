//! `sluice-bench redis-cost`: what the fleet using a private Redis costs it per second.

use std::time::Duration;

use clap::Args;
use sluice_bench::redis_cost;

use super::report::row;

/// The options of `sluice-bench redis-cost`.
#[derive(Args)]
pub struct RedisCostArgs {
    /// The private Redis the fleet uses (every command on it is counted).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Seconds between the two readings.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// A label for the table and the JSON line (for example "8 workers, idle").
    #[arg(long, default_value = "")]
    label: String,
}

impl RedisCostArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let window = Duration::from_secs_f64(self.duration);
        let cost = redis_cost::measure(&self.redis, window).await?;
        println!("redis-cost: {}", self.label);
        row(
            "commands per second",
            format!("{:.0}", cost.commands_per_sec),
        );
        row(
            "script calls per second",
            format!("{:.1}", cost.script_calls_per_sec),
        );
        row(
            "command time per second",
            format!("{:.2} ms", cost.command_usec_per_sec / 1000.0),
        );
        row(
            "main thread CPU per second",
            format!("{:.2} ms", cost.main_thread_cpu_ms_per_sec),
        );
        for (name, calls) in &cost.top_commands {
            row(&format!("  {name}"), format!("{calls:.1}/s"));
        }
        println!(
            "{}",
            serde_json::json!({"scenario": "redis-cost", "label": self.label, "report": cost})
        );
        Ok(())
    }
}
