//! `[gateway]`: the stats gateway's own server, its admin endpoints and its alert rules. The
//! stream it serves is configured in `[stream]`.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

use super::{
    ListenerTlsSettings, Secret, SettingsError, check_admin_token, invalid, redis::comma_list,
};

/// The smallest `gateway.send_buffer_bytes` other than 0 (the kernel's default).
const SEND_BUFFER_MIN: usize = 4096;

/// `[gateway]`
#[derive(Debug, Clone, SmartDefault, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// Address the HTTP/WebSocket server binds.
    #[default(SocketAddr::from(([127, 0, 0, 1], 8001)))]
    pub listen: SocketAddr,
    /// A connection whose socket accepts nothing for this long is closed and counted.
    #[default(10_000)]
    #[schemars(range(min = 100, max = 600_000))]
    pub write_timeout_ms: u64,
    /// `SO_SNDBUF` of each connection, bounding what the kernel holds for a slow reader: 0
    /// keeps the kernel's autotuned default, any other value is at least 4096.
    #[default(64 * 1024)]
    #[schemars(range(min = 0, max = 64 << 20))]
    pub send_buffer_bytes: usize,
    /// Origins allowed to call the HTTP endpoints from a browser, comma-separated; `*` for any;
    /// empty for none.
    pub cors_origins: String,
    /// Bearer token for the `/admin` endpoints (the dashboard's dead-letters page); empty (the
    /// default) disables them. It may be the ingest API's `ingest.admin_token`.
    pub admin_token: Secret,
    /// The alert rules' thresholds and durations.
    pub alerts: AlertSettings,
    /// HTTPS (and `wss://`) on `listen`.
    pub tls: ListenerTlsSettings,
}

/// `[gateway.alerts]`: when each rule fires. A rule fires once its condition has held for its
/// `*_for_secs`, and resolves once it has been false for `resolve_after_secs`.
#[derive(Debug, Clone, SmartDefault, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertSettings {
    /// `queue_depth_high`: messages waiting in `pending_messages`.
    #[default(100_000)]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub queue_depth_threshold: u64,
    /// `queue_depth_high`: how long the depth must stay above the threshold.
    #[default(30)]
    #[schemars(range(min = 0, max = 86_400))]
    pub queue_depth_for_secs: u64,
    /// `queue_growing`: accepted/s minus persisted/s, in messages per second.
    #[default(10.0)]
    #[schemars(range(min = 0.001, max = 1e9))]
    pub queue_growing_min_rate: f64,
    /// `queue_growing`: how long arrivals must outpace persistence.
    #[default(60)]
    #[schemars(range(min = 0, max = 86_400))]
    pub queue_growing_for_secs: u64,
    /// `no_live_workers`: how long messages may wait with no live worker.
    #[default(10)]
    #[schemars(range(min = 0, max = 86_400))]
    pub no_live_workers_for_secs: u64,
    /// `dead_letters_increased` resolves after this long without a new dead letter.
    #[default(60)]
    #[schemars(range(min = 1, max = 86_400))]
    pub dead_letters_quiet_secs: u64,
    /// `commit_latency_high`: POST→commit p99, in milliseconds.
    #[default(1_000.0)]
    #[schemars(range(min = 1, max = 3_600_000))]
    pub commit_latency_p99_ms: f64,
    /// `commit_latency_high`: how long the p99 must stay above the threshold.
    #[default(30)]
    #[schemars(range(min = 0, max = 86_400))]
    pub commit_latency_for_secs: u64,
    /// `redis_down`: how long the gateway's reads must fail.
    #[default(2)]
    #[schemars(range(min = 0, max = 86_400))]
    pub redis_down_for_secs: u64,
    /// `postgres_down`: how long a live worker must report PostgreSQL down.
    #[default(10)]
    #[schemars(range(min = 0, max = 86_400))]
    pub postgres_down_for_secs: u64,
    /// `throughput_anomaly`: z-score of persisted/s for severity `medium`.
    #[default(2.5)]
    #[schemars(range(min = 0.1, max = 100))]
    pub anomaly_z_medium: f64,
    /// `throughput_anomaly`: z-score of persisted/s for severity `high`.
    #[default(3.5)]
    #[schemars(range(min = 0.1, max = 100))]
    pub anomaly_z_high: f64,
    /// `throughput_anomaly`: how long the z-score must stay above `anomaly_z_medium`.
    #[default(10)]
    #[schemars(range(min = 0, max = 86_400))]
    pub anomaly_for_secs: u64,
    /// `throughput_anomaly`: seconds of persisted/s the mean and deviation are taken over.
    #[default(300)]
    #[schemars(range(min = 30, max = 3_600))]
    pub anomaly_window_secs: u64,
    /// `throughput_anomaly`: the least change of persisted/s from its mean, in msg/s, that may
    /// be an anomaly, however steady the rate was.
    #[default(100.0)]
    #[schemars(range(min = 0, max = 1e9))]
    pub anomaly_min_change: f64,
    /// `throughput_anomaly`: the least deviation (σ) the z-score divides by, in msg/s, so that a
    /// perfectly steady rate does not make every wobble a large z-score.
    #[default(10.0)]
    #[schemars(range(min = 0.001, max = 1e9))]
    pub anomaly_min_stddev: f64,
    /// `worker_late`: how long a worker must stay late (silent past a quarter of
    /// `worker.dead_after_ms`, or lost) before the alert fires, so a beat delayed by a busy
    /// machine is no alert.
    #[default(2)]
    #[schemars(range(min = 0, max = 86_400))]
    pub worker_late_for_secs: u64,
    /// `worker_lost`: how long a worker must stay lost (presumed dead, or reclaimed and not
    /// back). A worker that beats again within it was not lost: after a Redis outage longer
    /// than `worker.dead_after_ms` every worker looks dead until its next beat.
    #[default(2)]
    #[schemars(range(min = 0, max = 86_400))]
    pub worker_lost_for_secs: u64,
    /// `replication_degraded`: how long the primary must have fewer replicas in sync than
    /// `redis.ack_replicas`, or pushes be refused with `not_replicated`.
    #[default(5)]
    #[schemars(range(min = 0, max = 86_400))]
    pub replication_degraded_for_secs: u64,
    /// `error_rate`: the ingest APIs' 5xx answers per second (all codes, over the 10-s window)
    /// above which the rule's condition holds.
    #[default(1.0)]
    #[schemars(range(min = 0.001, max = 1e9))]
    pub error_rate_threshold: f64,
    /// `error_rate`: how long the rate must stay above the threshold. Long enough that an
    /// outage a specific rule names (`redis_down`, `replication_degraded`) does not page twice.
    #[default(60)]
    #[schemars(range(min = 0, max = 86_400))]
    pub error_rate_for_secs: u64,

    /// How long a rule's condition must be false before its alert resolves.
    #[default(10)]
    #[schemars(range(min = 0, max = 86_400))]
    pub resolve_after_secs: u64,
}

impl GatewaySettings {
    /// `cors_origins` split on commas, trimmed, empty entries dropped.
    pub fn cors_origin_list(&self) -> Vec<&str> {
        comma_list(&self.cors_origins)
    }

    /// The admin token, the send buffer, each origin and the alert rules' two z-scores.
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check_admin_token("gateway.admin_token", self.admin_token.expose())?;
        self.tls.validate("gateway")?;
        if (1..SEND_BUFFER_MIN).contains(&self.send_buffer_bytes) {
            return Err(invalid(
                "gateway.send_buffer_bytes",
                format!(
                    "must be 0 (the kernel's default) or at least {SEND_BUFFER_MIN}, got {}",
                    self.send_buffer_bytes
                ),
            ));
        }
        for origin in self.cors_origin_list() {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid(
                    "gateway.cors_origins",
                    format!(
                        "each origin must be * or start with http:// or https://, got {origin:?}"
                    ),
                ));
            }
        }
        let alerts = &self.alerts;
        if alerts.anomaly_z_high < alerts.anomaly_z_medium {
            return Err(invalid(
                "gateway.alerts.anomaly_z_high",
                format!(
                    "must be at least gateway.alerts.anomaly_z_medium ({}), got {}",
                    alerts.anomaly_z_medium, alerts.anomaly_z_high
                ),
            ));
        }
        Ok(())
    }
}
