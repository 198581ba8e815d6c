//! Alerts in Redis: [`store`] reads and records them. Their types are
//! [`sluice_proto::api::Alert`] and its kin, which clients share.
//!
//! Alerts are evaluated by gateways only (`sluice-gateway`'s `alerts`); every stream, the ingest
//! API's too, serves what they recorded.

pub mod store;

use chrono::SecondsFormat;

/// The current time as alerts carry it.
pub fn timestamp() -> String {
    sluice_core::clock::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// [`timestamp`] of the moment `at`: now, less how long ago `at` was.
pub fn timestamp_of(at: tokio::time::Instant) -> String {
    let ago = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
    (sluice_core::clock::now() - ago).to_rfc3339_opts(SecondsFormat::Millis, true)
}
