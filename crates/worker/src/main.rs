//! `sluice-worker` binary: load settings, start telemetry, run the batching loop until
//! SIGINT/SIGTERM, commit the batch in hand, exit 0.

use std::process::ExitCode;

use sluice_core::{Settings, shutdown, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_args(std::env::args().skip(1)) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("sluice-worker: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.telemetry);
    let worker = match sluice_worker::Worker::new(&settings) {
        Ok(worker) => worker,
        Err(e) => {
            eprintln!("sluice-worker: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match worker.run(shutdown::on_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
