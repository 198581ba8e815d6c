//! SIGTERM to a real worker process holding a batch.

use std::time::Duration;

use sluice_core::Keys;
use sluice_proto::message::{MessageRequest, NewMessage};
use sluice_tests::TestDb;
use sluice_tests::process::Service;

#[tokio::test]
async fn sigterm_commits_the_batch_in_hand_and_exits_0() {
    let db = TestDb::create("sigterm").await.expect("database");
    let prefix = sluice_tests::unique_prefix("sigterm");
    let keys = Keys::new(&prefix);
    let env = sluice_tests::env_for(
        &prefix,
        &db,
        &[
            ("WORKER__ID", "sig-1"),
            ("WORKER__BATCH_MAX_WAIT_MS", "60000"),
            ("WORKER__IDLE_POLL_MS", "200"),
        ],
    );
    let mut worker = Service::start("sluice-worker", &env, &[]).expect("worker starts");
    let mut redis = sluice_tests::redis().await.expect("redis");
    let entries: Vec<Vec<u8>> = (0..10)
        .map(|i| {
            let body =
                serde_json::to_vec(&MessageRequest::new(1, 1, format!("m{i}"))).expect("json");
            sluice_core::clock::envelope(NewMessage::from_json(&body).expect("valid")).to_json()
        })
        .collect();
    let _: () = redis::cmd("LPUSH")
        .arg(&keys.pending_messages)
        .arg(&entries)
        .query_async(&mut redis)
        .await
        .expect("LPUSH");
    let processing = keys.processing("sig-1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let held: i64 = redis::cmd("LLEN")
            .arg(&processing)
            .query_async(&mut redis)
            .await
            .expect("LLEN");
        if held == 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker never took the batch:\n{}",
            worker.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = db.client().await.expect("client");
    let rows = sluice_tests::row_count(&client).await;
    assert_eq!(rows, 0, "the batch waits for more messages");

    let status = worker.stop(Duration::from_secs(10)).await.expect("exits");
    assert!(status.success(), "exit 0, got {status}:\n{}", worker.logs());
    let rows = sluice_tests::row_count(&client).await;
    assert_eq!(rows, 10, "the batch in hand was committed before exiting");
    let held: i64 = redis::cmd("LLEN")
        .arg(&processing)
        .query_async(&mut redis)
        .await
        .expect("LLEN");
    assert_eq!(held, 0);
    let total: i64 = redis::cmd("GET")
        .arg(&keys.total_messages)
        .query_async(&mut redis)
        .await
        .expect("GET");
    assert_eq!(total, 10);
    drop(client);
    sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
    db.drop_db().await.expect("dropped");
}

#[tokio::test]
async fn a_worker_that_never_reached_redis_does_not_claim_to_leave_a_batch() {
    let db = sluice_tests::TestDb::create("nobatch")
        .await
        .expect("database");
    let prefix = sluice_tests::unique_prefix("nobatch");
    let nowhere = format!("redis://127.0.0.1:{}", sluice_tests::process::free_port());
    let env = sluice_tests::env_for(&prefix, &db, &[("REDIS__URL", nowhere.as_str())]);
    let mut worker =
        sluice_tests::process::Service::start("sluice-worker", &env, &[]).expect("starts");
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    worker
        .signal(nix::sys::signal::Signal::SIGTERM)
        .expect("signal");
    worker
        .wait(std::time::Duration::from_secs(15))
        .await
        .expect("exits");
    let logs = worker.logs();
    assert!(!logs.contains("leaving the batch in hand"), "{logs}");
    assert!(logs.contains("cannot check the processing list"), "{logs}");
    db.drop_db().await.expect("drop");
}
