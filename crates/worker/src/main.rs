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

#[tokio::main]
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
