//! HTTP metrics: a middleware that counts and times every request, and the `GET /metrics`
//! handler. The labels are the route pattern (`/messages`, `/{path:.*}`; `unmatched` when no
//! route matched), the method (one of the standard ones, or `other`) and the status code, so a
//! client cannot make new series by sending new URLs or methods.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse};
use sluice_core::metric;

/// Middleware (`App::wrap(actix_web::middleware::from_fn(observe::record))`): adds every
/// answered request to `sluice_http_requests_total` and `sluice_http_request_duration_seconds`.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let result = next.call(req).await;
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(res) => count(res.request(), method, res.status().as_u16(), seconds),
        Err(e) => {
            let labels = labels(
                "unmatched",
                method,
                e.as_response_error().status_code().as_u16(),
            );
            Series::new(&labels).add(seconds);
        }
    }
    result
}

/// The two series of one route, method and status.
#[derive(Clone)]
struct Series {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

impl Series {
    fn new(labels: &[(&'static str, String); 3]) -> Self {
        Self {
            requests: metrics::counter!(metric::HTTP_REQUESTS, labels),
            duration: metrics::histogram!(metric::HTTP_REQUEST_DURATION, labels),
        }
    }

    fn add(&self, seconds: f64) {
        self.requests.increment(1);
        self.duration.record(seconds);
    }
}

fn labels(route: &str, method: &'static str, status: u16) -> [(&'static str, String); 3] {
    [
        ("route", route.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ]
}

/// Most request paths whose series one worker thread keeps at hand.
const CACHED_PATHS: usize = 64;

/// The series of one path, by method and status.
type PathSeries = Vec<(&'static str, u16, Series)>;

thread_local! {
    /// Series by request path, method and status, for paths a route matched. Finding the route
    /// pattern means matching the path against every route again, and a registry lookup
    /// hashes every label: this keeps both off the hot path. Bounded: once full, other paths
    /// take the slow way, so no client can grow it.
    static SERIES: RefCell<HashMap<String, PathSeries>> =
        RefCell::new(HashMap::new());
}

fn count(request: &HttpRequest, method: &'static str, status: u16, seconds: f64) {
    let path = request.path();
    let hit = SERIES.with_borrow(|cache| {
        let found = cache
            .get(path)?
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)?;
        found.2.add(seconds);
        Some(())
    });
    if hit.is_some() {
        return;
    }
    let pattern = request.match_pattern();
    let series = Series::new(&labels(
        pattern.as_deref().unwrap_or("unmatched"),
        method,
        status,
    ));
    series.add(seconds);
    if pattern.is_none() {
        return;
    }
    SERIES.with_borrow_mut(|cache| {
        if let Some(entries) = cache.get_mut(path) {
            entries.push((method, status, series));
        } else if cache.len() < CACHED_PATHS {
            cache.insert(path.to_owned(), vec![(method, status, series)]);
        }
    });
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
