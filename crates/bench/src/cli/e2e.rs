//! `sluice-bench e2e`: a fixed offered rate through ingest → workers → PostgreSQL, with the
//! latency of each stage.

use std::time::Duration;

use clap::Args;
use sluice_bench::cost::{self, CostReport, Meter};
use sluice_bench::pipeline;

use super::StoreArgs;
use super::report::{json_line, ratio, row};

/// The options of `sluice-bench e2e`.
#[derive(Args)]
pub struct E2eArgs {
    #[command(flatten)]
    stores: StoreArgs,
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// Messages per second offered.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Send batches of this many messages instead of single ones.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Send `Prefer: wait=N`: each request waits for its commit, and counts when answered
    /// 201 (persisted).
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
    /// Send every request with an `Idempotency-Key`, as `sluice send` does.
    #[arg(long)]
    idempotent: bool,
    /// Measure these processes' CPU per message, `NAME=PID[,PID…]` (e.g. `ingest=812`,
    /// `workers=813,814`, `redis=790`); the PostgreSQL server and the load tool are then
    /// measured too.
    #[arg(long = "process", value_name = "NAME=PIDS", value_parser = cost::parse_part)]
    processes: Vec<(String, Vec<u32>)>,
    /// Same-run COPY rate, to print the ratio to it.
    #[arg(long)]
    ceiling: Option<f64>,
}

impl E2eArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            stores,
            addr,
            rate,
            duration,
            connections,
            batch_size,
            wait,
            idempotent,
            processes,
            ceiling,
        } = self;
        let load = pipeline::E2eLoad {
            rate_per_sec: rate,
            duration: Duration::from_secs_f64(duration),
            connections,
            batch: batch_size,
            wait_secs: wait,
            idempotent,
        };
        let stores = stores.stores();
        let meter = if processes.is_empty() {
            None
        } else {
            let postmaster = pipeline::postgres_server_pid(&stores).await?;
            Some(Meter::new(processes).with_postgres(postmaster))
        };
        let r = pipeline::e2e(&addr, &stores, load, meter.as_ref()).await?;
        print_e2e(&r, &load);
        if let Some(cost) = &r.cost {
            print_cost(cost);
        }
        let ratio = ratio(r.persisted_per_sec, ceiling, "COPY ceiling");
        json_line("e2e", &r, ratio);
        Ok(())
    }
}

fn print_e2e(r: &pipeline::E2eReport, load: &pipeline::E2eLoad) {
    println!(
        "e2e: {:.0} msg/s offered{}{}{}",
        load.rate_per_sec,
        if load.idempotent {
            ", with Idempotency-Keys"
        } else {
            ""
        },
        load.batch
            .map_or(String::new(), |b| format!(", batches of {b}")),
        load.wait_secs
            .map_or(String::new(), |w| format!(", Prefer: wait={w}"))
    );
    row("accepted per second", format!("{:.0}", r.accepted_per_sec));
    row(
        "persisted per second",
        format!("{:.0}", r.persisted_per_sec),
    );
    row("backlog after the run", format!("{:.2} s", r.backlog_secs));
    row("failed requests", r.failed.to_string());
    row("queue max", r.queue_max.to_string());
    row("queue at end", r.queue_at_end.to_string());
    row("queue bounded", r.queue_bounded.to_string());
    let answer = if load.wait_secs.is_some() {
        "201"
    } else {
        "202"
    };
    let stages = &r.stages_ms;
    for (name, latency) in [
        ("POST→commit".to_owned(), &r.commit_latency_ms),
        ("  queue".to_owned(), &stages.queue),
        ("  insert".to_owned(), &stages.insert),
        ("  then record".to_owned(), &stages.record),
        (format!("POST→{answer}"), &r.answer_latency_ms),
    ] {
        if let Some(l) = latency {
            row(&format!("{name} p50"), format!("{:.2} ms", l.p50));
            row(&format!("{name} p95"), format!("{:.2} ms", l.p95));
            row(&format!("{name} p99"), format!("{:.2} ms", l.p99));
            row(&format!("{name} max"), format!("{:.2} ms", l.max));
        }
    }
}

/// CPU per message, part by part, then Sluice's total and the load tool.
fn print_cost(cost: &CostReport) {
    println!("CPU per message ({} messages)", cost.messages);
    for part in &cost.parts {
        row(
            &format!("  {}", part.name),
            format!("{:.1} µs", part.us_per_message),
        );
    }
    row(
        "  Sluice's share, total",
        format!("{:.1} µs", cost.sluice_us_per_message),
    );
    row(
        &format!("  {}", cost.load_tool.name),
        format!("{:.1} µs", cost.load_tool.us_per_message),
    );
}
