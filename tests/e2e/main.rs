//! Black-box end-to-end tests: the real binaries against the real Redis and PostgreSQL, each
//! test with its own key prefix and database. One test binary.

mod attacks;
mod bench_smoke;
mod callers;
mod capacity;
mod clock;
mod config;
mod contract;
mod deploy;
mod failover;
mod faults;
mod gateways;
mod https;
mod keys;
mod metrics;
mod pg_failover;
mod pipeline;
mod secrets;
mod stack;
mod tls;
mod up;
mod wait;
mod watch;
mod worker_signals;

/// The capacity test measures delivery times, so it runs alone: it takes this lock for
/// writing, and every other test that loads the machine takes it for reading.
pub static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
