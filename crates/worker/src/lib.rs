//! `sluice-worker`: moves messages from Redis into PostgreSQL in batches, losing nothing.
//!
//! - [`worker`]: the batching loop ([`Worker::try_execute_task`] is one step; [`Worker::run`]
//!   loops with backoff until shutdown).
//! - [`queue`]: Redis: taking messages into the worker's processing list, recording batches.
//! - [`store`]: PostgreSQL: the leased, idempotent batch insert, one transaction per batch.
//! - [`batch`]: parsing a batch's raw entries into envelopes and dead letters.
//! - [`registry`]: heartbeats and the detection of dead peers.
//! - [`maintenance`]: creates the partitions of `messages` ahead, drops them past retention.
//! - [`http`]: the optional listener for `/metrics`, `/health` and `/ready`.

/// The source of a script that moves messages into or out of a processing list, with the
/// in-flight bookkeeping they all share (`lua/in_flight.lua`) prepended.
///
/// Each runs with `allow-oom`: when Redis reaches `maxmemory` (with `noeviction`, which refuses
/// the ingest API's pushes), workers must still take, commit and heartbeat, since draining the
/// queue is what frees the memory. Their own writes are a few counters, a heartbeat and the
/// dead letters of a batch, small against the queue they consume.
macro_rules! moving_script {
    ($file:literal) => {
        concat!(
            "#!lua flags=allow-oom\n",
            include_str!("lua/in_flight.lua"),
            include_str!($file)
        )
    };
}

pub mod batch;
pub mod http;
pub mod maintenance;
pub mod queue;
pub mod registry;
pub mod store;
pub mod worker;

pub use worker::{Outcome, Worker};
