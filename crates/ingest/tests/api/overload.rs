//! The queue bound: 429 with `Retry-After` instead of growing Redis without bound.

use serde_json::json;

use crate::helpers::{assert_error, spawn_app_with};

#[tokio::test]
async fn a_full_queue_answers_429_and_stays_within_its_bound() {
    let mut app = spawn_app_with(&[("INGEST__MAX_QUEUE_DEPTH", "50")]).await;
    let mut accepted = 0;
    let mut refused = 0;
    let requests = (0..80).map(|i| {
        let http = app.http.clone();
        let url = app.url("/messages");
        tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/json")
                .body(
                    json!({"user_id": 1, "channel_id": 1, "content": format!("m{i}")}).to_string(),
                )
                .send()
                .await
                .expect("sent")
        })
    });
    let responses: Vec<_> = futures_util::future::join_all(requests).await;
    for response in responses {
        let response = response.expect("task");
        match response.status().as_u16() {
            202 => accepted += 1,
            429 => {
                assert_eq!(
                    response
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().ok()),
                    Some(Some("1"))
                );
                assert_error(response, 429, "queue_full").await;
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(accepted, 50, "exactly the bound was accepted");
    assert_eq!(refused, 30);
    assert_eq!(
        app.pending().await.len(),
        50,
        "the queue never passes its bound"
    );

    // Once workers drain the queue, messages are accepted again.
    let _: () = redis::cmd("DEL")
        .arg(&app.keys.pending_messages)
        .query_async(&mut app.redis)
        .await
        .expect("DEL");
    tokio::time::sleep(sluice_ingest::queue::DEPTH_REFRESH * 3).await;
    let r = app
        .post_json(&json!({"user_id": 1, "channel_id": 1, "content": "again"}))
        .await;
    assert_eq!(r.status().as_u16(), 202);
    app.cleanup().await;
}
