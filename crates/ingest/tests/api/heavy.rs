//! Heavy requests do not stall light ones: a large batch is parsed off the thread that serves
//! requests, so a single message sent to the same thread meanwhile is answered at once.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::spawn_app_with;

/// A batch of 1,000 messages of 2,000 four-byte characters: 8 MB, the largest batch body.
fn heavy_batch() -> Vec<u8> {
    let content = "😀".repeat(1_990);
    let one = serde_json::json!({"user_id": 1, "channel_id": 1, "content": content});
    serde_json::to_vec(&vec![one; 1_000]).expect("json")
}

#[tokio::test]
async fn a_light_request_is_answered_while_a_heavy_batch_on_its_thread_is_parsed() {
    // One HTTP thread: the heavy batch and the light messages meet on it.
    let app = spawn_app_with(&[("INGEST__HTTP_WORKERS", "1")]).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let body = heavy_batch();
    let head = format!(
        "POST /messages/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         idempotency-key: heavy\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut heavy = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    heavy.write_all(head.as_bytes()).await.expect("head");
    heavy.write_all(&body).await.expect("body");
    let sent = Instant::now();
    let heavy_answer = tokio::spawn(async move {
        let mut answer = [0u8; 12];
        heavy.read_exact(&mut answer).await.expect("an answer");
        (
            sent.elapsed(),
            String::from_utf8_lossy(&answer[9..12]).into_owned(),
        )
    });
    // The light messages come while the batch is being parsed.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..5 {
        let message =
            serde_json::json!({"user_id": 2, "channel_id": 1, "content": format!("light {i}")});
        let response = app.post_json(&message).await;
        assert_eq!(response.status().as_u16(), 202);
    }
    let light_done = sent.elapsed();
    let (heavy_done, status) = heavy_answer.await.expect("heavy");
    assert_eq!(status, "202");
    eprintln!(
        "figures: 5 light messages answered {light_done:?} after the 8 MB batch was sent; the batch {heavy_done:?}"
    );
    assert!(
        light_done < heavy_done,
        "the light messages waited for the batch: done at {light_done:?}, the batch at {heavy_done:?}"
    );
    app.cleanup().await;
}
