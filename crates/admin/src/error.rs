//! The admin endpoints' HTTP errors, each with its status and stable `code` (the same codes the
//! ingest API has always answered on these paths).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sluice_proto::error::ErrorBody;

/// An error answered as `{"error": {"code", "message", "fields"}}`.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The admin endpoints are off on this server: answered like a missing route (404
    /// `not_found`), with a message naming the variable that turns them on.
    #[error(
        "the admin endpoints are off: start this server with {0} set (16 characters or more), then send it as Authorization: Bearer <token>"
    )]
    Disabled(&'static str),
    /// No credential, or not the admin token nor a credential with the `admin` scope.
    #[error("{0}")]
    Refused(sluice_core::auth::Refused),
    /// This client address sent too many wrong tokens lately; its token is not even read.
    #[error(
        "too many wrong admin tokens from this address: retry in {} s",
        .0.as_secs().max(1)
    )]
    Throttled(std::time::Duration),
    /// A query parameter is not acceptable; reason per parameter.
    #[error("invalid query parameters")]
    InvalidQuery(BTreeMap<String, String>),
    /// No dead letter has this id (it was requeued or deleted already, or never existed).
    #[error("no dead letter has the id {0:?}; it may have been requeued or deleted already")]
    NoSuchDeadLetter(String),
    /// The dead letter cannot be read, so its bytes cannot be requeued.
    #[error(
        "dead letter {0:?} cannot be requeued: it cannot be read (not JSON, no text payload, or bad hex), or it kept only the first bytes of a longer entry; delete it instead"
    )]
    Unreadable(String),
    /// Redis did not answer in time.
    #[error("Redis is unavailable; retry later (what was done before stays done)")]
    RedisUnavailable,
    /// Redis refused a write: it holds its `maxmemory`.
    #[error(
        "Redis is full (it holds its maxmemory); nothing was moved, retry once the workers have drained it"
    )]
    RedisFull,
    /// PostgreSQL, where the audit trail is kept, did not answer.
    #[error("PostgreSQL is unavailable; retry later")]
    PostgresUnavailable,
    /// The path exists, the method does not.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
}

impl AdminError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Disabled(_) => "not_found",
            Self::Refused(refused) => refused.code(),
            Self::Throttled(_) => "too_many_failures",
            Self::InvalidQuery(_) => "invalid_query",
            Self::NoSuchDeadLetter(_) => "dead_letter_not_found",
            Self::Unreadable(_) => "dead_letter_unreadable",
            Self::RedisUnavailable => "redis_unavailable",
            Self::RedisFull => "redis_full",
            Self::PostgresUnavailable => "postgres_unavailable",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// One query parameter's reason.
    pub fn query(name: &str, reason: String) -> Self {
        Self::InvalidQuery([(name.to_owned(), reason)].into())
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Disabled(_) | Self::NoSuchDeadLetter(_) => StatusCode::NOT_FOUND,
            Self::Refused(refused) if refused.is_forbidden() => StatusCode::FORBIDDEN,
            Self::Refused(_) => StatusCode::UNAUTHORIZED,
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            Self::Unreadable(_) => StatusCode::CONFLICT,
            Self::RedisUnavailable | Self::RedisFull | Self::PostgresUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Refused(refused) => {
                response.insert_header(("WWW-Authenticate", refused.challenge()));
            }
            Self::RedisUnavailable | Self::RedisFull | Self::PostgresUnavailable => {
                response.insert_header(("Retry-After", "1"));
            }
            Self::Throttled(wait) => {
                response.insert_header(("Retry-After", crate::throttle::retry_after(*wait)));
            }
            _ => {}
        }
        let fields = match self {
            Self::InvalidQuery(fields) => fields.clone(),
            _ => BTreeMap::new(),
        };
        response.json(ErrorBody::with_fields(
            self.code(),
            self.to_string(),
            fields,
        ))
    }
}
