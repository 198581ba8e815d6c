//! In-process tests of the worker against the real Redis and PostgreSQL, driven one step at a
//! time. One test binary: every module below is linked once.

mod batching;
mod helpers;
mod lifecycle;
mod migrations;
mod servers;
