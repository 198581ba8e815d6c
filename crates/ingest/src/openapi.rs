//! The ingest API's OpenAPI 3.1 document, generated from the handlers' annotations and the
//! answer types themselves, and served at `GET /openapi.json`.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice ingest API",
        description = "Validates chat messages and queues them in Redis for the batching workers. \
                       Every error has the shape `{\"error\": {\"code\", \"message\", \"fields\"}}`; \
                       see proto-docs/http.md for the prose."
    ),
    paths(
        routes::messages::post_message,
        routes::messages::post_batch,
        routes::list::list_messages,
        routes::health::health,
        routes::health::ready,
        routes::admin::list,
        routes::admin::requeue,
        routes::admin::purge,
        sluice_http::observe::metrics,
        openapi_json,
    ),
    modifiers(&AdminToken),
    tags(
        (name = "messages", description = "Queue messages and read the persisted ones"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "admin", description = "Dead letters; off unless `ingest.admin_token` is set"),
    )
)]
pub struct IngestApi;

struct AdminToken;

impl utoipa::Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON, built once. With `ingest.serve_stats` the stats stream's routes are
/// part of it too.
pub fn document(serve_stats: bool) -> &'static str {
    static PLAIN: LazyLock<String> =
        LazyLock::new(|| IngestApi::openapi().to_json().unwrap_or_default());
    static WITH_STATS: LazyLock<String> = LazyLock::new(|| {
        let mut api = IngestApi::openapi();
        api.merge(sluice_stream::openapi::StreamApi::openapi());
        api.to_json().unwrap_or_default()
    });
    if serve_stats { &WITH_STATS } else { &PLAIN }
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "This document", content_type = "application/json", body = serde_json::Value),
))]
pub async fn openapi_json(serve_stats: actix_web::web::Data<ServeStats>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document(serve_stats.0))
}

/// Whether this process serves the stats stream, for [`openapi_json`].
#[derive(Debug, Clone, Copy)]
pub struct ServeStats(pub bool);
