//! Every way an ingest request can fail, each with its HTTP status and stable `code`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sluice_proto::error::ErrorBody;
use sluice_proto::message::MessageError;

/// An error answered to the client as `{"error": {"code", "message", "fields"}}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body could not be read (broken chunked encoding, client went away).
    #[error("request body could not be read: {0}")]
    UnreadableBody(String),
    /// The body is larger than `ingest.max_body_bytes`.
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body did not arrive within `ingest.body_timeout_ms`.
    #[error("the request body did not arrive within {timeout_ms} ms; the connection is closed")]
    BodyTimeout {
        /// The limit in milliseconds.
        timeout_ms: u64,
    },
    /// Accepting the body would pass `ingest.max_buffered_bytes`.
    #[error(
        "the server is holding as many request bytes as it may ({budget} in all); nothing was queued, retry later"
    )]
    BufferBudgetExhausted {
        /// The budget in bytes.
        budget: usize,
    },
    /// The `Content-Type` is missing or not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body has a `Content-Encoding` (compression) the API does not decode.
    #[error(
        "Content-Encoding {0:?} is not supported; send the body uncompressed (identity), as Accept-Encoding says"
    )]
    UnsupportedEncoding(String),
    /// JSON, but not an acceptable message.
    #[error("{message}")]
    Validation {
        /// Summary.
        message: String,
        /// Reason per field.
        fields: BTreeMap<String, String>,
    },
    /// The `Idempotency-Key` header is not acceptable.
    #[error("{0}")]
    InvalidIdempotencyKey(String),
    /// The `Idempotency-Key` was first used on another endpoint; nothing was queued.
    #[error(
        "this Idempotency-Key was first used on another endpoint; nothing was queued (use a new key)"
    )]
    IdempotencyKeyReused,
    /// A query parameter is not acceptable.
    #[error("invalid query parameters")]
    InvalidQuery(BTreeMap<String, String>),
    /// The queue holds `ingest.max_queue_depth` messages; nothing was queued.
    #[error("the queue is full ({depth} messages waiting); nothing was queued, retry later")]
    QueueFull {
        /// Messages waiting.
        depth: u64,
    },
    /// Redis did not confirm in time; nothing was queued.
    #[error("the message queue (Redis) is unavailable; nothing was queued, retry later")]
    RedisUnavailable,
    /// Redis refused the push: it holds `maxmemory` (with `noeviction`); nothing was queued.
    #[error(
        "the message queue (Redis) is full: it holds its maxmemory; nothing was queued, retry once the workers have drained it"
    )]
    RedisFull,
    /// Fewer replicas than `redis.ack_replicas` confirmed the push within `redis.ack_timeout_ms`.
    #[error(
        "{confirmed} of the {wanted} Redis replicas required confirmed the push in time; it may be queued or not: retry with the same Idempotency-Key"
    )]
    NotReplicated {
        /// Replicas that confirmed.
        confirmed: u64,
        /// `redis.ack_replicas`.
        wanted: u32,
    },
    /// PostgreSQL could not answer.
    #[error("the message store (PostgreSQL) is unavailable; retry later")]
    PostgresUnavailable,
    /// `ingest.read_concurrency` reads of stored messages are running already.
    #[error(
        "this server is running as many reads of stored messages as it may ({limit}); retry later"
    )]
    ReadsBusy {
        /// `ingest.read_concurrency`.
        limit: usize,
    },
    /// A read ran past `ingest.read_timeout_ms` and was cancelled.
    #[error("the read took longer than {timeout_ms} ms and was cancelled; retry later")]
    ReadTimeout {
        /// `ingest.read_timeout_ms`.
        timeout_ms: u64,
    },
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
    /// The route exists, the method does not.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// `auth.mode = keys` and the credential was missing, unknown, expired, revoked or short of
    /// the endpoint's scope.
    #[error("{0}")]
    Refused(sluice_core::auth::Refused),
    /// This client address guessed at keys too often lately; its key is not even read.
    #[error(
        "too many wrong keys from this address, or for this key: retry in {} s",
        .0.as_secs().max(1)
    )]
    TooManyFailures(std::time::Duration),
    /// The caller's key (or token) is past its rate limit, fleet-wide.
    #[error("{}", rate_limited(.0))]
    RateLimited(crate::limit::Limited),
}

/// What a rate-limited caller is told.
fn rate_limited(limited: &crate::limit::Limited) -> String {
    let (rate, burst) = (limited.limit.rate, limited.limit.burst);
    if limited.beyond_burst {
        return format!(
            "this credential may post at most {burst} messages at once: split the batch"
        );
    }
    format!(
        "this credential may post {rate} messages a second (bursts of {burst}), across every \
         ingest API: retry in {} ms",
        limited.wait.as_millis().max(1)
    )
}

impl ApiError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(refused) => refused.code(),
            Self::TooManyFailures(_) => "too_many_failures",
            Self::RateLimited(_) => "rate_limited",
            Self::MalformedJson(_) => "malformed_json",
            Self::UnreadableBody(_) => "unreadable_body",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::BufferBudgetExhausted { .. } => "server_busy",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::UnsupportedEncoding(_) => "unsupported_content_encoding",
            Self::Validation { .. } => "validation_failed",
            Self::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::InvalidQuery(_) => "invalid_query",
            Self::QueueFull { .. } => "queue_full",
            Self::RedisUnavailable => "redis_unavailable",
            Self::RedisFull => "redis_full",
            Self::NotReplicated { .. } => "not_replicated",
            Self::PostgresUnavailable => "postgres_unavailable",
            Self::ReadsBusy { .. } => "server_busy",
            Self::ReadTimeout { .. } => "read_timeout",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }
}

impl ApiError {
    /// The same failure once more, for every request of a group that failed as one: Redis
    /// full, or else unavailable.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::RedisFull => Self::RedisFull,
            Self::NotReplicated { confirmed, wanted } => Self::NotReplicated {
                confirmed: *confirmed,
                wanted: *wanted,
            },
            _ => Self::RedisUnavailable,
        }
    }

    /// Whether the request body was left unread, so the connection cannot carry another
    /// request and is closed after the answer.
    pub fn leaves_body_unread(&self) -> bool {
        matches!(
            self,
            Self::BodyTimeout { .. }
                | Self::PayloadTooLarge { .. }
                | Self::BufferBudgetExhausted { .. }
                | Self::UnreadableBody(_)
        )
    }
}

impl From<MessageError> for ApiError {
    fn from(e: MessageError) -> Self {
        match e {
            MessageError::Malformed(reason) => Self::MalformedJson(reason),
            MessageError::Invalid(fields) => Self::Validation {
                message: MessageError::Invalid(fields.clone()).to_string(),
                fields,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_)
            | Self::UnreadableBody(_)
            | Self::InvalidQuery(_)
            | Self::InvalidIdempotencyKey(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::BufferBudgetExhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::QueueFull { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType(_) | Self::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Validation { .. } | Self::IdempotencyKeyReused => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::RedisUnavailable
            | Self::RedisFull
            | Self::NotReplicated { .. }
            | Self::PostgresUnavailable
            | Self::ReadsBusy { .. }
            | Self::ReadTimeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Refused(refused) if refused.is_forbidden() => StatusCode::FORBIDDEN,
            Self::Refused(_) => StatusCode::UNAUTHORIZED,
            Self::TooManyFailures(_) | Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let fields = match self {
            Self::Validation { fields, .. } | Self::InvalidQuery(fields) => fields.clone(),
            _ => BTreeMap::new(),
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(
            self.status_code(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            response.insert_header(("Retry-After", "1"));
        }
        if self.leaves_body_unread() {
            response.force_close();
        }
        if let Self::Refused(refused) = self {
            response.insert_header(("WWW-Authenticate", refused.challenge()));
        }
        if let Self::TooManyFailures(wait) = self {
            let wait = sluice_admin::throttle::retry_after(*wait);
            response.insert_header(("Retry-After", wait));
        }
        if let Self::RateLimited(limited) = self {
            let wait = sluice_admin::throttle::retry_after(limited.wait);
            // The IETF httpapi RateLimit fields: the policy (quota per window of seconds) and
            // what is left of it now.
            let policy = format!(r#""key";q={};w=1"#, limited.limit.rate);
            let now = format!(r#""key";r=0;t={wait}"#);
            response.insert_header(("Retry-After", wait));
            response.insert_header(("RateLimit-Policy", policy));
            response.insert_header(("RateLimit", now));
        }
        if matches!(self, Self::UnsupportedEncoding(_)) {
            // RFC 7694: the codings the server accepts in a request.
            response.insert_header(("Accept-Encoding", "identity"));
        }
        response.json(ErrorBody::with_fields(
            self.code(),
            self.to_string(),
            fields,
        ))
    }
}
