//! What every binary does first and last: load settings from the command line and
//! environment, start telemetry, and turn the outcome into an exit status.

use std::fmt::Display;
use std::process::ExitCode;

use crate::{Settings, telemetry};

/// Exit status for unusable settings or arguments.
pub const EXIT_USAGE: u8 = 2;

/// Loads settings (`--config PATH` and the environment) and installs the log subscriber.
/// On bad settings, prints one line `<binary>: <reason>` and returns the exit status to use.
pub fn start(binary: &str) -> Result<Settings, ExitCode> {
    match Settings::from_args(std::env::args().skip(1)) {
        Ok(settings) => {
            telemetry::init(&settings.telemetry);
            crate::memory::configure();
            raise_open_files_limit();
            Ok(settings)
        }
        Err(e) => {
            eprintln!("{binary}: {e}");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// Exit 0 on success; otherwise print `<binary>: <error>` and exit 1.
pub fn finish<E: Display>(binary: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit: every WebSocket, HTTP keep-alive
/// connection and pooled database connection is a file descriptor, and the usual soft limit
/// (1024) would cap a gateway far below its capacity.
pub fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open files limit"),
            Err(e) => tracing::warn!(%e, soft, "cannot raise the open files limit"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(%e, "cannot read the open files limit"),
    }
}
