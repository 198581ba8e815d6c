//! `redis.ack_replicas`: a push is answered 202 only once that many replicas confirmed it. The
//! shared test Redis has no replica, so every push here is unconfirmed.

use serde_json::json;

use crate::helpers::{assert_error, spawn_app_with};

const NO_REPLICA: [(&str, &str); 2] = [
    ("REDIS__ACK_REPLICAS", "1"),
    ("REDIS__ACK_TIMEOUT_MS", "100"),
];

#[tokio::test]
async fn an_unconfirmed_push_is_answered_503_not_replicated_and_may_be_queued() {
    let mut app = spawn_app_with(&NO_REPLICA).await;
    let message = json!({"user_id": 1, "channel_id": 2, "content": "hello"});
    let response = app.post_json(&message).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let body = assert_error(response, 503, "not_replicated").await;
    let text = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        text.contains("0 of the 1") && text.contains("Idempotency-Key"),
        "{text}"
    );
    // WAIT confirms after the push: the primary holds it, as a 503 allows.
    assert_eq!(app.pending().await.len(), 1);

    let batch = app
        .http
        .post(app.url("/messages/batch"))
        .json(&json!([message, message]))
        .send()
        .await
        .expect("sent");
    assert_error(batch, 503, "not_replicated").await;
    assert_eq!(app.pending().await.len(), 3);
    // Queued, so counted, whatever the answer said.
    assert_eq!(app.queued_and_counted().await, (3, 3));
    // Both 503s reach Redis's per-second error buckets within the flush period, by code, for
    // the error_rate and replication_degraded rules.
    let errors_window = app.keys.errors_window.clone();
    let mut counted = 0;
    for _ in 0..40 {
        let buckets: std::collections::HashMap<String, u64> = redis::cmd("HGETALL")
            .arg(&errors_window)
            .query_async(&mut app.redis)
            .await
            .expect("HGETALL");
        counted = buckets
            .iter()
            .filter(|(field, _)| field.ends_with(":not_replicated"))
            .map(|(_, n)| n)
            .sum();
        if counted == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(counted, 2);
    app.cleanup().await;
}

#[tokio::test]
async fn a_retry_with_the_same_key_queues_nothing_more_and_is_unconfirmed_too() {
    let mut app = spawn_app_with(&NO_REPLICA).await;
    let message = json!({"user_id": 1, "channel_id": 2, "content": "hello"});
    for _ in 0..3 {
        let response = app
            .http
            .post(app.url("/messages"))
            .header("idempotency-key", "order-21")
            .json(&message)
            .send()
            .await
            .expect("sent");
        // A replay of an unconfirmed first push cannot promise more than the push did.
        assert_error(response, 503, "not_replicated").await;
    }
    assert_eq!(app.pending().await.len(), 1, "queued once");
    assert_eq!(app.queued_and_counted().await, (1, 1), "counted once");
    app.cleanup().await;
}

#[tokio::test]
async fn without_the_replicas_acknowledgements_need_ready_says_not_ready_naming_replication() {
    let app = spawn_app_with(&NO_REPLICA).await;
    let response = app.http.get(app.url("/ready")).send().await.expect("sent");
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(
        (&body["redis"], &body["replication"], &body["status"]),
        (&json!("up"), &json!("down"), &json!("not_ready")),
        "{body}"
    );
    app.cleanup().await;
}

#[test]
fn replicas_in_sync_are_counted_from_info_replication() {
    let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                slave0:ip=10.0.0.2,port=6380,state=online,offset=42,lag=0\r\n\
                slave1:ip=10.0.0.3,port=6380,state=wait_bgsave,offset=0,lag=0\r\n\
                slave2:ip=10.0.0.4,port=6380,state=online,offset=40,lag=2\r\n\
                slave3:ip=10.0.0.5,port=6380,state=online,offset=30,lag=7\r\n";
    // Online and acknowledging: 0 and 2; the one silent for 7 s (stopped, cut off) confirms
    // nothing, though Redis lists it online until repl-timeout.
    assert_eq!(sluice_ingest::routes::health::replicas_online(info), 2);
}
