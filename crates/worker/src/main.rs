//! `sluice-worker` binary: load settings, start telemetry, run the batching loop (and the
//! `/metrics` listener when `worker.listen` is set) until SIGINT/SIGTERM, commit the batch in
//! hand, exit 0.

use std::process::ExitCode;

use sluice_core::{cli, memory};
use sluice_worker::http::Listener;

#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

const BINARY: cli::Binary = cli::Binary {
    name: "sluice-worker",
    about: "A batching worker: moves queued messages into PostgreSQL and keeps the counters.",
    sections: &["redis", "postgres", "worker"],
};

/// One thread: a worker does one batch at a time, and its tasks (the loop, the heartbeat, the
/// Redis and PostgreSQL connections) waking each other on one thread costs no futex call or
/// context switch. At 20,000 msg/s that took the workers from 9.8 to 7.1 µs of CPU a message
/// (`./scripts/bench cost`), and the drain lost nothing. A batch of more than a megabyte is
/// parsed on the blocking pool (`Batch::parse_off_thread`), so the heartbeat never waits for it.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    cli::run(BINARY, |settings, shutdown| async move {
        let worker = sluice_worker::Worker::new(&settings)?;
        let listener = Listener::bind(&settings.worker, worker.status(), shutdown.clone())?;
        let listening = listener.map(|l| {
            tracing::info!(port = l.port(), "worker metrics listening");
            tokio::spawn(l.run(shutdown.clone()))
        });
        worker.run(shutdown).await?;
        if let Some(listening) = listening {
            listening.await??;
        }
        anyhow::Ok(())
    })
    .await
}
