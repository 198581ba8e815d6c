//! Attacks on the stats gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use super::{Target, frame, header_only, next_frame, until_close, ws_open};

/// A well-behaved dashboard: counts the stats it receives until it is dropped.
struct Dashboard {
    stats: Arc<AtomicUsize>,
    task: JoinHandle<bool>,
}

impl Dashboard {
    async fn connect(target: &Target) -> Dashboard {
        let url = format!("ws://127.0.0.1:{}/ws/stats?interval_ms=100", target.port);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("dashboard connects");
        let stats = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                if message
                    .to_text()
                    .is_ok_and(|t| t.contains(r#""type":"stats""#))
                {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            false
        });
        Dashboard { stats, task }
    }

    fn received(&self) -> usize {
        self.stats.load(Ordering::Relaxed)
    }

    /// Asserts it is still connected and got stats during the last `window`.
    async fn assert_served_during(&self, window: Duration) {
        let before = self.received();
        tokio::time::sleep(window).await;
        assert!(
            !self.task.is_finished(),
            "the legitimate dashboard was disconnected"
        );
        assert!(
            self.received() > before,
            "the legitimate dashboard got no stats for {window:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_oversized_frame_closes_with_1009_before_its_payload_is_read() {
    let _shared = crate::MACHINE.read().await;
    let target = Target::start("sluice-gateway", "atk_frame", &[]).await;
    let dashboard = Dashboard::connect(&target).await;
    let baseline = target.rss_mib();

    // 10 MB declared, nothing sent after the header: the close comes anyway.
    let mut ws = ws_open(target.port, "/ws/stats", 0).await;
    ws.write_all(&header_only(1, 10_000_000))
        .await
        .expect("header");
    let (close, _) = until_close(&mut ws, Duration::from_secs(3)).await;
    let (code, reason) = close.expect("closed without the payload");
    assert_eq!(code, 1009, "{reason}");
    assert!(
        reason.contains("10000000") && reason.contains("65536"),
        "{reason}"
    );

    // 2^63-1 declared, then as much as the gateway will take: it must not buffer it.
    let mut ws = ws_open(target.port, "/ws/stats", 0).await;
    ws.write_all(&header_only(2, i64::MAX as u64))
        .await
        .expect("header");
    let (mut reader, mut writer) = ws.into_split();
    let flood = tokio::spawn(async move {
        let chunk = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        while sent < (1 << 30) && writer.write_all(&chunk).await.is_ok() {
            sent += chunk.len() as u64;
        }
        sent
    });
    let peak = super::peak_while(Duration::from_secs(3), || target.rss_mib()).await;
    let sent = tokio::time::timeout(Duration::from_secs(10), flood)
        .await
        .expect("the gateway stopped taking the flood")
        .expect("flood task");
    let mut close = None;
    while let Some(f) = next_frame(&mut reader, Duration::from_secs(3)).await {
        close = close.or(f.close());
    }
    assert_eq!(close.map(|c| c.0), Some(1009));
    eprintln!(
        "figures: 2^63-1 frame: RSS {baseline:.1} -> peak {peak:.1} MiB while the client pushed {} MiB",
        sent >> 20
    );
    assert!(
        peak - baseline < 32.0,
        "RSS grew {:.1} MiB while a client streamed {} MiB into one frame",
        peak - baseline,
        sent >> 20
    );
    dashboard
        .assert_served_during(Duration::from_millis(500))
        .await;
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_messages_are_assembled_and_their_sum_is_bounded() {
    let target = Target::start("sluice-gateway", "atk_fragments", &[]).await;

    // A ping in two fragments, with a ping frame between them, gets its pong.
    let mut ws = ws_open(target.port, "/ws/stats?topics=batches", 0).await;
    let _connected = next_frame(&mut ws, Duration::from_secs(3))
        .await
        .expect("connected");
    let mut bytes = frame(false, 1, br#"{"type":"pi"#);
    bytes.extend(frame(true, 9, b"hi"));
    bytes.extend(frame(true, 0, br#"ng","id":"frag-7"}"#));
    ws.write_all(&bytes).await.expect("fragments");
    let mut texts = Vec::new();
    while let Some(f) = next_frame(&mut ws, Duration::from_secs(2)).await {
        if f.opcode == 1 {
            texts.push(f.text());
            break;
        }
    }
    assert!(
        texts
            .iter()
            .any(|t| t.contains(r#""type":"pong""#) && t.contains("frag-7")),
        "{texts:?}"
    );

    // Fragments whose declared lengths add up past the limit close with 1009 at the header.
    let mut ws = ws_open(target.port, "/ws/stats?topics=batches", 0).await;
    let mut bytes = frame(false, 1, &[b' '; 40_000]);
    bytes.extend(header_only(0, 40_000));
    ws.write_all(&bytes).await.expect("fragments");
    let (close, _) = until_close(&mut ws, Duration::from_secs(3)).await;
    let (code, reason) = close.expect("closed");
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("80000"), "{reason}");
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_frames_count_toward_the_message_rate() {
    let target = Target::start("sluice-gateway", "atk_pings", &[]).await;
    let dashboard = Dashboard::connect(&target).await;
    let mut ws = ws_open(target.port, "/ws/stats?topics=batches", 0).await;
    let pings: Vec<u8> = (0..1_000).flat_map(|_| frame(true, 9, b"p")).collect();
    ws.write_all(&pings).await.expect("pings");
    let mut pongs = 0;
    let mut close = None;
    while let Some(f) = next_frame(&mut ws, Duration::from_secs(3)).await {
        match f.opcode {
            10 => pongs += 1,
            8 => {
                close = f.close();
                break;
            }
            _ => {}
        }
    }
    eprintln!("figures: 1,000 pings at once: {pongs} pongs, then {close:?}");
    let (code, reason) = close.expect("closed over the rate");
    assert_eq!(code, 1008, "{reason}");
    assert!(
        pongs <= 20,
        "{pongs} pongs for a limit of 20 frames a second"
    );
    dashboard
        .assert_served_during(Duration::from_millis(500))
        .await;
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_frames_with_invalid_codes_get_a_reason_that_names_the_fault() {
    let target = Target::start("sluice-gateway", "atk_close", &[]).await;
    for (payload, expected) in [
        (vec![0x03, 0xed], "close code 1005"),
        (vec![0x00, 0x05], "close code 5"),
        (vec![0x03], "1 byte"),
        (vec![0x03, 0xe8, 0xc3, 0x28], "UTF-8"),
    ] {
        let mut ws = ws_open(target.port, "/ws/stats?topics=batches", 0).await;
        ws.write_all(&frame(true, 8, &payload))
            .await
            .expect("close");
        let (close, _) = until_close(&mut ws, Duration::from_secs(3)).await;
        let (code, reason) = close.expect("closed");
        assert_eq!(code, 1002, "{payload:?}: {reason}");
        assert!(reason.contains(expected), "{payload:?}: {reason}");
    }
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_to_the_gateway_get_the_json_error_body() {
    let target = Target::start("sluice-gateway", "atk_gw_parse", &[]).await;
    let answer = super::raw_http(
        target.port,
        b"GET /ws/stats HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let (status, body) = super::status_and_json(&answer);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(body["error"]["code"], "malformed_request", "{answer}");
    assert_eq!(target.health().await["malformed_requests"], 1);
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_that_stop_reading_are_closed_and_counted() {
    let _shared = crate::MACHINE.read().await;
    let settings = [
        ("GATEWAY__WRITE_TIMEOUT_MS", "1000"),
        ("GATEWAY__SEND_BUFFER_BYTES", "16384"),
    ];
    let target = Target::start("sluice-gateway", "atk_stall_ws", &settings).await;
    let dashboard = Dashboard::connect(&target).await;
    let path = "/ws/stats?topics=stats,batches&include_ids=true&interval_ms=100";
    let mut stalled = Vec::new();
    for _ in 0..100 {
        stalled.push(ws_open(target.port, path, 4096).await);
    }
    let mut redis = sluice_tests::redis().await.expect("redis");
    let channel = format!("{}batch_events", target.prefix);
    let event = sluice_bench::attacks::batch_event(2_000);
    let mut peak_queue = 0;
    let mut closed = 0;
    for _ in 0..60 {
        let _: () = redis.publish(&channel, &event).await.expect("publish");
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_queue = peak_queue.max(
            super::send_queues(target.port)
                .into_iter()
                .max()
                .unwrap_or(0),
        );
        closed = target.health().await["write_timeouts"]
            .as_u64()
            .unwrap_or(0);
        if closed >= 100 {
            break;
        }
    }
    eprintln!(
        "figures: stalled WebSocket clients: {closed} of 100 closed, largest kernel send queue {peak_queue} bytes"
    );
    assert!(
        closed >= 100,
        "only {closed} of 100 stalled clients were closed"
    );
    assert!(
        peak_queue <= 4 * 16_384,
        "a stalled socket held {peak_queue} bytes in the kernel"
    );
    let health = target.health().await;
    assert_eq!(health["active_connections"], 1, "{health}");
    dashboard
        .assert_served_during(Duration::from_millis(500))
        .await;
    drop(stalled);
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_clients_that_stop_reading_are_closed_and_counted() {
    let _shared = crate::MACHINE.read().await;
    let settings = [
        ("GATEWAY__WRITE_TIMEOUT_MS", "1000"),
        ("GATEWAY__SEND_BUFFER_BYTES", "4096"),
    ];
    let target = Target::start("sluice-gateway", "atk_stall_sse", &settings).await;
    let dashboard = Dashboard::connect(&target).await;
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut stream = super::connect(target.port, 2048).await;
        let request = format!(
            "GET /stats/stream?interval_ms=100 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            target.port
        );
        stream.write_all(request.as_bytes()).await.expect("request");
        stalled.push(stream);
    }
    let mut closed = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        closed = target.health().await["write_timeouts"]
            .as_u64()
            .unwrap_or(0);
        if closed >= 50 {
            break;
        }
    }
    eprintln!("figures: stalled SSE clients: {closed} of 50 closed");
    assert!(
        closed >= 50,
        "only {closed} of 50 stalled SSE clients were closed"
    );
    dashboard
        .assert_served_during(Duration::from_millis(500))
        .await;
    drop(stalled);
    target.stop().await;
}
