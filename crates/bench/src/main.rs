//! `sluice-bench` binary: one subcommand per scenario (see [`cli`]), each printing a table and
//! one JSON line.

mod cli;

use sluice_core::memory;

/// jemalloc, as the services have: the load tool's share of the machine is part of every
/// figure it measures.
#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    version,
    about = "Measure a running Sluice on this machine."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What this machine's Redis and PostgreSQL allow: redis-benchmark LPUSH and one COPY.
    Ceilings(cli::ceilings::CeilingsArgs),
    /// Single-message POSTs over keep-alive connections, as fast as they are answered.
    Ingest(cli::ingest::IngestArgs),
    /// The same with `POST /messages/batch`.
    IngestBatch(cli::ingest::IngestBatchArgs),
    /// Prefill N messages, start W workers, time until all are committed.
    Drain(cli::drain::DrainArgs),
    /// A fixed offered rate through ingest → workers → PostgreSQL.
    E2e(cli::e2e::E2eArgs),
    /// N WebSocket dashboards against a gateway.
    Fanout(cli::fanout::FanoutArgs),
    /// The hardening attacks at full scale against a running ingest API and gateway.
    Attacks(cli::attacks::AttacksArgs),
    /// What the fleet using a private Redis costs it: commands, script calls and CPU per second.
    RedisCost(cli::redis_cost::RedisCostArgs),
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Ceilings(args) => args.run().await,
        Command::Ingest(args) => args.run().await,
        Command::IngestBatch(args) => args.run().await,
        Command::Drain(args) => args.run().await,
        Command::E2e(args) => args.run().await,
        Command::Fanout(args) => args.run().await,
        Command::Attacks(args) => args.run().await,
        Command::RedisCost(args) => args.run().await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sluice_core::cli::raise_open_files_limit();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
