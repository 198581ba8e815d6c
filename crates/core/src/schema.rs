//! The PostgreSQL schema and its versioned migrations.
//!
//! Migrations are SQL files under `crates/core/migrations/`, embedded in the binary and applied
//! in version order by `refinery`, which records each in `sluice_schema_history` with its
//! checksum (and refuses to run when an applied migration was edited since). The run holds an
//! advisory lock on its connection and applies everything in one transaction, so any number of
//! workers may start at once: one applies what is missing, the others wait and then find
//! nothing to do.
//!
//! Databases migrated by Sluice's earlier runner, which recorded versions in
//! `sluice_schema_migrations`, keep working: the first run marks those versions as applied in
//! `sluice_schema_history` without running them again, then applies the rest.

/// One migration: a version, a name, and the SQL that applies it.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing version number.
    pub version: i32,
    /// Short description, recorded alongside the version.
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "create_messages",
        sql: include_str!("../migrations/0001_create_messages.sql"),
    },
    Migration {
        version: 2,
        name: "worker_leases",
        sql: include_str!("../migrations/0002_worker_leases.sql"),
    },
    Migration {
        version: 3,
        name: "partition_messages",
        sql: include_str!("../migrations/0003_partition_messages.sql"),
    },
    Migration {
        version: 4,
        name: "unique_message_ids",
        sql: include_str!("../migrations/0004_unique_message_ids.sql"),
    },
    Migration {
        version: 5,
        name: "channel_user_index",
        sql: include_str!("../migrations/0005_channel_user_index.sql"),
    },
    Migration {
        version: 6,
        name: "api_keys",
        sql: include_str!("../migrations/0006_api_keys.sql"),
    },
    Migration {
        version: 7,
        name: "callers",
        sql: include_str!("../migrations/0007_callers.sql"),
    },
];

/// Where refinery records the applied migrations.
pub const HISTORY_TABLE: &str = "sluice_schema_history";
/// Where Sluice's earlier runner recorded them.
pub const LEGACY_TABLE: &str = "sluice_schema_migrations";

/// Arbitrary constant naming Sluice's migration lock among the database's advisory locks.
pub const MIGRATION_LOCK_KEY: i64 = 0x5e_1c_e0_01;

/// What a [`migrate`] run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions this run applied.
    pub applied: Vec<i32>,
    /// Versions the database has that this binary does not know (a newer Sluice ran here).
    pub unknown: Vec<i32>,
}

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// PostgreSQL refused a statement of Sluice's own (the lock, the history queries).
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// refinery could not apply the migrations (or found an applied one edited since).
    #[error("migrations: {0}")]
    Refinery(#[from] refinery::Error),
}

/// Applies every migration the database lacks, under the advisory lock. Safe to call
/// concurrently from several processes.
#[tracing::instrument(name = "postgres.migrate", skip_all, err)]
pub async fn migrate(
    client: &mut deadpool_postgres::Client,
) -> Result<MigrationReport, MigrateError> {
    let client: &mut tokio_postgres::Client = &mut *client;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let result = migrate_locked(client).await;
    // The lock is the session's: release it before the connection goes back to the pool.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    let report = result?;
    unlocked?;
    Ok(report)
}

async fn migrate_locked(
    client: &mut tokio_postgres::Client,
) -> Result<MigrationReport, MigrateError> {
    if let Some(done) = legacy_version(client).await? {
        runner()?
            .set_target(refinery::Target::FakeVersion(done))
            .run_async(client)
            .await?;
        tracing::info!(
            version = done,
            "adopted the versions {LEGACY_TABLE} records"
        );
    }
    let report = runner()?.run_async(client).await?;
    let applied: Vec<i32> = report
        .applied_migrations()
        .iter()
        .map(|m| m.version())
        .collect();
    for m in report.applied_migrations() {
        tracing::info!(version = m.version(), name = m.name(), "applied migration");
    }
    let unknown: Vec<i32> = client
        .query(&format!("SELECT version FROM {HISTORY_TABLE}"), &[])
        .await?
        .iter()
        .map(|row| row.get::<_, i32>(0))
        .filter(|v| MIGRATIONS.iter().all(|m| m.version != *v))
        .collect();
    if !unknown.is_empty() {
        tracing::warn!(
            ?unknown,
            "database has migrations this binary does not know"
        );
    }
    Ok(MigrationReport { applied, unknown })
}

/// The runner: every migration in one transaction; migrations a newer Sluice applied are
/// tolerated, not an error.
fn runner() -> Result<refinery::Runner, refinery::Error> {
    let migrations = MIGRATIONS
        .iter()
        .map(|m| refinery::Migration::unapplied(&format!("V{}__{}", m.version, m.name), m.sql))
        .collect::<Result<Vec<_>, _>>()?;
    let mut runner = refinery::Runner::new(&migrations)
        .set_grouped(true)
        .set_abort_missing(false);
    runner.set_migration_table_name(HISTORY_TABLE);
    Ok(runner)
}

/// The last version the earlier runner recorded, when the database has its table and not yet
/// refinery's.
async fn legacy_version(
    client: &tokio_postgres::Client,
) -> Result<Option<i32>, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
            &[&LEGACY_TABLE, &HISTORY_TABLE],
        )
        .await?;
    let (legacy, history): (bool, bool) = (row.get(0), row.get(1));
    if !legacy || history {
        return Ok(None);
    }
    let max: Option<i32> = client
        .query_one(&format!("SELECT max(version) FROM {LEGACY_TABLE}"), &[])
        .await?
        .get(0);
    Ok(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_strictly_increasing_order() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(MIGRATIONS[0].version, 1);
    }
}
