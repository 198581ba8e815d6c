//! The stream's HTTP endpoints: `GET /ws/stats` (WebSocket), `GET /stats`, `GET /stats/stream`
//! (SSE), `GET /stats/history`, `GET /alerts`, `GET /workers`, `GET /batches/recent`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sluice_core::settings::limits;

use sluice_proto::history::Window;

use crate::State;
use crate::error::StreamError;
use crate::protocol::Topic;
use crate::session::{self, SessionConfig};
use sluice_proto::api::{AlertList, WorkerList};
use sluice_proto::error::ErrorBody;
use sluice_proto::stats::Stats;

/// Query of `GET /ws/stats` and `GET /stats/stream`.
#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    interval_ms: Option<String>,
    topics: Option<String>,
    include_ids: Option<String>,
    token: Option<String>,
}

/// Query of `GET /stats`, `/alerts` and `/workers`.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// Query of `GET /stats/history`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    window: Option<String>,
    token: Option<String>,
}

fn parse_interval(raw: Option<&str>, default: Duration) -> Result<Duration, StreamError> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    let (min, max) = limits::INTERVAL_MS;
    match raw.parse::<u64>() {
        Ok(ms) if (min..=max).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(StreamError::InvalidQuery(format!(
            "interval_ms must be an integer between {min} and {max}, got {raw:?}"
        ))),
    }
}

fn parse_topics(raw: Option<&str>) -> Result<Vec<Topic>, StreamError> {
    let Some(raw) = raw.filter(|s| !s.trim().is_empty()) else {
        return Ok(vec![Topic::Stats]);
    };
    let mut topics = Vec::new();
    for name in raw.split(',') {
        let topic = Topic::parse(name).map_err(|e| StreamError::InvalidQuery(e.message))?;
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    Ok(topics)
}

fn parse_bool(name: &str, raw: Option<&str>) -> Result<bool, StreamError> {
    match raw.map(str::trim) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(StreamError::InvalidQuery(format!(
            "{name} must be true or false, got {other:?}"
        ))),
    }
}

/// `?token=`, for the OpenAPI document (`Authorization: Bearer` works too).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct TokenParam {
    /// The JWT, when `stream.auth.jwt_secret` is set (or `Authorization: Bearer`).
    token: Option<String>,
}

/// The failures of the read endpoints, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum ReadErrors {
    /// Authentication is on and the token is missing, invalid or expired.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Redis cannot be read.
    #[response(status = 503)]
    RedisUnavailable(ErrorBody),
}

/// The failure of an endpoint that answers whether or not Redis can be read, for the OpenAPI
/// document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum AuthErrors {
    /// Authentication is on and the token is missing, invalid or expired.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
}

/// The failures of the streaming endpoints past their query, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum StreamErrors {
    /// Authentication is on and the token is missing, invalid or expired.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The gateway's connection limits are reached.
    #[response(status = 503)]
    TooManyConnections(ErrorBody),
}

/// `read` on a clone of the shared Redis connection, within the Redis timeout; `None` when it
/// fails or times out (the answer is then 503, or the last shared one).
async fn within<T, F, Fut>(state: &State, read: F) -> Option<T>
where
    F: FnOnce(sluice_core::connect::RedisConnection) -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<T>>,
{
    tokio::time::timeout(state.redis_timeout, read(state.redis.clone()))
        .await
        .ok()?
        .ok()
}

/// Authenticates (when on) and returns how long the token stays valid.
fn authenticate(
    req: &HttpRequest,
    state: &State,
    token: Option<&str>,
) -> Result<Option<Duration>, StreamError> {
    match &state.auth {
        None => Ok(None),
        Some(auth) => Ok(Some(auth.verify(req, token)?)),
    }
}

/// `GET /ws/stats`: upgrades to a protocol v1 WebSocket session. Query and authentication are
/// checked, and a place within the connection limits taken, before the upgrade.
#[utoipa::path(get, path = "/ws/stats", tag = "stream",
    params(
        ("interval_ms" = Option<u64>, Query, minimum = 100, maximum = 60000, description = "Period of `stats` messages (default `stream.interval_ms`)"),
        ("topics" = Option<String>, Query, description = "Comma-separated: `stats`, `batches`, `alerts` (default `stats`)"),
        ("include_ids" = Option<bool>, Query, description = "Whether `batch_persisted` carries message ids"),
        TokenParam,
    ),
    responses(
        (status = 101, description = "Switching to a WebSocket session of protocol v1 (proto-docs/websocket.md)"),
        (status = 400, description = "A query parameter is not acceptable, or the request is not a WebSocket upgrade", body = ErrorBody),
        StreamErrors,
    ))]
pub async fn ws_stats(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<StreamQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, actix_web::Error> {
    let interval = parse_interval(query.interval_ms.as_deref(), state.hub.default_interval())?;
    let topics = parse_topics(query.topics.as_deref())?;
    let include_ids = parse_bool("include_ids", query.include_ids.as_deref())?;
    let token_ttl = authenticate(&req, &state, query.token.as_deref())?;
    let guard = state
        .hub
        .join(req.peer_addr().map(|a| a.ip()), interval)
        .map_err(StreamError::from)?;
    let (mut payload, report) = crate::frames::guard(body.into_inner(), state.max_frame_bytes);
    let body = web::Payload::from_request(&req, &mut payload).await?;
    let (response, session, stream) =
        actix_ws::handle(&req, body).map_err(|e| StreamError::NotWebSocket(e.to_string()))?;
    let config = SessionConfig {
        interval,
        heartbeat: state.heartbeat,
        client_timeout: state.client_timeout,
        max_messages_per_sec: state.max_messages_per_sec,
        max_frame_bytes: state.max_frame_bytes,
        topics,
        include_ids,
        token_ttl,
        history: Arc::clone(&state.history),
    };
    actix_web::rt::spawn(session::run(
        Arc::clone(&state.hub),
        guard,
        session,
        stream,
        report,
        config,
        state.shutdown.clone(),
    ));
    Ok(response)
}

/// `GET /stats`: the latest snapshot when it is from the current poller cycle, else a fresh
/// read.
#[utoipa::path(get, path = "/stats", tag = "stream", params(TokenParam), responses(
        (status = 200, description = "The latest reading, at most one interval old", body = Stats),
        ReadErrors,
    ))]
pub async fn stats(
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, StreamError> {
    authenticate(&req, &state, query.token.as_deref())?;
    if let Some(snapshot) = state.hub.fresh().filter(|_| state.hub.redis_up()) {
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(snapshot.json.clone().into_bytes()));
    }
    let mut redis = state.redis.clone();
    match tokio::time::timeout(state.redis_timeout, state.reader.read(&mut redis)).await {
        Ok(Ok(stats)) => Ok(HttpResponse::Ok().json(stats)),
        _ => Err(StreamError::RedisUnavailable),
    }
}

/// `GET /stats/stream`: Server-Sent Events carrying the same `stats` payloads at the same
/// cadence (`?interval_ms=`), for clients behind proxies that block WebSocket.
#[utoipa::path(get, path = "/stats/stream", tag = "stream",
    params(
        ("interval_ms" = Option<u64>, Query, minimum = 100, maximum = 60000, description = "Period of `stats` events"),
        ("topics" = Option<String>, Query, description = "Comma-separated: `stats`, `batches`, `alerts`"),
        TokenParam,
    ),
    responses(
        (status = 200, description = "Server-Sent Events, each described here as the client reads it: the `stats` payloads (unnamed, so `message`), `status`, and with `?topics=` `batch` and `alert`", content_type = "text/event-stream", body = crate::sse::SseEvent),
        (status = 400, description = "A query parameter is not acceptable", body = ErrorBody),
        StreamErrors,
    ))]
pub async fn stats_stream(
    req: HttpRequest,
    query: web::Query<StreamQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, StreamError> {
    let interval = parse_interval(query.interval_ms.as_deref(), state.hub.default_interval())?;
    let topics = parse_topics(query.topics.as_deref())?;
    let extras = crate::sse::Extras {
        batches: topics.contains(&Topic::Batches),
        alerts: topics.contains(&Topic::Alerts),
    };
    let token_ttl = authenticate(&req, &state, query.token.as_deref())?;
    let guard = state.hub.join(req.peer_addr().map(|a| a.ip()), interval)?;
    let body = crate::sse::stream(
        Arc::clone(&state.hub),
        guard,
        interval,
        state.heartbeat,
        token_ttl,
        extras,
        state.shutdown.clone(),
    );
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures_util::StreamExt::map(
            body,
            Ok::<Bytes, actix_web::Error>,
        )))
}

/// `GET /stats/history?window=1m|5m|1h|24h` (default `5m`): the window's points in columns.
#[utoipa::path(get, path = "/stats/history", tag = "stream",
    params(
        ("window" = Option<String>, Query, description = "`1m`, `5m` (default), `1h` or `24h`"),
        TokenParam,
    ),
    responses(
        (status = 200, description = "The window's points in columns (proto-docs/http.md)", body = serde_json::Value),
        (status = 400, description = "`window` is not one of the four", body = ErrorBody),
        ReadErrors,
    ))]
pub async fn history(
    req: HttpRequest,
    query: web::Query<HistoryQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, StreamError> {
    authenticate(&req, &state, query.token.as_deref())?;
    let window = match query.window.as_deref().filter(|w| !w.is_empty()) {
        None => Window::DEFAULT,
        Some(raw) => Window::parse(raw).map_err(StreamError::InvalidQuery)?,
    };
    let json = state
        .history
        .get(window)
        .await
        .ok_or(StreamError::RedisUnavailable)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"))
        .body(json.into_bytes()))
}

/// `GET /alerts`: `{"active": [...], "recent": [...]}`. While Redis is down, `active` holds
/// this gateway's `redis_down` alert and `recent` is empty.
#[utoipa::path(get, path = "/alerts", tag = "stream", params(TokenParam), responses(
        (status = 200, description = "Alerts firing now and the latest transitions; while Redis cannot be read, the last list read with the outage on top", body = AlertList),
        AuthErrors,
    ))]
pub async fn alerts(
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, StreamError> {
    authenticate(&req, &state, query.token.as_deref())?;
    let state: &State = &state;
    let read = || {
        within(state, |mut redis| async move {
            state.alerts.list(&mut redis).await
        })
    };
    let mut list = state.alert_list.get(read).await.unwrap_or_default();
    if let Some(outage) = state.hub.outage() {
        list.active.insert(0, outage);
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(list))
}

/// `GET /workers`: the registry, most recent heartbeat first.
#[utoipa::path(get, path = "/workers", tag = "stream", params(TokenParam), responses(
        (status = 200, description = "The worker registry, most recent heartbeat first", body = WorkerList),
        ReadErrors,
    ))]
pub async fn workers(
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, StreamError> {
    authenticate(&req, &state, query.token.as_deref())?;
    let state: &State = &state;
    let read = || {
        within(state, |mut redis| async move {
            crate::workers::read(&mut redis, &state.keys, state.worker_dead_after).await
        })
    };
    match state.worker_list.get(read).await {
        Some(list) => Ok(HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(list)),
        None => Err(StreamError::RedisUnavailable),
    }
}

/// `GET /batches/recent`: the last batches this process saw committed, newest first, as the
/// `batch_persisted` messages of the stream (without their id lists), so a dashboard opened now
/// shows what happened just before. Held in memory: a process that just started has none.
#[utoipa::path(get, path = "/batches/recent", tag = "stream", params(TokenParam), responses(
        (status = 200, description = "The latest batch events, newest first", body = sluice_proto::api::RecentBatches),
        (status = 401, description = "Authentication is on and the token is missing or invalid", body = ErrorBody),
    ))]
pub async fn recent_batches(
    req: HttpRequest,
    query: web::Query<TokenQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, StreamError> {
    authenticate(&req, &state, query.token.as_deref())?;
    let frames = state.hub.recent_batches();
    let mut body = String::from("{\"batches\":[");
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(frame);
    }
    body.push_str("]}");
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .content_type("application/json")
        .body(body))
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

    #[test]
    fn topics_parameter_is_checked() {
        assert_eq!(parse_topics(None).expect("default"), [Topic::Stats]);
        assert_eq!(
            parse_topics(Some("stats,batches,stats")).expect("both"),
            [Topic::Stats, Topic::Batches]
        );
        assert_eq!(
            parse_topics(Some("batches")).expect("one"),
            [Topic::Batches]
        );
        assert!(parse_topics(Some("stats,weather")).is_err());
        assert!(parse_bool("include_ids", Some("maybe")).is_err());
        assert!(parse_bool("include_ids", Some("true")).expect("bool"));
    }
}
