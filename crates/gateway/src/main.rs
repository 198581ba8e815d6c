//! `sluice-gateway` binary: load settings, start telemetry, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use sluice_core::{cli, memory};

#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

const BINARY: cli::Binary = cli::Binary {
    name: "sluice-gateway",
    about: "The stats gateway: streams the pipeline's stats to dashboards over WebSocket and SSE.",
    sections: &["redis", "stream", "gateway", "auth", "worker.dead_after_ms"],
};

#[actix_web::main]
async fn main() -> ExitCode {
    cli::run(BINARY, |settings, shutdown| async move {
        let app = sluice_gateway::Application::build(&settings, shutdown)?;
        let protected = !settings.stream.auth.jwt_secret.is_empty();
        let callers = settings.auth.describe(settings.gateway.listen, protected);
        tracing::info!(port = app.port(), callers, "stats gateway listening");
        app.run_until_stopped().await?;
        tracing::info!("stats gateway stopped");
        anyhow::Ok(())
    })
    .await
}
