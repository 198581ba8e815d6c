//! `sluice-core`: everything the Sluice services share, spelled once. What crosses the wire
//! (messages, stats, answers, events) is `sluice-proto`'s; this crate is what the servers
//! share besides.
//!
//! - [`cli`]: start-up and exit status shared by the binaries.
//! - [`settings`]: typed, layered configuration (defaults → `--config` file → legacy variables →
//!   `SLUICE__SECTION__KEY`), validated at start-up.
//! - [`keys`]: every Redis key and channel name, under a configurable prefix.
//! - [`lua`]: Lua scripts whose KEYS are named in their header and filled by name.
//! - [`clock`]: the fleet's one clock, Redis's `TIME`: ids and times, envelopes stamped.
//! - [`stats`]: the one-round-trip Redis read of the stats, which writes nothing, and the
//!   commit-latency histogram.
//! - [`upkeep`]: the once-a-second upkeep of the window figures and the history, done for the
//!   fleet by the holder of a lease.
//! - [`history`]: reading the history the upkeep records.
//! - [`connect`]: Redis and PostgreSQL connections built with bounded timeouts;
//!   [`sentinel`]: the primary a majority of the sentinels names.
//! - [`schema`]: the PostgreSQL schema and its concurrency-safe versioned migrations.
//! - [`partitions`]: the partitions of `messages`, created ahead and dropped past retention.
//! - [`primary`]: which PostgreSQL server a service reaches, and when that changed.
//! - [`telemetry`]: the tracing subscriber.
//! - [`metric`]: every Prometheus metric name, and the recorder `GET /metrics` renders.
//! - [`pubsub`]: a Redis subscription that lives as long as the process, resubscribing with
//!   backoff.
//! - [`memory`]: the allocator every binary uses, and its live and resident byte counts.
//! - [`outage`]: logging a dependency's outage once instead of once per failed call.
//! - [`shutdown`]: the process-wide cancellation token fired by SIGINT/SIGTERM.
//! - [`auth`]: API keys, kept hashed in PostgreSQL and checked in memory.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod connect;
pub mod history;
pub mod keys;
pub mod lua;
pub mod memory;
pub mod metric;
pub mod outage;
pub mod partitions;
pub mod primary;
pub mod pubsub;
pub mod schema;
pub mod sentinel;
pub mod settings;
pub mod shutdown;
pub mod stats;
pub mod telemetry;
pub mod tls;
pub mod upkeep;

pub use keys::Keys;
pub use settings::Settings;
pub use tokio_util::sync::CancellationToken;
