//! `sluice-ingest` binary: load settings, start telemetry, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use sluice_core::{cli, memory, shutdown};

#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

const BINARY: cli::Binary = cli::Binary {
    name: "sluice-ingest",
    about: "The ingest API: validates messages and queues them in Redis for the workers.",
    sections: &[
        "redis",
        "postgres",
        "ingest",
        "gateway",
        "worker.dead_after_ms",
    ],
};

#[actix_web::main]
async fn main() -> ExitCode {
    let settings = match cli::start(BINARY) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let result = async {
        let app = sluice_ingest::Application::build(&settings, shutdown::on_signal())?;
        tracing::info!(port = app.port(), "ingest API listening");
        app.run_until_stopped().await?;
        tracing::info!("ingest API stopped");
        anyhow::Ok(())
    };
    cli::finish(BINARY.name, result.await.map_err(|e| format!("{e:#}")))
}
