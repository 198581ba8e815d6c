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

use crate::tls::{Tls, host_of};

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
    /// Requests answered otherwise, or failed (and connections that broke before sending).
    pub failed: u64,
    /// Of those, requests answered with another status.
    pub refused: u64,
    /// Of those, requests sent whose answer never came (the connection broke).
    pub unanswered: u64,
    /// Latency of each successful request, in milliseconds (for paced runs, from the time it
    /// was due, so queueing in the client counts).
    pub latencies_ms: Vec<f64>,
    /// Final answers other than the expected status, by status.
    pub statuses: std::collections::BTreeMap<u16, u64>,
    /// 503 answers retried (with the same `Idempotency-Key`).
    pub retried: u64,
    /// Ids from the answers, when asked to keep them.
    pub bodies: Vec<Bytes>,
}

impl LoadResult {
    fn add(&mut self, other: Self) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.refused += other.refused;
        self.unanswered += other.unanswered;
        self.latencies_ms.extend(other.latencies_ms);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.retried += other.retried;
        self.bodies.extend(other.bodies);
    }
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
    /// HTTPS, trusting these certificates; `None` for plain HTTP. Each connection does its
    /// handshake once, before its first request.
    pub tls: Option<Tls>,
    /// With `Some(run)`, request `i` carries `Idempotency-Key: <run>-<i>` and a 503 is retried
    /// with the same key ([`RETRIES`] times at most, backing off), so a retry never queues a
    /// message twice.
    pub idempotent: Option<String>,
}

/// Most retries of one request answered 503, when [`LoadConfig::idempotent`] is set.
pub const RETRIES: u32 = 8;

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
    let start = Instant::now();
    let plan = Arc::new(Plan {
        config: config.clone(),
        body,
        next: AtomicU64::new(0),
        deadline: start + config.duration,
        schedule: config.rate.map(|rate| Schedule::new(start, rate)),
        progress,
    });
    // One thread per core, each running its share of the connections on a runtime of its
    // own: a response then wakes a task on the thread that reads it, never one on another
    // thread (which costs a futex call and a context switch per request, CPU the server under
    // test does not get on a small machine).
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(config.connections.max(1));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let share = config.connections / threads + usize::from(t < config.connections % threads);
        let (plan, addr) = (Arc::clone(&plan), config.addr.clone());
        let tls = config.tls.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(move || {
                let _ = done.send(run_share(plan, addr, tls, share));
            })
            .context("starting a load thread")?;
        handles.push(result);
    }
    let mut total = LoadResult::default();
    for handle in handles {
        total.add(handle.await.context("a load thread panicked")??);
    }
    Ok(total)
}

/// Runs `connections` connections of `plan` on a single-threaded runtime, on this thread.
fn run_share<F>(
    plan: Arc<Plan<F>>,
    addr: String,
    tls: Option<Tls>,
    connections: usize,
) -> anyhow::Result<LoadResult>
where
    F: Fn(u64) -> Bytes + Send + Sync + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a load runtime")?;
    runtime.block_on(async move {
        let mut tasks = Vec::with_capacity(connections);
        for _ in 0..connections {
            let sender = connect(&addr, tls.as_ref()).await?;
            tasks.push(tokio::spawn(Arc::clone(&plan).drive(sender)));
        }
        let mut total = LoadResult::default();
        for task in tasks {
            total.add(task.await??);
        }
        Ok(total)
    })
}

/// One keep-alive HTTP/1.1 connection to `addr`, over TLS with `tls`.
async fn connect<B>(
    addr: &str,
    tls: Option<&Tls>,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {addr}: {}", crate::api::explain(&e)))?;
    stream.set_nodelay(true)?;
    let Some(tls) = tls else {
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        return Ok(sender);
    };
    let stream = tls
        .connect(host_of(addr), stream)
        .await
        .map_err(|e| anyhow::anyhow!("TLS to {addr}: {}", crate::api::explain(&e)))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// What every connection of one run shares: the requests are numbered from `next`.
struct Plan<F> {
    config: LoadConfig,
    body: F,
    next: AtomicU64,
    deadline: Instant,
    schedule: Option<Schedule>,
    progress: Arc<Progress>,
}

impl<F: Fn(u64) -> Bytes> Plan<F> {
    /// Sends requests on one connection until the plan is done or the connection fails.
    async fn drive(
        self: Arc<Self>,
        mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    ) -> anyhow::Result<LoadResult> {
        let mut result = LoadResult::default();
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(due) = self.due(i).await else {
                break;
            };
            let Some((status, body)) = self.exchange(&mut sender, i, &mut result).await? else {
                result.unanswered += 1;
                self.failed(&mut result);
                break;
            };
            match body {
                Ok(bytes) if status == self.config.expect_status => {
                    result.ok += 1;
                    self.progress.ok.fetch_add(1, Ordering::Relaxed);
                    result
                        .latencies_ms
                        .push(due.elapsed().as_secs_f64() * 1000.0);
                    if self.config.keep_bodies {
                        // A copy: the body is a slice of the connection's read buffer, and
                        // keeping it would keep that whole buffer, a new one per answer.
                        result.bodies.push(Bytes::copy_from_slice(&bytes));
                    }
                }
                Ok(_) => {
                    result.refused += 1;
                    *result.statuses.entry(status).or_default() += 1;
                    self.failed(&mut result);
                }
                Err(_) => {
                    result.unanswered += 1;
                    self.failed(&mut result);
                }
            }
        }
        Ok(result)
    }

    /// Sends request `i` and reads its answer: its status and body, `None` when the connection
    /// broke. A 503 is sent again with the same `Idempotency-Key`, when the plan has them.
    async fn exchange(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        i: u64,
        result: &mut LoadResult,
    ) -> anyhow::Result<Option<(u16, Result<Bytes, hyper::Error>)>> {
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let request = self.request(i)?;
            if sender.ready().await.is_err() {
                return Ok(None);
            }
            let Ok(response) = sender.send_request(request).await else {
                return Ok(None);
            };
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            let retry = status == 503 && self.config.idempotent.is_some() && attempt < RETRIES;
            if !retry {
                return Ok(Some((status, body)));
            }
            attempt += 1;
            result.retried += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// When request `i` is due (waiting for it on an open loop); `None` past the plan's end.
    async fn due(&self, i: u64) -> Option<Instant> {
        if self.config.requests.is_some_and(|n| i >= n) {
            return None;
        }
        let Some(schedule) = self.schedule else {
            // Closed loop: the next request goes now, with no timer.
            let now = Instant::now();
            return (now < self.deadline).then_some(now);
        };
        let due = schedule.due(i);
        if due >= self.deadline {
            return None;
        }
        tokio::time::sleep_until(due.into()).await;
        Some(due)
    }

    fn request(&self, i: u64) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let config = &self.config;
        let request = config
            .headers
            .iter()
            .fold(hyper::Request::post(&config.path), |r, (k, v)| {
                r.header(*k, v)
            })
            .header("host", &config.addr)
            .header("content-type", "application/json");
        let request = match &config.idempotent {
            Some(run) => request.header("idempotency-key", format!("{run}-{i}")),
            None => request,
        };
        let request = request.body(Full::new((self.body)(i)))?;
        Ok(request)
    }

    fn failed(&self, result: &mut LoadResult) {
        result.failed += 1;
        self.progress.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// `GET {addr}{path}` on a connection of its own (over TLS with `tls`), parsed as JSON (for
/// `/health`).
pub async fn get_json(
    addr: &str,
    tls: Option<&Tls>,
    path: &str,
) -> anyhow::Result<serde_json::Value> {
    let mut sender = connect(addr, tls).await?;
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

    /// A server that answers 503 to the first `failures` requests, then 202; it records each
    /// request's `Idempotency-Key`.
    async fn flaky_server(failures: usize) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let keys = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&keys);
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let n = socket.read(&mut chunk).await.expect("read");
                if n == 0 {
                    return;
                }
                buffer.extend_from_slice(&chunk[..n]);
                // Each request: a head and a small body, taken whole from the buffer.
                while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buffer.len() < end + 4 + length {
                        break;
                    }
                    let key = head
                        .lines()
                        .find_map(|l| l.strip_prefix("idempotency-key: "))
                        .unwrap_or_default()
                        .to_owned();
                    buffer.drain(..end + 4 + length);
                    let count = {
                        let mut keys = seen.lock().expect("lock");
                        keys.push(key);
                        keys.len()
                    };
                    let (status, body) = if count <= failures {
                        ("503 Service Unavailable", "{}")
                    } else {
                        (
                            "202 Accepted",
                            r#"{"message_id":"01936f0e-9a4b-7c12-8d3e-6f1a2b3c4d5e"}"#,
                        )
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    socket.write_all(answer.as_bytes()).await.expect("write");
                }
            }
        });
        (addr, keys)
    }

    fn config(addr: String, idempotent: Option<String>) -> LoadConfig {
        LoadConfig {
            addr,
            path: "/messages".into(),
            connections: 1,
            duration: Duration::from_secs(30),
            requests: Some(1),
            rate: None,
            expect_status: 202,
            keep_bodies: true,
            headers: Vec::new(),
            tls: None,
            idempotent,
        }
    }

    #[tokio::test]
    async fn a_503_is_sent_again_under_the_same_key_until_it_is_accepted() {
        let (addr, keys) = flaky_server(2).await;
        let config = config(addr, Some("run".into()));
        let result = run(&config, Arc::default(), |_| Bytes::from_static(b"{}"))
            .await
            .expect("ran");
        assert_eq!((result.ok, result.retried, result.refused), (1, 2, 0));
        let keys = keys.lock().expect("lock").clone();
        assert_eq!(keys, ["run-0", "run-0", "run-0"], "one key, three times");
    }

    #[tokio::test]
    async fn without_keys_a_503_is_counted_not_retried() {
        let (addr, keys) = flaky_server(1).await;
        let result = run(&config(addr, None), Arc::default(), |_| {
            Bytes::from_static(b"{}")
        })
        .await
        .expect("ran");
        assert_eq!((result.ok, result.retried, result.refused), (0, 0, 1));
        assert_eq!(result.statuses.get(&503), Some(&1));
        assert_eq!(keys.lock().expect("lock").as_slice(), [""]);
    }
}
