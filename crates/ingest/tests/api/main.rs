//! In-process tests of the ingest API against the real Redis and PostgreSQL.
//! One test binary: every module below is linked once.

mod health;
mod helpers;
mod list_messages;
mod post_message;
