//! The queue bound and `accepted_total` hold exactly, whatever the concurrency and whatever
//! happened to the answers: both are decided in the same atomic step as the push.

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::helpers::{TestApp, spawn_app_with};

/// A batch of `n` short messages.
fn batch(n: usize, tag: &str) -> String {
    let messages: Vec<_> = (0..n)
        .map(|i| json!({"user_id": 1, "channel_id": 1, "content": format!("{tag} {i}")}))
        .collect();
    serde_json::Value::Array(messages).to_string()
}

/// Posts batches of 1,000 to `address` until one is refused for the bound; returns how many
/// were queued.
async fn fill(http: reqwest::Client, address: String, client: usize) -> u64 {
    let mut queued = 0;
    for round in 0.. {
        let response = http
            .post(format!("{address}/messages/batch"))
            .header("content-type", "application/json")
            .body(batch(1_000, &format!("c{client} r{round}")))
            .send()
            .await
            .expect("sent");
        match response.status().as_u16() {
            202 => queued += 1_000,
            429 => return queued,
            other => panic!("unexpected {other}"),
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_apis_of_several_threads_never_pass_the_queue_bound() {
    const BOUND: u64 = 20_000;
    let settings = [
        ("INGEST__MAX_QUEUE_DEPTH", "20000"),
        ("INGEST__HTTP_WORKERS", "4"),
    ];
    let mut app = spawn_app_with(&settings).await;
    let (peer, stop_peer) = app.spawn_peer(&settings);
    let clients: Vec<_> = (0..32)
        .map(|client| {
            let address = if client % 2 == 0 { &app.address } else { &peer };
            tokio::spawn(fill(app.http.clone(), address.clone(), client))
        })
        .collect();
    let mut answered = 0;
    for client in clients {
        answered += client.await.expect("client");
    }
    let (queued, counted) = app.queued_and_counted().await;
    assert!(queued <= BOUND, "{queued} queued past the bound {BOUND}");
    assert!(queued > BOUND - 1_000, "the queue filled: {queued}");
    assert_eq!(answered, queued, "every 202 is queued, nothing else");
    assert_eq!(counted, queued, "accepted_total is exact");
    stop_peer.cancel();
    app.cleanup().await;
}

/// Sends `request` whole on a fresh connection and hangs up without reading the answer.
async fn send_and_hang_up(address: &str, request: &[u8]) {
    let host = address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(host).await.expect("connect");
    socket.write_all(request).await.expect("sent");
    drop(socket);
}

fn raw_post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Waits until the queue stops growing; returns `LLEN` and `accepted_total`.
async fn settled(app: &mut TestApp) -> (u64, u64) {
    let mut last = app.queued_and_counted().await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = app.queued_and_counted().await;
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn accepted_total_counts_what_entered_the_queue_whoever_heard_the_answer() {
    let mut app = spawn_app_with(&[]).await;
    // Clients that hang up as soon as they have sent: whatever was queued is counted.
    let single = raw_post(
        "/messages",
        r#"{"user_id": 1, "channel_id": 1, "content": "gone"}"#,
    );
    let hangups: Vec<_> = (0..300)
        .map(|_| {
            let (address, single) = (app.address.clone(), single.clone());
            tokio::spawn(async move { send_and_hang_up(&address, &single).await })
        })
        .collect();
    for hangup in hangups {
        hangup.await.expect("client");
    }
    let many = raw_post("/messages/batch", &batch(100, "gone"));
    for _ in 0..5 {
        send_and_hang_up(&app.address, &many).await;
    }
    let (queued, counted) = settled(&mut app).await;
    assert!(queued > 0, "some hung-up requests were queued");
    assert_eq!(counted, queued, "each queued message counted once");

    // A replay queues nothing and counts nothing.
    for _ in 0..3 {
        let response = app
            .http
            .post(app.url("/messages/batch"))
            .header("idempotency-key", "counted-once")
            .header("content-type", "application/json")
            .body(batch(10, "keyed"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 202);
    }
    assert_eq!(
        app.queued_and_counted().await,
        (queued + 10, queued + 10),
        "the key's messages counted once"
    );
    app.cleanup().await;
}
