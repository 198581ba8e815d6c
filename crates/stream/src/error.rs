//! The stream's HTTP errors, each with its status and stable `code`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sluice_proto::error::ErrorBody;

use crate::hub::LimitError;

/// An error answered as `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A query parameter is out of range or malformed.
    #[error("{0}")]
    InvalidQuery(String),
    /// Callers are checked and the credential is missing, not good, or without `stats:read`
    /// (or, bound to channels, asks for message ids of every channel).
    #[error("{0}")]
    Refused(sluice_core::auth::Refused),
    /// A connection limit is reached.
    #[error(transparent)]
    TooManyConnections(#[from] LimitError),
    /// No stats could be read.
    #[error("stats are unavailable: Redis cannot be reached")]
    RedisUnavailable,
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
    /// `GET /ws/stats` without a valid WebSocket upgrade.
    #[error("this endpoint takes a WebSocket upgrade: {0}")]
    NotWebSocket(String),
}

impl StreamError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidQuery(_) => "invalid_query",
            Self::Refused(refused) => refused.code(),
            Self::TooManyConnections(_) => "too_many_connections",
            Self::RedisUnavailable => "redis_unavailable",
            Self::NotFound => "not_found",
            Self::NotWebSocket(_) => "not_a_websocket_upgrade",
        }
    }
}

impl ResponseError for StreamError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidQuery(_) | Self::NotWebSocket(_) => StatusCode::BAD_REQUEST,
            Self::Refused(refused) if refused.is_forbidden() => StatusCode::FORBIDDEN,
            Self::Refused(_) => StatusCode::UNAUTHORIZED,
            Self::TooManyConnections(_) | Self::RedisUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Refused(refused) => {
                response.insert_header(("WWW-Authenticate", refused.challenge()));
            }
            Self::TooManyConnections(_) | Self::RedisUnavailable => {
                response.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        response.json(ErrorBody::new(self.code(), self.to_string()))
    }
}
