//! Keeps the partitions of `messages` ahead of time and within retention
//! (`sluice_core::partitions`), once before the first batch and then from a task of its own.

use deadpool_postgres::Pool;
use sluice_core::CancellationToken;
use sluice_core::partitions::{self, MAINTENANCE_PERIOD, Maintenance, Plan};
use sluice_core::shutdown::Ticker;

/// One maintenance run, its outcome logged.
pub async fn run_once(pool: &Pool, plan: &Plan) -> anyhow::Result<Maintenance> {
    let mut client = pool.get().await?;
    let done = partitions::maintain(&mut client, plan, sluice_core::clock::now()).await?;
    if !done.created.is_empty() {
        tracing::info!(partitions = ?done.created, "created partitions of messages");
    }
    if !done.dropped.is_empty() {
        tracing::info!(partitions = ?done.dropped, "dropped partitions past postgres.retention_days");
    }
    for (name, reason) in &done.failed {
        tracing::warn!(partition = %name, %reason, "cannot create a partition of messages; its rows go to messages_default");
    }
    if done.default_rows > 0 {
        tracing::warn!(
            rows = done.default_rows,
            "messages_default holds rows no partition covers (created_at far from now?)"
        );
    }
    Ok(done)
}

/// Runs [`run_once`] every [`MAINTENANCE_PERIOD`] until `shutdown`, the first time one period
/// from now (the worker ran it once before its first batch).
pub async fn maintain_periodically(pool: Pool, plan: Plan, shutdown: CancellationToken) {
    let mut ticker = Ticker::new(MAINTENANCE_PERIOD, shutdown);
    // An interval's first tick is immediate.
    if !ticker.tick().await {
        return;
    }
    while ticker.tick().await {
        if let Err(e) = run_once(&pool, &plan).await {
            tracing::warn!(error = %format!("{e:#}"), "partition maintenance in {} failed; retrying in 10 minutes", sluice_core::connect::postgres_name());
        }
    }
}
