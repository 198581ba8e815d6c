//! HTTP endpoints: `GET /ws/stats` (WebSocket), `GET /stats`, `GET /health`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use sluice_core::settings::limits;

use crate::State;
use crate::error::GatewayError;
use crate::hub::Hub;
use crate::session::{self, SessionConfig};

/// Query of `GET /ws/stats`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    interval_ms: Option<String>,
}

fn parse_interval(raw: Option<&str>, default: Duration) -> Result<Duration, GatewayError> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    let (min, max) = limits::INTERVAL_MS;
    match raw.parse::<u64>() {
        Ok(ms) if (min..=max).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(GatewayError::InvalidQuery(format!(
            "interval_ms must be an integer between {min} and {max}, got {raw:?}"
        ))),
    }
}

/// `GET /ws/stats`: upgrades to a WebSocket streaming stats at `?interval_ms=` (default
/// `gateway.interval_ms`).
pub async fn ws_stats(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<WsQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, actix_web::Error> {
    let interval = parse_interval(query.interval_ms.as_deref(), state.hub.default_interval())?;
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let config = SessionConfig {
        interval,
        heartbeat: state.heartbeat,
        client_timeout: state.client_timeout,
    };
    actix_web::rt::spawn(session::run(
        Arc::clone(&state.hub),
        session,
        stream,
        config,
        state.shutdown.clone(),
    ));
    Ok(response)
}

/// `GET /stats`: the latest snapshot, or a fresh reading when the latest is older than the
/// default interval.
pub async fn stats(state: web::Data<State>) -> Result<HttpResponse, GatewayError> {
    let fresh = state.hub.latest().filter(|s| {
        s.taken_at.elapsed() <= state.hub.default_interval() * 2 && state.hub.redis_up()
    });
    if let Some(snapshot) = fresh {
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(snapshot.json.clone().into_bytes()));
    }
    let mut redis = state.redis.clone();
    match tokio::time::timeout(state.redis_timeout, state.reader.read(&mut redis)).await {
        Ok(Ok(stats)) => Ok(HttpResponse::Ok().json(stats)),
        _ => Err(GatewayError::RedisUnavailable),
    }
}

/// `GET /health` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` while the process serves.
    pub status: String,
    /// Open WebSocket sessions.
    pub active_connections: usize,
    /// Whether the Redis poller is running.
    pub publisher_running: bool,
    /// `"up"` when the last Redis read succeeded, else `"down"`.
    pub redis: String,
}

/// `GET /health`.
pub async fn health(state: web::Data<State>) -> HttpResponse {
    let hub: &Hub = &state.hub;
    HttpResponse::Ok().json(Health {
        status: "ok".into(),
        active_connections: hub.active_connections(),
        publisher_running: hub.poller_running(),
        redis: if hub.redis_up() { "up" } else { "down" }.into(),
    })
}

/// Fallback for unknown paths.
pub async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&GatewayError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_parameter_is_checked() {
        let d = Duration::from_millis(500);
        assert_eq!(parse_interval(None, d).expect("default"), d);
        assert_eq!(parse_interval(Some(""), d).expect("default"), d);
        assert_eq!(
            parse_interval(Some("100"), d).expect("min"),
            Duration::from_millis(100)
        );
        assert_eq!(
            parse_interval(Some("60000"), d).expect("max"),
            Duration::from_secs(60)
        );
        for bad in ["99", "60001", "-5", "fast", "1.5"] {
            assert!(parse_interval(Some(bad), d).is_err(), "{bad}");
        }
    }
}
