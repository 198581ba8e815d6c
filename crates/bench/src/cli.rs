//! The scenarios of `sluice-bench`, one module each: its arguments, its run and its report.

pub mod attacks;
pub mod ceilings;
pub mod drain;
pub mod e2e;
pub mod fanout;
pub mod ingest;
pub mod redis_cost;
pub mod report;

use clap::Args;
use sluice_bench::pipeline::Stores;

/// Where the services under test keep their data.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The services' Redis.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// The services' key prefix.
    #[arg(long, default_value = "")]
    key_prefix: String,
    /// The services' PostgreSQL database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/sluice")]
    postgres: String,
}

impl StoreArgs {
    pub fn stores(&self) -> Stores {
        Stores {
            redis_url: self.redis.clone(),
            key_prefix: self.key_prefix.clone(),
            postgres_url: self.postgres.clone(),
        }
    }
}
