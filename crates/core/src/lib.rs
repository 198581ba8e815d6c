//! `sluice-core`: everything the Sluice services share, spelled once.
//!
//! - [`cli`]: start-up and exit status shared by the binaries.
//! - [`settings`]: typed, layered configuration (defaults → `--config` file → legacy variables →
//!   `SLUICE__SECTION__KEY`), validated at start-up.
//! - [`keys`]: every Redis key and channel name, under a configurable prefix.
//! - [`lua`]: Lua scripts whose KEYS are named in their header and filled by name.
//! - [`message`]: the validated message types and the envelope that travels through Redis.
//! - [`stats`]: the stats snapshot, its JSON contract and the one-round-trip Redis read, which
//!   writes nothing.
//! - [`upkeep`]: the once-a-second upkeep of the window figures and the history, done for the
//!   fleet by the holder of a lease.
//! - [`history`]: the one-second and one-minute history the upkeep records, in columns.
//! - [`api`]: what the HTTP endpoints answer (alerts, workers, dead letters), as types that
//!   servers and clients share.
//! - [`cards`]: the stats cards, listed once for the dashboard and the terminal.
//! - [`backoff`]: capped exponential backoff with jitter for retry loops.
//! - [`connect`]: Redis and PostgreSQL connections built with bounded timeouts.
//! - [`schema`]: the PostgreSQL schema and its concurrency-safe versioned migrations.
//! - [`partitions`]: the partitions of `messages`, created ahead and dropped past retention.
//! - [`events`]: the batch event on `batch_events` and the `dead_messages` entry.
//! - [`telemetry`]: the tracing subscriber.
//! - [`metric`]: every Prometheus metric name, and the recorder `GET /metrics` renders.
//! - [`pubsub`]: a Redis subscription that lives as long as the process, resubscribing with
//!   backoff.
//! - [`memory`]: the allocator every binary uses, and its live and resident byte counts.
//! - [`outage`]: logging a dependency's outage once instead of once per failed call.
//! - [`shutdown`]: the process-wide cancellation token fired by SIGINT/SIGTERM.
//! - [`error`]: the JSON error body every HTTP endpoint answers with.

pub mod api;
pub mod backoff;
pub mod cards;
pub mod cli;
pub mod clock;
pub mod connect;
pub mod error;
pub mod events;
pub mod history;
pub mod keys;
pub mod lua;
pub mod memory;
pub mod message;
pub mod metric;
pub mod outage;
pub mod partitions;
pub mod pubsub;
pub mod schema;
pub mod sentinel;
pub mod settings;
pub mod shutdown;
pub mod stats;
pub mod telemetry;
pub mod upkeep;

pub use keys::Keys;
pub use settings::Settings;
pub use tokio_util::sync::CancellationToken;
