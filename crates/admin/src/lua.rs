//! The dead-letter scripts, one module beside each. Each examines a bounded part of
//! `dead_messages` per call (entries and bytes), so none holds Redis for more than a few
//! milliseconds; [`crate::letters`] calls them chunk by chunk. The Lua they share is written
//! once and prepended: `entries.lua` (walking the list front to back within a byte budget) and
//! `dead_payload.lua` (the bytes a dead letter queued).

pub mod list_dead;
pub mod purge_dead;
pub mod purge_some;
pub mod requeue_dead;
pub mod take_one;

use redis::FromRedisValue;
use sluice_core::lua::unexpected;

/// `dead_payload(entry)`, for the scripts that requeue or judge entries.
const DEAD_PAYLOAD: &str = include_str!("lua/dead_payload.lua");
/// `each_entry(…)`, for the scripts that walk the list.
const ENTRIES: &str = include_str!("lua/entries.lua");
const REASON: &str = include_str!("lua/reason.lua");
const OLDEST: &str = include_str!("lua/oldest.lua");

/// Most entries one call of a chunked script examines.
pub const CHUNK_ENTRIES: u64 = 500;
/// Most bytes of entries one call reads: with [`CHUNK_ENTRIES`], what keeps each call to a
/// few milliseconds of Redis's time, however large the entries (hex decoding and hashing cost
/// per byte).
pub const CHUNK_BYTES: u64 = 256 * 1024;

/// The reply of a script that works through the oldest entries one chunk at a time: its
/// counts, and how many entries it examined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<const N: usize> {
    /// What it did, in its reply's order (requeued, unreadable…).
    pub counts: [u64; N],
    /// Entries it examined: 0 when there were none left.
    pub examined: u64,
}

impl<const N: usize> FromRedisValue for Chunk<N> {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        let reply = Vec::<u64>::from_redis_value(v)?;
        match reply.split_last() {
            Some((&examined, counts)) if counts.len() == N => Ok(Self {
                counts: counts
                    .try_into()
                    .map_err(|_| unexpected("a chunk", &reply))?,
                examined,
            }),
            _ => Err(unexpected("a chunk", &reply)),
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::Keys;
    use sluice_core::lua::eval;

    use super::*;

    #[test]
    fn every_admin_script_names_only_keys_it_is_given() {
        let keys = Keys::new("p:");
        let one = take_one::TakeOne {
            id: "x",
            from: 0,
            count: 1,
            action: take_one::Action::Delete,
        };
        assert!(
            eval(
                &keys,
                &list_dead::ListDead {
                    offset: 0,
                    limit: 1,
                    reason: "",
                },
                0
            )
            .is_ok()
        );
        let requeue = requeue_dead::RequeueDead {
            limit: 1,
            reason: "",
        };
        assert!(eval(&keys, &requeue, 0).is_ok());
        let purge = purge_some::PurgeSome {
            limit: 1,
            reason: "x",
        };
        assert!(eval(&keys, &purge, 0).is_ok());
        assert!(eval(&keys, &purge_dead::PurgeDead, 0).is_ok());
        assert!(eval(&keys, &one, 0).is_ok());
    }

    #[test]
    fn a_chunk_is_its_counts_then_what_it_examined() {
        let reply = redis::Value::Array([3, 1, 4].map(redis::Value::Int).to_vec());
        let chunk = Chunk::<2>::from_redis_value(reply.clone()).expect("a chunk");
        assert_eq!((chunk.counts, chunk.examined), ([3, 1], 4));
        assert!(Chunk::<1>::from_redis_value(reply).is_err());
    }
}
