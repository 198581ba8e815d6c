//! `POST /messages`: queueing and every error status, with real requests.

use serde_json::json;
use sluice_proto::message::Envelope;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn valid_message_is_queued_and_answered_202() {
    let mut app = spawn_app().await;
    let response = app
        .post_json(&json!({"user_id": 7, "channel_id": 3, "content": "hello 👋"}))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "queued");
    let id = body["message_id"].as_str().expect("message_id").to_owned();
    let queued_at = body["queued_at"].as_str().expect("queued_at");
    assert!(
        chrono::DateTime::parse_from_rfc3339(queued_at).is_ok(),
        "{queued_at}"
    );

    let pending = app.pending().await;
    assert_eq!(pending.len(), 1);
    let envelope = Envelope::from_json(pending[0].as_bytes()).expect("envelope parses");
    assert_eq!(envelope.id.to_string(), id);
    assert_eq!(envelope.user_id.get(), 7);
    assert_eq!(envelope.channel_id.get(), 3);
    assert_eq!(envelope.content.as_str(), "hello 👋");
    assert_eq!(
        envelope.created_at,
        chrono::DateTime::parse_from_rfc3339(queued_at).expect("ts")
    );
    app.cleanup().await;
}

#[tokio::test]
async fn messages_are_queued_in_arrival_order() {
    let mut app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = app
            .post_json(&json!({"user_id": 1, "channel_id": 1, "content": format!("m{i}")}))
            .await;
        let body: serde_json::Value = r.json().await.expect("json");
        ids.push(body["message_id"].as_str().expect("id").to_owned());
    }
    let consumed_order: Vec<String> = app
        .pending()
        .await
        .iter()
        .map(|raw| {
            Envelope::from_json(raw.as_bytes())
                .expect("parses")
                .id
                .to_string()
        })
        .collect();
    assert_eq!(
        consumed_order, ids,
        "the tail of the list is the oldest message"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn invalid_fields_get_422_with_every_reason() {
    let mut app = spawn_app().await;
    let response = app
        .post_json(&json!({"user_id": -4, "channel_id": "x", "content": "   "}))
        .await;
    let body = assert_error(response, 422, "validation_failed").await;
    let fields = &body["error"]["fields"];
    assert!(
        fields["user_id"]
            .as_str()
            .is_some_and(|r| r.contains("between 1 and")),
        "{body}"
    );
    assert!(fields["channel_id"].as_str().is_some(), "{body}");
    assert_eq!(fields["content"], "must not be only whitespace");
    assert!(app.pending().await.is_empty(), "nothing is queued");
    app.cleanup().await;
}

#[tokio::test]
async fn content_over_2000_characters_is_refused() {
    let app = spawn_app().await;
    let ok = "ß".repeat(2000);
    let r = app
        .post_json(&json!({"user_id": 1, "channel_id": 1, "content": ok}))
        .await;
    assert_eq!(r.status().as_u16(), 202);
    let too_long = "ß".repeat(2001);
    let r = app
        .post_json(&json!({"user_id": 1, "channel_id": 1, "content": too_long}))
        .await;
    let body = assert_error(r, 422, "validation_failed").await;
    assert!(
        body["error"]["fields"]["content"]
            .as_str()
            .is_some_and(|r| r.contains("2001"))
    );
    app.cleanup().await;
}

#[tokio::test]
async fn malformed_json_gets_400() {
    let app = spawn_app().await;
    let r = app
        .http
        .post(app.url("/messages"))
        .header("content-type", "application/json")
        .body("{\"user_id\": 1,")
        .send()
        .await
        .expect("sent");
    assert_error(r, 400, "malformed_json").await;
    app.cleanup().await;
}

#[tokio::test]
async fn wrong_or_missing_content_type_gets_415() {
    let app = spawn_app().await;
    let body = json!({"user_id": 1, "channel_id": 1, "content": "x"}).to_string();
    let r = app
        .http
        .post(app.url("/messages"))
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_error(r, 415, "unsupported_media_type").await;
    let r = app
        .http
        .post(app.url("/messages"))
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    assert_error(r, 415, "unsupported_media_type").await;
    let r = app
        .http
        .post(app.url("/messages"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        r.status().as_u16(),
        202,
        "parameters on the JSON type are fine"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn body_over_the_limit_gets_413() {
    let mut app = spawn_app_with(&[("INGEST__MAX_BODY_BYTES", "1024")]).await;
    let big = json!({"user_id": 1, "channel_id": 1, "content": "a".repeat(1500)});
    let r = app.post_json(&big).await;
    let body = assert_error(r, 413, "payload_too_large").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1024"))
    );

    // Chunked, so no Content-Length announces the size.
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..20).map(|_| Ok("x".repeat(100))).collect();
    let r = app
        .http
        .post(app.url("/messages"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("sent");
    assert_error(r, 413, "payload_too_large").await;
    assert!(app.pending().await.is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn redis_unreachable_gets_503_never_202() {
    // Port 1 on loopback: nothing listens, connections are refused at once.
    let app = spawn_app_with(&[("REDIS__URL", "redis://127.0.0.1:1")]).await;
    let r = app
        .post_json(&json!({"user_id": 1, "channel_id": 1, "content": "x"}))
        .await;
    assert!(r.headers().contains_key("retry-after"));
    assert_error(r, 503, "redis_unavailable").await;
    app.cleanup().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/nope")).send().await.expect("sent");
    assert_error(r, 404, "not_found").await;
    let r = app
        .http
        .delete(app.url("/messages"))
        .send()
        .await
        .expect("sent");
    assert_error(r, 405, "method_not_allowed").await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_queues_nothing_and_gets_the_first_answer() {
    let mut app = spawn_app().await;
    let send = |key: &'static str, content: &'static str| {
        app.http
            .post(app.url("/messages"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(json!({"user_id": 1, "channel_id": 1, "content": content}).to_string())
            .send()
    };
    let first: serde_json::Value = send("order-42", "hello")
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let retry = send("order-42", "hello").await.expect("sent");
    assert_eq!(retry.status().as_u16(), 202);
    let retry: serde_json::Value = retry.json().await.expect("json");
    assert_eq!(retry["message_id"], first["message_id"]);
    assert_eq!(retry["queued_at"], first["queued_at"]);
    let other: serde_json::Value = send("order-43", "hello")
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_ne!(other["message_id"], first["message_id"]);
    assert_eq!(app.pending().await.len(), 2, "the retry queued nothing");

    let r = app
        .http
        .post(app.url("/messages"))
        .header("content-type", "application/json")
        .header("idempotency-key", "has spaces")
        .body(json!({"user_id": 1, "channel_id": 1, "content": "x"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_error(r, 400, "invalid_idempotency_key").await;
    // Two keys on one request: refused, and nothing queued under either.
    let r = app
        .http
        .post(app.url("/messages"))
        .header("content-type", "application/json")
        .header("idempotency-key", "order-44")
        .header("idempotency-key", "order-45")
        .body(json!({"user_id": 1, "channel_id": 1, "content": "x"}).to_string())
        .send()
        .await
        .expect("sent");
    assert_error(r, 400, "invalid_idempotency_key").await;
    assert_eq!(
        app.pending().await.len(),
        2,
        "nothing queued by the refused request"
    );
    app.cleanup().await;
}
