//! The PostgreSQL schema and its versioned migrations.
//!
//! Migrations are SQL files under `crates/core/migrations/`, embedded in the binary and applied
//! in version order, each recorded in `sluice_schema_migrations`. The whole run happens in one
//! transaction holding a transaction-level advisory lock, so any number of workers may start at
//! once: one applies what is missing, the others wait and then find nothing to do.

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
];

/// Arbitrary constant naming Sluice's migration lock among the database's advisory locks.
const MIGRATION_LOCK_KEY: i64 = 0x5e_1c_e0_01;

/// What a [`migrate`] run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions this run applied.
    pub applied: Vec<i32>,
    /// Versions the database has that this binary does not know (a newer Sluice ran here).
    pub unknown: Vec<i32>,
}

/// Applies every migration the database lacks, under the advisory lock. Safe to call
/// concurrently from several processes.
#[tracing::instrument(name = "postgres.migrate", skip_all, err)]
pub async fn migrate(
    client: &mut deadpool_postgres::Client,
) -> Result<MigrationReport, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sluice_schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM sluice_schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        tx.batch_execute(m.sql).await?;
        tx.execute(
            "INSERT INTO sluice_schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        applied.push(m.version);
    }
    tx.commit().await?;
    let unknown: Vec<i32> = done
        .into_iter()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_strictly_increasing_order() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert_eq!(MIGRATIONS[0].version, 1);
    }
}
