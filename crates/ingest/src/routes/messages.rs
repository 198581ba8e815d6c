//! `POST /messages` and `GET /messages`.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sluice_core::error::ErrorBody;
use sluice_core::message::{ChannelId, Envelope, MessageRequest, NewMessage, UserId};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use std::time::Duration;

use crate::body;
use crate::error::ApiError;
use crate::persisted::{Outcome, Registration};
use crate::queue::{self, Pushed};
use crate::state::AppState;

/// Answer to an accepted message.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Queued {
    /// The id the message will have in PostgreSQL.
    pub message_id: Uuid,
    /// `"queued"`; after a `Prefer: wait`, `"persisted"` or `"dead_lettered"`.
    pub status: String,
    /// When the message was accepted; also its `created_at`.
    pub queued_at: String,
    /// When the worker's commit was recorded (`"persisted"` answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted_at: Option<String>,
}

/// The headers `POST /messages` and `/messages/batch` read, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct PostHeaders {
    /// 1 to 200 visible ASCII characters; a retry with the same key queues nothing and gets
    /// the first answer.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
    /// `wait=N` (RFC 7240): answer once the messages are in PostgreSQL, or after N seconds
    /// (capped by `ingest.max_wait_secs`).
    #[param(rename = "Prefer")]
    prefer: Option<String>,
}

/// The failures `POST /messages` and `/messages/batch` share, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum PostErrors {
    /// The body is not JSON, could not be read, or the `Idempotency-Key` is unusable.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The body did not arrive within `ingest.body_timeout_ms`.
    #[response(status = 408)]
    BodyTimeout(ErrorBody),
    /// The body is larger than the limit.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The `Content-Type` is not JSON.
    #[response(status = 415)]
    NotJson(ErrorBody),
    /// JSON, but not acceptable (`validation_failed`: `fields` names each problem), or the
    /// `Idempotency-Key` was first used on the other endpoint (`idempotency_key_reused`).
    #[response(status = 422)]
    Unacceptable(ErrorBody),
    /// The queue is full; nothing was queued.
    #[response(status = 429, headers(("Retry-After" = u32, description = "Seconds to wait")))]
    QueueFull(ErrorBody),
    /// Redis is unavailable or the server holds too many request bytes; nothing was queued.
    #[response(status = 503, headers(("Retry-After" = u32, description = "Seconds to wait")))]
    Unavailable(ErrorBody),
}

/// Header a client sets to make retries of one message safe.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_MAX: usize = 200;

/// The `Idempotency-Key` header, if present: 1 to 200 visible ASCII characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_MAX
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::InvalidIdempotencyKey(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"
        )));
    }
    Ok(Some(key))
}

/// `POST /messages`: validate, stamp, LPUSH, and answer 202 once Redis confirmed the push.
#[utoipa::path(
    post,
    path = "/messages",
    tag = "messages",
    request_body(content = MessageRequest, content_type = "application/json"),
    params(PostHeaders),
    responses(
        (status = 202, description = "Queued in Redis", body = Queued),
        (status = 201, description = "With `Prefer: wait`: persisted in PostgreSQL", body = Queued, headers(("Preference-Applied" = String, description = "`wait=N`"))),
        (status = 200, description = "With `Prefer: wait`: PostgreSQL refused it; it is in `dead_messages`", body = Queued, headers(("Preference-Applied" = String, description = "`wait=N`"))),
        PostErrors,
    )
)]
#[tracing::instrument(name = "post_message", skip_all, fields(message_id))]
pub async fn post_message(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    body::require_json(req.headers())?;
    let key = idempotency_key(&req)?;
    let body = body::read_limited(&req, payload, state.message_limits()).await?;
    let envelope = Envelope::new(NewMessage::from_json(&body.bytes)?);
    tracing::Span::current().record("message_id", tracing::field::display(envelope.id));
    let answer = Queued {
        message_id: envelope.id,
        status: "queued".into(),
        queued_at: envelope
            .created_at
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        persisted_at: None,
    };
    let wait = wait_preference(&req, state.max_wait);
    let (answer, outcomes) =
        enqueue(&state, key, std::slice::from_ref(&envelope), answer, wait).await?;
    Ok(answer.respond(outcomes))
}

/// Answer to an accepted batch.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchQueued {
    /// The ids the messages will have in PostgreSQL, in the order they were sent.
    pub message_ids: Vec<Uuid>,
    /// `"queued"`; after a `Prefer: wait`, `"persisted"` (every message) or `"dead_lettered"`
    /// (some were refused: see `dead_lettered_ids`; the others are persisted).
    pub status: String,
    /// When the batch was accepted; the `created_at` of every message in it.
    pub queued_at: String,
    /// When the last of the workers' commits was recorded (waited answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted_at: Option<String>,
    /// The messages PostgreSQL refused, now in `dead_messages` (`"dead_lettered"` answers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_lettered_ids: Vec<Uuid>,
}

/// `POST /messages/batch`: a JSON array of messages, validated all or nothing, pushed in one
/// round trip, answered 202 with the ids in order once Redis confirmed the push.
#[utoipa::path(
    post,
    path = "/messages/batch",
    tag = "messages",
    request_body(content = Vec<MessageRequest>, content_type = "application/json", description = "1 to `ingest.batch_max_messages` (1000) messages, validated all or nothing"),
    params(PostHeaders),
    responses(
        (status = 202, description = "Queued in Redis, in order", body = BatchQueued),
        (status = 201, description = "With `Prefer: wait`: every message persisted", body = BatchQueued, headers(("Preference-Applied" = String, description = "`wait=N`"))),
        (status = 200, description = "With `Prefer: wait`: PostgreSQL refused some (`dead_lettered_ids`); the others are persisted", body = BatchQueued, headers(("Preference-Applied" = String, description = "`wait=N`"))),
        PostErrors,
    )
)]
#[tracing::instrument(name = "post_batch", skip_all, fields(count))]
pub async fn post_batch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    body::require_json(req.headers())?;
    let key = idempotency_key(&req)?;
    let body = body::read_limited(&req, payload, state.batch_limits()).await?;
    let messages = NewMessage::batch_from_json(&body.bytes, state.batch_max_messages)?;
    tracing::Span::current().record("count", messages.len());
    let created_at = Envelope::now();
    let envelopes: Vec<Envelope> = messages
        .into_iter()
        .map(|m| Envelope::stamped(m, created_at))
        .collect();
    let answer = BatchQueued {
        message_ids: envelopes.iter().map(|e| e.id).collect(),
        status: "queued".into(),
        queued_at: created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        persisted_at: None,
        dead_lettered_ids: Vec::new(),
    };
    let wait = wait_preference(&req, state.max_wait);
    let (answer, outcomes) = enqueue(&state, key, &envelopes, answer, wait).await?;
    Ok(answer.respond(outcomes))
}

/// The `Prefer` header (RFC 7240), named once rather than parsed from a string per request.
const PREFER: actix_web::http::header::HeaderName =
    actix_web::http::header::HeaderName::from_static("prefer");

/// The `wait` preference of the `Prefer` headers (RFC 7240: `Prefer: wait=10`, possibly among
/// other preferences), capped at `max`. `None` when absent, 0, or not a number of seconds: a
/// preference the server cannot honour is ignored, as the RFC asks.
pub fn wait_preference(req: &HttpRequest, max: Duration) -> Option<Duration> {
    let seconds = req
        .headers()
        .get_all(PREFER)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|preference| {
            let preference = preference.split(';').next()?.trim();
            let (name, value) = preference.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        })?;
    (seconds > 0).then(|| Duration::from_secs(seconds).min(max))
}

/// An answer a waited request completes with its messages' outcomes.
trait Completed: Serialize + DeserializeOwned {
    /// Fills in the outcomes (in the order of the answer's ids); returns the status.
    fn complete(&mut self, outcomes: &[Outcome]) -> &'static str;
}

impl Completed for Queued {
    fn complete(&mut self, outcomes: &[Outcome]) -> &'static str {
        let (status, persisted_at) = summary(outcomes);
        self.status = status.into();
        self.persisted_at = persisted_at;
        status
    }
}

impl Completed for BatchQueued {
    fn complete(&mut self, outcomes: &[Outcome]) -> &'static str {
        let (status, persisted_at) = summary(outcomes);
        self.dead_lettered_ids = self
            .message_ids
            .iter()
            .zip(outcomes)
            .filter(|(_, o)| **o == Outcome::DeadLettered)
            .map(|(id, _)| *id)
            .collect();
        self.status = status.into();
        self.persisted_at = persisted_at;
        status
    }
}

/// The status of a waited answer, and when the last commit was recorded.
fn summary(outcomes: &[Outcome]) -> (&'static str, Option<String>) {
    let last = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Persisted(at) => Some(*at),
            Outcome::DeadLettered => None,
        })
        .max()
        .map(|at| at.to_rfc3339_opts(SecondsFormat::Micros, true));
    if outcomes.contains(&Outcome::DeadLettered) {
        ("dead_lettered", last)
    } else {
        ("persisted", last)
    }
}

/// 201 for persisted, 200 for dead-lettered, both with `Preference-Applied`.
fn waited(status: &str, wait: Duration) -> actix_web::HttpResponseBuilder {
    let mut builder = if status == "persisted" {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    builder.insert_header(("Preference-Applied", format!("wait={}", wait.as_secs())));
    builder
}

/// The answer to give: this request's, or, for a retry of a used `Idempotency-Key`, the one
/// recorded the first time, already checked to be this endpoint's (and its exact text).
enum Answer<A> {
    Fresh(A),
    Replay(A, String),
}

impl<A: Completed> Answer<A> {
    /// The usual 202 (a replay gets the recorded answer byte for byte), or, when the request
    /// waited and its outcomes came, 201 or 200 with them.
    fn respond(self, outcomes: Waited) -> HttpResponse {
        match (self, outcomes) {
            (Self::Fresh(answer), None) => HttpResponse::Accepted().json(answer),
            (Self::Replay(_, first), None) => HttpResponse::Accepted()
                .content_type("application/json")
                .body(first),
            (Self::Fresh(mut answer) | Self::Replay(mut answer, _), Some((outcomes, wait))) => {
                let status = answer.complete(&outcomes);
                waited(status, wait).json(answer)
            }
        }
    }
}

/// Every message's outcome, and the wait that was applied.
type Waited = Option<(Vec<Outcome>, Duration)>;

/// Pushes `envelopes` (under the idempotency key, if any) and returns the answer to give: this
/// request's `answer`, or, for a retry of an already used key, the answer recorded the first
/// time. With a `wait`, it then waits for the messages' commit and returns their outcomes, or
/// `None` when the wait runs out (or too many requests wait already).
async fn enqueue<A: Serialize + DeserializeOwned>(
    state: &AppState,
    key: Option<&str>,
    envelopes: &[Envelope],
    answer: A,
    wait: Option<Duration>,
) -> Result<(Answer<A>, Waited), ApiError> {
    // Registered before the push, so a commit cannot be announced before anyone listens.
    let mut registration = wait.and_then(|_| {
        let ids: Vec<Uuid> = envelopes.iter().map(|e| e.id).collect();
        state.waiters.register(&ids)
    });
    let mut redis = state.redis.clone();
    let answer = match key {
        None => {
            queue::push(
                &mut redis,
                &state.keys,
                envelopes,
                &state.depth,
                state.redis_timeout,
            )
            .await?;
            state.accepted.add(envelopes.len() as u64);
            Answer::Fresh(answer)
        }
        Some(key) => {
            // An answer holds ids, strings and a timestamp: it always serializes.
            let body = serde_json::to_string(&answer).unwrap_or_default();
            let key = state.keys.idempotency(key);
            let keys = queue::IdempotentKeys {
                keys: &state.keys,
                key: &key,
                retention: state.idempotency,
            };
            let pushed = queue::push_idempotent(
                &mut redis,
                keys,
                envelopes,
                &body,
                &state.depth,
                state.redis_timeout,
            )
            .await?;
            match pushed {
                Pushed::Queued => {
                    state.accepted.add(envelopes.len() as u64);
                    Answer::Fresh(answer)
                }
                Pushed::Replay(first) => {
                    // The key may have been used on the other endpoint first.
                    let recorded: A =
                        serde_json::from_str(&first).map_err(|_| ApiError::IdempotencyKeyReused)?;
                    // The messages are the first request's: wait for those instead.
                    registration = match wait {
                        Some(_) => replay_registration(state, &first).await,
                        None => None,
                    };
                    Answer::Replay(recorded, first)
                }
            }
        }
    };
    let (Some(wait), Some(registration)) = (wait, registration.as_mut()) else {
        return Ok((answer, None));
    };
    Ok((answer, registration.wait(wait).await.map(|o| (o, wait))))
}

/// For a replayed request that asks to wait: registers the first request's ids, then resolves
/// at once those PostgreSQL already holds (their commit was announced long ago, perhaps to
/// nobody). One query per replay, never a poll.
async fn replay_registration(state: &AppState, first: &str) -> Option<Registration> {
    let answer: serde_json::Value = serde_json::from_str(first).ok()?;
    let ids: Vec<Uuid> = match &answer["message_ids"] {
        serde_json::Value::Array(ids) => ids
            .iter()
            .filter_map(|v| v.as_str()?.parse().ok())
            .collect(),
        _ => vec![answer["message_id"].as_str()?.parse().ok()?],
    };
    let registration = state.waiters.register(&ids)?;
    let check = async {
        let client = state.pool.get().await.ok()?;
        let rows = client
            .query(
                "SELECT id, inserted_at FROM messages WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .ok()?;
        Some(
            rows.iter()
                .map(|r| (r.get::<_, Uuid>(0), r.get::<_, DateTime<Utc>>(1)))
                .collect::<Vec<_>>(),
        )
    };
    match tokio::time::timeout(state.redis_timeout.max(Duration::from_secs(2)), check).await {
        Ok(Some(found)) => state
            .waiters
            .resolve(found.iter().map(|(id, at)| (id, Outcome::Persisted(*at)))),
        _ => sluice_core::metric::postgres_error("replay_check"),
    }
    Some(registration)
}

/// Largest `limit` of `GET /messages`.
pub const LIST_MAX_LIMIT: i64 = 500;
/// `limit` of `GET /messages` when none is given.
pub const LIST_DEFAULT_LIMIT: i64 = 50;

/// Raw query string of `GET /messages`; every value is parsed by [`ListQuery::parse`] so a bad
/// one gets a precise error instead of actix's generic one.
#[derive(Debug, Deserialize)]
pub struct RawListQuery {
    limit: Option<String>,
    channel_id: Option<String>,
    user_id: Option<String>,
    before: Option<String>,
}

/// Validated `GET /messages` parameters.
#[derive(Debug, PartialEq)]
pub struct ListQuery {
    limit: i64,
    channel_id: Option<ChannelId>,
    user_id: Option<UserId>,
    before: Option<Uuid>,
}

impl ListQuery {
    fn parse(raw: RawListQuery) -> Result<Self, ApiError> {
        let mut errors = BTreeMap::new();
        let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let limit = match given(raw.limit) {
            None => LIST_DEFAULT_LIMIT,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (1..=LIST_MAX_LIMIT).contains(&n) => n,
                _ => {
                    errors.insert(
                        "limit".into(),
                        format!("must be an integer between 1 and {LIST_MAX_LIMIT}, got {v:?}"),
                    );
                    0
                }
            },
        };
        let mut id = |name: &str, v: Option<String>| {
            let v = given(v)?;
            match v.trim().parse::<i64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    errors.insert(
                        name.into(),
                        format!("must be an integer between 1 and {}, got {v:?}", i64::MAX),
                    );
                    None
                }
            }
        };
        let channel_id = id("channel_id", raw.channel_id).and_then(|n| ChannelId::try_from(n).ok());
        let user_id = id("user_id", raw.user_id).and_then(|n| UserId::try_from(n).ok());
        let before = match given(raw.before) {
            None => None,
            Some(v) => match Uuid::parse_str(v.trim()) {
                Ok(u) => Some(u),
                Err(_) => {
                    errors.insert(
                        "before".into(),
                        format!("must be a message id (UUID), got {v:?}"),
                    );
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Self {
                limit,
                channel_id,
                user_id,
                before,
            })
        } else {
            Err(ApiError::InvalidQuery(errors))
        }
    }
}

/// One persisted message.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredMessage {
    /// Message id.
    pub id: Uuid,
    /// Author.
    pub user_id: i64,
    /// Channel.
    pub channel_id: i64,
    /// Text.
    pub content: String,
    /// When the ingest API accepted it.
    pub created_at: DateTime<Utc>,
    /// When a worker committed it.
    pub inserted_at: DateTime<Utc>,
}

/// A page of `GET /messages`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessagePage {
    /// Newest first.
    pub messages: Vec<StoredMessage>,
    /// Pass as `before` to get the next (older) page; `null` on the last page.
    pub next_before: Option<Uuid>,
}

/// `GET /messages`: persisted messages, newest first, keyset-paginated by id (UUIDv7 ids are
/// ordered by creation time).
#[utoipa::path(
    get,
    path = "/messages",
    tag = "messages",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Messages per page (default 50)"),
        ("channel_id" = Option<i64>, Query, minimum = 1, description = "Only this channel"),
        ("user_id" = Option<i64>, Query, minimum = 1, description = "Only this author"),
        ("before" = Option<Uuid>, Query, description = "`next_before` of the previous page"),
    ),
    responses(
        (status = 200, description = "Newest first", body = MessagePage),
        (status = 400, description = "A parameter is not acceptable: `fields` names each", body = ErrorBody),
        (status = 503, description = "PostgreSQL is unavailable", body = ErrorBody),
    )
)]
#[tracing::instrument(name = "list_messages", skip_all)]
pub async fn list_messages(
    query: web::Query<RawListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = ListQuery::parse(query.into_inner())?;
    let page = fetch_page(&state, &query).await.map_err(|e| {
        tracing::warn!(error = %e, "listing messages failed");
        sluice_core::metric::postgres_error("list_messages");
        ApiError::PostgresUnavailable
    })?;
    Ok(HttpResponse::Ok().json(page))
}

#[tracing::instrument(name = "postgres.list_messages", skip_all, err(level = "warn"))]
async fn fetch_page(state: &AppState, query: &ListQuery) -> anyhow::Result<MessagePage> {
    let channel = query.channel_id.map(i64::from);
    let user = query.user_id.map(i64::from);
    let mut conditions = Vec::new();
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(channel) = &channel {
        params.push(channel);
        conditions.push(format!("channel_id = ${}", params.len()));
    }
    if let Some(user) = &user {
        params.push(user);
        conditions.push(format!("user_id = ${}", params.len()));
    }
    if let Some(before) = &query.before {
        params.push(before);
        conditions.push(format!("id < ${}", params.len()));
    }
    params.push(&query.limit);
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT id, user_id, channel_id, content, created_at, inserted_at FROM messages \
         {filter} ORDER BY id DESC LIMIT ${}",
        params.len()
    );
    let client = state.read_pool.get().await?;
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &params).await?;
    let messages: Vec<StoredMessage> = rows
        .iter()
        .map(|row| {
            Ok(StoredMessage {
                id: row.try_get(0)?,
                user_id: row.try_get(1)?,
                channel_id: row.try_get(2)?,
                content: row.try_get(3)?,
                created_at: row.try_get(4)?,
                inserted_at: row.try_get(5)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let next_before = if messages.len() as i64 == query.limit {
        messages.last().map(|m| m.id)
    } else {
        None
    };
    Ok(MessagePage {
        messages,
        next_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(limit: &str, channel: &str, user: &str, before: &str) -> RawListQuery {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        RawListQuery {
            limit: opt(limit),
            channel_id: opt(channel),
            user_id: opt(user),
            before: opt(before),
        }
    }

    #[test]
    fn empty_parameters_mean_absent() {
        let q = ListQuery::parse(raw("", "", "", "")).expect("valid");
        assert_eq!(q.limit, LIST_DEFAULT_LIMIT);
        assert_eq!(q.channel_id, None);
        assert_eq!(q.before, None);
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        match ListQuery::parse(raw("501", "0", "x", "nope")) {
            Err(ApiError::InvalidQuery(f)) => {
                assert_eq!(
                    f.keys().collect::<Vec<_>>(),
                    ["before", "channel_id", "limit", "user_id"]
                );
            }
            other => panic!("expected InvalidQuery, got {other:?}"),
        }
    }
}
