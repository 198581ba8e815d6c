//! `sluice-worker`: moves messages from Redis into PostgreSQL in batches, losing nothing.
//!
//! - [`worker`]: the batching loop ([`Worker::try_execute_task`] is one step; [`Worker::run`]
//!   loops with backoff until shutdown).
//! - [`queue`]: Redis: taking messages into the worker's processing list, recording batches.
//! - [`store`]: PostgreSQL: the leased, idempotent batch insert, one transaction per batch.
//! - [`batch`]: parsing a batch's raw entries into envelopes and dead letters.
//! - [`fill`]: how long a batch waits to fill at high intake.
//! - [`registry`]: heartbeats and the detection of dead peers.
//! - [`recheck`]: the last committed batches, checked again on another PostgreSQL server.
//! - [`lua`]: the scripts, one module beside each.
//! - [`maintenance`]: creates the partitions of `messages` ahead, drops them past retention.
//! - [`http`]: the optional listener for `/metrics`, `/health` and `/ready`.

pub mod batch;
pub mod fill;
pub mod http;
pub mod lua;
pub mod maintenance;
pub mod queue;
pub mod recheck;
pub mod registry;
pub mod store;
pub mod worker;

pub use worker::{Step, Worker};
