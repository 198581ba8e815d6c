//! The whole pipeline under concurrent load, watched through the gateway.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::stack::Stack;

const MESSAGES: usize = 10_000;
const CLIENTS: usize = 32;

/// One stats message as the dashboard saw it.
struct Seen {
    at: Instant,
    total_messages: u64,
    current_rps: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_from_32_clients_through_3_workers() {
    let stack = Stack::start("e2e", 3).await;

    // A dashboard watches the whole run.
    let ws_url = format!("ws://127.0.0.1:{}/ws/stats", stack.gateway_port);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("WebSocket");
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
            if let Message::Text(text) = frame {
                let v: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
                if v["type"] != "stats" {
                    continue;
                }
                let total = v["total_messages"].as_u64().expect("total_messages");
                seen.push(Seen {
                    at: Instant::now(),
                    total_messages: total,
                    current_rps: v["current_rps"].as_f64().expect("current_rps"),
                });
                if total >= MESSAGES as u64 {
                    break;
                }
            }
        }
        seen
    });

    // 32 producers share the 10,000 messages.
    let http = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let producers: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let http = http.clone();
            let url = format!("{}/messages", stack.ingest_url);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= MESSAGES {
                        return ids;
                    }
                    let body = serde_json::json!({
                        "user_id": client + 1,
                        "channel_id": i % 7 + 1,
                        "content": format!("message {i} from client {client}"),
                    });
                    let response = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await
                        .expect("request sent");
                    assert_eq!(response.status().as_u16(), 202);
                    let answer: serde_json::Value = response.json().await.expect("JSON");
                    ids.push(
                        answer["message_id"]
                            .as_str()
                            .expect("message_id")
                            .parse::<uuid::Uuid>()
                            .expect("uuid"),
                    );
                }
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for producer in producers {
        accepted.extend(producer.await.expect("producer"));
    }
    assert_eq!(accepted.len(), MESSAGES);

    let rows = stack
        .wait_rows(MESSAGES as i64, Duration::from_secs(60))
        .await;
    assert_eq!(
        rows, MESSAGES as i64,
        "every accepted message persisted, none twice"
    );
    let client = stack.db.client().await.expect("client");
    let stored: HashSet<uuid::Uuid> = client
        .query("SELECT id FROM messages", &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored.len(), MESSAGES, "distinct ids");
    assert_eq!(
        stored,
        accepted.iter().copied().collect::<HashSet<_>>(),
        "exactly the accepted ids"
    );

    let mut redis = sluice_tests::redis().await.expect("redis");
    let total: i64 = redis::cmd("GET")
        .arg(&stack.keys.total_messages)
        .query_async(&mut redis)
        .await
        .expect("GET");
    assert_eq!(total, MESSAGES as i64);
    let pending: i64 = redis::cmd("LLEN")
        .arg(&stack.keys.pending_messages)
        .query_async(&mut redis)
        .await
        .expect("LLEN");
    assert_eq!(pending, 0);
    let processing =
        sluice_tests::keys_under(&mut redis, &format!("{}processing:", stack.keys.prefix()))
            .await
            .expect("SCAN");
    for key in &processing {
        let len: i64 = redis::cmd("LLEN")
            .arg(key)
            .query_async(&mut redis)
            .await
            .expect("LLEN");
        assert_eq!(len, 0, "{key} is empty");
    }

    let seen = tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("the dashboard saw the total reach 10,000")
        .expect("watcher");
    assert_eq!(seen.last().map(|s| s.total_messages), Some(MESSAGES as u64));
    assert!(
        seen.iter().any(|s| s.current_rps > 0.0),
        "current_rps rose above 0 during the run"
    );
    assert!(
        seen.len() >= 3,
        "several stats messages, got {}",
        seen.len()
    );
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
    assert!(
        mean >= Duration::from_millis(350) && mean <= Duration::from_millis(700),
        "stats about every 500 ms, mean gap {mean:?} over {} gaps",
        gaps.len()
    );
    stack.stop().await;
}
