//! `sluice-gateway` binary: load settings, start telemetry, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use sluice_core::{Settings, shutdown, telemetry};

#[actix_web::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_args(std::env::args().skip(1)) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("sluice-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.telemetry);
    let app = match sluice_gateway::Application::build(&settings, shutdown::on_signal()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("sluice-gateway: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(port = app.port(), "stats gateway listening");
    match app.run_until_stopped().await {
        Ok(()) => {
            tracing::info!("stats gateway stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
