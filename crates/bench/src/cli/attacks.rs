//! `sluice-bench attacks`: the hardening attacks at full scale against a running ingest API and
//! gateway.

use clap::Args;
use sluice_bench::attacks;

use super::report::json_line;

/// The options of `sluice-bench attacks`.
#[derive(Args)]
pub struct AttacksArgs {
    #[arg(long, default_value = "127.0.0.1:8000")]
    ingest: String,
    #[arg(long)]
    ingest_pid: u32,
    #[arg(long, default_value = "127.0.0.1:8001")]
    gateway: String,
    #[arg(long)]
    gateway_pid: u32,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    #[arg(long, default_value = "")]
    key_prefix: String,
    /// Seconds the stalled-reader attacks hold their clients.
    #[arg(long, default_value_t = 30)]
    stall_secs: u64,
    /// The ingest API's admin token, for the dead-letters attack (skipped without it).
    #[arg(long, env = "SLUICE__INGEST__ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// The services' PostgreSQL, for slow-reads to give a channel a million rows first.
    #[arg(long)]
    postgres: Option<String>,
    /// Attacks to run (frame-flood, frame-10mb, fragments, ping-flood, close-code,
    /// stalled-ws, stalled-sse, slow-bodies, stalled-uploads, parser-errors, idempotency,
    /// bursts, hangup-waits, waiting-bodies, batch-memory, concurrent-waits,
    /// idempotency-batches, dead-letters, edges); all of those when none is named. The third
    /// pass's run only when named: big-idempotent, queue-bound, hangups, slow-reads,
    /// dead-letter-shapes, admin-guess, heavy-batches.
    only: Vec<String>,
}

impl AttacksArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            ingest,
            ingest_pid,
            gateway,
            gateway_pid,
            redis,
            key_prefix,
            stall_secs,
            admin_token,
            postgres,
            only,
        } = self;
        sluice_core::cli::raise_open_files_limit();
        let targets = attacks::Targets {
            ingest: (ingest, ingest_pid),
            gateway: (gateway, gateway_pid),
            redis_url: redis,
            key_prefix,
            stall_secs,
            admin_token,
            postgres_url: postgres,
        };
        println!("attacks");
        let figures = attacks::run(&targets, &only).await?;
        json_line("attacks", &figures, None);
        Ok(())
    }
}
