//! `sluice-gateway` binary: load settings, start telemetry, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use sluice_core::{cli, clock, memory, shutdown};

#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

const BINARY: cli::Binary = cli::Binary {
    name: "sluice-gateway",
    about: "The stats gateway: streams the pipeline's stats to dashboards over WebSocket and SSE.",
    sections: &["redis", "stream", "gateway", "worker.dead_after_ms"],
};

#[actix_web::main]
async fn main() -> ExitCode {
    let settings = match cli::start(BINARY) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let result = async {
        let shutdown = shutdown::on_signal();
        clock::follow_redis(&settings.redis, shutdown.clone()).await?;
        let app = sluice_gateway::Application::build(&settings, shutdown)?;
        tracing::info!(port = app.port(), "stats gateway listening");
        app.run_until_stopped().await?;
        tracing::info!("stats gateway stopped");
        anyhow::Ok(())
    };
    cli::finish(BINARY.name, result.await.map_err(|e| format!("{e:#}")))
}
