//! `GET /messages`: persisted messages, newest first, parsed at the edge into a [`ListQuery`].

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use sluice_proto::api::MessagePage;
use sluice_proto::error::ErrorBody;
use sluice_proto::message::{ChannelId, UserId};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::auth::{Authorized, Reads};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store;

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
    /// Messages per page, 1 to [`LIST_MAX_LIMIT`].
    pub limit: i64,
    /// Only this channel's.
    pub channel_id: Option<ChannelId>,
    /// Only this user's.
    pub user_id: Option<UserId>,
    /// Only those older than this id (the previous page's `next_before`).
    pub before: Option<Uuid>,
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
        (status = 401, description = "With `auth.mode = keys`: no key, or one that is unknown, expired or revoked", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 403, description = "With `auth.mode = keys`: a key without `messages:read`", body = ErrorBody, headers(("WWW-Authenticate" = String))),
        (status = 429, description = "With `auth.mode = keys`: too many wrong keys from this address (`too_many_failures`)", body = ErrorBody, headers(("Retry-After" = u32))),
        (status = 503, description = "PostgreSQL is unavailable (`postgres_unavailable`), `ingest.read_concurrency` reads are running already (`server_busy`), or the query ran past `ingest.read_timeout_ms` (`read_timeout`)", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
#[tracing::instrument(name = "list_messages", skip_all)]
pub async fn list_messages(
    caller: Authorized<Reads>,
    query: web::Query<RawListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = ListQuery::parse(query.into_inner())?;
    caller.may_read(query.channel_id.map(ChannelId::get))?;
    let Ok(_permit) = state.read_permits.try_acquire() else {
        return Err(ApiError::ReadsBusy {
            limit: state.read_concurrency(),
        });
    };
    let page = store::page(&state.read_pool, &query).await.map_err(|e| {
        sluice_core::metric::postgres_error("list_messages");
        if store::cancelled(&e) {
            // Counted in sluice_postgres_errors_total; one line per request would let a client
            // write the log as fast as it reads.
            tracing::debug!(query = ?query, "a read ran past ingest.read_timeout_ms");
            return ApiError::ReadTimeout {
                timeout_ms: state.read_timeout.as_millis() as u64,
            };
        }
        tracing::warn!(error = %e, "listing messages failed");
        ApiError::PostgresUnavailable
    })?;
    Ok(HttpResponse::Ok().json(page))
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
