//! `sluice-bench` binary: `sluice-bench fanout --clients 10000 …`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sluice_bench::fanout::{self, FanoutConfig, FanoutReport};

#[derive(Parser)]
#[command(name = "sluice-bench", about = "Measure a running Sluice.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open N WebSocket dashboards against a gateway and measure delivery and cost.
    Fanout {
        /// Gateway WebSocket URL.
        #[arg(long, default_value = "ws://127.0.0.1:8001/ws/stats")]
        url: String,
        /// Dashboards to open.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Measured window in seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Pause after connecting, in seconds.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Connections opened at once while ramping up.
        #[arg(long, default_value_t = 250)]
        connect_batch: usize,
        /// Gateway pid, for its RSS and CPU.
        #[arg(long)]
        gateway_pid: Option<u32>,
        /// The gateway's Redis, for the command rate it causes.
        #[arg(long)]
        redis: Option<String>,
    },
}

fn print_fanout(r: &FanoutReport) {
    let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".to_owned(), |v| format!("{v:.1}{unit}"));
    println!("fanout: {} clients", r.clients);
    println!("  connections established    {:>12}", r.established);
    println!("  connections failed         {:>12}", r.failed);
    println!("  window                     {:>11.1}s", r.window_secs);
    println!("  stats messages received    {:>12}", r.messages);
    println!("  messages per second        {:>12.0}", r.messages_per_sec);
    println!(
        "  fewest messages per client {:>12}",
        r.min_messages_per_client
    );
    if let Some(s) = &r.skew_ms {
        println!("  delivery skew p50          {:>10.1}ms", s.p50);
        println!("  delivery skew p99          {:>10.1}ms", s.p99);
        println!("  delivery skew max          {:>10.1}ms", s.max);
    }
    println!(
        "  gateway RSS                {:>12}",
        r.gateway_rss_bytes
            .map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0))
    );
    println!(
        "  gateway RSS per connection {:>12}",
        opt(r.rss_per_connection_bytes.map(|b| b / 1024.0), " KiB")
    );
    println!(
        "  gateway CPU                {:>12}",
        opt(r.gateway_cpu_percent, "%")
    );
    println!(
        "  Redis commands per second  {:>12}",
        opt(r.redis_commands_per_sec, "")
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sluice_core::cli::raise_open_files_limit();
    match cli.command {
        Command::Fanout {
            url,
            clients,
            duration,
            warmup,
            connect_batch,
            gateway_pid,
            redis,
        } => {
            let config = FanoutConfig {
                url,
                clients,
                connect_batch,
                warmup: Duration::from_secs_f64(warmup),
                duration: Duration::from_secs_f64(duration),
                gateway_pid,
                redis_url: redis,
            };
            match fanout::run(&config).await {
                Ok(report) => {
                    print_fanout(&report);
                    println!(
                        "{}",
                        serde_json::json!({"scenario": "fanout", "report": report})
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sluice-bench: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
