//! `sluice-bench`: measurements of a running Sluice, each printing a human-readable table and
//! one JSON line.
//!
//! - [`pipeline`]: `ingest`, `ingest-batch`, `drain`, `e2e`, and the Redis and PostgreSQL
//!   ceilings they are compared with.
//! - [`http_ceiling`]: what actix-web answers with a no-op handler, the HTTP stack's part of
//!   the `ingest` figure.
//! - [`fanout`]: N WebSocket dashboards against a gateway: connections, delivery skew, message
//!   rate, the gateway's memory and CPU, and the Redis load it causes.
//! - [`attacks`]: the hardening attacks at full scale, as figures to compare builds.
//! - [`stages`]: the per-stage breakdown of `e2e` (queue, insert, record).
//! - [`redis_cost`]: what a running fleet costs its Redis per second (commands, scripts, CPU).
//! - [`cost`]: CPU per message, process by process, of an `e2e` run.
//! - [`process`]: reading a process's memory and CPU from `/proc`.

pub mod attacks;
pub mod cost;
pub mod fanout;
pub mod http_ceiling;
pub mod pipeline;
pub mod process;
pub mod redis_cost;
pub mod stages;
