//! The stream's HTTP endpoints: `GET /ws/stats` (WebSocket), `GET /stats`, `GET /stats/stream`
//! (SSE), `GET /stats/history`, `GET /alerts`, `GET /workers`, `GET /batches/recent`.

use std::future::Future;
use std::sync::Arc;

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde::Deserialize;
use sluice_core::connect::RedisConnection;
use sluice_proto::history::Window;

use crate::State;
use crate::error::StreamError;
use crate::extract::{Caller, StreamParams};
use crate::protocol::Topic;
use crate::read::within;
use crate::session::{self, SessionConfig};
use crate::shared::SharedRead;
use sluice_proto::api::{AlertList, WorkerList};
use sluice_proto::error::ErrorBody;
use sluice_proto::stats::Stats;

/// Query of `GET /stats/history`.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    window: Option<String>,
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
    /// An API key without `stats:read` (an ingest API with `auth.mode = keys`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
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
    /// An API key without `stats:read` (an ingest API with `auth.mode = keys`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// The failures of the streaming endpoints past their query, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum StreamErrors {
    /// Authentication is on and the token is missing, invalid or expired.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// An API key without `stats:read` (an ingest API with `auth.mode = keys`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// The gateway's connection limits are reached.
    #[response(status = 503)]
    TooManyConnections(ErrorBody),
}

/// A JSON answer no cache keeps: what the stream answers is live.
fn live() -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type("application/json")
        .insert_header(CacheControl(vec![CacheDirective::NoStore]));
    response
}

/// A read every request shares for a second (see [`SharedRead`]), within the Redis timeout.
async fn shared<T, F, Fut>(state: &State, slot: &SharedRead<T>, what: &str, read: F) -> Option<T>
where
    T: Clone,
    F: FnOnce(RedisConnection) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    slot.get(|| within(&state.redis, state.redis_timeout, what, read))
        .await
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
    params: StreamParams,
    caller: Caller,
    state: web::Data<State>,
) -> Result<HttpResponse, actix_web::Error> {
    let guard = state
        .hub
        .join(req.peer_addr().map(|a| a.ip()), params.interval)
        .map_err(StreamError::from)?;
    let (mut payload, report) = crate::frames::guard(body.into_inner(), state.max_frame_bytes);
    let body = web::Payload::from_request(&req, &mut payload).await?;
    let (response, session, stream) =
        actix_ws::handle(&req, body).map_err(|e| StreamError::NotWebSocket(e.to_string()))?;
    let config = SessionConfig {
        interval: params.interval,
        heartbeat: state.heartbeat,
        client_timeout: state.client_timeout,
        max_messages_per_sec: state.max_messages_per_sec,
        max_frame_bytes: state.max_frame_bytes,
        topics: params.topics,
        include_ids: caller.may_have_ids(params.include_ids)?,
        ids_allowed: caller.ids_allowed,
        validity: caller.validity.clone(),
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
pub async fn stats(_: Caller, state: web::Data<State>) -> Result<HttpResponse, StreamError> {
    if let Some(snapshot) = state.hub.fresh().filter(|_| state.hub.redis_up()) {
        return Ok(live().body(snapshot.json.clone().into_bytes()));
    }
    let reader = &state.reader;
    let read = |mut redis: RedisConnection| async move { reader.read(&mut redis).await };
    let stats = within(&state.redis, state.redis_timeout, "the stats", read)
        .await
        .ok_or(StreamError::RedisUnavailable)?;
    Ok(live().json(stats))
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
    params: StreamParams,
    caller: Caller,
    state: web::Data<State>,
) -> Result<HttpResponse, StreamError> {
    let extras = crate::sse::Extras {
        batches: params.topics.contains(&Topic::Batches),
        alerts: params.topics.contains(&Topic::Alerts),
    };
    let guard = state
        .hub
        .join(req.peer_addr().map(|a| a.ip()), params.interval)?;
    let body = crate::sse::stream(
        Arc::clone(&state.hub),
        guard,
        params.interval,
        state.heartbeat,
        caller.validity,
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
    query: web::Query<HistoryQuery>,
    _: Caller,
    state: web::Data<State>,
) -> Result<HttpResponse, StreamError> {
    let window = match query.window.as_deref().filter(|w| !w.is_empty()) {
        None => Window::DEFAULT,
        Some(raw) => Window::parse(raw).map_err(StreamError::InvalidQuery)?,
    };
    let json = state
        .history
        .get(window)
        .await
        .ok_or(StreamError::RedisUnavailable)?;
    Ok(live().body(json.into_bytes()))
}

/// `GET /alerts`: `{"active": [...], "recent": [...]}`. While Redis is down, `active` holds
/// this gateway's `redis_down` alert and `recent` is empty.
#[utoipa::path(get, path = "/alerts", tag = "stream", params(TokenParam), responses(
        (status = 200, description = "Alerts firing now and the latest transitions; while Redis cannot be read, the last list read with the outage on top", body = AlertList),
        AuthErrors,
    ))]
pub async fn alerts(_: Caller, state: web::Data<State>) -> HttpResponse {
    let store = &state.alerts;
    let read = |mut redis: RedisConnection| async move { store.list(&mut redis).await };
    let last = shared(&state, &state.alert_list, "the alerts", read).await;
    let mut list = last.unwrap_or_default();
    if let Some(outage) = state.hub.outage() {
        list.active.insert(0, outage);
    }
    live().json(list)
}

/// `GET /workers`: the registry, most recent heartbeat first.
#[utoipa::path(get, path = "/workers", tag = "stream", params(TokenParam), responses(
        (status = 200, description = "The worker registry, most recent heartbeat first", body = WorkerList),
        ReadErrors,
    ))]
pub async fn workers(_: Caller, state: web::Data<State>) -> Result<HttpResponse, StreamError> {
    let (keys, dead_after) = (&state.keys, state.worker_dead_after);
    let read = |mut redis: RedisConnection| async move {
        crate::workers::read(&mut redis, keys, dead_after).await
    };
    let list = shared(&state, &state.worker_list, "the workers", read)
        .await
        .ok_or(StreamError::RedisUnavailable)?;
    Ok(live().json(list))
}

/// `GET /batches/recent`: the last batches this process saw committed, newest first, as the
/// `batch_persisted` messages of the stream (without their id lists), so a dashboard opened now
/// shows what happened just before. Held in memory: a process that just started has none.
#[utoipa::path(get, path = "/batches/recent", tag = "stream", params(TokenParam), responses(
        (status = 200, description = "The latest batch events, newest first", body = sluice_proto::api::RecentBatches),
        (status = 401, description = "Authentication is on and the token is missing or invalid", body = ErrorBody),
        (status = 403, description = "An API key without `stats:read`", body = ErrorBody),
    ))]
pub async fn recent_batches(_: Caller, state: web::Data<State>) -> HttpResponse {
    let frames = state.hub.recent_batches();
    let mut body = String::from("{\"batches\":[");
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(frame);
    }
    body.push_str("]}");
    live().body(body)
}
