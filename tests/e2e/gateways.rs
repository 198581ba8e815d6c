//! Many gateways on one Redis (issue 11): each serves the same stats and the same alerts (each
//! fired once in all), each reads Redis at a rate its client count does not change, and one
//! gateway's shutdown leaves the other's clients alone. On a private Redis, so that every
//! command counted comes from the gateways.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use sluice_core::Keys;
use sluice_proto::message::{MessageRequest, NewMessage};
use sluice_tests::process::{Service, free_port, wait_http_ok};
use sluice_tests::servers::RedisServer;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Dashboards per gateway.
const CLIENTS: usize = 200;

struct Gateway {
    service: Service,
    port: u16,
}

impl Gateway {
    async fn start(redis_url: &str, keys: &Keys) -> Self {
        let port = free_port();
        let env: Vec<(String, String)> = [
            ("SLUICE__REDIS__URL", redis_url),
            ("SLUICE__REDIS__KEY_PREFIX", keys.prefix()),
            ("SLUICE__GATEWAY__LISTEN", &format!("127.0.0.1:{port}")),
            ("SLUICE__WORKER__DEAD_AFTER_MS", "2000"),
            ("SLUICE__GATEWAY__ALERTS__NO_LIVE_WORKERS_FOR_SECS", "1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let mut service = Service::start("sluice-gateway", &env, &[]).expect("starts");
        let ready = format!("http://127.0.0.1:{port}/ready");
        wait_http_ok(&mut service, &ready, Duration::from_secs(20))
            .await
            .expect("gateway ready");
        Self { service, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(self.url(path))
            .await
            .expect("sent")
            .json()
            .await
            .expect("json")
    }
}

/// What one dashboard saw while it was read.
#[derive(Debug)]
struct Seen {
    stats: usize,
    longest_gap: Duration,
    close: Option<CloseCode>,
}

/// Opens a dashboard and waits for its `connected` message.
async fn dashboard(
    gateway: &Gateway,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = gateway.url("/ws/stats").replace("http", "ws");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let hello = ws.next().await.expect("frame").expect("ok");
    assert!(hello.to_text().expect("text").contains("\"connected\""));
    ws
}

/// Opens `n` dashboards on `gateway` and reads each until `until`, or until it closes.
async fn dashboards(gateway: &Gateway, n: usize) -> Vec<DashboardReader> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(DashboardReader(dashboard(gateway).await));
    }
    out
}

struct DashboardReader(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl DashboardReader {
    async fn read_until(mut self, until: Instant) -> Seen {
        let mut seen = Seen {
            stats: 0,
            longest_gap: Duration::ZERO,
            close: None,
        };
        let mut last = Instant::now();
        while let Ok(frame) = tokio::time::timeout_at(until, self.0.next()).await {
            match frame {
                Some(Ok(Message::Text(text))) if text.contains("\"type\":\"stats\"") => {
                    seen.stats += 1;
                    seen.longest_gap = seen.longest_gap.max(last.elapsed());
                    last = Instant::now();
                }
                Some(Ok(Message::Close(frame))) => {
                    seen.close = frame.map(|f| f.code);
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
        // A stream that went quiet before the end counts its silence as a gap too.
        seen.longest_gap = seen
            .longest_gap
            .max(until.saturating_duration_since(last).min(last.elapsed()));
        seen
    }
}

/// Every command Redis has executed, but the INFO calls that ask.
async fn commands(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .expect("INFO");
    info.lines()
        .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Redis commands per second over `window`.
async fn command_rate(redis: &mut redis::aio::MultiplexedConnection, window: Duration) -> f64 {
    let before = commands(redis).await;
    tokio::time::sleep(window).await;
    (commands(redis).await - before) as f64 / window.as_secs_f64()
}

async fn seed(redis: &mut redis::aio::MultiplexedConnection, keys: &Keys) {
    let _: () = redis::pipe()
        .set(&keys.total_messages, 1234)
        .set(&keys.total_batches, 10)
        .query_async(redis)
        .await
        .expect("SET");
    // Five messages waiting and no worker alive: `no_live_workers` fires after 1 s.
    for i in 0..5 {
        let body = serde_json::to_vec(&MessageRequest::new(i + 1, 1, format!("waiting {i}")))
            .expect("json");
        let envelope = sluice_core::clock::envelope(NewMessage::from_json(&body).expect("valid"));
        let _: () = redis::cmd("LPUSH")
            .arg(&keys.pending_messages)
            .arg(envelope.to_json())
            .query_async(redis)
            .await
            .expect("LPUSH");
    }
}

/// The stats fields that do not move with the clock while nothing is processed.
fn steady(mut stats: Value) -> Value {
    let object = stats.as_object_mut().expect("object");
    object.remove("timestamp");
    object.remove("oldest_pending_age_ms");
    stats
}

#[tokio::test]
async fn gateways_share_only_redis_and_stop_independently() {
    let _machine = crate::MACHINE.read().await;
    let server = RedisServer::start().await.expect("private Redis");
    let keys = Keys::new(&sluice_tests::unique_prefix("gateways"));
    let mut redis = sluice_tests::redis_at(&server.url()).await.expect("redis");
    let events = redis::Client::open(server.url()).expect("client");
    let mut alert_events = events.get_async_pubsub().await.expect("pubsub");
    alert_events
        .subscribe(&keys.alert_events)
        .await
        .expect("subscribe");

    let a = Gateway::start(&server.url(), &keys).await;
    let b = Gateway::start(&server.url(), &keys).await;
    // Their own idle load first: each polls on its own timer, whatever its clients.
    let idle = command_rate(&mut redis, Duration::from_secs(4)).await;

    seed(&mut redis, &keys).await;
    // One firing event in all, published by whichever gateway evaluated first.
    let mut fired = Vec::new();
    let mut messages = alert_events.on_message();
    let deadline = Instant::now() + Duration::from_secs(6);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, messages.next()).await {
        let alert: Value = serde_json::from_slice(message.get_payload_bytes()).expect("json");
        fired.push(alert);
    }
    drop(messages);
    let rules: Vec<_> = fired.iter().map(|a| (&a["rule"], &a["state"])).collect();
    assert_eq!(
        rules,
        [(&Value::from("no_live_workers"), &Value::from("firing"))],
        "{fired:?}"
    );

    // The same stats and the same active alerts from both.
    let (stats_a, stats_b) = (a.get("/stats").await, b.get("/stats").await);
    assert_eq!(stats_a["total_messages"], 1234);
    assert_eq!(stats_a["backlog"], 5);
    assert_eq!(steady(stats_a), steady(stats_b));
    let (alerts_a, alerts_b) = (a.get("/alerts").await, b.get("/alerts").await);
    assert_eq!(
        alerts_a["active"][0]["rule"], "no_live_workers",
        "{alerts_a}"
    );
    assert_eq!(alerts_a, alerts_b);

    // The Redis load does not grow with the dashboards.
    let quiet = command_rate(&mut redis, Duration::from_secs(4)).await;
    let (readers_a, readers_b) = (dashboards(&a, CLIENTS).await, dashboards(&b, CLIENTS).await);
    let busy = command_rate(&mut redis, Duration::from_secs(4)).await;
    eprintln!(
        "two gateways' Redis load: {idle:.1} commands/s idle, {quiet:.1} with an alert active \
         and no dashboards, {busy:.1} with {CLIENTS} dashboards on each"
    );
    assert!(
        busy <= quiet * 1.1 + 1.0,
        "Redis commands/s grew with the dashboards: {quiet:.1} without, {busy:.1} with {}",
        2 * CLIENTS
    );

    // Stopping A: its dashboards are told 1001 (going away); B's never notice.
    let until = Instant::now() + Duration::from_secs(4);
    let mut seen_a = JoinSet::new();
    for reader in readers_a {
        seen_a.spawn(reader.read_until(until));
    }
    let mut seen_b = JoinSet::new();
    for reader in readers_b {
        seen_b.spawn(reader.read_until(until));
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let mut a = a;
    a.service
        .signal(nix::sys::signal::Signal::SIGTERM)
        .expect("signal");
    let status = a
        .service
        .wait(Duration::from_secs(10))
        .await
        .expect("exits");
    assert!(status.success(), "gateway A exited {status:?}");
    for seen in seen_a.join_all().await {
        assert_eq!(seen.close, Some(CloseCode::Away), "{seen:?}");
    }
    for seen in seen_b.join_all().await {
        assert_eq!(seen.close, None, "{seen:?}");
        assert!(
            seen.stats >= 7,
            "a B dashboard got {} stats in 4 s",
            seen.stats
        );
        assert!(
            seen.longest_gap < Duration::from_millis(1_000),
            "a B dashboard waited {:?} between two stats",
            seen.longest_gap
        );
    }
    let after = b.get("/stats").await;
    assert_eq!(after["total_messages"], 1234);
}
