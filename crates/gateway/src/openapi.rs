//! The gateway's OpenAPI 3.1 document, generated from the handlers' annotations and the answer
//! types themselves, and served at `GET /openapi.json`: its own routes and the stream's
//! ([`sluice_stream::openapi::StreamApi`]) and the admin routes
//! ([`sluice_admin::openapi::AdminApi`]), both of which the ingest API serves too.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::OpenApi;

use sluice_stream::openapi::StreamApi;

use crate::routes;

/// The gateway's whole HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice stats gateway",
        description = "Streams the pipeline's stats to dashboards (WebSocket protocol v1 in \
                       proto-docs/websocket.md) and serves them over HTTP. Every error has the \
                       shape `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        routes::health,
        routes::ready,
        sluice_http::observe::metrics,
        openapi_json
    ),
    tags((name = "operations", description = "Health, metrics and this document"))
)]
pub struct GatewayApi;

/// The gateway's document as JSON, built once.
pub fn document() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut api = GatewayApi::openapi();
        api.merge(StreamApi::openapi());
        api.merge(sluice_admin::openapi::AdminApi::openapi());
        api.to_json().unwrap_or_default()
    });
    &JSON
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "This document", content_type = "application/json", body = serde_json::Value),
))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
