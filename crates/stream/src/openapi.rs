//! The OpenAPI document of the stream's routes, generated from the handlers' annotations and the
//! answer types themselves; each server merges it into its own.

use utoipa::OpenApi;

use crate::routes;

/// The stats stream's routes.
#[derive(OpenApi)]
#[openapi(
    paths(
        routes::ws_stats,
        routes::stats,
        routes::stats_stream,
        routes::history,
        routes::alerts,
        routes::workers,
        routes::recent_batches,
    ),
    tags((name = "stream", description = "The pipeline's live stats, history, alerts and workers"))
)]
pub struct StreamApi;

#[cfg(test)]
mod tests {
    use sluice_core::settings::limits::INTERVAL_MS;
    use utoipa::OpenApi;

    /// The documented `interval_ms` bounds are the enforced ones, on both endpoints that take it.
    #[test]
    fn the_documented_interval_bounds_are_the_enforced_ones() {
        let doc = serde_json::to_value(super::StreamApi::openapi()).expect("json");
        for path in ["/ws/stats", "/stats/stream"] {
            let interval = doc["paths"][path]["get"]["parameters"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["name"] == "interval_ms"))
                .unwrap_or_else(|| panic!("{path} documents interval_ms"));
            let schema = &interval["schema"];
            assert_eq!(
                (schema["minimum"].as_u64(), schema["maximum"].as_u64()),
                (Some(INTERVAL_MS.0), Some(INTERVAL_MS.1)),
                "{path}"
            );
        }
    }
}
