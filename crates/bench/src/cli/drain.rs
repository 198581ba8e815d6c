//! `sluice-bench drain`: prefill N messages, start W workers, time until all are committed.

use std::path::PathBuf;

use clap::Args;
use sluice_bench::pipeline;

use super::StoreArgs;
use super::report::{json_line, ratio, row};

/// The options of `sluice-bench drain`.
#[derive(Args)]
pub struct DrainArgs {
    #[command(flatten)]
    stores: StoreArgs,
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The worker binary (started with this process's environment).
    #[arg(long, default_value = "target/release/sluice-worker")]
    worker_bin: PathBuf,
    /// Same-run COPY rate, to print the ratio to it.
    #[arg(long)]
    ceiling: Option<f64>,
}

impl DrainArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            stores,
            messages,
            workers,
            worker_bin,
            ceiling,
        } = self;
        let env: Vec<(String, String)> = std::env::vars().collect();
        let r = pipeline::drain(&stores.stores(), messages, workers, &worker_bin, &env).await?;
        println!("drain: {messages} messages, {workers} workers");
        row("seconds", format!("{:.2}", r.seconds));
        row("messages per second", format!("{:.0}", r.messages_per_sec));
        let ratio = ratio(r.messages_per_sec, ceiling, "COPY ceiling");
        json_line("drain", &r, ratio);
        Ok(())
    }
}
