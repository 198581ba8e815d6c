//! The gateway's own endpoints: `GET /health`, `GET /ready`, and the JSON 404 for unknown
//! paths. The stream's routes are [`sluice_stream::stream_routes`].

use actix_web::HttpResponse;
use actix_web::web;
use serde::{Deserialize, Serialize};
use sluice_http::health::{Dependency, Readiness};
use sluice_stream::State;
use sluice_stream::error::StreamError;
use sluice_stream::hub::Hub;
use sluice_stream::snapshot::RedisState;

/// `GET /health` body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Health)]
pub struct GatewayHealth {
    /// Always `"ok"` while the process serves.
    pub status: String,
    /// Open WebSocket and SSE streams.
    pub active_connections: usize,
    /// Whether the Redis poller has started reading (it reads whether or not a stream is open).
    pub publisher_running: bool,
    /// `"up"` when the last Redis read succeeded, `"down"` when it failed, `"unknown"` before
    /// the first.
    pub redis: String,
    /// Connections closed because their socket accepted nothing for `write_timeout_ms`.
    #[serde(default)]
    pub write_timeouts: u64,
    /// Requests the HTTP parser refused (400, 408, 431), answered with the JSON error body.
    #[serde(default)]
    pub malformed_requests: u64,
    /// Live and resident bytes of the allocator; `null` when it is not jemalloc.
    #[serde(default)]
    pub memory: Option<sluice_core::memory::MemoryStats>,
}

/// `GET /health`.
#[utoipa::path(get, path = "/health", tag = "operations", responses(
        (status = 200, description = "The process serves", body = GatewayHealth),
    ))]
pub async fn health(state: web::Data<State>) -> HttpResponse {
    let hub: &Hub = &state.hub;
    let redis = serde_json::to_value(*hub.redis_state().borrow())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    HttpResponse::Ok().json(GatewayHealth {
        status: "ok".into(),
        active_connections: hub.active_connections(),
        publisher_running: hub.poller_running(),
        redis,
        write_timeouts: state.edge.write_timeouts(),
        malformed_requests: state.edge.malformed(),
        memory: sluice_core::memory::stats(),
    })
}

/// `GET /ready`: 200 once the poller's last read of Redis succeeded, 503 before the first read
/// and while Redis is down, so a load balancer sends no new dashboards to a gateway that has
/// no stats to give them. With `auth.mode = keys`, also not before the API keys were read from
/// PostgreSQL once (`postgres` then says whether they were).
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
        (status = 200, description = "The last read of Redis succeeded", body = Readiness),
        (status = 503, description = "Redis is down or not read yet", body = Readiness),
    ))]
pub async fn ready(state: web::Data<State>) -> HttpResponse {
    let up = *state.hub.redis_state().borrow() == RedisState::Up;
    let redis = Dependency::from_up(up);
    let keys = state.verifier.as_ref().filter(|v| v.keyring().is_some());
    match keys {
        Some(keys) => Readiness::of(redis, Dependency::from_up(keys.is_ready())),
        None => Readiness::redis_only(redis),
    }
    .respond()
}

/// Fallback for unknown paths.
pub async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&StreamError::NotFound)
}
