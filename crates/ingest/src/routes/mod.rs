//! HTTP handlers.

pub mod health;
pub mod keys;
pub mod list;
pub mod messages;

use actix_web::HttpResponse;

use crate::error::ApiError;

/// Fallback for paths that match no route.
pub async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::NotFound)
}

/// Fallback for known paths called with a method they do not serve.
pub async fn method_not_allowed() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed)
}
