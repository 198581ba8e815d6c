//! `GET /ws/stats`: cadence, per-client intervals, pings, heartbeat timeout, limits, shutdown.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use sluice_proto::stats::Stats;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{close_code, next_of, spawn_gateway};

const LEGACY_FIELDS: [&str; 8] = [
    "total_messages",
    "current_rps",
    "messages_per_second",
    "queue_depth",
    "queue_length",
    "total_batches",
    "avg_batch_size",
    "timestamp",
];

#[tokio::test]
async fn stats_arrive_on_connect_then_every_interval() {
    let mut g = spawn_gateway(&[]).await;
    let (total, batches) = (g.keys.total_messages.clone(), g.keys.total_batches.clone());
    g.set(&total, 42).await;
    g.set(&batches, 4).await;
    g.settle().await;
    tokio::time::sleep(Duration::from_millis(600)).await; // let the poller read them

    let connected = Instant::now();
    let mut ws = g.connect("").await;
    let first = next_of(&mut ws, "stats", Duration::from_secs(2)).await;
    assert!(
        connected.elapsed() < Duration::from_millis(400),
        "first stats right after connect"
    );
    assert_eq!(first["type"], "stats");
    for field in LEGACY_FIELDS {
        assert!(first.get(field).is_some(), "missing {field} in {first}");
    }
    let stats: Stats = serde_json::from_value(first).expect("legacy payload");
    assert_eq!(stats.total_messages, 42);
    assert_eq!(stats.total_batches, 4);
    assert_eq!(stats.avg_batch_size, 10.5);

    let start = Instant::now();
    for _ in 0..4 {
        let _ = next_of(&mut ws, "stats", Duration::from_secs(2)).await;
    }
    let mean = start.elapsed() / 4;
    assert!(
        mean >= Duration::from_millis(350) && mean <= Duration::from_millis(700),
        "one stats message about every 500 ms, mean gap {mean:?}"
    );

    g.set(&total, 43).await;
    let mut seen = 0;
    for _ in 0..4 {
        seen = next_of(&mut ws, "stats", Duration::from_secs(2)).await["total_messages"]
            .as_u64()
            .expect("n");
        if seen == 43 {
            break;
        }
    }
    assert_eq!(seen, 43, "changes in Redis reach the client");
    g.cleanup().await;
}

#[tokio::test]
async fn clients_choose_their_interval() {
    let g = spawn_gateway(&[]).await;
    let mut fast = g.connect("?interval_ms=100").await;
    let mut slow = g.connect("?interval_ms=1000").await;
    let _ = next_of(&mut fast, "stats", Duration::from_secs(2)).await;
    let _ = next_of(&mut slow, "stats", Duration::from_secs(2)).await;
    let start = Instant::now();
    for _ in 0..10 {
        let _ = next_of(&mut fast, "stats", Duration::from_secs(2)).await;
    }
    let fast_mean = start.elapsed() / 10;
    assert!(
        fast_mean <= Duration::from_millis(200),
        "fast client mean gap {fast_mean:?}"
    );
    let _ = next_of(&mut slow, "stats", Duration::from_secs(3)).await;
    let start = Instant::now();
    for _ in 0..2 {
        let _ = next_of(&mut slow, "stats", Duration::from_secs(3)).await;
    }
    let slow_mean = start.elapsed() / 2;
    assert!(
        slow_mean >= Duration::from_millis(800),
        "a fast neighbour does not speed up the slow client, mean gap {slow_mean:?}"
    );
    g.cleanup().await;
}

#[tokio::test]
async fn out_of_range_interval_is_refused_before_the_upgrade() {
    let g = spawn_gateway(&[]).await;
    for bad in ["50", "60001", "soon"] {
        let url = format!("ws://127.0.0.1:{}/ws/stats?interval_ms={bad}", g.port);
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 400, "{bad}");
            }
            other => panic!("expected HTTP 400 for {bad}, got {:?}", other.map(|_| ())),
        }
    }
    g.cleanup().await;
}

#[tokio::test]
async fn client_pings_are_answered() {
    let g = spawn_gateway(&[]).await;
    let mut ws = g.connect("").await;
    ws.send(Message::Ping(b"hello".to_vec().into()))
        .await
        .expect("ping sent");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        use futures_util::StreamExt;
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("pong in time");
        if let Some(Ok(Message::Pong(payload))) = frame {
            assert_eq!(payload.as_ref(), b"hello");
            break;
        }
    }
    g.cleanup().await;
}

#[tokio::test]
async fn unresponsive_clients_are_closed() {
    let g = spawn_gateway(&[
        ("STREAM__HEARTBEAT_INTERVAL_MS", "100"),
        ("STREAM__CLIENT_TIMEOUT_MS", "300"),
    ])
    .await;
    let ws = g.connect("").await;
    // Not reading means not answering pings: the server must give up on us.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let health: serde_json::Value = reqwest::get(g.http("/health"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(
        health["active_connections"], 0,
        "the silent client was dropped"
    );
    let mut ws = ws;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut close = None;
    loop {
        use futures_util::StreamExt;
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("stream ends in time")
        {
            Some(Ok(Message::Close(frame))) => close = frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            // Answering the server's queued pings may hit the already-closed socket.
            Some(Err(_)) | None => break,
        }
    }
    assert!(
        close.is_none_or(|code| code == 1008),
        "close code {close:?}"
    );
    g.cleanup().await;
}

#[tokio::test]
async fn oversized_frames_close_with_1009() {
    let g = spawn_gateway(&[]).await;
    let mut ws = g.connect("").await;
    let _ = next_of(&mut ws, "stats", Duration::from_secs(2)).await;
    ws.send(Message::Text("x".repeat(70 * 1024).into()))
        .await
        .expect("sent");
    assert_eq!(close_code(&mut ws, Duration::from_secs(3)).await, 1009);
    g.cleanup().await;
}

#[tokio::test]
async fn shutdown_closes_sessions_with_1001() {
    let g = spawn_gateway(&[]).await;
    let mut ws = g.connect("").await;
    let _ = next_of(&mut ws, "stats", Duration::from_secs(2)).await;
    g.shutdown.cancel();
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 1001);
    g.cleanup().await;
}

#[tokio::test]
async fn current_rps_is_one_figure_everywhere_at_a_steady_rate() {
    // Ten messages persisted in every second of the last minute: a steady 10 msg/s. The
    // WebSocket, /stats and the Redis key must all say exactly 10, reading after reading,
    // whenever in a second they read (they once swung between 10.03 and 11.04).
    let mut g = spawn_gateway(&[("STREAM__INTERVAL_MS", "200")]).await;
    let (now, _): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut g.redis)
        .await
        .expect("TIME");
    let mut fill = redis::cmd("HSET");
    fill.arg(&g.keys.rate_window);
    for second in now - 60..=now + 60 {
        fill.arg(second).arg(10);
    }
    let _: () = fill.query_async(&mut g.redis).await.expect("HSET");
    let mut ws = g.connect("?interval_ms=200").await;
    // Readings taken before the fill say 0; from the first one after it, every one says 10.
    let deadline = Instant::now() + Duration::from_secs(3);
    while next_of(&mut ws, "stats", Duration::from_secs(3)).await["current_rps"] != 10.0 {
        assert!(Instant::now() < deadline, "the filled window never showed");
    }
    for _ in 0..8 {
        let stats = next_of(&mut ws, "stats", Duration::from_secs(3)).await;
        let stored: String = redis::cmd("GET")
            .arg(&g.keys.current_rps)
            .query_async(&mut g.redis)
            .await
            .expect("GET");
        let http: serde_json::Value = reqwest::get(g.http("/stats"))
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        assert_eq!(stats["current_rps"], 10.0, "{stats}");
        assert_eq!(stats["messages_per_second"], 10.0);
        assert_eq!(stored, "10.00");
        assert_eq!(http["current_rps"], 10.0, "{http}");
    }
    g.cleanup().await;
}
