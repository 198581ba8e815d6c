//! `Prefer: wait=N`: the answer waits for the commit announced on `batch_events`. The test
//! plays the worker: it takes the queued messages and publishes their batch event.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_proto::events::BatchEvent;
use sluice_proto::message::{Envelope, MessageRequest};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

fn message(content: &str) -> Value {
    json!(MessageRequest::new(7, 8, content))
}

/// Waits for `n` messages in `pending_messages` and returns their ids, oldest first. Each is
/// marked as awaited, so a worker inserts it without waiting for its batch to fill.
async fn queued_ids(app: &mut TestApp, n: usize) -> Vec<Uuid> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pending = app.pending().await;
        if pending.len() >= n {
            return pending
                .iter()
                .map(|raw| {
                    assert!(Envelope::json_is_awaited(raw.as_bytes()), "{raw}");
                    Envelope::from_json(raw.as_bytes()).expect("envelope").id
                })
                .collect();
        }
        assert!(Instant::now() < deadline, "{n} messages never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn announce(app: &mut TestApp, persisted: &[Uuid], dead: &[Uuid]) {
    let event = BatchEvent {
        batch_id: Uuid::now_v7(),
        worker_id: "test-worker".into(),
        size: (persisted.len() + dead.len()) as u64,
        inserted: persisted.len() as u64,
        taken_at: None,
        committed_at: chrono::Utc::now(),
        message_ids: persisted.to_vec(),
        dead_letter_ids: dead.to_vec(),
    };
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&app.keys.batch_events)
        .arg(serde_json::to_string(&event).expect("json"))
        .query_async(&mut app.redis)
        .await
        .expect("PUBLISH");
}

fn post(
    app: &TestApp,
    path: &str,
    body: Value,
    prefer: &str,
) -> tokio::task::JoinHandle<reqwest::Response> {
    let request = app
        .http
        .post(app.url(path))
        .header("content-type", "application/json")
        .header("prefer", prefer)
        .body(body.to_string());
    tokio::spawn(async move { request.send().await.expect("sent") })
}

#[tokio::test]
async fn a_waiting_post_answers_201_once_its_commit_is_announced() {
    let mut app = spawn_app().await;
    // The subscription starts with the server; give it a moment before relying on it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = post(&app, "/messages", message("hello"), "respond-async, wait=5");
    let ids = queued_ids(&mut app, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!answer.is_finished(), "answered before the commit");
    announce(&mut app, &ids, &[]).await;
    let response = answer.await.expect("task");
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["preference-applied"], "wait=5");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "persisted");
    assert_eq!(body["message_id"], json!(ids[0]));
    assert!(body["persisted_at"].is_string(), "{body}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_wait_that_runs_out_is_the_usual_202_and_the_cap_applies() {
    let mut app = spawn_app_with(&[("INGEST__MAX_WAIT_SECS", "1")]).await;
    let started = Instant::now();
    let response = post(&app, "/messages", message("nobody commits"), "wait=30")
        .await
        .expect("task");
    let waited = started.elapsed();
    assert_eq!(response.status().as_u16(), 202);
    assert!(!response.headers().contains_key("preference-applied"));
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "queued");
    assert_eq!(app.pending().await.len(), 1, "queued all the same");

    // Unreadable or zero waits are ignored: the answer is immediate.
    for prefer in ["wait=soon", "wait=0", "wait"] {
        let started = Instant::now();
        let response = post(&app, "/messages", message("x"), prefer)
            .await
            .expect("task");
        assert_eq!(response.status().as_u16(), 202, "{prefer}");
        assert!(started.elapsed() < Duration::from_millis(500), "{prefer}");
    }
    // The first was awaited; nobody waits for the others: a worker may hold them for a
    // fuller batch.
    let pending = app.pending().await;
    assert_eq!(pending.len(), 4);
    assert!(Envelope::json_is_awaited(pending[0].as_bytes()));
    assert!(
        pending[1..]
            .iter()
            .all(|raw| !Envelope::json_is_awaited(raw.as_bytes()))
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_dead_letter_and_a_partly_dead_batch_have_their_own_status() {
    let mut app = spawn_app().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let single = post(&app, "/messages", message("refused"), "wait=5");
    let ids = queued_ids(&mut app, 1).await;
    announce(&mut app, &[], &ids).await;
    let response = single.await.expect("task");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["preference-applied"], "wait=5");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "dead_lettered");

    let batch = json!([message("a"), message("b"), message("c")]);
    let answer = post(&app, "/messages/batch", batch, "wait=5");
    let ids = queued_ids(&mut app, 4).await;
    let batch_ids = &ids[1..];
    // Committed in two batches by two workers, one message refused.
    announce(&mut app, &batch_ids[..1], &[]).await;
    announce(&mut app, &batch_ids[2..], &batch_ids[1..2]).await;
    let response = answer.await.expect("task");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "dead_lettered");
    assert_eq!(body["dead_lettered_ids"], json!([batch_ids[1]]));
    assert_eq!(body["message_ids"], json!(batch_ids));
    app.cleanup().await;
}

#[tokio::test]
async fn a_replayed_key_waits_for_the_first_requests_messages() {
    let mut app = spawn_app().await;
    let first = app
        .http
        .post(app.url("/messages"))
        .header("content-type", "application/json")
        .header("idempotency-key", "wait-replay-1")
        .body(message("once").to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.expect("json");
    let id: Uuid = first["message_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    // Its commit was announced while nobody waited: the row is all there is to see.
    let client = app.db.client().await.expect("client");
    client
        .execute(
            "INSERT INTO messages (id, user_id, channel_id, content, created_at) VALUES ($1, 7, 8, 'once', now())",
            &[&id],
        )
        .await
        .expect("insert");
    let retry = app
        .http
        .post(app.url("/messages"))
        .header("content-type", "application/json")
        .header("idempotency-key", "wait-replay-1")
        .header("prefer", "wait=5")
        .body(message("once").to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(retry.status().as_u16(), 201);
    let body: Value = retry.json().await.expect("json");
    assert_eq!(body["message_id"], first["message_id"]);
    assert_eq!(body["status"], "persisted");
    assert_eq!(app.pending().await.len(), 1, "the retry queued nothing");
    app.cleanup().await;
}
