//! `sluice-bench`: measurements of a running Sluice, each printing a human-readable table and
//! one JSON line.
//!
//! - [`fanout`]: N WebSocket dashboards against a gateway: connections, delivery skew, message
//!   rate, the gateway's memory and CPU, and the Redis load it causes.
//! - [`stats`]: percentiles and rates, kept apart so they are unit-tested.
//! - [`process`]: reading a process's memory and CPU from `/proc`.

pub mod fanout;
pub mod process;
pub mod stats;
