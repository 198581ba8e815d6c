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
    let rss_before = config.gateway_pid.map(process::rss_bytes).transpose()?;
    let health = health_addr(&config.url);
    let heap_before = allocated_bytes(health.as_deref()).await;
    let (phase_tx, phase_rx) = watch::channel(Phase::Warmup);
    let phase_rx = Arc::new(phase_rx);
    let mut tasks = Vec::with_capacity(config.clients);
    let mut established = 0;
    for wave in (0..config.clients)
        .collect::<Vec<_>>()
        .chunks(config.connect_batch.max(1))
    {
        let connects: Vec<_> = wave
            .iter()
            .map(|_| {
                tokio_tungstenite::connect_async_with_config(
                    config.url.clone(),
                    Some(client_config()),
                    false,
                )
            })
            .collect();
        for connected in futures_util::future::join_all(connects).await {
            match connected {
                Ok((ws, _)) => {
                    established += 1;
                    tasks.push(tokio::spawn(client(ws, Arc::clone(&phase_rx))));
                }
                Err(e) => eprintln!("sluice-bench: connection failed: {e}"),
            }
        }
    }
    tokio::time::sleep(config.warmup).await;

    let mut redis = match &config.redis_url {
        // Generous timeouts: the machine is busy delivering to every client while we ask.
        Some(url) => Some(
            redis::Client::open(url.as_str())?
                .get_multiplexed_async_connection_with_config(
                    &redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(10)))
                        .set_response_timeout(Some(Duration::from_secs(10))),
                )
                .await
                .context("connecting to Redis")?,
        ),
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

    let mut skews = Vec::new();
    let mut messages = 0;
    let (mut min_per_client, mut max_per_client) = (u64::MAX, 0);
    for task in tasks {
        let result = task.await.unwrap_or_default();
        if result.connected {
            messages += result.messages;
            min_per_client = min_per_client.min(result.messages);
            max_per_client = max_per_client.max(result.messages);
            skews.extend(result.skews_ms);
        }
    }
    let per_connection = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(before), Some(after)) if established > 0 => {
            Some(after.saturating_sub(before) as f64 / established as f64)
        }
        _ => None,
    };
    let cpu_seconds = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    Ok(FanoutReport {
        clients: config.clients,
        established,
        failed: config.clients - established,
        window_secs: window,
        messages,
        messages_per_sec: rate(messages, window),
        min_messages_per_client: if established == 0 { 0 } else { min_per_client },
        skew_ms: summarize(&skews),
        gateway_rss_bytes: rss_with_clients,
        rss_per_connection_bytes: per_connection(rss_before, rss_with_clients),
        heap_per_connection_bytes: per_connection(heap_before, heap_with_clients),
        gateway_cpu_percent: cpu_seconds.map(|cpu| cpu / window * 100.0),
        gateway_cpu_ms_per_tick: cpu_seconds
            .filter(|_| max_per_client > 0)
            .map(|cpu| cpu * 1_000.0 / max_per_client as f64),
        redis_commands_per_sec: match (commands_before, commands_after) {
            // The second INFO is counted by Redis before it answers; the first was not.
            (Some(before), Some(after)) => Some(rate(after.saturating_sub(before + 1), window)),
            _ => None,
        },
    })
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
    let health = sluice_client::load::get_json(addr?, "/health").await.ok()?;
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
