//! A gateway on port 0 with its own key prefix, and a small WebSocket client.

use std::time::Duration;

use futures_util::StreamExt;
use sluice_core::{CancellationToken, Keys};
use sluice_gateway::Application;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct TestGateway {
    pub port: u16,
    pub keys: Keys,
    pub redis: redis::aio::MultiplexedConnection,
    pub shutdown: CancellationToken,
    pub stopped: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn spawn_gateway(extra: &[(&str, &str)]) -> TestGateway {
    let prefix = sluice_tests::unique_prefix("gateway");
    let mut env = vec![
        ("SLUICE__REDIS__URL".to_owned(), sluice_tests::redis_url()),
        ("SLUICE__REDIS__KEY_PREFIX".to_owned(), prefix.clone()),
        (
            "SLUICE__GATEWAY__LISTEN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| (format!("SLUICE__{k}"), (*v).to_owned())),
    );
    let settings = sluice_core::Settings::load(None, env).expect("settings");
    let shutdown = CancellationToken::new();
    let app = Application::build(&settings, shutdown.clone()).expect("gateway builds");
    let port = app.port();
    let stopped = tokio::spawn(app.run_until_stopped());
    TestGateway {
        port,
        keys: Keys::new(&prefix),
        redis: sluice_tests::redis().await.expect("redis"),
        shutdown,
        stopped,
    }
}

impl TestGateway {
    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn connect(&self, query: &str) -> Ws {
        let url = format!("ws://127.0.0.1:{}/ws/stats{query}", self.port);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket upgrade");
        ws
    }

    pub async fn set(&mut self, key: &str, value: i64) {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query_async(&mut self.redis)
            .await
            .expect("SET");
    }

    /// Waits past one poller tick, so the next snapshot reflects what the test just wrote (the
    /// poller reads all the time, so a snapshot taken before the write may be current).
    pub async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    pub async fn lrange(&mut self, key: &str) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.redis)
            .await
            .expect("LRANGE")
    }

    pub async fn cleanup(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.stopped).await;
        sluice_tests::delete_prefix(self.keys.prefix())
            .await
            .expect("cleanup");
    }
}

/// The next message of `kind` (skipping other messages and pings), within `timeout`.
pub async fn next_of(ws: &mut Ws, kind: &str, timeout: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let message = next_json(ws, remaining).await;
        if message["type"] == kind {
            return message;
        }
    }
}

/// Sends a JSON text message.
pub async fn send_json(ws: &mut Ws, value: serde_json::Value) {
    use futures_util::SinkExt;
    ws.send(Message::Text(value.to_string().into()))
        .await
        .expect("sent");
}

/// The next text frame as JSON (skipping pings), within `timeout`.
pub async fn next_json(ws: &mut Ws, timeout: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("valid frame");
        match frame {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str()).expect("JSON text frame");
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads until a close frame and returns its code.
pub async fn close_code(ws: &mut Ws, timeout: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Close(None))) => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("connection failed instead of closing: {e}"),
            None => panic!("stream ended without a close frame"),
        }
    }
}
