//! `POST /messages` and `POST /messages/batch`: parse the body and the headers at the edge,
//! queue through [`crate::enqueue`], answer.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::SecondsFormat;
use sluice_proto::api::{BatchQueued, MessageStatus, Queued};
use sluice_proto::error::ErrorBody;
use sluice_proto::message::{Envelope, MessageRequest, NewMessage};
use uuid::Uuid;

use crate::auth::{Authorized, Writes};
use crate::body;
use crate::enqueue::{Queueing, enqueue};
use crate::error::ApiError;
use crate::queue::Encoded;
use crate::state::AppState;

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
    /// With `auth.mode = keys`: no key (`missing_credentials`), or one that is unknown, expired
    /// or revoked (`invalid_credentials`, `credentials_expired`, `credentials_revoked`).
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "Bearer realm=\"sluice\", with the error")))]
    Unauthorized(ErrorBody),
    /// With `auth.mode = keys`: a key without `messages:write` (`insufficient_scope`).
    #[response(status = 403, headers(("WWW-Authenticate" = String, description = "Bearer …, error=\"insufficient_scope\"")))]
    Forbidden(ErrorBody),
    /// The body is larger than the limit; with `Expect: 100-continue`, answered before the
    /// body is sent when `Content-Length` says so.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The `Content-Type` is not JSON (`unsupported_media_type`), or the body has a
    /// `Content-Encoding` other than `identity` (`unsupported_content_encoding`, with
    /// `Accept-Encoding: identity`).
    #[response(status = 415)]
    NotJson(ErrorBody),
    /// JSON, but not acceptable (`validation_failed`: `fields` names each problem), or the
    /// `Idempotency-Key` was first used on the other endpoint (`idempotency_key_reused`).
    #[response(status = 422)]
    Unacceptable(ErrorBody),
    /// The queue is full (`queue_full`); or, with `auth.mode = keys`, this address (or this
    /// key's prefix) saw too many wrong keys lately (`too_many_failures`), or the caller is past
    /// its rate limit (`rate_limited`, with `RateLimit-Policy` and `RateLimit`); nothing was
    /// queued.
    #[response(status = 429, headers(
        ("Retry-After" = u32, description = "Seconds to wait"),
        ("RateLimit-Policy" = String, description = "With rate_limited: `\"key\";q=<rate>;w=1`"),
        ("RateLimit" = String, description = "With rate_limited: `\"key\";r=0;t=<seconds>`"),
    ))]
    QueueFull(ErrorBody),
    /// Redis is unavailable or the server holds too many request bytes; nothing was queued.
    #[response(status = 503, headers(("Retry-After" = u32, description = "Seconds to wait")))]
    Unavailable(ErrorBody),
}

/// Header a client sets to make retries of one message safe.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Longest accepted `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_MAX: usize = 200;

/// The `Idempotency-Key` header, if present: 1 to 200 visible ASCII characters, and only one
/// (two keys cannot both be honoured, and taking either would be a guess).
fn idempotency_key(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let mut values = req.headers().get_all(IDEMPOTENCY_HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidIdempotencyKey(
            "send one Idempotency-Key header, not several".into(),
        ));
    }
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
    caller: Authorized<Writes>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    body::require_json(req.headers())?;
    let key = idempotency_key(&req)?;
    let body = body::read_limited(&req, payload, state.message_limits()).await?;
    let message = NewMessage::from_json(&body.bytes)?;
    caller.may_post(&message)?;
    if let Some(quota) = caller.quota() {
        quota.admit(&state, 1).await?;
    }
    let wait = wait_preference(&req, state.max_wait);
    let envelope = sluice_core::clock::envelope(message)
        .sent_by(caller.key_id())
        .awaited(wait.is_some());
    let charge = body.parsed(1)?;
    tracing::Span::current().record("message_id", tracing::field::display(envelope.id));
    let answer = Queued {
        message_id: envelope.id,
        status: MessageStatus::Queued,
        queued_at: envelope
            .created_at
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        persisted_at: None,
    };
    let (ids, envelopes) = Queueing::encode(vec![envelope]);
    let queued = Queueing {
        key,
        ids,
        envelopes,
        charge,
    };
    let (answer, outcomes) = enqueue(&state, queued, answer, wait).await?;
    Ok(answer.respond(outcomes))
}

/// A batch body parsed, stamped and encoded for Redis.
struct ParsedBatch {
    ids: Vec<Uuid>,
    created_at: chrono::DateTime<chrono::Utc>,
    envelopes: Encoded,
}

/// Parses a batch body, stamps its messages and encodes them: the work of a large body, done
/// off the thread that serves requests ([`crate::parse`]).
fn parse_batch(
    body: &[u8],
    max: usize,
    caller: Authorized<Writes>,
    awaited: bool,
) -> Result<ParsedBatch, ApiError> {
    let messages = NewMessage::batch_from_json(body, max)?;
    // All or nothing, as validation: one message the key may not post refuses the batch.
    for message in &messages {
        caller.may_post(message)?;
    }
    let created_at = sluice_core::clock::now_micros();
    let key_id = caller.key_id();
    let envelopes: Vec<Envelope> = messages
        .into_iter()
        .map(|m| {
            sluice_core::clock::envelope_at(m, created_at)
                .sent_by(key_id.clone())
                .awaited(awaited)
        })
        .collect();
    let (ids, envelopes) = Queueing::encode(envelopes);
    Ok(ParsedBatch {
        ids,
        created_at,
        envelopes,
    })
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
    caller: Authorized<Writes>,
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    body::require_json(req.headers())?;
    let key = idempotency_key(&req)?;
    let body = body::read_limited(&req, payload, state.batch_limits()).await?;
    let (bytes, max) = (body.bytes.clone(), state.batch_max_messages);
    let quota = caller.quota();
    let wait = wait_preference(&req, state.max_wait);
    let awaited = wait.is_some();
    let parsed = state
        .parsers
        .run(bytes.len(), move || {
            parse_batch(&bytes, max, caller, awaited)
        })
        .await?;
    if let Some(quota) = quota {
        quota.admit(&state, parsed.ids.len()).await?;
    }
    let charge = body.parsed(parsed.ids.len())?;
    tracing::Span::current().record("count", parsed.ids.len());
    let answer = BatchQueued {
        message_ids: parsed.ids.clone(),
        status: MessageStatus::Queued,
        queued_at: parsed
            .created_at
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        persisted_at: None,
        dead_lettered_ids: Vec::new(),
    };
    let queued = Queueing {
        key,
        ids: parsed.ids,
        envelopes: parsed.envelopes,
        charge,
    };
    let (answer, outcomes) = enqueue(&state, queued, answer, wait).await?;
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
