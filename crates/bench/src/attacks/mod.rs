//! `sluice-bench attacks`: the hardening attacks at full scale against a running ingest API and
//! gateway, each reported as a figure (what the service's memory, kernel queues or answers
//! did). Run it against two builds to compare them; the bounded, assertion-checked versions of
//! the same attacks are the `attacks` tests in `tests/e2e`.
//!
//! It talks only to the addresses it is given (loopback in practice), every loop is bounded in
//! count and time, and it stops by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde::Serialize;
use sluice_client::frames::{self as ws, client_frame, client_header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::process::{rss_bytes, send_queues};

mod hardening;
mod third;

/// What to attack.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Ingest API `host:port` and pid.
    pub ingest: (String, u32),
    /// Gateway `host:port` and pid.
    pub gateway: (String, u32),
    /// The services' Redis and key prefix, to publish batch events and count keys.
    pub redis_url: String,
    /// The services' key prefix.
    pub key_prefix: String,
    /// How long the stalled-reader attacks run.
    pub stall_secs: u64,
    /// The ingest API's admin token, for the dead-letter attack.
    pub admin_token: Option<String>,
    /// The services' PostgreSQL, to seed a large channel for the slow-reads attack.
    pub postgres_url: Option<String>,
}

/// One attack's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Which attack.
    pub attack: &'static str,
    /// What happened, in words and numbers.
    pub outcome: String,
}

fn mib(pid: u32) -> f64 {
    rss_bytes(pid).unwrap_or(0) as f64 / 1_048_576.0
}

/// Runs the attacks named in `only` (all when empty), printing each figure as it comes.
pub async fn run(t: &Targets, only: &[String]) -> anyhow::Result<Vec<Figure>> {
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let mut figures = Vec::new();
    let mut note = |attack: &'static str, outcome: String| {
        println!("  {attack:<18}{outcome}");
        figures.push(Figure { attack, outcome });
    };
    if wanted("frame-flood") {
        note("frame-flood", frame_flood(t).await?);
    }
    if wanted("frame-10mb") {
        note("frame-10mb", frame_10mb(t).await?);
    }
    if wanted("fragments") {
        note("fragments", fragmented_ping(t).await?);
    }
    if wanted("ping-flood") {
        note("ping-flood", ping_flood(t).await?);
    }
    if wanted("close-code") {
        note("close-code", close_code(t).await?);
    }
    if wanted("stalled-ws") {
        note("stalled-ws", stalled_ws(t).await?);
    }
    if wanted("stalled-sse") {
        note("stalled-sse", stalled_sse(t).await?);
    }
    if wanted("slow-bodies") {
        note("slow-bodies", slow_bodies(t).await?);
    }
    if wanted("stalled-uploads") {
        note("stalled-uploads", stalled_uploads(t).await?);
    }
    if wanted("parser-errors") {
        note("parser-errors", parser_errors(t).await?);
    }
    if wanted("idempotency") {
        note("idempotency", idempotency(t).await?);
    }
    if wanted("bursts") {
        note("bursts", bursts(t).await?);
    }
    if wanted("hangup-waits") {
        note("hangup-waits", hardening::hangup_waits(t).await?);
    }
    if wanted("waiting-bodies") {
        note("waiting-bodies", hardening::waiting_bodies(t).await?);
    }
    if wanted("batch-memory") {
        note("batch-memory", hardening::batch_memory(t).await?);
    }
    if wanted("concurrent-waits") {
        note("concurrent-waits", hardening::concurrent_waits(t).await?);
    }
    if wanted("idempotency-batches") {
        note(
            "idempotency-batches",
            hardening::idempotency_batches(t).await?,
        );
    }
    if wanted("dead-letters") {
        note("dead-letters", hardening::dead_letters(t).await?);
    }
    if wanted("edges") {
        note("edges", hardening::edges(t).await?);
    }
    let named = |name: &str| only.iter().any(|o| o == name);
    third_pass(t, &named, &mut note).await?;
    Ok(figures)
}

/// The attacks of the third pass ([`third`]), each run only when named: they fill the queue,
/// load the machine or need settings of their own (see `crates/bench/README.md`).
async fn third_pass(
    t: &Targets,
    named: &impl Fn(&str) -> bool,
    note: &mut impl FnMut(&'static str, String),
) -> anyhow::Result<()> {
    if named("big-idempotent") {
        note("big-idempotent", third::big_idempotent(t).await?);
    }
    if named("queue-bound") {
        note("queue-bound", third::queue_bound(t).await?);
    }
    if named("hangups") {
        note("hangups", third::hangups(t).await?);
    }
    if named("slow-reads") {
        note("slow-reads", third::slow_reads(t).await?);
    }
    if named("dead-letter-shapes") {
        note("dead-letter-shapes", third::dead_letter_shapes(t).await?);
    }
    if named("admin-guess") {
        note("admin-guess", third::admin_guess(t).await?);
    }
    if named("heavy-batches") {
        note("heavy-batches", third::heavy_batches(t).await?);
    }
    Ok(())
}

/// Receive buffer of the clients that stop reading: small, so the server's side fills fast.
const STALLED_RCVBUF: u32 = 4096;

async fn ws_open(addr: &str, path: &str) -> anyhow::Result<TcpStream> {
    ws::open(addr, path, 0).await
}

/// Reads until a close frame; describes it, or says none came within `timeout`.
async fn close_of<R: AsyncRead + Unpin>(r: &mut R, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    while let Some(frame) =
        ws::next_frame(r, deadline.saturating_duration_since(Instant::now())).await
    {
        if let Some((code, reason)) = frame.close() {
            return format!("close {code} {reason:?}");
        }
    }
    format!("no close frame within {timeout:?}")
}

async fn frame_flood(t: &Targets) -> anyhow::Result<String> {
    let (addr, pid) = &t.gateway;
    let before = mib(*pid);
    let mut ws = ws_open(addr, "/ws/stats").await?;
    ws.write_all(&client_header(true, 2, i64::MAX as u64))
        .await?;
    let (mut reader, mut writer) = ws.into_split();
    let started = Instant::now();
    let flood = tokio::spawn(async move {
        let chunk = vec![0u8; 256 * 1024];
        let mut sent = 0u64;
        while sent < 2 << 30
            && started.elapsed() < Duration::from_secs(10)
            && writer.write_all(&chunk).await.is_ok()
        {
            sent += chunk.len() as u64;
        }
        sent
    });
    let close = tokio::spawn(async move { close_of(&mut reader, Duration::from_secs(12)).await });
    let mut peak = before;
    while !flood.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(mib(*pid));
    }
    let sent = flood.await? >> 20;
    Ok(format!(
        "{}; {sent} MiB pushed in {:.1} s; gateway RSS {before:.0} -> peak {peak:.0} MiB",
        close.await?,
        started.elapsed().as_secs_f64()
    ))
}

async fn frame_10mb(t: &Targets) -> anyhow::Result<String> {
    let mut ws = ws_open(&t.gateway.0, "/ws/stats").await?;
    let started = Instant::now();
    ws.write_all(&client_header(true, 1, 10_000_000)).await?;
    let close = close_of(&mut ws, Duration::from_secs(3)).await;
    Ok(format!(
        "header only: {close} after {:?}",
        started.elapsed()
    ))
}

async fn fragmented_ping(t: &Targets) -> anyhow::Result<String> {
    let mut ws = ws_open(&t.gateway.0, "/ws/stats?topics=batches").await?;
    ws::next_frame(&mut ws, Duration::from_secs(2)).await;
    let mut bytes = client_frame(false, 1, br#"{"type":"pi"#);
    bytes.extend(client_frame(true, 0, br#"ng","id":"split"}"#));
    ws.write_all(&bytes).await?;
    while let Some(frame) = ws::next_frame(&mut ws, Duration::from_secs(2)).await {
        match frame.opcode {
            1 => return Ok(format!("answer: {}", frame.text())),
            8 => break,
            _ => {}
        }
    }
    Ok("no answer to a ping split in two fragments within 2 s".into())
}

async fn ping_flood(t: &Targets) -> anyhow::Result<String> {
    let mut ws = ws_open(&t.gateway.0, "/ws/stats?topics=batches").await?;
    let pings: Vec<u8> = (0..1_000)
        .flat_map(|_| client_frame(true, 9, b"p"))
        .collect();
    ws.write_all(&pings).await?;
    let (mut pongs, mut close) = (0, "no close".to_owned());
    while let Some(frame) = ws::next_frame(&mut ws, Duration::from_secs(2)).await {
        match frame.opcode {
            10 => pongs += 1,
            8 => {
                close = format!("close {}", frame.close().map_or(0, |(code, _)| code));
                break;
            }
            _ => {}
        }
    }
    Ok(format!("1,000 pings at once: {pongs} pongs, {close}"))
}

async fn close_code(t: &Targets) -> anyhow::Result<String> {
    let mut ws = ws_open(&t.gateway.0, "/ws/stats?topics=batches").await?;
    ws.write_all(&client_frame(true, 8, &[0x03, 0xed])).await?;
    Ok(format!(
        "close code 1005 sent: {}",
        close_of(&mut ws, Duration::from_secs(3)).await
    ))
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Holds `clients` connections that never read while `feed` runs, then reports the kernel
/// queues and how many connections the server still had open.
async fn stalled<F>(t: &Targets, clients: Vec<TcpStream>, feed: F) -> anyhow::Result<String>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let port = port_of(&t.gateway.0);
    let count = clients.len();
    let sampler = async {
        let (mut peak_sum, mut peak_one) = (0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(t.stall_secs);
        while Instant::now() < deadline {
            let queues = send_queues(port);
            peak_sum = peak_sum.max(queues.iter().sum());
            peak_one = peak_one.max(queues.iter().copied().max().unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        (peak_sum, peak_one)
    };
    let (feed, (peak_sum, peak_one)) = tokio::join!(feed, sampler);
    feed?;
    let open = send_queues(port).len();
    drop(clients);
    Ok(format!(
        "{count} clients for {} s: kernel send queues peaked at {:.1} MiB in all, {} KiB on one socket; {open} server-side sockets still open at the end",
        t.stall_secs,
        peak_sum as f64 / 1_048_576.0,
        peak_one / 1024
    ))
}

async fn stalled_ws(t: &Targets) -> anyhow::Result<String> {
    let path = "/ws/stats?topics=stats,batches&include_ids=true&interval_ms=100";
    let mut clients = Vec::new();
    for _ in 0..2_000 {
        clients.push(ws::open(&t.gateway.0, path, STALLED_RCVBUF).await?);
    }
    let redis_url = t.redis_url.clone();
    let channel = format!("{}batch_events", t.key_prefix);
    let secs = t.stall_secs;
    let feed = async move {
        let mut redis = redis::Client::open(redis_url)?
            .get_multiplexed_async_connection()
            .await?;
        let event = crate::attacks::batch_event(5_000);
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            let _: () = redis.publish(&channel, &event).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::Ok(())
    };
    stalled(t, clients, feed).await
}

async fn stalled_sse(t: &Targets) -> anyhow::Result<String> {
    let mut clients = Vec::new();
    for _ in 0..2_000 {
        let mut stream = ws::connect(&t.gateway.0, STALLED_RCVBUF).await?;
        let request = format!(
            "GET /stats/stream?interval_ms=100 HTTP/1.1\r\nHost: {}\r\n\r\n",
            t.gateway.0
        );
        stream.write_all(request.as_bytes()).await?;
        clients.push(stream);
    }
    stalled(t, clients, async { anyhow::Ok(()) }).await
}

/// A batch event with `ids` message ids, as workers publish it.
pub fn batch_event(ids: usize) -> String {
    serde_json::json!({
        "batch_id": uuid::Uuid::now_v7(),
        "worker_id": "attack",
        "size": ids,
        "inserted": ids,
        "committed_at": chrono::Utc::now(),
        "message_ids": (0..ids).map(|_| uuid::Uuid::now_v7()).collect::<Vec<_>>(),
    })
    .to_string()
}

const POST_HEAD: &str = "POST /messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n";

/// Sends `head` then one byte every `every`, for at most `limit`; returns when the server
/// answered and when it closed.
async fn drip(
    addr: &str,
    head: String,
    every: Duration,
    limit: Duration,
) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(head.as_bytes()).await?;
    let started = Instant::now();
    let (mut answered, mut buf) = (None, [0u8; 4096]);
    while started.elapsed() < limit {
        if head.contains("chunked") && stream.write_all(b"1\r\n \r\n").await.is_err() {
            break;
        }
        match tokio::time::timeout(every, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                let status = answered
                    .map_or("no answer".to_owned(), |(s, at): (String, Duration)| {
                        format!("{s} after {at:.1?}")
                    });
                return Ok(format!("{status}, closed after {:.1?}", started.elapsed()));
            }
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                answered.get_or_insert((text, started.elapsed()));
            }
            Err(_) => {}
        }
    }
    let status = answered.map_or("no answer".to_owned(), |(s, at)| {
        format!("{s} after {at:.1?}")
    });
    Ok(format!("{status}, still open after {limit:?}"))
}

async fn slow_bodies(t: &Targets) -> anyhow::Result<String> {
    let addr = &t.ingest.0;
    let limit = Duration::from_secs(60);
    let chunked = drip(
        addr,
        format!("{POST_HEAD}Transfer-Encoding: chunked\r\n\r\n"),
        Duration::from_secs(5),
        limit,
    );
    let short = drip(
        addr,
        format!("{POST_HEAD}Content-Length: 100\r\n\r\n{{\"user_id\""),
        Duration::from_secs(5),
        limit,
    );
    let (chunked, short) = tokio::join!(chunked, short);
    Ok(format!(
        "a chunk every 5 s: {}; 10 of 100 bytes: {}",
        chunked?, short?
    ))
}

async fn stalled_uploads(t: &Targets) -> anyhow::Result<String> {
    let (addr, pid) = &t.ingest;
    let before = mib(*pid);
    let head = "POST /messages/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 8388608\r\n\r\n";
    let mut uploads = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(head.as_bytes()).await?;
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            stream.write_all(&[b' '; 4 << 20]),
        )
        .await;
        uploads.push(stream);
    }
    let mut peak = before;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(mib(*pid));
    }
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for mut stream in uploads {
        let mut buf = [0u8; 12];
        let status =
            match tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut buf)).await {
                Ok(Ok(_)) => String::from_utf8_lossy(&buf[9..12]).into_owned(),
                _ => "none yet".into(),
            };
        *answers.entry(status).or_default() += 1;
    }
    Ok(format!(
        "100 uploads declaring 8 MiB, up to 4 MiB sent each: ingest RSS {before:.0} -> peak {peak:.0} MiB; answers {answers:?}"
    ))
}

async fn parser_errors(t: &Targets) -> anyhow::Result<String> {
    let long = format!(
        "GET /messages?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100_000)
    );
    let cases = [
        (
            "bad Content-Length",
            "POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_owned(),
        ),
        (
            "raw space",
            "GET /mess ages HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        ),
        ("100 KB query", long),
    ];
    let mut out = Vec::new();
    for (name, request) in cases {
        let mut stream = TcpStream::connect(&t.ingest.0).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        out.push(format!(
            "{name}: {} with {} body bytes",
            head.get(9..12).unwrap_or("?"),
            body.len()
        ));
    }
    Ok(out.join("; "))
}

async fn idempotency(t: &Targets) -> anyhow::Result<String> {
    let mut redis = redis::Client::open(t.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let used = |info: String| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let before = used(
        redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut redis)
            .await?,
    );
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let run = format!("{}", uuid::Uuid::now_v7());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (addr, next, run) = (t.ingest.0.clone(), Arc::clone(&next), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await?;
            let body = r#"{"user_id": 1, "channel_id": 1, "content": "k"}"#;
            let mut buf = vec![0u8; 4096];
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= 150_000 {
                    return anyhow::Ok(());
                }
                let request = format!(
                    "{POST_HEAD}Idempotency-Key: {run}-{i}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(request.as_bytes()).await?;
                let n = stream.read(&mut buf).await?;
                anyhow::ensure!(n > 0, "closed");
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let after = used(
        redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut redis)
            .await?,
    );
    let pattern = format!("{}idempotency:{run}-*", t.key_prefix);
    let mut kept = 0usize;
    let mut iter: redis::AsyncIter<String> = redis.scan_match(&pattern).await?;
    while iter.next_item().await.is_some() {
        kept += 1;
    }
    Ok(format!(
        "150,000 distinct keys in {:.1} s: {kept} kept, Redis used_memory +{:.1} MiB",
        started.elapsed().as_secs_f64(),
        after.saturating_sub(before) as f64 / 1_048_576.0
    ))
}

async fn bursts(t: &Targets) -> anyhow::Result<String> {
    let (addr, pid) = &t.ingest;
    let body = r#"{"user_id": 1, "channel_id": 1, "content": "burst"}"#;
    let request: Arc<str> =
        format!("{POST_HEAD}Content-Length: {}\r\n\r\n{body}", body.len()).into();
    let mut rss = vec![format!("{:.0}", mib(*pid))];
    for _ in 0..4 {
        let mut tasks = Vec::new();
        for _ in 0..10_000 {
            let (addr, request) = (addr.clone(), Arc::clone(&request));
            tasks.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(&addr).await.ok()?;
                stream.write_all(request.as_bytes()).await.ok()?;
                let mut buf = [0u8; 512];
                stream.read(&mut buf).await.ok()
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        rss.push(format!("{:.0}", mib(*pid)));
    }
    tokio::time::sleep(Duration::from_secs(15)).await;
    Ok(format!(
        "4 bursts of 10,000 connections: ingest RSS {} MiB (start, 3 s after each burst), {:.0} MiB after 15 s more idle",
        rss.join(" -> "),
        mib(*pid)
    ))
}
