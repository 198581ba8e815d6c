//! `/admin/dead-letters`: list, requeue and delete the messages workers could not insert. Each
//! handler checks the token, parses its query, runs one operation of [`crate::letters`], and
//! answers.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sluice_proto::api::{DeadLetterPage, Purged, Requeued};
use sluice_proto::error::ErrorBody;

use crate::Admin;
use crate::audit;
use crate::error::AdminError;
use crate::letters::{self, Action, Which};

/// Largest page of `GET /admin/dead-letters`.
pub const MAX_LIST: usize = 1_000;

/// The failures every admin call may answer, for the OpenAPI document (a call's own 400 is
/// listed with it; what was done before a 503 stays done).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum AdminErrors {
    /// Missing or wrong token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Too many wrong tokens from this address lately: retry after `Retry-After` seconds.
    #[response(status = 429)]
    Throttled(ErrorBody),
    /// Admin endpoints are off (this server's admin token is empty).
    #[response(status = 404)]
    Off(ErrorBody),
    /// Redis is unavailable.
    #[response(status = 503)]
    RedisUnavailable(ErrorBody),
}

/// The failures of a call on one dead letter, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum OneErrors {
    /// Missing or wrong token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Too many wrong tokens from this address lately: retry after `Retry-After` seconds.
    #[response(status = 429)]
    Throttled(ErrorBody),
    /// No dead letter has this id (requeued or deleted already), or admin endpoints are off.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Redis is unavailable.
    #[response(status = 503)]
    RedisUnavailable(ErrorBody),
}

/// Query of the list call.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    limit: Option<String>,
    offset: Option<String>,
    reason: Option<String>,
}

/// Query of the requeue call.
#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<String>,
    reason: Option<String>,
}

/// Query of the calls on one dead letter.
#[derive(Debug, Deserialize)]
pub struct OneQuery {
    near: Option<String>,
}

/// Parses an optional integer query parameter within `min..=max`.
fn parse(name: &str, raw: Option<&str>, min: u64, max: u64) -> Result<Option<u64>, AdminError> {
    let Some(v) = raw.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    v.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .map(Some)
        .ok_or_else(|| {
            AdminError::query(
                name,
                format!("must be an integer between {min} and {max}, got {v:?}"),
            )
        })
}

/// `GET /admin/dead-letters?limit=100&offset=0[&reason=…]`: a page of dead letters, newest
/// first, and how many there are; with `reason`, only those whose reason contains it.
#[utoipa::path(get, path = "/admin/dead-letters", tag = "admin", security(("admin_token" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Entries to list (default 100)"),
        ("offset" = Option<u64>, Query, minimum = 0, description = "Newer entries to skip (default 0): the previous page's `next_offset`"),
        ("reason" = Option<String>, Query, max_length = 200, description = "Only the letters whose reason contains this, A–Z case aside; a page examines at most 10,000 entries, so a filtered page may be short or empty while `next_offset` says where to go on"),
    ),
    responses(
    (status = 200, description = "A page of dead letters, newest first", body = DeadLetterPage),
    (status = 400, description = "`limit` or `offset` is not acceptable", body = ErrorBody),
    AdminErrors,
))]
pub async fn list(
    req: HttpRequest,
    query: web::Query<PageQuery>,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, AdminError> {
    admin.authorize(&req)?;
    let limit = parse("limit", query.limit.as_deref(), 1, MAX_LIST as u64)?.unwrap_or(100);
    let offset = parse("offset", query.offset.as_deref(), 0, i64::MAX as u64)?.unwrap_or(0);
    let reason = letters::parse_reason(query.reason.as_deref())?;
    let page = letters::page(&admin, offset, limit, &reason).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /admin/dead-letters/requeue?limit=N[&reason=…]`: moves the oldest N (default: all)
/// dead letters, or of them those whose reason contains `reason`, back to the queue, behind
/// what is already pending, in their original order, in chunks ([`crate::lua::CHUNK_ENTRIES`],
/// [`crate::lua::CHUNK_BYTES`]). Entries that cannot be read are skipped, moved to the newest
/// end, and counted in `unreadable`.
#[utoipa::path(post, path = "/admin/dead-letters/requeue", tag = "admin", security(("admin_token" = [])),
    params(
        ("limit" = Option<u64>, Query, minimum = 1, description = "Oldest entries to examine (default: all)"),
        ("reason" = Option<String>, Query, max_length = 200, description = "Only the letters whose reason contains this, A–Z case aside"),
    ),
    responses(
    (status = 200, description = "How many were requeued, and how many were skipped because they cannot be read", body = Requeued),
    (status = 400, description = "`limit` is not acceptable", body = ErrorBody),
    AdminErrors,
))]
pub async fn requeue(
    req: HttpRequest,
    query: web::Query<LimitQuery>,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, AdminError> {
    let actor = admin.authorize(&req)?;
    let limit = parse("limit", query.limit.as_deref(), 1, i64::MAX as u64)?;
    let reason = letters::parse_reason(query.reason.as_deref())?;
    let (requeued, unreadable) = letters::requeue(&admin, limit, &reason).await?;
    let mut target = format!("{requeued} requeued, {unreadable} unreadable skipped");
    if !reason.is_empty() {
        target.push_str(&format!(" (reason contains {reason:?})"));
    }
    admin.audit(&actor, audit::Action::Requeued, &target).await;
    Ok(HttpResponse::Ok().json(Requeued {
        requeued,
        unreadable,
    }))
}

/// Query of the purge call.
#[derive(Debug, Deserialize)]
pub struct PurgeQuery {
    only: Option<String>,
    reason: Option<String>,
}

/// `DELETE /admin/dead-letters[?only=unreadable | ?reason=…]`: deletes every dead letter
/// (`dead_letters`, the count ever dead-lettered, is kept), or only those requeue cannot read,
/// or only those whose reason contains `reason`.
#[utoipa::path(delete, path = "/admin/dead-letters", tag = "admin", security(("admin_token" = [])),
    params(
        ("only" = Option<String>, Query, description = "`unreadable`: delete only the entries requeue skips"),
        ("reason" = Option<String>, Query, max_length = 200, description = "Delete only the letters whose reason contains this, A–Z case aside"),
    ),
    responses(
    (status = 200, description = "How many were deleted", body = Purged),
    (status = 400, description = "`only` or `reason` is not acceptable, or both are given", body = ErrorBody),
    AdminErrors,
))]
pub async fn purge(
    req: HttpRequest,
    query: web::Query<PurgeQuery>,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, AdminError> {
    let actor = admin.authorize(&req)?;
    let reason = letters::parse_reason(query.reason.as_deref())?;
    let which = match (query.only.as_deref(), reason.as_str()) {
        (None | Some(""), "") => Which::All,
        (None | Some(""), reason) => Which::Reason(reason),
        (Some("unreadable"), "") => Which::Unreadable,
        (Some("unreadable"), _) => {
            let why = "give only=unreadable or a reason, not both".into();
            return Err(AdminError::query("reason", why));
        }
        (Some(other), _) => {
            let why = format!("must be \"unreadable\", got {other:?}");
            return Err(AdminError::query("only", why));
        }
    };
    let purged = letters::purge(&admin, which).await?;
    let target = match which {
        Which::All => format!("{purged} deleted"),
        Which::Unreadable => format!("{purged} unreadable deleted"),
        Which::Reason(reason) => format!("{purged} deleted (reason contains {reason:?})"),
    };
    admin.audit(&actor, audit::Action::Purged, &target).await;
    Ok(HttpResponse::Ok().json(Purged { purged }))
}

/// What both calls on one dead letter do: authorize, parse, [`letters::take_one`], log.
async fn on_one(
    req: &HttpRequest,
    id: &str,
    query: &OneQuery,
    admin: &Admin,
    action: Action,
) -> Result<(), AdminError> {
    let actor = admin.authorize(req)?;
    let near = parse("near", query.near.as_deref(), 0, i64::MAX as u64)?.unwrap_or(0);
    letters::take_one(admin, letters::parse_id(id)?, near, action).await?;
    let done = match action {
        Action::Requeue => audit::Action::RequeuedOne,
        Action::Delete => audit::Action::DeletedOne,
    };
    admin.audit(&actor, done, id).await;
    Ok(())
}

/// `POST /admin/dead-letters/{id}/requeue?near=N`: moves one dead letter back to the queue,
/// behind what is already pending.
#[utoipa::path(post, path = "/admin/dead-letters/{id}/requeue", tag = "admin", security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "The dead letter's id, as listed (the SHA-1 of its bytes)"),
        ("near" = Option<u64>, Query, minimum = 0, description = "Its position when listed (newest is 0): where the search starts"),
    ),
    responses(
    (status = 200, description = "It was requeued", body = Requeued),
    (status = 400, description = "`near` is not acceptable", body = ErrorBody),
    (status = 409, description = "It cannot be read, or kept only its first bytes, so it cannot be requeued; delete it", body = ErrorBody),
    OneErrors,
))]
pub async fn requeue_one(
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<OneQuery>,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, AdminError> {
    on_one(&req, &id, &query, &admin, Action::Requeue).await?;
    Ok(HttpResponse::Ok().json(Requeued {
        requeued: 1,
        unreadable: 0,
    }))
}

/// `DELETE /admin/dead-letters/{id}?near=N`: deletes one dead letter.
#[utoipa::path(delete, path = "/admin/dead-letters/{id}", tag = "admin", security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "The dead letter's id, as listed (the SHA-1 of its bytes)"),
        ("near" = Option<u64>, Query, minimum = 0, description = "Its position when listed (newest is 0): where the search starts"),
    ),
    responses(
    (status = 200, description = "It was deleted", body = Purged),
    (status = 400, description = "`near` is not acceptable", body = ErrorBody),
    OneErrors,
))]
pub async fn delete_one(
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<OneQuery>,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, AdminError> {
    on_one(&req, &id, &query, &admin, Action::Delete).await?;
    Ok(HttpResponse::Ok().json(Purged { purged: 1 }))
}

/// `GET /admin/audit?limit=N`: the most recent admin actions (default 100, at most 1,000),
/// newest first.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("admin_token" = [])),
    params(("limit" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Entries to list (default 100)")),
    responses(
    (status = 200, description = "The most recent admin actions, newest first", body = sluice_proto::audit::AuditLog),
    (status = 400, description = "`limit` is not acceptable", body = ErrorBody),
    AdminErrors,
))]
pub async fn audit(
    req: HttpRequest,
    query: web::Query<LimitQuery>,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, AdminError> {
    admin.authorize(&req)?;
    let max = audit::MAX_LIST as u64;
    let limit = parse("limit", query.limit.as_deref(), 1, max)?.unwrap_or(100);
    let entries = admin.recent_audit(limit as i64).await?;
    Ok(HttpResponse::Ok().json(sluice_proto::audit::AuditLog { entries }))
}
