//! `sluice-bench fanout`: N WebSocket dashboards against a gateway.

use std::time::Duration;

use clap::Args;
use sluice_bench::fanout::{self, FanoutConfig, FanoutReport};

use super::report::{json_line, row, summary_rows};

/// The options of `sluice-bench fanout`.
#[derive(Args)]
pub struct FanoutArgs {
    #[arg(long, default_value = "ws://127.0.0.1:8001/ws/stats")]
    url: String,
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 250)]
    connect_batch: usize,
    /// Gateway pid, for its RSS and CPU.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// The gateway's Redis, for the command rate it causes.
    #[arg(long)]
    redis: Option<String>,
}

impl FanoutArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            url,
            clients,
            duration,
            warmup,
            connect_batch,
            gateway_pid,
            redis,
        } = self;
        let config = FanoutConfig {
            url,
            clients,
            connect_batch,
            warmup: Duration::from_secs_f64(warmup),
            duration: Duration::from_secs_f64(duration),
            gateway_pid,
            redis_url: redis,
        };
        let r = fanout::run(&config).await?;
        print_fanout(&r);
        json_line("fanout", &r, None);
        Ok(())
    }
}

fn print_fanout(r: &FanoutReport) {
    println!("fanout: {} clients", r.clients);
    row("connections established", r.established.to_string());
    row("connections failed", r.failed.to_string());
    row("window", format!("{:.1} s", r.window_secs));
    row("stats messages received", r.messages.to_string());
    row("messages per second", format!("{:.0}", r.messages_per_sec));
    row(
        "fewest messages per client",
        r.min_messages_per_client.to_string(),
    );
    summary_rows("delivery skew", &r.skew_ms);
    let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".to_owned(), |v| format!("{v:.1}{unit}"));
    row(
        "gateway RSS",
        opt(r.gateway_rss_bytes.map(|b| b as f64 / 1_048_576.0), " MiB"),
    );
    row(
        "gateway RSS per connection",
        opt(r.rss_per_connection_bytes.map(|b| b / 1024.0), " KiB"),
    );
    row(
        "gateway heap per connection",
        opt(r.heap_per_connection_bytes.map(|b| b / 1024.0), " KiB"),
    );
    row("gateway CPU", opt(r.gateway_cpu_percent, " %"));
    row(
        "gateway CPU per tick",
        opt(r.gateway_cpu_ms_per_tick, " ms"),
    );
    row(
        "Redis commands per second",
        opt(r.redis_commands_per_sec, ""),
    );
}
