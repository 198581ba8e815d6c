//! `sluice-worker` binary: load settings, start telemetry, run the batching loop until
//! SIGINT/SIGTERM, commit the batch in hand, exit 0.

use std::process::ExitCode;

use sluice_core::{cli, memory, shutdown};

#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

const BINARY: cli::Binary = cli::Binary {
    name: "sluice-worker",
    about: "A batching worker: moves queued messages into PostgreSQL and keeps the counters.",
    sections: &["redis", "postgres", "worker"],
};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match cli::start(BINARY) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let result = async {
        let worker = sluice_worker::Worker::new(&settings)?;
        worker.run(shutdown::on_signal()).await
    };
    cli::finish(BINARY.name, result.await.map_err(|e| format!("{e:#}")))
}
