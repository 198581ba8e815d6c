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
            "SELECT version FROM sluice_schema_migrations ORDER BY version",
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
