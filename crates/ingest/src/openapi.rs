//! The ingest API's OpenAPI 3.1 document, generated from the handlers' annotations and the
//! answer types themselves, and served at `GET /openapi.json`.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::OpenApi;

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
        routes::keys::create,
        routes::keys::list,
        routes::keys::revoke,
        routes::health::health,
        routes::health::ready,
        sluice_http::observe::metrics,
        openapi_json,
    ),
    tags(
        (name = "messages", description = "Queue messages and read the persisted ones"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct IngestApi;

/// The document as JSON, built once: this API's routes and the admin routes
/// ([`sluice_admin::openapi::AdminApi`]), and with `ingest.serve_stats` the stats stream's.
pub fn document(serve_stats: bool) -> &'static str {
    fn api() -> utoipa::openapi::OpenApi {
        let mut api = IngestApi::openapi();
        api.merge(sluice_admin::openapi::AdminApi::openapi());
        api
    }
    static PLAIN: LazyLock<String> = LazyLock::new(|| api().to_json().unwrap_or_default());
    static WITH_STATS: LazyLock<String> = LazyLock::new(|| {
        let mut api = api();
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

#[cfg(test)]
mod tests {
    use crate::routes::list::LIST_MAX_LIMIT;

    /// The documented page size of `GET /messages` is the enforced one.
    #[test]
    fn the_documented_page_size_is_the_enforced_one() {
        let doc: serde_json::Value = serde_json::from_str(super::document(false)).expect("json");
        let limit = doc["paths"]["/messages"]["get"]["parameters"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "limit"))
            .expect("a limit parameter");
        assert_eq!(limit["schema"]["maximum"].as_i64(), Some(LIST_MAX_LIMIT));
    }
}
