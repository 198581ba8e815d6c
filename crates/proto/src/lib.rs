//! `sluice-proto`: what crosses Sluice's wire, spelled once, for the servers, the client and
//! the `sluice` command alike. It holds types and their parsing only: no Redis, PostgreSQL,
//! HTTP server or allocator, so a client that uses it links none of them.
//!
//! - [`message`]: the message as clients send it, parsed at the edge into `UserId`,
//!   `ChannelId`, `Content`, and the envelope that travels through Redis.
//! - [`stats`]: the stats snapshot and its JSON contract.
//! - [`history`]: the stats history in columns, and the windows a client can ask for.
//! - [`keys`]: API keys and their scopes, as the admin endpoints take and list them.
//! - [`api`]: what the HTTP endpoints answer (alerts, workers, batches, dead letters, messages).
//! - [`events`]: the batch event on `batch_events` and the `dead_messages` entry.
//! - [`cards`]: the stats cards, listed once for the dashboard and the terminal.
//! - [`error`]: the JSON error body every HTTP endpoint answers with.
//! - [`backoff`]: the capped exponential backoff with jitter clients retry with.
//!
//! With the `openapi` feature every type also derives utoipa's `ToSchema`, for the servers'
//! OpenAPI documents.

pub mod api;
pub mod audit;
pub mod backoff;
pub mod cards;
pub mod error;
pub mod events;
pub mod history;
pub mod keys;
pub mod message;
pub mod stats;
