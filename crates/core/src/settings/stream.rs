//! `[stream]`: the stats stream, as the gateway and (with `ingest.serve_stats`) the ingest API
//! serve it. These settings moved here from `[gateway]`; their old names still work (see
//! `legacy`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

use super::{Secret, SettingsError, invalid, limits};

/// `[stream]`
#[derive(Debug, Clone, SmartDefault, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// Default period of the stats stream, in milliseconds.
    #[default(500)]
    #[schemars(range(min = limits::INTERVAL_MS.0, max = limits::INTERVAL_MS.1))]
    pub interval_ms: u64,
    /// Period of the server's WebSocket pings.
    #[default(15_000)]
    #[schemars(range(min = 100, max = 600_000))]
    pub heartbeat_interval_ms: u64,
    /// A client that has sent nothing (not even a pong) for this long is closed.
    #[default(30_000)]
    #[schemars(range(min = 200, max = 3_600_000))]
    pub client_timeout_ms: u64,
    /// Most open WebSocket and SSE streams; further upgrades get 503.
    #[default(50_000)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections: usize,
    /// Most open streams from one IP address; further upgrades from it get 503.
    #[default(20_000)]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections_per_ip: usize,
    /// Most messages a client may send per second (averaged over a second, bursts of the same
    /// size allowed); a client sending more is closed with 1008.
    #[default(20)]
    #[schemars(range(min = 1, max = 10_000))]
    pub client_max_messages_per_sec: u32,
    /// Largest message a client may send, one frame or the sum of a fragmented message's
    /// frames; a header declaring more closes the session with 1009 before its payload is read.
    #[default(64 * 1024)]
    #[schemars(range(min = 128, max = 16 << 20))]
    pub max_frame_bytes: usize,
    /// Batch events buffered per client before it is considered behind and skips ahead.
    #[default(256)]
    #[schemars(range(min = 1, max = 65_536))]
    pub client_queue: usize,
    /// Authentication of dashboards.
    pub auth: StreamAuthSettings,
}

/// `[stream.auth]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StreamAuthSettings {
    /// HS256 secret; when set, `/ws/stats`, `/stats` and `/stats/stream` need a valid JWT
    /// signed with it. Empty (the default) disables authentication.
    pub jwt_secret: Secret,
}

impl StreamSettings {
    /// A JWT secret long enough for HS256; a client timeout that outlasts two pings.
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.expose().len() < 32 {
            return Err(invalid(
                "stream.auth.jwt_secret",
                format!(
                    "must be at least 32 bytes for HS256 (or empty to disable auth), got {}",
                    self.auth.jwt_secret.expose().len()
                ),
            ));
        }
        if self.client_timeout_ms < self.heartbeat_interval_ms * 2 {
            return Err(invalid(
                "stream.client_timeout_ms",
                format!(
                    "must be at least twice stream.heartbeat_interval_ms ({}), got {}",
                    self.heartbeat_interval_ms, self.client_timeout_ms
                ),
            ));
        }
        Ok(())
    }
}
