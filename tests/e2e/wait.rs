//! `Prefer: wait=N` through the real pipeline: the answer comes after the real worker's commit.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_proto::message::MessageRequest;
use uuid::Uuid;

use crate::stack::Stack;

async fn post_waiting(url: &str, body: Value) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("prefer", "wait=10")
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let applied = response
        .headers()
        .get("preference-applied")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (status, applied, response.json().await.expect("json"))
}

#[tokio::test]
async fn a_waited_answer_comes_after_the_row_is_committed() {
    let _shared = crate::MACHINE.read().await;
    let stack = Stack::start("wait", 2).await;
    let client = stack.db.client().await.expect("client");
    // A rule of this database's own, so the worker has a message PostgreSQL refuses.
    client
        .batch_execute(
            "ALTER TABLE messages ADD CONSTRAINT refuse_test CHECK (content <> 'refuse me')",
        )
        .await
        .expect("constraint");

    let url = format!("{}/messages", stack.ingest_url);
    for i in 0..5 {
        let body = json!(MessageRequest::new(1, 2, format!("wait {i}")));
        let (status, applied, answer) = post_waiting(&url, body).await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(applied.as_deref(), Some("wait=10"));
        assert_eq!(answer["status"], "persisted");
        let id: Uuid = answer["message_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid");
        let rows = client
            .query("SELECT 1 FROM messages WHERE id = $1", &[&id])
            .await
            .expect("query");
        assert_eq!(rows.len(), 1, "the row is there when the answer arrives");
    }

    let refused = json!(MessageRequest::new(1, 2, "refuse me"));
    let (status, applied, answer) = post_waiting(&url, refused).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(applied.as_deref(), Some("wait=10"));
    assert_eq!(answer["status"], "dead_lettered");

    let batch = json!([
        {"user_id": 1, "channel_id": 2, "content": "kept"},
        {"user_id": 1, "channel_id": 2, "content": "refuse me"},
    ]);
    let (status, _, answer) = post_waiting(&format!("{url}/batch"), batch).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["dead_lettered_ids"],
        json!([answer["message_ids"][1]])
    );
    assert_eq!(stack.wait_rows(6, Duration::from_secs(10)).await, 6);
    stack.stop().await;
}
