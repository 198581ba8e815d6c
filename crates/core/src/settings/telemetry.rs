//! `[telemetry]`: logging.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, one event per line.
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[telemetry]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `pretty` (the default: one human-readable line per event, in colour only on a terminal
    /// and without `NO_COLOR`) or `json` (one JSON object per line, with `timestamp`, `level`,
    /// `message`, `target` and the event's fields, for log shippers). Which events is `RUST_LOG`'s.
    pub format: LogFormat,
}
