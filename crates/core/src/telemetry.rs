//! Logging setup shared by every binary: one subscriber, filtered by `RUST_LOG`, printed as
//! human-readable lines or as JSON (`SLUICE__TELEMETRY__FORMAT=json`).

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, TelemetrySettings};

/// Filter used when `RUST_LOG` is unset: our own crates at `info`, everything else at `warn`.
pub const DEFAULT_FILTER: &str =
    "warn,sluice_core=info,sluice_ingest=info,sluice_worker=info,sluice_gateway=info";

/// Installs the global subscriber. Call once, first thing in `main`; a second call is a no-op.
pub fn init(settings: &TelemetrySettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only if a subscriber is already installed, which is fine.
    let _ = match settings.format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
