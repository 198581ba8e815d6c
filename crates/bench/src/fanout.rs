//! `fanout`: N WebSocket dashboards against one gateway.
//!
//! Clients connect in waves, settle for a warm-up, then for the measured window every `stats`
//! message is timed from the gateway's reading (its `timestamp`) to its receipt. Around the
//! window the gateway's RSS and CPU time are read from `/proc`, its allocator's live bytes from
//! `/health`, and Redis's `total_commands_processed` from `INFO stats`, so the report can say
//! what each connection costs and how much Redis load the gateway causes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::process;
use sluice_client::summary::{Summary, rate, summarize};

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    /// `ws://host:port/ws/stats[?…]`.
    pub url: String,
    /// Dashboards to open.
    pub clients: usize,
    /// Connections opened at once while ramping up.
    pub connect_batch: usize,
    /// Pause after the last connection before measuring.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// The gateway's pid, for RSS and CPU (same machine only).
    pub gateway_pid: Option<u32>,
    /// The Redis the gateway reads, for its command rate.
    pub redis_url: Option<String>,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    /// Dashboards asked for.
    pub clients: usize,
    /// Connections the gateway accepted.
    pub established: usize,
    /// Connections refused or failed.
    pub failed: usize,
    /// Length of the measured window in seconds.
    pub window_secs: f64,
    /// `stats` messages received in the window, all clients together.
    pub messages: u64,
    /// The same per second.
    pub messages_per_sec: f64,
    /// Fewest `stats` messages one client received in the window.
    pub min_messages_per_client: u64,
    /// Gateway reading → receipt, in milliseconds.
    pub skew_ms: Option<Summary>,
    /// Gateway RSS with the clients connected, in bytes.
    pub gateway_rss_bytes: Option<u64>,
    /// (RSS with clients − RSS before) / clients, in bytes.
    pub rss_per_connection_bytes: Option<f64>,
    /// (heap allocated with clients − before) / clients, in bytes: what the gateway allocated
    /// for each connection, touched or not (`/health`'s `memory.allocated_bytes`).
    pub heap_per_connection_bytes: Option<f64>,
    /// Gateway CPU over the window, in percent of one core.
    pub gateway_cpu_percent: Option<f64>,
    /// Gateway CPU time per tick, in milliseconds: the window's CPU time over the readings the
    /// best-served client received (every client asks for the poller's own pace, so that is
    /// the ticks the window held).
    pub gateway_cpu_ms_per_tick: Option<f64>,
    /// Redis commands per second over the window (all clients of that Redis; run with nothing
    /// else using it to attribute them to the gateway). The bench's own two `INFO` calls are
    /// subtracted.
    pub redis_commands_per_sec: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Recording,
    Done,
}

#[derive(Default)]
struct ClientResult {
    connected: bool,
    messages: u64,
    skews_ms: Vec<f64>,
}

/// Runs the scenario.
pub async fn run(config: &FanoutConfig) -> anyhow::Result<FanoutReport> {
    let health = health_addr(&config.url);
    let rss_before = config.gateway_pid.map(process::rss_bytes).transpose()?;
    let heap_before = allocated_bytes(health.as_deref()).await;
    let (phase_tx, phase_rx) = watch::channel(Phase::Warmup);
    let tasks = connect_all(config, &Arc::new(phase_rx)).await;
    let established = tasks.len();
    tokio::time::sleep(config.warmup).await;
    let mut redis = match &config.redis_url {
        Some(url) => Some(redis_connection(url).await?),
        None => None,
    };
    let commands_before = match redis.as_mut() {
        Some(conn) => Some(total_commands(conn).await?),
        None => None,
    };
    let cpu_before = config.gateway_pid.map(process::cpu_seconds).transpose()?;
    let started = Instant::now();
    phase_tx.send_replace(Phase::Recording);
    tokio::time::sleep(config.duration).await;
    let rss_with_clients = config.gateway_pid.map(process::rss_bytes).transpose()?;
    let heap_with_clients = allocated_bytes(health.as_deref()).await;
    phase_tx.send_replace(Phase::Done);
    let window = started.elapsed().as_secs_f64();
    let cpu_after = config.gateway_pid.map(process::cpu_seconds).transpose()?;
    let commands_after = match redis.as_mut() {
        Some(conn) => Some(total_commands(conn).await?),
        None => None,
    };
    let clients = Deliveries::gather(tasks).await;
    let per_connection = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(before), Some(after)) if established > 0 => {
            Some(after.saturating_sub(before) as f64 / established as f64)
        }
        _ => None,
    };
    let cpu_seconds = cpu_before
        .zip(cpu_after)
        .map(|(before, after)| after - before);
    Ok(FanoutReport {
        clients: config.clients,
        established,
        failed: config.clients - established,
        window_secs: window,
        messages: clients.messages,
        messages_per_sec: rate(clients.messages, window),
        min_messages_per_client: if established == 0 {
            0
        } else {
            clients.min_per_client
        },
        skew_ms: summarize(&clients.skews),
        gateway_rss_bytes: rss_with_clients,
        rss_per_connection_bytes: per_connection(rss_before, rss_with_clients),
        heap_per_connection_bytes: per_connection(heap_before, heap_with_clients),
        gateway_cpu_percent: cpu_seconds.map(|cpu| cpu / window * 100.0),
        gateway_cpu_ms_per_tick: cpu_seconds
            .filter(|_| clients.max_per_client > 0)
            .map(|cpu| cpu * 1_000.0 / clients.max_per_client as f64),
        // The second INFO is counted by Redis before it answers; the first was not.
        redis_commands_per_sec: commands_before
            .zip(commands_after)
            .map(|(before, after)| rate(after.saturating_sub(before + 1), window)),
    })
}

/// Connects the clients in waves of `connect_batch`, each then running until the phase says
/// done; returns the tasks of those that connected.
async fn connect_all(
    config: &FanoutConfig,
    phase: &Arc<watch::Receiver<Phase>>,
) -> Vec<tokio::task::JoinHandle<ClientResult>> {
    let mut tasks = Vec::with_capacity(config.clients);
    let mut left = config.clients;
    while left > 0 {
        let wave = left.min(config.connect_batch.max(1));
        left -= wave;
        let connects = (0..wave).map(|_| {
            tokio_tungstenite::connect_async_with_config(
                config.url.clone(),
                Some(client_config()),
                false,
            )
        });
        for connected in futures_util::future::join_all(connects).await {
            match connected {
                Ok((ws, _)) => tasks.push(tokio::spawn(client(ws, Arc::clone(phase)))),
                Err(e) => eprintln!("sluice-bench: connection failed: {e}"),
            }
        }
    }
    tasks
}

/// A connection to the gateway's Redis with generous timeouts: the machine is busy delivering
/// to every client while we ask.
async fn redis_connection(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .context("connecting to Redis")
}

/// What the connected clients received.
struct Deliveries {
    messages: u64,
    min_per_client: u64,
    max_per_client: u64,
    skews: Vec<f64>,
}

impl Deliveries {
    async fn gather(tasks: Vec<tokio::task::JoinHandle<ClientResult>>) -> Self {
        let mut all = Self {
            messages: 0,
            min_per_client: u64::MAX,
            max_per_client: 0,
            skews: Vec::new(),
        };
        for task in tasks {
            let result = task.await.unwrap_or_default();
            if result.connected {
                all.messages += result.messages;
                all.min_per_client = all.min_per_client.min(result.messages);
                all.max_per_client = all.max_per_client.max(result.messages);
                all.skews.extend(result.skews_ms);
            }
        }
        all
    }
}

/// A client read buffer sized for `stats` messages. tungstenite's default of 128 KiB is zeroed
/// on every read: at 10,000 clients that memset was two thirds of this tool's CPU, so part of
/// the delivery skew it measured was its own.
fn client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096)
}

async fn client(
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    phase: Arc<watch::Receiver<Phase>>,
) -> ClientResult {
    let mut result = ClientResult {
        connected: true,
        ..ClientResult::default()
    };
    let mut phase = (*phase).clone();
    loop {
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(frame)) = frame else { return result };
                let Message::Text(text) = frame else { continue };
                let now = chrono::Utc::now();
                if *phase.borrow() != Phase::Recording {
                    continue;
                }
                if let Some(taken) = stats_timestamp(text.as_str()) {
                    result.messages += 1;
                    result.skews_ms.push((now - taken).num_microseconds().unwrap_or(0) as f64 / 1000.0);
                }
            }
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Done {
                    let _ = ws.close(None).await;
                    return result;
                }
            }
        }
    }
}

/// The `timestamp` of a `stats` message, without parsing the whole JSON.
pub fn stats_timestamp(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if !text.starts_with(r#"{"type":"stats""#) {
        return None;
    }
    let start = text.find(r#""timestamp":""#)? + r#""timestamp":""#.len();
    let end = start + text[start..].find('"')?;
    chrono::DateTime::parse_from_rfc3339(&text[start..end])
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `host:port` of the gateway behind a `ws://host:port/…` URL, for `/health`.
fn health_addr(url: &str) -> Option<String> {
    let rest = url.strip_prefix("ws://")?;
    Some(rest.split('/').next()?.to_owned())
}

/// The gateway's allocator's live bytes, when `/health` reports them.
async fn allocated_bytes(addr: Option<&str>) -> Option<u64> {
    let health = sluice_client::load::get_json(addr?, None, "/health")
        .await
        .ok()?;
    health["memory"]["allocated_bytes"].as_u64()
}

async fn total_commands(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("stats").query_async(conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no total_commands_processed in INFO stats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_timestamp_of_stats_messages_only() {
        let stats = r#"{"type":"stats","total_messages":1,"timestamp":"2026-11-22T10:00:00.250Z"}"#;
        let t = stats_timestamp(stats).expect("timestamp");
        assert_eq!(t.timestamp_millis() % 1000, 250);
        assert_eq!(
            stats_timestamp(r#"{"type":"connected","timestamp":"2026-11-22T10:00:00Z"}"#),
            None
        );
        assert_eq!(
            stats_timestamp(r#"{"type":"stats","timestamp":"yesterday"}"#),
            None
        );
    }
}
