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
