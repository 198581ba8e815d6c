//! `/admin/dead-letters`: list, requeue and purge the messages workers could not insert.
//!
//! Off unless `ingest.admin_token` is set; then every call needs
//! `Authorization: Bearer <token>`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sluice_core::lua::LuaScript;
use subtle::ConstantTimeEq;

use sluice_core::api::{DeadLetterPage, Purged, Requeued};
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
        return Err(ApiError::AdminDisabled);
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

/// Most entries one Redis call of a requeue or purge examines.
pub const CHUNK_ENTRIES: u64 = 500;
/// Most bytes of entries one call reads: with [`CHUNK_ENTRIES`], what keeps each call to a
/// few milliseconds of Redis's time, however large the entries (hex decoding costs per byte).
pub const CHUNK_BYTES: u64 = 256 * 1024;

static REQUEUE: std::sync::LazyLock<LuaScript> = std::sync::LazyLock::new(|| {
    LuaScript::new(concat!(
        include_str!("../lua/dead_payload.lua"),
        include_str!("../lua/requeue_dead.lua")
    ))
});
static PURGE_UNREADABLE: std::sync::LazyLock<LuaScript> = std::sync::LazyLock::new(|| {
    LuaScript::new(concat!(
        include_str!("../lua/dead_payload.lua"),
        include_str!("../lua/purge_unreadable.lua")
    ))
});
static PURGE: std::sync::LazyLock<LuaScript> =
    std::sync::LazyLock::new(|| LuaScript::new(include_str!("../lua/purge_dead.lua")));

/// Runs `script` over the oldest `limit` dead letters (all when `None`), one bounded chunk per
/// call, until it has examined as many as there were when it began. Each call returns its
/// counts, the last one being the entries it examined; returns their sums.
async fn in_chunks<const N: usize>(
    state: &AppState,
    script: &LuaScript,
    limit: Option<u64>,
) -> Result<[u64; N], ApiError> {
    let mut redis = state.redis.clone();
    let mut llen = redis::cmd("LLEN");
    llen.arg(&state.keys.dead_messages);
    let there: u64 = queue::within(
        state.redis_timeout,
        "LLEN dead_messages",
        llen.query_async(&mut redis),
    )
    .await?;
    let mut left = limit.map_or(there, |n| n.min(there));
    let mut sums = [0u64; N];
    while left > 0 {
        let counts: Vec<u64> =
            queue::within(state.redis_timeout, "dead-letter admin call", async {
                script
                    .keyed(&state.keys, &[])?
                    .arg(left.min(CHUNK_ENTRIES))
                    .arg(CHUNK_BYTES)
                    .invoke_async(&mut redis)
                    .await
            })
            .await?;
        let examined = counts.get(N - 1).copied().unwrap_or(0);
        for (sum, n) in sums.iter_mut().zip(&counts) {
            *sum += n;
        }
        if examined == 0 {
            break;
        }
        left = left.saturating_sub(examined);
    }
    Ok(sums)
}

/// `POST /admin/dead-letters/requeue?limit=N`: moves the oldest N (default: all) dead letters
/// back to the queue, behind what is already pending, in their original order, in chunks
/// ([`CHUNK_ENTRIES`], [`CHUNK_BYTES`]). Entries that cannot be read are skipped, moved to the
/// newest end, and counted in `unreadable`.
#[utoipa::path(post, path = "/admin/dead-letters/requeue", tag = "admin", security(("admin_token" = [])),
    params(("limit" = Option<u64>, Query, minimum = 1, description = "Oldest entries to requeue (default: all)")),
    responses(
    (status = 200, description = "How many were requeued, and how many were skipped because they cannot be read", body = Requeued),
    (status = 400, description = "`limit` is not acceptable", body = ErrorBody),
    (status = 401, description = "Missing or wrong token", body = ErrorBody),
    (status = 404, description = "Admin endpoints are off (`ingest.admin_token` is empty)", body = ErrorBody),
    (status = 503, description = "Redis is unavailable (what was requeued before stays requeued)", body = ErrorBody),
))]
pub async fn requeue(
    req: HttpRequest,
    query: web::Query<LimitQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let limit = parse_limit(query.limit.as_deref(), usize::MAX, usize::MAX)?;
    let limit = (limit != usize::MAX).then_some(limit as u64);
    let [requeued, unreadable, _] = in_chunks::<3>(&state, &REQUEUE, limit).await?;
    tracing::info!(requeued, unreadable, "requeued dead letters");
    Ok(HttpResponse::Ok().json(Requeued {
        requeued,
        unreadable,
    }))
}

/// Query of the purge call.
#[derive(Debug, Deserialize)]
pub struct PurgeQuery {
    only: Option<String>,
}

/// `DELETE /admin/dead-letters[?only=unreadable]`: deletes every dead letter (`dead_letters`,
/// the count ever dead-lettered, is kept), or only those requeue cannot read.
#[utoipa::path(delete, path = "/admin/dead-letters", tag = "admin", security(("admin_token" = [])),
    params(("only" = Option<String>, Query, description = "`unreadable`: delete only the entries requeue skips")),
    responses(
    (status = 200, description = "How many were deleted", body = Purged),
    (status = 400, description = "`only` is not acceptable", body = ErrorBody),
    (status = 401, description = "Missing or wrong token", body = ErrorBody),
    (status = 404, description = "Admin endpoints are off (`ingest.admin_token` is empty)", body = ErrorBody),
    (status = 503, description = "Redis is unavailable", body = ErrorBody),
))]
pub async fn purge(
    req: HttpRequest,
    query: web::Query<PurgeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let purged = match query.only.as_deref() {
        None | Some("") => {
            let mut redis = state.redis.clone();
            queue::within(state.redis_timeout, "dead-letter admin call", async {
                PURGE
                    .keyed(&state.keys, &[])?
                    .invoke_async(&mut redis)
                    .await
            })
            .await?
        }
        Some("unreadable") => in_chunks::<2>(&state, &PURGE_UNREADABLE, None).await?[0],
        Some(other) => {
            return Err(ApiError::InvalidQuery(
                [(
                    "only".to_owned(),
                    format!("must be \"unreadable\", got {other:?}"),
                )]
                .into(),
            ));
        }
    };
    tracing::info!(purged, only = query.only.as_deref(), "purged dead letters");
    Ok(HttpResponse::Ok().json(Purged { purged }))
}
