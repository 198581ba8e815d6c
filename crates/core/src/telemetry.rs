//! Logging setup shared by every binary: one subscriber, filtered by `RUST_LOG`, printed as
//! human-readable lines or as JSON (`SLUICE__TELEMETRY__FORMAT=json`). Lines carry colour codes
//! only when written to a terminal (and `NO_COLOR` is not set).
//!
//! Warnings and errors from the HTTP libraries underneath (targets starting with `actix`) are
//! limited to [`LIBRARY_LINES_PER_SEC`] a second whatever `RUST_LOG` says: actix-http logs one
//! ERROR line per request it cannot parse, and a client must not be able to turn that into a
//! log flood. Sluice counts those requests itself and logs a summary line instead. (Library
//! debug and trace lines, off unless `RUST_LOG` asks for them, are not limited.)

use tracing::Metadata;
use tracing::subscriber::Interest;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

use crate::settings::{LogFormat, TelemetrySettings};

/// Filter used when `RUST_LOG` is unset: our own crates at `info`, everything else at `warn`.
pub const DEFAULT_FILTER: &str = "warn,sluice_core=info,sluice_http=info,sluice_ingest=info,sluice_worker=info,sluice_gateway=info,sluice_stream=info";

/// Most lines a second the HTTP libraries may log; the rest are dropped.
pub const LIBRARY_LINES_PER_SEC: u32 = 5;

/// Installs the global subscriber. Call once, first thing in `main`; a second call is a no-op.
pub fn init(settings: &TelemetrySettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Colour only for a person at a terminal (and not with NO_COLOR set): a log file or a
    // collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let output = fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let output = match settings.format {
        LogFormat::Pretty => output.boxed(),
        LogFormat::Json => output.json().flatten_event(true).boxed(),
    };
    // One filter, not two nested ones: a callsite `RUST_LOG` turns off is then off for good
    // (`Interest::never`), so a span it disables is never created. Nested, the outer filter
    // kept every span alive in the registry, which cost 5 % of the ingest API's CPU.
    let filter = filter.and(LibraryRate::new(LIBRARY_LINES_PER_SEC));
    // `try_init` fails only if a subscriber is already installed, which is fine.
    let _ = tracing_subscriber::registry()
        .with(output.with_filter(filter))
        .try_init();
}

/// Lets at most `per_sec` events a second through from targets starting with `actix` (a
/// `governor` rate limiter, whose burst is one second's worth).
#[derive(Debug)]
pub struct LibraryRate {
    limiter: governor::DefaultDirectRateLimiter,
}

impl LibraryRate {
    /// A limit of `per_sec` library lines a second (at least one).
    pub fn new(per_sec: u32) -> Self {
        let per_sec = std::num::NonZeroU32::new(per_sec).unwrap_or(std::num::NonZeroU32::MIN);
        Self {
            limiter: governor::RateLimiter::direct(governor::Quota::per_second(per_sec)),
        }
    }

    fn is_limited(meta: &Metadata<'_>) -> bool {
        meta.target().starts_with("actix") && *meta.level() <= tracing::Level::WARN
    }

    /// Whether one more library line fits.
    pub fn allow(&self) -> bool {
        self.limiter.check().is_ok()
    }
}

impl<S> Filter<S> for LibraryRate {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !Self::is_limited(meta) || !meta.is_event() || self.allow()
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Library callsites are asked about every time, so the count sees every line.
        if Self::is_limited(meta) {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_rate_lets_the_first_lines_of_a_second_through_and_no_more() {
        let rate = LibraryRate::new(3);
        let allowed = (0..1_000).filter(|_| rate.allow()).count();
        assert_eq!(allowed, 3);
    }
}
