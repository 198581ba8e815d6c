//! The worker's scripts, one module beside each.
//!
//! Every one runs with `allow-oom`: when Redis reaches `maxmemory` (with `noeviction`, which
//! refuses the ingest API's pushes), workers must still take, commit and heartbeat, since
//! draining the queue is what frees the memory. Their own writes are a few counters, a
//! heartbeat and the dead letters of a batch, small against the queue they consume.
//!
//! The Lua they share is written once and prepended: `in_flight.lua` to those that move
//! messages into or out of a processing list, `forget.lua` to those that take a worker out of
//! the registry, `liveness.lua` to those that judge whether a worker is dead.

pub mod claim;
pub mod commit;
pub mod heartbeat;
pub mod take;
pub mod unregister;

use sluice_core::lua::LuaScript;

/// The in-flight bookkeeping of the scripts that move messages.
const IN_FLIGHT: &str = include_str!("lua/in_flight.lua");

/// `forget_worker`, for the scripts that take a worker out of the registry.
const FORGET: &str = include_str!("lua/forget.lua");

/// `presumed_dead`, for the scripts that judge whether a worker is dead.
const LIVENESS: &str = include_str!("lua/liveness.lua");

/// A worker script: `allow-oom`, the Lua it shares, then its own.
fn script(shared: &[&str], own: &str) -> LuaScript {
    let mut parts = vec!["#!lua flags=allow-oom\n"];
    parts.extend_from_slice(shared);
    parts.push(own);
    LuaScript::new(&parts)
}

#[cfg(test)]
mod tests {
    use sluice_core::Keys;
    use sluice_core::lua::eval;

    use super::*;

    #[test]
    fn every_worker_script_names_only_keys_it_is_given() {
        let keys = Keys::new("");
        let take = take::Take {
            processing: "processing:w1",
            limit: 1,
            worker_id: "w1",
            moved_before: 0,
        };
        let record = commit::Record {
            inserted: 1,
            event: "{}",
            dead_letters: &[],
            latency: "",
            dead_letters_max: 1,
        };
        let commit = commit::Commit {
            processing: "processing:w1",
            worker_id: "w1",
            record: &record,
        };
        let claim = claim::Claim {
            dead_processing: "processing:w0",
            processing: "processing:w1",
            dead_id: "w0",
            dead_after_ms: 1,
            claimer: "w1",
        };
        let beat = heartbeat::Beat {
            processing: "processing:w1",
            worker_id: "w1",
            dead_after_ms: 1_000,
            postgres_up: true,
            output: "0 0 0",
            postgres_server: "",
        };
        assert!(eval(&keys, &take, 0).is_ok());
        assert!(eval(&keys, &commit, 0).is_ok());
        assert!(eval(&keys, &claim, 0).is_ok());
        assert!(eval(&keys, &beat, 0).is_ok());
        assert!(eval(&keys, &unregister::Unregister { worker_id: "w1" }, 0).is_ok());
    }
}
