//! `/admin/dead-letters`: list, requeue and delete the messages workers could not insert.
//!
//! A dead letter is named by its id, the SHA-1 of its exact bytes in `dead_messages`: entries
//! move as others are added and requeued, their bytes do not, and two entries with the same
//! bytes are the same letter twice. Every call that examines entries does so in bounded chunks
//! ([`CHUNK_ENTRIES`], [`CHUNK_BYTES`]), so none holds Redis for more than a few milliseconds.

use std::sync::LazyLock;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sha1::{Digest, Sha1};
use sluice_core::lua::LuaScript;
use sluice_proto::api::{DeadLetterPage, Purged, Requeued};
use sluice_proto::error::ErrorBody;

use crate::Admin;
use crate::error::AdminError;

/// Largest page of `GET /admin/dead-letters`.
pub const MAX_LIST: usize = 1_000;
/// Most bytes of entries one page of `GET /admin/dead-letters` reads: a page ends after the
/// entry that reaches it, so a page of large entries holds fewer than its `limit`.
pub const PAGE_BYTES: u64 = 1 << 20;
/// Most bytes of one entry a page carries: the largest dead letter a worker writes
/// (`worker.dead_letter_max_bytes` at its largest, 128 KiB, is at most about 8 times that in
/// JSON and hex). A longer entry (written by hand, or by a release without that bound) is
/// listed as unreadable, with its size and its first bytes.
pub const ENTRY_BYTES: u64 = 1 << 20;
/// Bytes of an unreadable entry shown, as text and as hex.
pub const UNREADABLE_SHOWN: usize = 4 * 1024;
/// Most entries one Redis call of a requeue, purge or search examines.
pub const CHUNK_ENTRIES: u64 = 500;
/// Most bytes of entries one call reads: with [`CHUNK_ENTRIES`], what keeps each call to a
/// few milliseconds of Redis's time, however large the entries (hex decoding and hashing cost
/// per byte).
pub const CHUNK_BYTES: u64 = 256 * 1024;

fn script(parts: &[&str]) -> LuaScript {
    LuaScript::new(&parts.concat())
}

const DEAD_PAYLOAD: &str = include_str!("../lua/dead_payload.lua");
const ENTRIES: &str = include_str!("../lua/entries.lua");
static LIST: LazyLock<LuaScript> =
    LazyLock::new(|| script(&[ENTRIES, include_str!("../lua/list_dead.lua")]));
static REQUEUE: LazyLock<LuaScript> =
    LazyLock::new(|| script(&[DEAD_PAYLOAD, include_str!("../lua/requeue_dead.lua")]));
static PURGE_UNREADABLE: LazyLock<LuaScript> =
    LazyLock::new(|| script(&[DEAD_PAYLOAD, include_str!("../lua/purge_unreadable.lua")]));
static PURGE: LazyLock<LuaScript> =
    LazyLock::new(|| script(&[include_str!("../lua/purge_dead.lua")]));
static TAKE_ONE: LazyLock<LuaScript> =
    LazyLock::new(|| script(&[DEAD_PAYLOAD, ENTRIES, include_str!("../lua/take_one.lua")]));

/// The failures every admin call may answer, for the OpenAPI document (a call's own 400 is
/// listed with it; what was done before a 503 stays done).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum AdminErrors {
    /// Missing or wrong token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
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
    /// No dead letter has this id (requeued or deleted already), or admin endpoints are off.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Redis is unavailable.
    #[response(status = 503)]
    RedisUnavailable(ErrorBody),
}

/// Query of the list call.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
}

/// Query of the requeue call.
#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    limit: Option<String>,
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

/// The id of a dead letter: the SHA-1 of its bytes, as Redis's `redis.sha1hex` spells it.
pub fn dead_letter_id(entry: &[u8]) -> String {
    Sha1::digest(entry)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One entry as listed, from its id, its size and its first bytes (all of it unless `size`
/// says more): a dead letter (an object whose `payload` is a string, with valid
/// `payload_hex` if any) as `{"id", "bytes", "payload", …}` with only the fields of a dead
/// letter, each of its type; anything else as `{"id", "bytes", "unreadable", "unreadable_hex"}`,
/// its first [`UNREADABLE_SHOWN`] bytes as text and as hex, whatever they are.
fn listed(id: String, size: u64, head: &[u8]) -> serde_json::Value {
    use serde_json::Value;
    let whole = head.len() as u64 == size;
    let letter = whole
        .then(|| serde_json::from_slice::<Value>(head).ok())
        .flatten()
        .filter(readable);
    let mut out = serde_json::Map::new();
    out.insert("id".into(), Value::String(id));
    out.insert("bytes".into(), size.into());
    match letter {
        Some(Value::Object(letter)) => {
            for (key, value) in letter {
                let keep = match key.as_str() {
                    "payload" | "payload_hex" | "reason" | "failed_at" | "worker_id" => {
                        value.is_string()
                    }
                    "payload_bytes" => value.is_u64(),
                    _ => false,
                };
                if keep {
                    out.insert(key, value);
                }
            }
        }
        _ => {
            let shown = &head[..head.len().min(UNREADABLE_SHOWN)];
            let text = String::from_utf8_lossy(shown).into_owned();
            let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
            out.insert("unreadable".into(), Value::String(text));
            out.insert("unreadable_hex".into(), Value::String(hex));
        }
    }
    Value::Object(out)
}

/// Whether `letter` is a dead letter the page and the CLI can show as one, as requeue reads it
/// (`lua/dead_payload.lua`): an object whose `payload` is a string, and whose `payload_hex`, if
/// any, is lower-case hex pairs.
fn readable(letter: &serde_json::Value) -> bool {
    let hex_ok = match letter.get("payload_hex") {
        None => true,
        Some(serde_json::Value::String(hex)) => {
            hex.len() % 2 == 0 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        Some(_) => false,
    };
    letter
        .get("payload")
        .is_some_and(serde_json::Value::is_string)
        && hex_ok
}

/// `GET /admin/dead-letters?limit=100&offset=0`: a page of dead letters, newest first, and how
/// many there are.
#[utoipa::path(get, path = "/admin/dead-letters", tag = "admin", security(("admin_token" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Entries to list (default 100)"),
        ("offset" = Option<u64>, Query, minimum = 0, description = "Newer entries to skip (default 0)"),
    ),
    responses(
    (status = 200, description = "A page of dead letters, newest first", body = DeadLetterPage),
    (status = 400, description = "`limit` or `offset` is not acceptable", body = ErrorBody),
    AdminErrors,
))]
pub async fn list(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, AdminError> {
    admin.authorize(&req)?;
    let limit = parse("limit", query.limit.as_deref(), 1, MAX_LIST as u64)?.unwrap_or(100);
    let offset = parse("offset", query.offset.as_deref(), 0, i64::MAX as u64)?.unwrap_or(0);
    let mut redis = admin.redis.clone();
    let reply: Vec<redis::Value> = admin
        .within("dead-letter admin call", async {
            LIST.keyed(&admin.keys, &[])?
                .arg(offset)
                .arg(limit)
                .arg(PAGE_BYTES)
                .arg(ENTRY_BYTES)
                .invoke_async(&mut redis)
                .await
        })
        .await?;
    let (total, dead_letters) = page(reply);
    let next = offset + dead_letters.len() as u64;
    Ok(HttpResponse::Ok().json(DeadLetterPage {
        total,
        offset,
        next_offset: (next < total).then_some(next),
        dead_letters,
    }))
}

/// The list script's reply: the number of entries, then each one's id, size and first bytes.
fn page(reply: Vec<redis::Value>) -> (u64, Vec<serde_json::Value>) {
    let mut values = reply.into_iter();
    let total = values
        .next()
        .and_then(|v| redis::from_redis_value::<u64>(v).ok())
        .unwrap_or(0);
    let mut letters = Vec::new();
    while let (Some(id), Some(size), Some(head)) = (values.next(), values.next(), values.next()) {
        let id = redis::from_redis_value::<String>(id).unwrap_or_default();
        let size = redis::from_redis_value::<u64>(size).unwrap_or(0);
        let head = redis::from_redis_value::<Vec<u8>>(head).unwrap_or_default();
        letters.push(listed(id, size, &head));
    }
    (total, letters)
}

/// Runs `script` over the oldest `limit` dead letters (all when `None`), one bounded chunk per
/// call, until it has examined as many as there were when it began. Each call returns its
/// counts, the last one being the entries it examined; returns their sums.
async fn in_chunks<const N: usize>(
    admin: &Admin,
    script: &LuaScript,
    limit: Option<u64>,
) -> Result<[u64; N], AdminError> {
    let mut redis = admin.redis.clone();
    let mut llen = redis::cmd("LLEN");
    llen.arg(&admin.keys.dead_messages);
    let there: u64 = admin
        .within("LLEN dead_messages", llen.query_async(&mut redis))
        .await?;
    let mut left = limit.map_or(there, |n| n.min(there));
    let mut sums = [0u64; N];
    while left > 0 {
        let counts: Vec<u64> = admin
            .within("dead-letter admin call", async {
                script
                    .keyed(&admin.keys, &[])?
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
    AdminErrors,
))]
pub async fn requeue(
    req: HttpRequest,
    query: web::Query<LimitQuery>,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, AdminError> {
    admin.authorize(&req)?;
    let limit = parse("limit", query.limit.as_deref(), 1, i64::MAX as u64)?;
    let [requeued, unreadable, _] = in_chunks::<3>(&admin, &REQUEUE, limit).await?;
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
    AdminErrors,
))]
pub async fn purge(
    req: HttpRequest,
    query: web::Query<PurgeQuery>,
    admin: web::Data<Admin>,
) -> Result<HttpResponse, AdminError> {
    admin.authorize(&req)?;
    let purged = match query.only.as_deref() {
        None | Some("") => {
            let mut redis = admin.redis.clone();
            admin
                .within("dead-letter admin call", async {
                    PURGE
                        .keyed(&admin.keys, &[])?
                        .invoke_async(&mut redis)
                        .await
                })
                .await?
        }
        Some("unreadable") => in_chunks::<2>(&admin, &PURGE_UNREADABLE, None).await?[0],
        Some(other) => {
            let reason = format!("must be \"unreadable\", got {other:?}");
            return Err(AdminError::query("only", reason));
        }
    };
    tracing::info!(purged, only = query.only.as_deref(), "purged dead letters");
    Ok(HttpResponse::Ok().json(Purged { purged }))
}

/// What to do with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Requeue,
    Delete,
}

/// Finds the dead letter `id` and requeues or deletes it: from a little before `near` (where
/// the page showed it; entries added since push it further) to the oldest end, then the newer
/// ones it skipped, one bounded chunk per call.
async fn take_one(admin: &Admin, id: &str, near: u64, action: Action) -> Result<(), AdminError> {
    let mut redis = admin.redis.clone();
    let verb = match action {
        Action::Requeue => "requeue",
        Action::Delete => "delete",
    };
    let start = near.saturating_sub(CHUNK_ENTRIES / 10);
    for (mut from, end) in [(start, u64::MAX), (0, start)] {
        while from < end {
            let [found, examined]: [i64; 2] = admin
                .within("dead-letter admin call", async {
                    TAKE_ONE
                        .keyed(&admin.keys, &[])?
                        .arg(id)
                        .arg(from)
                        .arg(CHUNK_ENTRIES.min(end - from))
                        .arg(CHUNK_BYTES)
                        .arg(verb)
                        .invoke_async(&mut redis)
                        .await
                })
                .await?;
            match (found, examined) {
                (1, _) => return Ok(()),
                (-1, _) => return Err(AdminError::Unreadable(id.to_owned())),
                (_, 0) => break,
                _ => from += examined.max(0) as u64,
            }
        }
    }
    Err(AdminError::NoSuchDeadLetter(id.to_owned()))
}

/// What both calls on one dead letter do: authorize, parse, [`take_one`], log.
async fn on_one(
    req: &HttpRequest,
    id: &str,
    query: &OneQuery,
    admin: &Admin,
    action: Action,
) -> Result<(), AdminError> {
    admin.authorize(req)?;
    let near = parse("near", query.near.as_deref(), 0, i64::MAX as u64)?.unwrap_or(0);
    take_one(admin, parse_id(id)?, near, action).await?;
    tracing::info!(id, ?action, "took a dead letter out");
    Ok(())
}

/// Checks that `id` looks like one (40 lower-case hex digits).
fn parse_id(id: &str) -> Result<&str, AdminError> {
    if id.len() == 40 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(id)
    } else {
        Err(AdminError::NoSuchDeadLetter(id.to_owned()))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_admin_script_names_only_keys_it_is_given() {
        let keys = sluice_core::Keys::new("p:");
        for script in [&*REQUEUE, &*PURGE_UNREADABLE, &*PURGE, &*TAKE_ONE, &*LIST] {
            assert!(!script.key_names().is_empty());
            assert!(script.keyed(&keys, &[]).is_ok(), "{:?}", script.key_names());
        }
        assert_eq!(TAKE_ONE.key_names(), ["dead_messages", "pending_messages"]);
    }

    #[test]
    fn an_id_is_the_sha1_of_the_bytes_as_redis_spells_it() {
        assert_eq!(
            dead_letter_id(b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert!(parse_id(&dead_letter_id(b"x")).is_ok());
        for bad in [
            "",
            "A9993E364706816ABA3E25717850C26C9CD0D89D",
            "../x",
            "a9993e3647",
        ] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }

    fn whole(entry: &[u8]) -> serde_json::Value {
        listed(dead_letter_id(entry), entry.len() as u64, entry)
    }

    #[test]
    fn entries_are_listed_with_their_id_readable_or_not() {
        let letter = whole(br#"{"payload":"p","reason":"r","extra":{"x":1}}"#);
        assert_eq!(letter["payload"], "p");
        assert_eq!(letter["bytes"], 44);
        assert!(letter.get("extra").is_none(), "{letter}");
        let junk = whole(b"not json");
        assert_eq!(junk["unreadable"], "not json");
        assert_eq!(junk["unreadable_hex"], "6e6f74206a736f6e");
        assert_eq!(junk["id"], dead_letter_id(b"not json"));
        assert_eq!(whole(b"[1]")["unreadable"], "[1]");
    }

    #[test]
    fn every_shape_is_listed_and_only_dead_letters_as_such() {
        // A payload that is not a string, hex that is not hex, bytes that are not UTF-8, a
        // field of the wrong type: each listed, none with a `payload` that is not text.
        for entry in [
            &br#"{"payload":{"nested":true},"reason":"r"}"#[..],
            br#"{"payload":"p","payload_hex":"zz"}"#,
            b"\xff\xfe{\"payload\":\"p\"}",
            br#"{"reason":"no payload"}"#,
        ] {
            let listed = whole(entry);
            assert!(listed.get("payload").is_none(), "{listed}");
            assert!(listed["unreadable_hex"].is_string(), "{listed}");
        }
        let odd = whole(br#"{"payload":"p","reason":7,"failed_at":null}"#);
        assert_eq!(odd["payload"], "p");
        assert!(
            odd.get("reason").is_none() && odd.get("failed_at").is_none(),
            "{odd}"
        );
        // An entry longer than what a page carries of it: its first bytes, as unreadable.
        let cut = listed("id".into(), 50 << 20, &[b'a'; 10_000]);
        assert_eq!(cut["bytes"], 50 << 20);
        assert_eq!(
            cut["unreadable"].as_str().map(str::len),
            Some(UNREADABLE_SHOWN)
        );
    }
}
