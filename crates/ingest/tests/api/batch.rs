//! `POST /messages/batch`: all-or-nothing validation, one push, ids in order.

use serde_json::json;
use sluice_proto::message::Envelope;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

async fn post_batch(app: &TestApp, body: &serde_json::Value) -> reqwest::Response {
    app.http
        .post(app.url("/messages/batch"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn a_valid_batch_is_queued_in_order_and_answered_with_every_id() {
    let mut app = spawn_app().await;
    let batch: Vec<_> = (0..100)
        .map(|i| json!({"user_id": i + 1, "channel_id": 1, "content": format!("m{i}")}))
        .collect();
    let r = post_batch(&app, &json!(batch)).await;
    assert_eq!(r.status().as_u16(), 202);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], "queued");
    let ids: Vec<String> = body["message_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 100);
    let queued: Vec<Envelope> = app
        .pending()
        .await
        .iter()
        .map(|raw| Envelope::from_json(raw.as_bytes()).expect("envelope"))
        .collect();
    assert_eq!(
        queued.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
        ids,
        "consumed in the order sent"
    );
    assert_eq!(queued[7].content.as_str(), "m7");
    assert_eq!(queued[7].user_id.get(), 8);
    app.cleanup().await;
}

#[tokio::test]
async fn one_bad_message_refuses_the_whole_batch_naming_index_and_field() {
    let mut app = spawn_app().await;
    let r = post_batch(
        &app,
        &json!([
            {"user_id": 1, "channel_id": 1, "content": "fine"},
            {"user_id": 1, "channel_id": -2, "content": ""},
            "not a message",
        ]),
    )
    .await;
    let body = assert_error(r, 422, "validation_failed").await;
    let fields = body["error"]["fields"].as_object().expect("fields");
    assert_eq!(
        fields.keys().collect::<Vec<_>>(),
        ["1.channel_id", "1.content", "2.body"]
    );
    assert!(app.pending().await.is_empty(), "nothing queued");
    app.cleanup().await;
}

#[tokio::test]
async fn batch_limits_and_shape() {
    let app = spawn_app_with(&[
        ("INGEST__BATCH_MAX_MESSAGES", "5"),
        ("INGEST__MAX_BATCH_BODY_BYTES", "2048"),
    ])
    .await;
    let six: Vec<_> = (0..6)
        .map(|_| json!({"user_id": 1, "channel_id": 1, "content": "x"}))
        .collect();
    let body = assert_error(
        post_batch(&app, &json!(six)).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(
        body["error"]["fields"]["body"]
            .as_str()
            .is_some_and(|m| m.contains("at most 5")),
        "{body}"
    );
    assert_error(post_batch(&app, &json!([])).await, 422, "validation_failed").await;
    assert_error(
        post_batch(&app, &json!({"user_id": 1})).await,
        422,
        "validation_failed",
    )
    .await;
    let big = vec![json!({"user_id": 1, "channel_id": 1, "content": "y".repeat(1000)}); 3];
    assert_error(
        post_batch(&app, &json!(big)).await,
        413,
        "payload_too_large",
    )
    .await;
    let r = app
        .http
        .post(app.url("/messages/batch"))
        .header("content-type", "application/json")
        .body("[{")
        .send()
        .await
        .expect("sent");
    assert_error(r, 400, "malformed_json").await;
    let r = app
        .http
        .post(app.url("/messages/batch"))
        .body("[]")
        .send()
        .await
        .expect("sent");
    assert_error(r, 415, "unsupported_media_type").await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_batch_retried_with_the_same_idempotency_key_is_queued_once() {
    let mut app = spawn_app().await;
    let batch = json!([
        {"user_id": 1, "channel_id": 1, "content": "a"},
        {"user_id": 2, "channel_id": 1, "content": "b"},
    ]);
    let send = || {
        app.http
            .post(app.url("/messages/batch"))
            .header("content-type", "application/json")
            .header("idempotency-key", "batch-7")
            .body(batch.to_string())
            .send()
    };
    let first: serde_json::Value = send().await.expect("sent").json().await.expect("json");
    let retry = send().await.expect("sent");
    assert_eq!(retry.status().as_u16(), 202);
    let retry: serde_json::Value = retry.json().await.expect("json");
    assert_eq!(retry, first, "the retry gets the first answer");
    assert_eq!(app.pending().await.len(), 2, "queued once");
    app.cleanup().await;
}

#[tokio::test]
async fn a_key_used_on_one_endpoint_is_refused_on_the_other() {
    let mut app = spawn_app().await;
    let single = json!({"user_id": 1, "channel_id": 1, "content": "single"});
    let batch = json!([{"user_id": 1, "channel_id": 1, "content": "in a batch"}]);
    let post = |path: &'static str, key: &'static str, body: serde_json::Value| {
        app.http
            .post(app.url(path))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_string())
            .send()
    };
    let r = post("/messages/batch", "first-a-batch", batch.clone())
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 202);
    let r = post("/messages", "first-a-batch", single.clone())
        .await
        .expect("sent");
    assert_error(r, 422, "idempotency_key_reused").await;

    let r = post("/messages", "first-a-message", single)
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 202);
    let r = post("/messages/batch", "first-a-message", batch)
        .await
        .expect("sent");
    assert_error(r, 422, "idempotency_key_reused").await;
    assert_eq!(
        app.pending().await.len(),
        2,
        "only the first use of each key queued"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn batches_at_the_largest_batch_max_messages_are_queued_whole_and_replayed_whole() {
    let max = sluice_core::settings::reference::defaults()
        .into_iter()
        .find(|s| s.key == "ingest.batch_max_messages")
        .and_then(|s| s.max)
        .expect("a declared range") as usize;
    let max_text = max.to_string();
    let mut app = spawn_app_with(&[("INGEST__BATCH_MAX_MESSAGES", &max_text)]).await;
    let batch: Vec<_> = (0..max)
        .map(|i| json!({"user_id": 1, "channel_id": 1, "content": format!("{i}")}))
        .collect();
    let body = json!(batch);
    let r = post_batch(&app, &body).await;
    assert_eq!(r.status().as_u16(), 202, "a plain batch of {max}");
    let mut first = None;
    for _ in 0..2 {
        let r = app
            .http
            .post(app.url("/messages/batch"))
            .header("content-type", "application/json")
            .header("idempotency-key", "the-largest")
            .body(body.to_string())
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 202, "an idempotent batch of {max}");
        let answer: serde_json::Value = r.json().await.expect("json");
        assert_eq!(answer["message_ids"].as_array().map(Vec::len), Some(max));
        // The retry gets the first answer, with the same ids, and queues nothing.
        assert!(first.is_none_or(|f| f == answer), "the replay differs");
        first = Some(answer);
    }
    let (queued, counted) = app.queued_and_counted().await;
    assert_eq!((queued, counted), (2 * max as u64, 2 * max as u64));
    app.cleanup().await;
}
