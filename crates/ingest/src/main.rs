//! `sluice-ingest` binary: load settings, start telemetry, serve until SIGINT/SIGTERM.

use sluice_core::{Settings, shutdown, telemetry};

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let settings = match Settings::from_args(std::env::args().skip(1)) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("sluice-ingest: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(&settings.telemetry);
    let app = match sluice_ingest::Application::build(&settings, shutdown::on_signal()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("sluice-ingest: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(port = app.port(), "ingest API listening");
    match app.run_until_stopped().await {
        Ok(()) => {
            tracing::info!("ingest API stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sluice-ingest: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
