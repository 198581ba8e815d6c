//! In-process tests of the ingest API against the real Redis and PostgreSQL.
//! One test binary: every module below is linked once.

mod admin;
mod batch;
mod exact;
mod health;
mod heavy;
mod helpers;
mod hostile;
mod list_messages;
mod overload;
mod post_message;
mod replication;
mod wait;
