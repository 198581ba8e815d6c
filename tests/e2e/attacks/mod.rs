//! Attacks on purpose, at a scale this machine runs in seconds, each asserting the bounded
//! outcome: the connection is closed, memory stays within a stated bound, the answer has a JSON
//! body, and a legitimate client keeps being served throughout.

mod gateway;
mod ingest;
mod waiting;

use std::time::Duration;

use sluice_client::frames as ws;
use sluice_tests::TestDb;
use sluice_tests::process::{Service, free_port, wait_http_ok};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One service under attack, on its own key prefix and database.
pub struct Target {
    pub service: Service,
    pub port: u16,
    pub prefix: String,
    pub db: TestDb,
}

impl Target {
    /// Starts `binary` (`sluice-ingest` or `sluice-gateway`) with `extra` settings.
    pub async fn start(binary: &str, tag: &str, extra: &[(&str, &str)]) -> Target {
        let db = TestDb::create(tag).await.expect("database");
        let prefix = sluice_tests::unique_prefix(tag);
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let section = if binary == "sluice-ingest" {
            "INGEST__LISTEN"
        } else {
            "GATEWAY__LISTEN"
        };
        let mut settings = vec![(section, listen.as_str())];
        settings.extend_from_slice(extra);
        let env = sluice_tests::env_for(&prefix, &db, &settings);
        let mut service = Service::start(binary, &env, &[]).expect("service starts");
        wait_http_ok(
            &mut service,
            &format!("http://{listen}/health"),
            Duration::from_secs(20),
        )
        .await
        .expect("service up");
        Target {
            service,
            port,
            prefix,
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Resident memory in MiB.
    pub fn rss_mib(&self) -> f64 {
        let pid = self.service.pid().expect("pid") as u32;
        sluice_bench::process::rss_bytes(pid).expect("rss") as f64 / (1 << 20) as f64
    }

    /// Open sockets of the process (connections, listeners, Redis and PostgreSQL clients).
    pub fn sockets(&self) -> usize {
        let pid = self.service.pid().expect("pid");
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fd dir")
            .filter_map(Result::ok)
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
            .count()
    }

    /// `GET /health` as JSON.
    pub async fn health(&self) -> serde_json::Value {
        reqwest::get(self.url("/health"))
            .await
            .expect("health answers")
            .json()
            .await
            .expect("health is JSON")
    }

    pub async fn stop(mut self) {
        let _ = self.service.stop(Duration::from_secs(15)).await;
        let _ = sluice_tests::delete_prefix(&self.prefix).await;
        let _ = self.db.drop_db().await;
    }
}

/// A TCP connection to the target's `port` whose receive buffer is `rcvbuf` bytes (0: the
/// kernel's default).
pub async fn connect(port: u16, rcvbuf: u32) -> TcpStream {
    ws::connect(&format!("127.0.0.1:{port}"), rcvbuf)
        .await
        .expect("connects")
}

/// Opens a WebSocket by hand on `path`, returning the stream right after the 101 head.
pub async fn ws_open(port: u16, path: &str, rcvbuf: u32) -> TcpStream {
    ws::open(&format!("127.0.0.1:{port}"), path, rcvbuf)
        .await
        .expect("WebSocket opens")
}

pub use sluice_client::frames::client_frame as frame;

/// A masked frame header declaring `len` bytes (FIN set), without its payload.
pub fn header_only(opcode: u8, len: u64) -> Vec<u8> {
    sluice_client::frames::client_header(true, opcode, len)
}

pub use sluice_client::frames::next_frame;

/// Reads frames until a close frame arrives; returns its code and reason and the text frames
/// before it.
pub async fn until_close(
    stream: &mut TcpStream,
    timeout: Duration,
) -> (Option<(u16, String)>, Vec<String>) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut texts = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_frame(stream, left).await {
            Some(f) if f.opcode == 8 => return (f.close(), texts),
            Some(f) if f.opcode == 1 => texts.push(f.text()),
            Some(_) => {}
            None => return (None, texts),
        }
    }
}

/// Sends `request` on a fresh connection and reads the whole answer until the server closes
/// or `timeout` passes.
pub async fn raw_http(port: u16, request: &[u8], timeout: Duration) -> String {
    let mut stream = connect(port, 0).await;
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(timeout, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Status and JSON body of a raw answer.
pub fn status_and_json(answer: &str) -> (u16, serde_json::Value) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, json)
}

pub use sluice_bench::process::send_queues;

/// The largest value `sample` gives over `duration`, sampled every 100 ms.
pub async fn peak_while<F: FnMut() -> f64>(duration: Duration, mut sample: F) -> f64 {
    let deadline = tokio::time::Instant::now() + duration;
    let mut peak = sample();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(sample());
    }
    peak
}
