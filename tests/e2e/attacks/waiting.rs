//! Attacks through `Prefer: wait`: clients that hang up while they wait, and many waits on one
//! `Idempotency-Key`. The ingest API runs without workers, so nothing is ever committed unless
//! the test announces it on `batch_events` itself.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Target, raw_http, status_and_json};

/// A waiting `POST` of `body` (with `extra` header lines), sent whole on a fresh connection
/// that is left open; the caller hangs up by dropping it.
async fn waiting_post(target: &Target, path: &str, body: &str, extra: &str) -> TcpStream {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Prefer: wait=30\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = super::connect(target.port, 0).await;
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body.as_bytes()).await.expect("body");
    stream
}

fn batch(messages: usize, content: &str) -> String {
    let one = json!({"user_id": 1, "channel_id": 1, "content": content});
    serde_json::to_string(&vec![one; messages]).expect("json")
}

/// `connections.<field>` of `GET /health`, polled until it is `want` or `within` passes.
async fn health_until(target: &Target, field: &str, want: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let value = target.health().await["connections"][field]
            .as_u64()
            .expect("a count");
        if value == want || Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_frees_its_connection_its_waiter_and_its_body() {
    let _shared = crate::MACHINE.read().await;
    let settings = [
        ("INGEST__HTTP_WORKERS", "2"),
        ("INGEST__MAX_CONNECTIONS", "40"),
        ("INGEST__MAX_WAITERS", "400"),
        ("INGEST__MAX_BATCH_BODY_BYTES", "2097152"),
        ("INGEST__MAX_BUFFERED_BYTES", "16777216"),
    ];
    let target = Target::start("sluice-ingest", "atk_hangup", &settings).await;
    let sockets = target.sockets();

    // Every connection the API allows, each waiting for 10 ids: the waiter registry is full.
    let body = batch(10, "wait for me");
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(waiting_post(&target, "/messages/batch", &body, "").await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(clients);
    let hung_up = Instant::now();

    // Within about a second every connection, waiter and byte is given back.
    let waiting = health_until(&target, "waiting_ids", 0, Duration::from_secs(3)).await;
    assert_eq!(waiting, 0, "the hung-up requests' waiters are released");
    let freed = hung_up.elapsed();
    assert!(
        target.sockets() <= sockets + 2,
        "{} sockets open, {sockets} before: the hung-up connections are closed",
        target.sockets()
    );
    let health = target.health().await;
    assert_eq!(health["connections"]["buffered_bytes"], 0);

    // A new waiting request is registered again (the registry has room): it waits its full
    // wait instead of being answered at once.
    let started = Instant::now();
    let answer = raw_http(
        target.port,
        b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Prefer: wait=2\r\nConnection: close\r\nContent-Length: 43\r\n\r\n\
          {\"user_id\":1,\"channel_id\":1,\"content\":\"hi\"}",
        Duration::from_secs(10),
    )
    .await;
    let (status, _) = status_and_json(&answer);
    assert_eq!(status, 202, "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "answered after {:?}: the request was not registered as a waiter",
        started.elapsed()
    );
    eprintln!("figures: 40 waiting batches hung up: freed within {freed:?}");
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_batch_gives_its_bytes_back_once_queued() {
    let _shared = crate::MACHINE.read().await;
    let settings = [
        ("INGEST__MAX_BATCH_BODY_BYTES", "2097152"),
        ("INGEST__MAX_BUFFERED_BYTES", "16777216"),
    ];
    let target = Target::start("sluice-ingest", "atk_waitbody", &settings).await;
    // Eight waiting batches of 1.9 MB: read one at a time they each cost 6 MB of the 12 MB
    // batch share; held through their wait, the third would already get 503.
    let body = batch(950, &"x".repeat(2_000));
    let mut clients = Vec::new();
    for i in 1..=8 {
        clients.push(waiting_post(&target, "/messages/batch", &body, "").await);
        let waiting = health_until(&target, "waiting_ids", i * 950, Duration::from_secs(5)).await;
        assert_eq!(waiting, i * 950, "batch {i} was queued and waits");
    }
    assert_eq!(target.health().await["connections"]["buffered_bytes"], 0);
    let response = reqwest::Client::new()
        .post(target.url("/messages/batch"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 202, "another client's batch is queued");
    drop(clients);
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_waiting_on_one_idempotency_key_gets_its_own_answer() {
    let _shared = crate::MACHINE.read().await;
    let target = Target::start("sluice-ingest", "atk_waitkey", &[]).await;
    let post = |wait: &'static str| {
        reqwest::Client::new()
            .post(target.url("/messages"))
            .header("content-type", "application/json")
            .header("idempotency-key", "one-key")
            .header("prefer", wait)
            .body(r#"{"user_id": 1, "channel_id": 1, "content": "once"}"#)
            .timeout(Duration::from_secs(20))
            .send()
    };
    let first = tokio::spawn(post("wait=15"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let retries: Vec<_> = (0..20).map(|_| tokio::spawn(post("wait=15"))).collect();
    // One retry that gives up early: its end must not end anyone else's wait.
    let short = post("wait=1").await.expect("answered");
    assert_eq!(short.status(), 202);
    let id = short.json::<Value>().await.expect("json")["message_id"].clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!first.is_finished(), "the first request still waits");
    assert!(
        retries.iter().all(|r| !r.is_finished()),
        "so does every retry"
    );

    // The commit is announced: everyone is answered 201 with the same message.
    let event = json!({
        "batch_id": uuid::Uuid::now_v7(), "worker_id": "test", "size": 1, "inserted": 1,
        "committed_at": "2026-12-02T00:00:00Z", "message_ids": [id],
    });
    let mut redis = sluice_tests::redis().await.expect("redis");
    let channel = format!("{}batch_events", target.prefix);
    let _: i64 = redis
        .publish(channel, event.to_string())
        .await
        .expect("publish");
    for request in std::iter::once(first).chain(retries) {
        let response = request.await.expect("task").expect("answered");
        assert_eq!(response.status(), 201);
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["message_id"], id);
        assert_eq!(answer["status"], "persisted");
    }
    target.stop().await;
}
