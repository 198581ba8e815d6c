//! `sluice-bench ceilings`: what this machine's Redis, PostgreSQL and HTTP stack allow, the
//! figures every pipeline scenario is compared with.

use std::time::Duration;

use clap::Args;
use sluice_bench::{http_ceiling, pipeline};

use super::report::{json_line, row};

/// The options of `sluice-bench ceilings`.
#[derive(Args)]
pub struct CeilingsArgs {
    /// Redis host for redis-benchmark.
    #[arg(long, default_value = "127.0.0.1")]
    redis_host: String,
    /// Redis port for redis-benchmark.
    #[arg(long, default_value_t = 6379)]
    redis_port: u16,
    /// LPUSH requests.
    #[arg(long, default_value_t = 1_000_000)]
    lpush_requests: u64,
    /// A database with the `messages` table.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/sluice")]
    postgres: String,
    /// Rows copied.
    #[arg(long, default_value_t = 500_000)]
    copy_rows: u64,
    /// Seconds of load on a no-op actix-web server (the HTTP stack's own ceiling); 0 skips it.
    #[arg(long, default_value_t = 10.0)]
    http_seconds: f64,
    /// The no-op server's threads (0: one per core, the ingest API's default).
    #[arg(long, default_value_t = 0)]
    http_workers: usize,
    /// Keep-alive connections to it, as `ingest` uses.
    #[arg(long, default_value_t = 64)]
    http_connections: usize,
}

impl CeilingsArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            redis_host,
            redis_port,
            lpush_requests,
            postgres,
            copy_rows,
            http_seconds,
            http_workers,
            http_connections,
        } = self;
        let lpush = pipeline::redis_lpush_ceiling(&redis_host, redis_port, lpush_requests).await?;
        let copy = pipeline::copy_ceiling(&postgres, copy_rows).await?;
        let workers = match http_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let http = match http_seconds > 0.0 {
            true => Some(
                http_ceiling::http_noop_ceiling(
                    workers,
                    http_connections,
                    Duration::from_secs_f64(http_seconds),
                )
                .await?,
            ),
            false => None,
        };
        print_ceilings(lpush, copy, http);
        Ok(())
    }
}

fn print_ceilings(lpush: f64, copy: f64, http: Option<f64>) {
    println!("ceilings");
    row("redis-benchmark LPUSH", format!("{lpush:.0}/s"));
    row("PostgreSQL COPY", format!("{copy:.0} rows/s"));
    if let Some(http) = http {
        row("no-op actix-web POST", format!("{http:.0}/s"));
    }
    json_line(
        "ceilings",
        &serde_json::json!({"lpush_per_sec": lpush, "copy_rows_per_sec": copy,
            "http_noop_per_sec": http}),
        None,
    );
}
