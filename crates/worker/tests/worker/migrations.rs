//! Schema migrations: concurrent runs, the earlier runner's databases, and `messages` turned
//! into a partitioned table with its rows kept.

use chrono::{DateTime, TimeDelta, Utc};
use sluice_core::partitions::{self, Plan};
use sluice_core::schema::{self, MIGRATIONS};
use sluice_tests::TestDb;

#[tokio::test]
async fn many_workers_migrating_at_once_apply_each_migration_once() {
    let db = TestDb::create("migrate").await.expect("database");
    let settings = sluice_core::settings::PostgresSettings {
        url: db.url.clone().into(),
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
    assert_eq!(
        indexes, 4,
        "primary key plus the channel, user and channel-and-user indexes"
    );
    // A fresh database has no legacy rows to keep: only the default partition until a worker
    // creates the ranges.
    let names: Vec<String> = partitions::list(&client)
        .await
        .expect("partitions")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["messages_default"]);
    drop(client);
    drop(pool);
    db.drop_db().await.expect("dropped");
}

#[tokio::test]
async fn a_database_migrated_by_the_earlier_runner_is_adopted_without_running_anything_again() {
    let db = TestDb::create("legacy").await.expect("database");
    let client = db.client().await.expect("client");
    earlier_runner_database(
        &client,
        "INSERT INTO messages (id, user_id, channel_id, content, created_at)
             VALUES (gen_random_uuid(), 1, 1, 'kept', now())",
    )
    .await;
    let pool = pool_for(&db);
    let mut pooled = pool.get().await.expect("connection");
    let report = schema::migrate(&mut pooled).await.expect("adopted");
    assert_eq!(
        report.applied,
        after_the_earlier_runner(),
        "only what it did not know ran: {report:?}"
    );
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

/// What Sluice's earlier runner left: migrations 1 and 2, its own table of versions, and the
/// rows `insert` adds.
async fn earlier_runner_database(client: &tokio_postgres::Client, insert: &str) {
    for m in &MIGRATIONS[..2] {
        client.batch_execute(m.sql).await.expect("schema");
    }
    client
        .batch_execute(
            "CREATE TABLE sluice_schema_migrations (
                 version integer PRIMARY KEY, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO sluice_schema_migrations (version, name)
                 VALUES (1, 'create_messages'), (2, 'worker_leases');",
        )
        .await
        .expect("the earlier runner's versions");
    client.batch_execute(insert).await.expect("rows");
}

/// A pooled connection to `db`, as the workers have.
fn pool_for(db: &TestDb) -> deadpool_postgres::Pool {
    let settings = sluice_core::settings::PostgresSettings {
        url: db.url.clone().into(),
        ..Default::default()
    };
    sluice_core::connect::postgres_pool(&settings).expect("pool")
}

/// A database at migration 2 holding `rows` messages created over the last three days, then
/// migrated by this Sluice.
async fn migrated_with_rows(db: &TestDb, rows: i64) -> tokio_postgres::Client {
    let client = db.client().await.expect("client");
    let insert = format!(
        "INSERT INTO messages (id, user_id, channel_id, content, created_at)
             SELECT gen_random_uuid(), 1 + i % 7, 1 + i % 3, 'old ' || i,
                    now() - (i * interval '3 days' / {rows})
             FROM generate_series(1, {rows}) i"
    );
    earlier_runner_database(&client, &insert).await;
    let pool = pool_for(db);
    let mut pooled = pool.get().await.expect("connection");
    let report = schema::migrate(&mut pooled).await.expect("migrated");
    assert_eq!(report.applied, after_the_earlier_runner());
    client
}

async fn partition_of(client: &tokio_postgres::Client, created_at: DateTime<Utc>) -> String {
    let row = client
        .query_one(
            "INSERT INTO messages (id, user_id, channel_id, content, created_at)
             VALUES (gen_random_uuid(), 1, 1, 'new', $1) RETURNING tableoid::regclass::text",
            &[&created_at],
        )
        .await
        .expect("insert");
    row.get(0)
}

#[tokio::test]
async fn the_plain_table_becomes_partitioned_with_every_row_and_id_kept() {
    let db = TestDb::create("partition").await.expect("database");
    let mut client = migrated_with_rows(&db, 1_000).await;
    let kind: String = client
        .query_one(
            "SELECT relkind::text FROM pg_class WHERE relname = 'messages'",
            &[],
        )
        .await
        .expect("kind")
        .get(0);
    assert_eq!(kind, "p", "messages is partitioned");
    let existing = partitions::list(&client).await.expect("list");
    let names: Vec<_> = existing.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["messages_legacy", "messages_default"]);
    let tomorrow = (Utc::now() + TimeDelta::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    assert_eq!((existing[0].from, existing[0].to), (None, Some(tomorrow)));
    assert_eq!(sluice_tests::row_count(&client).await, 1_000);
    // Every stored id is recorded once in message_ids (these are random UUIDs, not v7, so
    // most fall outside the twin of messages_legacy, into message_ids_default).
    let (ids, distinct): (i64, i64) = client
        .query_one(
            "SELECT count(*), count(DISTINCT m.id) FROM messages m JOIN message_ids USING (id)",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .expect("ids");
    assert_eq!((ids, distinct), (1_000, 1_000));
    let twin: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'message_ids_legacy'",
            &[],
        )
        .await
        .expect("twin")
        .get(0);
    assert_eq!(twin, 1, "messages_legacy has its twin in message_ids");

    // The same message again is still one row, whichever way it is inserted.
    let again = "INSERT INTO messages (id, user_id, channel_id, content, created_at)
                 SELECT id, user_id, channel_id, content, created_at FROM messages LIMIT 1";
    let e = client.batch_execute(again).await.expect_err("a duplicate");
    assert_eq!(
        e.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    let skipped = client
        .execute(
            &format!("{again} ON CONFLICT (id, created_at) DO NOTHING"),
            &[],
        )
        .await
        .expect("skipped");
    assert_eq!(skipped, 0);

    // Maintenance creates what the legacy table does not cover, and rows land there.
    let plan = Plan {
        span: TimeDelta::hours(24),
        ahead: 3,
        retention: Some(TimeDelta::days(2)),
    };
    let now = Utc::now();
    let done = partitions::maintain(&mut client, &plan, now)
        .await
        .expect("maintain");
    let day = |d: i64| {
        format!(
            "messages_{}",
            (tomorrow + TimeDelta::days(d)).format("%Y%m%d")
        )
    };
    assert_eq!(done.created, [day(0), day(1), day(2)], "{done:?}");
    assert!(done.dropped.is_empty() && done.failed.is_empty());
    assert_eq!(partition_of(&client, now).await, "messages_legacy");
    assert_eq!(
        partition_of(&client, tomorrow + TimeDelta::hours(1)).await,
        day(0)
    );
    assert_eq!(
        partition_of(&client, now + TimeDelta::days(400)).await,
        "messages_default"
    );
    let again = partitions::maintain(&mut client, &plan, now)
        .await
        .expect("again");
    assert!(again.created.is_empty(), "{again:?}");
    assert_eq!(again.default_rows, 1);

    // Three days on, the legacy rows are all older than two days: that partition goes.
    let later = tomorrow + TimeDelta::days(2) + TimeDelta::hours(1);
    let done = partitions::maintain(&mut client, &plan, later)
        .await
        .expect("retention");
    assert_eq!(done.dropped, ["messages_legacy"], "{done:?}");
    assert_eq!(
        sluice_tests::row_count(&client).await,
        2,
        "tomorrow's row and the far one"
    );
    let twins: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'message_ids'::regclass ORDER BY 1",
            &[],
        )
        .await
        .expect("twins")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected: Vec<String> = partitions::list(&client)
        .await
        .expect("list")
        .iter()
        .map(|p| partitions::ids_twin(&p.name))
        .collect();
    expected.sort();
    assert_eq!(
        twins, expected,
        "each partition of messages has its twin, dropped with it"
    );
    drop(client);
    db.drop_db().await.expect("dropped");
}

/// The versions the earlier runner did not know: every one after its last, 2.
fn after_the_earlier_runner() -> Vec<i32> {
    MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|v| *v > 2)
        .collect()
}
