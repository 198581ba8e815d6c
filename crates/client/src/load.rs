//! A lean HTTP/1.1 load engine: one keep-alive connection per task, each request timed.
//!
//! Used by `ingest`, `ingest-batch`, `e2e` and `send`. Requests are either back to back
//! (closed loop, for throughput) or paced by a [`Schedule`] (open loop, for a fixed offered
//! rate, so a slow server cannot slow the offered load down and hide its latency).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// When request `i` of an open-loop run is due: `start + i / rate`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate: f64,
}

impl Schedule {
    /// `rate` requests per second from `start`.
    pub fn new(start: Instant, rate: f64) -> Self {
        Self { start, rate }
    }

    /// When request `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Requests answered otherwise, or failed.
    pub failed: u64,
    /// Latency of each successful request, in milliseconds (for paced runs, from the time it
    /// was due, so queueing in the client counts).
    pub latencies_ms: Vec<f64>,
    /// Ids from the answers, when asked to keep them.
    pub bodies: Vec<Bytes>,
}

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// `host:port`.
    pub addr: String,
    /// Request path, e.g. `/messages`.
    pub path: String,
    /// Keep-alive connections (tasks).
    pub connections: usize,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many requests in all (`None`: until `duration`).
    pub requests: Option<u64>,
    /// Open loop at this many requests per second (`None`: closed loop).
    pub rate: Option<f64>,
    /// Status counted as success.
    pub expect_status: u16,
    /// Keep the response bodies (for their ids).
    pub keep_bodies: bool,
    /// Extra request headers, e.g. `("prefer", "wait=5")`.
    pub headers: Vec<(&'static str, String)>,
}

/// Live counters, for progress display while a run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    /// Successful requests so far.
    pub ok: AtomicU64,
    /// Failed requests so far.
    pub failed: AtomicU64,
}

/// Runs the load; `body(i)` makes the body of request `i`.
pub async fn run<F>(
    config: &LoadConfig,
    progress: Arc<Progress>,
    body: F,
) -> anyhow::Result<LoadResult>
where
    F: Fn(u64) -> Bytes + Send + Sync + 'static,
{
    let body = Arc::new(body);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + config.duration;
    let schedule = config.rate.map(|rate| Schedule::new(start, rate));
    let mut tasks = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        let stream = tokio::net::TcpStream::connect(&config.addr)
            .await
            .with_context(|| format!("connecting to {}", config.addr))?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let (config, body, next, progress) = (
            config.clone(),
            Arc::clone(&body),
            Arc::clone(&next),
            Arc::clone(&progress),
        );
        tasks.push(tokio::spawn(async move {
            let mut result = LoadResult::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if config.requests.is_some_and(|n| i >= n) {
                    break;
                }
                let due = match schedule {
                    Some(s) => {
                        let due = s.due(i);
                        if due >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        now
                    }
                };
                let request = config
                    .headers
                    .iter()
                    .fold(hyper::Request::post(&config.path), |r, (k, v)| {
                        r.header(*k, v)
                    })
                    .header("host", &config.addr)
                    .header("content-type", "application/json")
                    .body(Full::new(body(i)))?;
                if sender.ready().await.is_err() {
                    result.failed += 1;
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                match sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let bytes = response.into_body().collect().await.map(|b| b.to_bytes());
                        if status == config.expect_status && bytes.is_ok() {
                            result.ok += 1;
                            progress.ok.fetch_add(1, Ordering::Relaxed);
                            result
                                .latencies_ms
                                .push(due.elapsed().as_secs_f64() * 1000.0);
                            if config.keep_bodies
                                && let Ok(bytes) = bytes
                            {
                                result.bodies.push(bytes);
                            }
                        } else {
                            result.failed += 1;
                            progress.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        result.failed += 1;
                        progress.failed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            anyhow::Ok(result)
        }));
    }
    let mut total = LoadResult::default();
    for task in tasks {
        let r = task.await??;
        total.ok += r.ok;
        total.failed += r.failed;
        total.latencies_ms.extend(r.latencies_ms);
        total.bodies.extend(r.bodies);
    }
    Ok(total)
}

/// `GET http://{addr}{path}` on a connection of its own, parsed as JSON (for `/health`).
pub async fn get_json(addr: &str, path: &str) -> anyhow::Result<serde_json::Value> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", addr)
        .body(http_body_util::Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_spaces_requests_evenly() {
        let start = Instant::now();
        let s = Schedule::new(start, 5_000.0);
        assert_eq!(s.due(0), start);
        assert_eq!(s.due(5_000) - start, Duration::from_secs(1));
        assert_eq!(s.due(1) - start, Duration::from_micros(200));
        // 60 s at 100,000/s: the last request is due just before the end.
        let s = Schedule::new(start, 100_000.0);
        assert!(s.due(5_999_999) - start < Duration::from_secs(60));
        assert_eq!(s.due(6_000_000) - start, Duration::from_secs(60));
    }
}
