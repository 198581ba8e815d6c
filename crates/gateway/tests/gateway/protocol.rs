//! Protocol v1: every client message and error, topics and `include_ids`, the lag path, the
//! message rate limit and the connection limits.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sluice_proto::events::BatchEvent;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestGateway, close_code, next_json, next_of, send_json, spawn_gateway};

const T: Duration = Duration::from_secs(3);

fn event(ids: usize) -> BatchEvent {
    BatchEvent {
        batch_id: uuid::Uuid::now_v7(),
        worker_id: "w-1".into(),
        size: ids as u64,
        inserted: ids as u64,
        taken_at: None,
        committed_at: chrono::Utc::now(),
        message_ids: (0..ids).map(|_| uuid::Uuid::now_v7()).collect(),
        dead_letter_ids: Vec::new(),
    }
}

async fn publish(g: &mut TestGateway, event: &BatchEvent) -> i64 {
    redis::cmd("PUBLISH")
        .arg(&g.keys.batch_events)
        .arg(serde_json::to_string(event).expect("json"))
        .query_async(&mut g.redis)
        .await
        .expect("PUBLISH")
}

/// Publishes until the gateway's subscription receives it (it subscribes at start-up).
async fn publish_until_heard(g: &mut TestGateway, event: &BatchEvent) {
    for _ in 0..100 {
        if publish(g, event).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway never subscribed to batch_events");
}

#[tokio::test]
async fn the_first_message_is_connected() {
    let g = spawn_gateway(&[]).await;
    let mut ws = g.connect("?topics=stats,batches&interval_ms=1000").await;
    let hello = next_json(&mut ws, T).await;
    assert_eq!(hello["type"], "connected");
    assert_eq!(hello["protocol_version"], 1);
    assert_eq!(hello["interval_ms"], 1000);
    assert_eq!(hello["topics"], json!(["stats", "batches"]));
    assert_eq!(hello["include_ids"], false);
    assert_eq!(hello["heartbeat_interval_ms"], 15000);
    assert!(
        hello["connection_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(next_json(&mut ws, T).await["type"], "stats", "then stats");
    g.cleanup().await;
}

#[tokio::test]
async fn ping_and_get_snapshot_are_answered() {
    let g = spawn_gateway(&[]).await;
    let mut ws = g.connect("?interval_ms=60000").await;
    next_of(&mut ws, "stats", T).await;
    send_json(&mut ws, json!({"type": "ping", "id": "abc"})).await;
    assert_eq!(
        next_json(&mut ws, T).await,
        json!({"type": "pong", "id": "abc"})
    );
    send_json(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut ws, T).await, json!({"type": "pong"}));
    send_json(&mut ws, json!({"type": "get_snapshot"})).await;
    let stats = next_json(&mut ws, T).await;
    assert_eq!(
        stats["type"], "stats",
        "an immediate snapshot despite the 60 s interval"
    );
    g.cleanup().await;
}

#[tokio::test]
async fn bad_messages_get_errors_and_the_session_stays_open() {
    let g = spawn_gateway(&[("STREAM__CLIENT_MAX_MESSAGES_PER_SEC", "100")]).await;
    let mut ws = g.connect("?interval_ms=60000").await;
    next_of(&mut ws, "stats", T).await;
    let cases = [
        (json!("not an object"), "invalid_message"),
        (json!({"type": "dance"}), "unknown_type"),
        (
            json!({"type": "set_interval", "interval_ms": 5}),
            "invalid_interval",
        ),
        (json!({"type": "set_interval"}), "invalid_message"),
        (
            json!({"type": "subscribe", "topics": ["weather"]}),
            "unknown_topic",
        ),
        (
            json!({"type": "subscribe", "topics": []}),
            "invalid_message",
        ),
        (json!({"type": "ping", "extra": true}), "invalid_message"),
    ];
    for (message, code) in cases {
        send_json(&mut ws, message.clone()).await;
        let reply = next_of(&mut ws, "error", T).await;
        assert_eq!(reply["code"], code, "{message}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send(Message::Text("{".into())).await.expect("sent");
    assert_eq!(next_of(&mut ws, "error", T).await["code"], "invalid_json");
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("sent");
    assert_eq!(
        next_of(&mut ws, "error", T).await["code"],
        "unsupported_frame"
    );
    send_json(&mut ws, json!({"type": "ping", "id": 1})).await;
    assert_eq!(next_of(&mut ws, "pong", T).await["id"], 1, "still open");
    g.cleanup().await;
}

#[tokio::test]
async fn set_interval_changes_the_cadence() {
    let g = spawn_gateway(&[]).await;
    let mut ws = g.connect("?interval_ms=60000").await;
    next_of(&mut ws, "stats", T).await;
    send_json(&mut ws, json!({"type": "set_interval", "interval_ms": 100})).await;
    let start = std::time::Instant::now();
    for _ in 0..5 {
        next_of(&mut ws, "stats", T).await;
    }
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "five stats at 100 ms took {:?}",
        start.elapsed()
    );
    g.cleanup().await;
}

#[tokio::test]
async fn topics_choose_what_arrives_and_include_ids_adds_the_ids() {
    let mut g = spawn_gateway(&[]).await;
    let mut batches_only = g.connect("?topics=batches").await;
    let mut with_ids = g.connect("?topics=batches&include_ids=true").await;
    next_of(&mut batches_only, "connected", T).await;
    next_of(&mut with_ids, "connected", T).await;
    let e = event(3);
    publish_until_heard(&mut g, &e).await;
    let plain = next_of(&mut batches_only, "batch_persisted", T).await;
    assert_eq!(plain["batch_id"], e.batch_id.to_string());
    assert_eq!(plain["worker_id"], "w-1");
    assert_eq!(plain["size"], 3);
    assert_eq!(plain["inserted"], 3);
    assert!(plain["committed_at"].is_string());
    assert!(
        plain.get("message_ids").is_none(),
        "no ids unless asked for"
    );
    let full = next_of(&mut with_ids, "batch_persisted", T).await;
    assert_eq!(full["message_ids"], json!(e.message_ids));

    // The batches-only client gets no stats: within a second only batch events arrive.
    let quiet = tokio::time::timeout(Duration::from_millis(1200), batches_only.next()).await;
    if let Ok(Some(Ok(Message::Text(text)))) = quiet {
        assert!(!text.as_str().contains("\"stats\""), "unexpected {text}");
    }

    // Subscribing to stats and unsubscribing from batches by message.
    send_json(
        &mut batches_only,
        json!({"type": "subscribe", "topics": ["stats"], "include_ids": true}),
    )
    .await;
    next_of(&mut batches_only, "stats", T).await;
    let e2 = event(2);
    publish(&mut g, &e2).await;
    let full = next_of(&mut batches_only, "batch_persisted", T).await;
    assert_eq!(
        full["message_ids"],
        json!(e2.message_ids),
        "include_ids set by message"
    );
    send_json(
        &mut batches_only,
        json!({"type": "unsubscribe", "topics": ["batches"]}),
    )
    .await;
    send_json(&mut batches_only, json!({"type": "ping", "id": "sync"})).await;
    next_of(&mut batches_only, "pong", T).await;
    publish(&mut g, &event(1)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, batches_only.next()).await {
        if let Message::Text(text) = frame {
            assert!(
                !text.as_str().contains("batch_persisted"),
                "unsubscribed, got {text}"
            );
        }
    }
    g.cleanup().await;
}

#[tokio::test]
async fn a_client_that_falls_behind_skips_ahead_and_is_told_how_much_it_missed() {
    let mut g = spawn_gateway(&[("STREAM__CLIENT_QUEUE", "4")]).await;
    let mut ws = g.connect("?topics=batches&include_ids=true").await;
    next_of(&mut ws, "connected", T).await;
    publish_until_heard(&mut g, &event(1)).await;
    // Not reading: enough large events to fill the socket buffers and the session's queue.
    // While the client does not read, its receive window (~128 KiB), the gateway's send buffer
    // (64 KiB), its write buffer (16 KiB) and the session's 32-frame queue hold some 45 of these
    // 16 KB events; 300 fill them several times over, and fast enough for the client to start
    // reading well within the gateway's send and write-stall timeouts (10 s each), which a
    // debug build under a parallel test run did not always manage with 3,000.
    let big = event(400);
    for _ in 0..300 {
        publish(&mut g, &big).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let missed = loop {
        let message = next_json(
            &mut ws,
            deadline.saturating_duration_since(tokio::time::Instant::now()),
        )
        .await;
        if message["type"] == "lagged" {
            break message;
        }
    };
    assert_eq!(missed["topic"], "batches");
    assert!(missed["missed"].as_u64().is_some_and(|n| n > 0), "{missed}");
    g.cleanup().await;
}

#[tokio::test]
async fn a_client_over_the_message_rate_is_closed_with_1008() {
    let g = spawn_gateway(&[("STREAM__CLIENT_MAX_MESSAGES_PER_SEC", "5")]).await;
    let mut ws = g.connect("").await;
    next_of(&mut ws, "connected", T).await;
    for i in 0..20 {
        if ws
            .send(Message::Text(
                json!({"type": "ping", "id": i}).to_string().into(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(close_code(&mut ws, T).await, 1008);
    g.cleanup().await;
}

#[tokio::test]
async fn connection_limits_refuse_the_upgrade_with_503() {
    let g = spawn_gateway(&[("STREAM__MAX_CONNECTIONS", "2")]).await;
    let _a = g.connect("").await;
    let _b = g.connect("").await;
    let url = format!("ws://127.0.0.1:{}/ws/stats", g.port);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("JSON reason");
            assert_eq!(body["error"]["code"], "too_many_connections");
        }
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    g.cleanup().await;

    let g = spawn_gateway(&[("STREAM__MAX_CONNECTIONS_PER_IP", "1")]).await;
    let _a = g.connect("").await;
    let r = reqwest::get(g.http("/stats/stream")).await.expect("sent");
    assert_eq!(r.status().as_u16(), 503, "SSE streams count too");
    g.cleanup().await;
}

#[tokio::test]
async fn recent_batches_are_kept_for_a_page_opened_later_newest_first_without_ids() {
    let mut g = spawn_gateway(&[]).await;
    let empty: serde_json::Value = reqwest::get(g.http("/batches/recent"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(empty, json!({"batches": []}));
    // Nobody is connected: the gateway keeps them anyway, the last RECENT_BATCHES only.
    let first = event(2);
    publish_until_heard(&mut g, &first).await;
    let total = sluice_stream::hub::RECENT_BATCHES + 5;
    let mut last = Vec::new();
    for _ in 1..total {
        let e = event(1);
        publish(&mut g, &e).await;
        last.push(e.batch_id.to_string());
    }
    let mut body = json!(null);
    for _ in 0..50 {
        body = reqwest::get(g.http("/batches/recent"))
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        if body["batches"][0]["batch_id"] == json!(last.last()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let batches = body["batches"].as_array().expect("array");
    assert_eq!(batches.len(), sluice_stream::hub::RECENT_BATCHES);
    let ids: Vec<&str> = batches
        .iter()
        .map(|b| b["batch_id"].as_str().expect("id"))
        .collect();
    let newest_first: Vec<&str> = last
        .iter()
        .rev()
        .take(ids.len())
        .map(String::as_str)
        .collect();
    assert_eq!(ids, newest_first);
    assert_eq!(batches[0]["type"], "batch_persisted");
    assert!(batches[0].get("message_ids").is_none(), "{}", batches[0]);
    g.cleanup().await;
}
