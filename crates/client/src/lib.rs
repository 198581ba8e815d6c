//! `sluice-client`: the client side of Sluice, for the `sluice` command, the benchmarks and the
//! tests. Its types are `sluice_proto`'s, so a client reads exactly what the servers write.
//!
//! - [`api`]: a typed HTTP client for the stream's read endpoints and the admin endpoints.
//! - [`feed`]: the live `/ws/stats` feed, reconnected with backoff.
//! - [`send`]: the load generator users run (`sluice send`), with a progress bar.
//! - [`load`]: the HTTP/1.1 load engine behind `send` and the benchmarks.
//! - [`sample`]: the messages the load generators send, and the ids their answers carry.
//! - [`summary`]: percentiles and rates.
//! - [`frames`]: a WebSocket client by hand, byte for byte, for tests and attacks that speak
//!   the protocol badly on purpose.
//! - [`tls`]: the certificates every client trusts (the system's, and `--cacert`).

pub mod api;
pub mod feed;
pub mod frames;
pub mod load;
pub mod sample;
pub mod send;
pub mod summary;
pub mod tls;

pub use api::{Client, ClientError};
