//! The dead-letter operations behind `/admin/dead-letters`: each one a few calls of the scripts
//! of [`crate::lua`], bounded per call, and what they answer.
//!
//! A dead letter is named by its id, the SHA-1 of its exact bytes in `dead_messages`: entries
//! move as others are added and requeued, their bytes do not, and two entries with the same
//! bytes are the same letter twice.

use sha1::{Digest, Sha1};
use sluice_core::lua::{self, Script};
use sluice_proto::api::DeadLetterPage;

use crate::Admin;
use crate::error::AdminError;
use crate::lua::list_dead::{Entry, ListDead};
use crate::lua::purge_dead::PurgeDead;
use crate::lua::purge_some::PurgeSome;
use crate::lua::requeue_dead::RequeueDead;
use crate::lua::take_one::{Found, TakeOne};
use crate::lua::{CHUNK_ENTRIES, Chunk};

pub use crate::lua::take_one::Action;

/// Bytes of an unreadable entry shown, as text and as hex.
pub const UNREADABLE_SHOWN: usize = 4 * 1024;

/// What is done in one Redis call, as the logs and the 503 name it.
const CALL: &str = "dead-letter admin call";

/// Longest reason filter, in bytes.
pub const REASON_MAX_BYTES: usize = 200;

/// A reason filter as a query gives it: trimmed, and A–Z lower-cased as the scripts fold the
/// reasons they match it against (Lua's `string.lower`; other letters match as written); empty
/// for none. Refused when longer than [`REASON_MAX_BYTES`] or holding a control
/// character.
pub fn parse_reason(raw: Option<&str>) -> Result<String, AdminError> {
    let reason = raw.unwrap_or_default().trim();
    if reason.len() > REASON_MAX_BYTES {
        let why = format!(
            "must be at most {REASON_MAX_BYTES} bytes, got {}",
            reason.len()
        );
        return Err(AdminError::query("reason", why));
    }
    if reason.chars().any(char::is_control) {
        return Err(AdminError::query(
            "reason",
            "must not hold control characters".into(),
        ));
    }
    Ok(reason.to_ascii_lowercase())
}

/// Which dead letters a purge deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which<'a> {
    /// Every one.
    All,
    /// Those requeue cannot read.
    Unreadable,
    /// Those whose reason contains this (lower-case).
    Reason(&'a str),
}

/// A page of dead letters, newest first: at most `limit` from `offset` on, fewer when they
/// pass [`crate::lua::list_dead::PAGE_BYTES`]; with a `reason` filter, only the letters whose
/// reason contains it, among at most [`crate::lua::list_dead::PAGE_EXAMINED`] entries.
pub async fn page(
    admin: &Admin,
    offset: u64,
    limit: u64,
    reason: &str,
) -> Result<DeadLetterPage, AdminError> {
    let page = run(
        admin,
        &ListDead {
            offset,
            limit,
            reason,
        },
    )
    .await?;
    let dead_letters: Vec<_> = page.entries.into_iter().map(listed).collect();
    let next = offset + page.examined;
    Ok(DeadLetterPage {
        total: page.total,
        offset,
        next_offset: (next < page.total).then_some(next),
        dead_letters,
    })
}

/// Moves the oldest `limit` (all when `None`) dead letters, or with a `reason` filter those of
/// them whose reason contains it, back to the queue, in their order; returns how many were
/// requeued and how many skipped as unreadable.
pub async fn requeue(
    admin: &Admin,
    limit: Option<u64>,
    reason: &str,
) -> Result<(u64, u64), AdminError> {
    let chunk = |limit| RequeueDead { limit, reason };
    let [requeued, unreadable] = in_chunks(admin, limit, chunk).await?;
    Ok((requeued, unreadable))
}

/// Deletes the dead letters `which` names; returns how many.
pub async fn purge(admin: &Admin, which: Which<'_>) -> Result<u64, AdminError> {
    let reason = match which {
        Which::All => return run(admin, &PurgeDead).await,
        Which::Unreadable => "",
        Which::Reason(reason) => reason,
    };
    let [purged] = in_chunks(admin, None, |limit| PurgeSome { limit, reason }).await?;
    Ok(purged)
}

/// One script call, within the admin's Redis timeout.
async fn run<S: Script>(admin: &Admin, call: &S) -> Result<S::Reply, AdminError> {
    let mut redis = admin.redis.clone();
    admin
        .within(CALL, lua::call(&mut redis, &admin.keys, call))
        .await
}

/// Runs a chunked script over the oldest `limit` dead letters (all when `None`), one chunk
/// of at most [`CHUNK_ENTRIES`] per call, until it has examined as many as there were when it
/// began; returns the sums of its counts.
async fn in_chunks<S, const N: usize>(
    admin: &Admin,
    limit: Option<u64>,
    chunk: impl Fn(u64) -> S,
) -> Result<[u64; N], AdminError>
where
    S: Script<Reply = Chunk<N>>,
{
    let mut redis = admin.redis.clone();
    let mut llen = redis::cmd("LLEN");
    llen.arg(&admin.keys.dead_messages);
    let there: u64 = admin
        .within("LLEN dead_messages", llen.query_async(&mut redis))
        .await?;
    let mut left = limit.map_or(there, |n| n.min(there));
    let mut sums = [0u64; N];
    while left > 0 {
        let done = run(admin, &chunk(left.min(CHUNK_ENTRIES))).await?;
        for (sum, n) in sums.iter_mut().zip(done.counts) {
            *sum += n;
        }
        if done.examined == 0 {
            break;
        }
        left = left.saturating_sub(done.examined);
    }
    Ok(sums)
}

/// Finds the dead letter `id` and requeues or deletes it: from a little before `near` (where
/// the page showed it; entries added since push it further) to the oldest end, then the newer
/// ones it skipped, one bounded chunk per call.
pub async fn take_one(
    admin: &Admin,
    id: &str,
    near: u64,
    action: Action,
) -> Result<(), AdminError> {
    let start = near.saturating_sub(CHUNK_ENTRIES / 10);
    for (mut from, end) in [(start, u64::MAX), (0, start)] {
        while from < end {
            let call = TakeOne {
                id,
                from,
                count: CHUNK_ENTRIES.min(end - from),
                action,
            };
            match run(admin, &call).await? {
                Found::Taken => return Ok(()),
                Found::Unreadable => return Err(AdminError::Unreadable(id.to_owned())),
                Found::NotAmong(0) => break,
                Found::NotAmong(examined) => from += examined,
            }
        }
    }
    Err(AdminError::NoSuchDeadLetter(id.to_owned()))
}

/// Checks that `id` looks like one (40 lower-case hex digits).
pub fn parse_id(id: &str) -> Result<&str, AdminError> {
    if id.len() == 40 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(id)
    } else {
        Err(AdminError::NoSuchDeadLetter(id.to_owned()))
    }
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
fn listed(Entry { id, size, head }: Entry) -> serde_json::Value {
    use serde_json::Value;
    let whole = head.len() as u64 == size;
    let letter = whole
        .then(|| serde_json::from_slice::<Value>(&head).ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_filter_folds_the_case_the_scripts_fold() {
        assert_eq!(
            parse_reason(Some("  Value TOO long ")).ok().as_deref(),
            Some("value too long")
        );
        // Lua's string.lower leaves É alone (folding only A–Z), so the filter must too.
        assert_eq!(parse_reason(Some("ÉCHEC")).ok().as_deref(), Some("Échec"));
        assert!(parse_reason(Some("a\u{7}b")).is_err());
        assert!(parse_reason(Some(&"x".repeat(201))).is_err());
        assert_eq!(parse_reason(None).ok().as_deref(), Some(""));
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
        listed(Entry {
            id: dead_letter_id(entry),
            size: entry.len() as u64,
            head: entry.to_vec(),
        })
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
        let cut = listed(Entry {
            id: "id".into(),
            size: 50 << 20,
            head: vec![b'a'; 10_000],
        });
        assert_eq!(cut["bytes"], 50 << 20);
        assert_eq!(
            cut["unreadable"].as_str().map(str::len),
            Some(UNREADABLE_SHOWN)
        );
    }
}
