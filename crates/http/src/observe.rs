//! HTTP metrics: a middleware that counts and times every request, and the `GET /metrics`
//! handler. The labels are the route pattern (`/messages`, `/{path:.*}`; `unmatched` when no
//! route matched), the method (one of the standard ones, or `other`) and the status code, so a
//! client cannot make new series by sending new URLs or methods.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};
use sluice_core::metric;

/// Middleware (`App::wrap(actix_web::middleware::from_fn(observe::record))`): adds every
/// answered request to `sluice_http_requests_total` and `sluice_http_request_duration_seconds`.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    // The route is known only after routing, from the response's request (holding a clone of
    // the request across the call would stop actix from recording the match).
    let result = next.call(req).await;
    let (route, status) = match &result {
        Ok(res) => (res.request().match_pattern(), res.status()),
        Err(e) => (None, e.as_response_error().status_code()),
    };
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let labels = [
        ("route", route),
        ("method", method.to_owned()),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!(metric::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(metric::HTTP_REQUEST_DURATION, &labels)
        .record(started.elapsed().as_secs_f64());
    result
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// `GET /metrics`: every metric of this process, in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Every `sluice_…` metric of this process, in the Prometheus text exposition format", content_type = "text/plain", body = String),
))]
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(metric::CONTENT_TYPE)
        .insert_header(("Cache-Control", "no-store"))
        .body(metric::render())
}
