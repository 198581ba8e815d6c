//! Gateway HTTP errors, each with its status and stable `code`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sluice_core::error::ErrorBody;

/// An error answered as `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A query parameter is out of range or malformed.
    #[error("{0}")]
    InvalidQuery(String),
    /// No stats could be read.
    #[error("stats are unavailable: Redis cannot be reached")]
    RedisUnavailable,
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
}

impl GatewayError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidQuery(_) => "invalid_query",
            Self::RedisUnavailable => "redis_unavailable",
            Self::NotFound => "not_found",
        }
    }
}

impl ResponseError for GatewayError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            Self::RedisUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody::new(self.code(), self.to_string()))
    }
}
