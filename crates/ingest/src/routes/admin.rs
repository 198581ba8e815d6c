//! `/admin/dead-letters`: list, requeue and purge the messages workers could not insert.
//!
//! Off unless `ingest.admin_token` is set; then every call needs
//! `Authorization: Bearer <token>`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sluice_core::lua::LuaScript;
use subtle::ConstantTimeEq;

use sluice_core::api::DeadLetterPage;
use sluice_core::error::ErrorBody;

use crate::error::ApiError;
use crate::queue;
use crate::state::AppState;

/// Largest page of `GET /admin/dead-letters`.
pub const MAX_LIST: usize = 1_000;

/// Query of the list and requeue calls.
#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<String>,
}

fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(expected) = state.admin_token.as_deref() else {
        return Err(ApiError::NotFound);
    };
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant time, whatever the first difference, so timing says nothing about the token.
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn parse_limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::InvalidQuery(
                    [(
                        "limit".to_owned(),
                        format!("must be an integer between 1 and {max}, got {v:?}"),
                    )]
                    .into(),
                )
            }),
    }
}

/// `GET /admin/dead-letters?limit=100`: the newest dead letters and how many there are.
#[utoipa::path(get, path = "/admin/dead-letters", tag = "admin", security(("admin_token" = [])),
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Newest entries to list (default 100)")),
    responses(
    (status = 200, description = "The newest dead letters", body = DeadLetterPage),
    (status = 400, description = "`limit` is not acceptable", body = ErrorBody),
    (status = 401, description = "Missing or wrong token", body = ErrorBody),
    (status = 404, description = "Admin endpoints are off (`ingest.admin_token` is empty)", body = ErrorBody),
    (status = 503, description = "Redis is unavailable", body = ErrorBody),
))]
pub async fn list(
    req: HttpRequest,
    query: web::Query<LimitQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let limit = parse_limit(query.limit.as_deref(), 100, MAX_LIST)?;
    let mut redis = state.redis.clone();
    let (total, entries): (u64, Vec<String>) = queue::within(
        state.redis_timeout,
        "dead-letter admin call",
        redis::pipe()
            .cmd("LLEN")
            .arg(&state.keys.dead_messages)
            .cmd("LRANGE")
            .arg(&state.keys.dead_messages)
            .arg(0)
            .arg(limit - 1)
            .query_async(&mut redis),
    )
    .await?;
    let dead_letters = entries
        .into_iter()
        .map(|raw| serde_json::from_str(&raw).unwrap_or(serde_json::Value::String(raw)))
        .collect();
    Ok(HttpResponse::Ok().json(DeadLetterPage {
        total,
        dead_letters,
    }))
}

/// `POST /admin/dead-letters/requeue?limit=N`: moves the oldest N (default: all) dead letters
/// back to the consuming end of `pending_messages`.
#[utoipa::path(post, path = "/admin/dead-letters/requeue", tag = "admin", security(("admin_token" = [])),
    params(("limit" = Option<u64>, Query, minimum = 1, description = "Oldest entries to requeue (default: all)")),
    responses(
    (status = 200, description = "How many were requeued: `{\"requeued\": N}`", body = serde_json::Value),
    (status = 400, description = "`limit` is not acceptable", body = ErrorBody),
    (status = 401, description = "Missing or wrong token", body = ErrorBody),
    (status = 404, description = "Admin endpoints are off (`ingest.admin_token` is empty)", body = ErrorBody),
    (status = 503, description = "Redis is unavailable", body = ErrorBody),
))]
pub async fn requeue(
    req: HttpRequest,
    query: web::Query<LimitQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    static SCRIPT: std::sync::LazyLock<LuaScript> =
        std::sync::LazyLock::new(|| LuaScript::new(include_str!("../lua/requeue_dead.lua")));
    authorize(&req, &state)?;
    let limit = parse_limit(query.limit.as_deref(), usize::MAX, usize::MAX)?;
    let mut redis = state.redis.clone();
    let moved: u64 = queue::within(state.redis_timeout, "dead-letter admin call", async {
        SCRIPT
            .keyed(&state.keys, &[])?
            .arg(limit.min(i64::MAX as usize))
            .invoke_async(&mut redis)
            .await
    })
    .await?;
    tracing::info!(moved, "requeued dead letters");
    Ok(HttpResponse::Ok().json(serde_json::json!({"requeued": moved})))
}

/// `DELETE /admin/dead-letters`: deletes every dead letter (`dead_letters`, the count ever
/// dead-lettered, is kept).
#[utoipa::path(delete, path = "/admin/dead-letters", tag = "admin", security(("admin_token" = [])),
    responses(
    (status = 200, description = "How many were deleted: `{\"purged\": N}`", body = serde_json::Value),
    (status = 401, description = "Missing or wrong token", body = ErrorBody),
    (status = 404, description = "Admin endpoints are off (`ingest.admin_token` is empty)", body = ErrorBody),
    (status = 503, description = "Redis is unavailable", body = ErrorBody),
))]
pub async fn purge(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    static SCRIPT: std::sync::LazyLock<LuaScript> =
        std::sync::LazyLock::new(|| LuaScript::new(include_str!("../lua/purge_dead.lua")));
    authorize(&req, &state)?;
    let mut redis = state.redis.clone();
    let purged: u64 = queue::within(state.redis_timeout, "dead-letter admin call", async {
        SCRIPT
            .keyed(&state.keys, &[])?
            .invoke_async(&mut redis)
            .await
    })
    .await?;
    tracing::info!(purged, "purged dead letters");
    Ok(HttpResponse::Ok().json(serde_json::json!({"purged": purged})))
}
