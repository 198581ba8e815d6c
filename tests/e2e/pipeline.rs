//! The whole pipeline under concurrent load, watched through the gateway.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::stack::{Stack, produce};

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
    let _shared = crate::MACHINE.read().await;
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

    // 32 producers share the 10,000 messages; then every accepted id must be persisted
    // exactly once, the counters must agree, and every list must be empty.
    let accepted = produce(&stack.ingest_url, MESSAGES, CLIENTS).await;
    assert_eq!(accepted.len(), MESSAGES);
    stack
        .assert_exactly_once(&accepted, Duration::from_secs(60))
        .await;

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
