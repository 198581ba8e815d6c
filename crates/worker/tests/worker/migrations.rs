//! Concurrent schema migrations.

use sluice_core::schema::{self, MIGRATIONS};
use sluice_tests::TestDb;

#[tokio::test]
async fn many_workers_migrating_at_once_apply_each_migration_once() {
    let db = TestDb::create("migrate").await.expect("database");
    let settings = sluice_core::settings::PostgresSettings {
        url: db.url.clone(),
        pool_size: 16,
        ..Default::default()
    };
    let pool = sluice_core::connect::postgres_pool(&settings).expect("pool");
    let runs = (0..8).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut client = pool.get().await.expect("connection");
            schema::migrate(&mut client)
                .await
                .expect("migration succeeds")
        })
    });
    let mut applied_total = 0;
    for run in runs {
        applied_total += run.await.expect("task").applied.len();
    }
    assert_eq!(
        applied_total,
        MIGRATIONS.len(),
        "each migration applied exactly once"
    );

    let client = db.client().await.expect("client");
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM sluice_schema_history ORDER BY version",
            &[],
        )
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    let indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'messages'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(indexes, 3, "primary key plus the channel and user indexes");
    drop(client);
    drop(pool);
    db.drop_db().await.expect("dropped");
}

#[tokio::test]
async fn a_database_migrated_by_the_earlier_runner_is_adopted_without_running_anything_again() {
    let db = TestDb::create("legacy").await.expect("database");
    let client = db.client().await.expect("client");
    // What the earlier runner left: the schema, its own table of versions, and data.
    for m in MIGRATIONS {
        client.batch_execute(m.sql).await.expect("schema");
    }
    client
        .batch_execute(
            "CREATE TABLE sluice_schema_migrations (
                 version integer PRIMARY KEY, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO sluice_schema_migrations (version, name)
                 VALUES (1, 'create_messages'), (2, 'worker_leases');
             INSERT INTO messages (id, user_id, channel_id, content, created_at)
                 VALUES (gen_random_uuid(), 1, 1, 'kept', now());",
        )
        .await
        .expect("legacy state");
    let settings = sluice_core::settings::PostgresSettings {
        url: db.url.clone(),
        ..Default::default()
    };
    let pool = sluice_core::connect::postgres_pool(&settings).expect("pool");
    let mut pooled = pool.get().await.expect("connection");
    let report = schema::migrate(&mut pooled).await.expect("adopted");
    assert!(report.applied.is_empty(), "nothing ran again: {report:?}");
    assert!(report.unknown.is_empty());
    let again = schema::migrate(&mut pooled).await.expect("idempotent");
    assert!(again.applied.is_empty());
    let history: i64 = client
        .query_one("SELECT count(*) FROM sluice_schema_history", &[])
        .await
        .expect("history")
        .get(0);
    assert_eq!(history, MIGRATIONS.len() as i64);
    let rows: i64 = client
        .query_one("SELECT count(*) FROM messages WHERE content = 'kept'", &[])
        .await
        .expect("rows")
        .get(0);
    assert_eq!(rows, 1, "the data survived");
    // The advisory lock went back with the connection: another session can take it at once.
    let free: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock($1)",
            &[&schema::MIGRATION_LOCK_KEY],
        )
        .await
        .expect("lock")
        .get(0);
    assert!(free, "the migration lock was released");
    drop((client, pooled, pool));
    db.drop_db().await.expect("dropped");
}
