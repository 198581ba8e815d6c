//! Which PostgreSQL server a worker writes to: a connection that finds its server read-only
//! (a primary demoted under it) is dropped and the write retried on a fresh one; each insert
//! says which server committed it.

use sluice_core::connect;
use sluice_worker::store::{self, StoreError};

use crate::helpers::{envelope, spawn_worker};

#[tokio::test]
async fn a_read_only_connection_is_dropped_and_the_retry_reaches_a_writable_one() {
    let t = spawn_worker(&[("POSTGRES__POOL_SIZE", "1")]).await;
    let pool = connect::postgres_pool(&t.settings.postgres).expect("pool");
    // The pool's one connection turns read-only, as on a primary demoted to a standby.
    let client = pool.get().await.expect("connection");
    client
        .batch_execute("SET SESSION default_transaction_read_only = on")
        .await
        .expect("SET");
    drop(client);
    let refused = store::register(&pool, "w-read-only")
        .await
        .expect_err("read-only");
    let StoreError::Query(e) = &refused else {
        panic!("{refused}")
    };
    assert_eq!(e.code().map(|c| c.code()), Some("25006"), "{e}");
    assert!(!refused.rows_rejected(), "retried, never dead-lettered");
    // The retry gets a new connection: the write goes through.
    let lease = store::register(&pool, "w-read-only")
        .await
        .expect("a fresh connection");
    let client = pool.get().await.expect("connection");
    let read_only: String = client
        .query_one("SHOW default_transaction_read_only", &[])
        .await
        .expect("SHOW")
        .get(0);
    assert_eq!(read_only, "off");
    drop(client);
    // Each insert names the server that committed it: this one, on the shared server.
    let batch = [envelope(1), envelope(2)];
    let refs: Vec<_> = batch.iter().collect();
    let done = store::insert(&pool, &lease, &refs, false)
        .await
        .expect("insert");
    let server = done.server.expect("a server");
    let port = t
        .settings
        .postgres
        .url
        .expose()
        .split(':')
        .nth(2)
        .unwrap_or_default();
    let port = port.split('/').next().unwrap_or_default();
    assert!(
        server.address.ends_with(&format!(":{port}")),
        "{server} against {port}"
    );
    assert_eq!(done.inserted, 2);
    t.cleanup().await;
}
