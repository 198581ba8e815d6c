//! Pipeline scenarios: `ingest`, `ingest-batch`, `drain`, `e2e`, and the ceilings they are
//! compared with (`redis-benchmark` LPUSH, one PostgreSQL `COPY`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::body::Bytes;
use serde::Serialize;
use sluice_core::Keys;
use sluice_proto::message::{Envelope, NewMessage};
use uuid::Uuid;

use crate::cost::{self, CostReport, Meter};
use crate::stages;
use sluice_client::load::{self as http, LoadConfig, Progress};
use sluice_client::sample::{accepted_ids, batch_json, message_json};
use sluice_client::summary::{LatencyPercentiles, Summary, rate, summarize};
use sluice_client::tls::Tls;

/// The body of request `i`: one message, or a batch of `batch` messages.
fn request_body(i: u64, batch: Option<usize>) -> Bytes {
    match batch {
        Some(size) => Bytes::from(batch_json(i, size)),
        None => Bytes::from(message_json(i)),
    }
}

/// A realistic envelope, for prefilling the queue and sizing the ceilings.
pub fn sample_envelope(i: u64) -> Envelope {
    let message = NewMessage::from_json(message_json(i).as_bytes())
        .unwrap_or_else(|e| unreachable!("the sample message is valid: {e}"));
    sluice_core::clock::envelope(message)
}

/// Result of `ingest` and `ingest-batch`.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// Requests answered 202.
    pub requests: u64,
    /// Messages accepted.
    pub messages: u64,
    /// Requests that failed or were answered otherwise.
    pub failed: u64,
    /// Window in seconds.
    pub seconds: f64,
    /// Accepted messages per second.
    pub messages_per_sec: f64,
    /// Request latency in milliseconds.
    pub latency_ms: Option<Summary>,
}

/// How `ingest` reaches the API: over HTTPS with `tls` (`ingest-tls`), with an API key
/// (`ingest-auth`).
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// HTTPS, trusting these certificates.
    pub tls: Option<Tls>,
    /// `Authorization: Bearer` on every request.
    pub key: Option<String>,
}

/// `ingest` (batch `None`) or `ingest-batch`: closed-loop POSTs over keep-alive connections.
pub async fn ingest(
    addr: &str,
    connections: usize,
    duration: Duration,
    batch: Option<usize>,
    reach: Reach,
) -> anyhow::Result<IngestReport> {
    let config = LoadConfig {
        addr: addr.to_owned(),
        path: if batch.is_some() {
            "/messages/batch"
        } else {
            "/messages"
        }
        .into(),
        connections,
        duration,
        requests: None,
        rate: None,
        expect_status: 202,
        keep_bodies: false,
        headers: reach
            .key
            .map(|key| ("authorization", format!("Bearer {key}")))
            .into_iter()
            .collect(),
        tls: reach.tls,
        // Benchmarks measure raw requests: no keys, no retries.
        idempotent: None,
    };
    let started = Instant::now();
    let result = http::run(&config, Arc::new(Progress::default()), move |i| {
        request_body(i, batch)
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let messages = result.ok * batch.unwrap_or(1) as u64;
    Ok(IngestReport {
        requests: result.ok,
        messages,
        failed: result.failed,
        seconds,
        messages_per_sec: rate(messages, seconds),
        latency_ms: summarize(&result.latencies_ms),
    })
}

/// Where the pipeline's stores are, for scenarios that look inside.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Redis URL.
    pub redis_url: String,
    /// Key prefix the services use.
    pub key_prefix: String,
    /// The services' PostgreSQL database.
    pub postgres_url: String,
}

impl Stores {
    async fn redis(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        // Generous timeouts: these connections watch a machine under full load.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(10)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        Ok(redis::Client::open(self.redis_url.as_str())?
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }

    async fn postgres(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.postgres_url, tokio_postgres::NoTls)
                .await
                .context("connecting to PostgreSQL")?;
        tokio::spawn(connection);
        Ok(client)
    }
}

/// The pid of the services' PostgreSQL server (its postmaster, on this machine): the parent
/// of a backend, read while the backend lives.
pub async fn postgres_server_pid(stores: &Stores) -> anyhow::Result<u32> {
    let db = stores.postgres().await?;
    let backend: i32 = db.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    cost::parent_of(u32::try_from(backend)?)
}

/// Result of `drain`.
#[derive(Debug, Clone, Serialize)]
pub struct DrainReport {
    /// Messages prefilled and persisted.
    pub messages: u64,
    /// Workers that drained them.
    pub workers: usize,
    /// From the first worker's start to `total_messages` reaching `messages`.
    pub seconds: f64,
    /// Messages persisted per second.
    pub messages_per_sec: f64,
}

/// `drain`: prefills `messages` envelopes, starts `workers` worker processes, and times them
/// until every message is counted.
pub async fn drain(
    stores: &Stores,
    messages: u64,
    workers: usize,
    worker_bin: &std::path::Path,
    worker_env: &[(String, String)],
) -> anyhow::Result<DrainReport> {
    let keys = Keys::new(&stores.key_prefix);
    let mut redis = stores.redis().await?;
    let before: u64 = redis::cmd("GET")
        .arg(&keys.total_messages)
        .query_async::<Option<u64>>(&mut redis)
        .await?
        .unwrap_or(0);
    let mut pushed = 0;
    while pushed < messages {
        let chunk = (messages - pushed).min(1_000);
        let entries: Vec<Vec<u8>> = (pushed..pushed + chunk)
            .map(|i| sample_envelope(i).to_json())
            .collect();
        let _: () = redis::cmd("LPUSH")
            .arg(&keys.pending_messages)
            .arg(entries)
            .query_async(&mut redis)
            .await?;
        pushed += chunk;
    }
    let started = Instant::now();
    let mut children = Vec::new();
    for _ in 0..workers {
        children.push(
            tokio::process::Command::new(worker_bin)
                .envs(worker_env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", worker_bin.display()))?,
        );
    }
    let seconds = loop {
        let total: u64 = redis::cmd("GET")
            .arg(&keys.total_messages)
            .query_async::<Option<u64>>(&mut redis)
            .await?
            .unwrap_or(0);
        if total >= before + messages {
            break started.elapsed().as_secs_f64();
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("workers did not drain {messages} messages within an hour");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for child in &mut children {
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for child in &mut children {
        let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    }
    Ok(DrainReport {
        messages,
        workers,
        seconds,
        messages_per_sec: rate(messages, seconds),
    })
}

/// Result of `e2e`.
#[derive(Debug, Clone, Serialize)]
pub struct E2eReport {
    /// Messages per second offered.
    pub offered_per_sec: f64,
    /// Messages per second accepted (202) over the run.
    pub accepted_per_sec: f64,
    /// Messages per second persisted while the load ran (`total_messages` at its end minus at
    /// its start, over the run).
    pub persisted_per_sec: f64,
    /// Seconds from the end of the load until every accepted message was counted.
    pub backlog_secs: f64,
    /// Messages accepted.
    pub accepted: u64,
    /// Requests refused or failed.
    pub failed: u64,
    /// Run length in seconds.
    pub seconds: f64,
    /// Longest `pending_messages` seen (sampled every 100 ms).
    pub queue_max: u64,
    /// `pending_messages` at the end of the run, before the drain.
    pub queue_at_end: u64,
    /// Whether the queue stayed bounded: at the end it held less than one second of offered
    /// load.
    pub queue_bounded: bool,
    /// POST → commit (`created_at` of each row to its batch's `committed_at`), in
    /// milliseconds.
    pub commit_latency_ms: Option<LatencyPercentiles>,
    /// Where POST → recorded went, stage by stage ([`stages`]).
    pub stages_ms: stages::Stages,
    /// From when each request was due until its answer (202, or 201 with `--wait`), in
    /// milliseconds.
    pub answer_latency_ms: Option<LatencyPercentiles>,
    /// CPU per message, process by process, when measured.
    pub cost: Option<CostReport>,
}

/// The load of an `e2e` run.
#[derive(Debug, Clone, Copy)]
pub struct E2eLoad {
    /// Messages per second offered.
    pub rate_per_sec: f64,
    /// How long the load runs.
    pub duration: Duration,
    /// Keep-alive connections.
    pub connections: usize,
    /// Messages per request (`None`: single-message POSTs).
    pub batch: Option<usize>,
    /// Send `Prefer: wait=N`: a request succeeds when answered 201 (persisted).
    pub wait_secs: Option<u64>,
    /// Send each request with an `Idempotency-Key` (and retry a 503 under it), as `sluice
    /// send` does: the ingest API's idempotent path.
    pub idempotent: bool,
}

/// `e2e`: paced POSTs at `rate` messages per second (single messages, or batches of `batch`)
/// through ingest, workers and PostgreSQL.
///
/// With a `meter`, each of its processes' CPU is read when the load starts and once every
/// accepted message is counted: [`E2eReport::cost`].
pub async fn e2e(
    addr: &str,
    stores: &Stores,
    load: E2eLoad,
    meter: Option<&Meter>,
) -> anyhow::Result<E2eReport> {
    let keys = Keys::new(&stores.key_prefix);
    // Every message of this run was created after this (a margin for the ingest host's clock).
    // The checks join the ids (the array appears once in the plan) and are bounded by it, so
    // they read only the partitions this run wrote: an `id = ANY($1)` of millions of ids over a
    // partitioned table copies the array into every partition's scan, and a parallel plan of
    // that outgrows PostgreSQL's 1 GB limit (or the machine's memory).
    let not_before = chrono::Utc::now() - chrono::TimeDelta::seconds(60);
    let sampler = QueueSampler::start(stores.redis().await?, keys.pending_messages.clone());
    let mut redis = stores.redis().await?;
    // Earlier load still draining would be counted as this run's.
    wait_idle(&mut redis, &keys).await?;
    let total_before = total_messages(&mut redis, &keys).await?;
    let listener = stages::Listener::start(&stores.redis_url, &keys.batch_events).await?;
    let cpu_before = meter.map(Meter::read).transpose()?;
    let tool_before = cost::load_tool_seconds()?;
    let started = Instant::now();
    let batch = load.batch;
    let result = http::run(
        &e2e_config(addr, &load),
        Arc::new(Progress::default()),
        move |i| request_body(i, batch),
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let tool = (tool_before, cost::load_tool_seconds()?);
    let load_ended = Instant::now();
    let total_at_end = total_messages(&mut redis, &keys).await?;
    let (queue_max, queue_at_end) = sampler.finish().await?;
    let ids = accepted_ids(&result.bodies)?;
    let accepted = ids.len() as u64;
    wait_counted(&mut redis, &keys, total_before + accepted, load_ended).await?;
    let backlog_secs = load_ended.elapsed().as_secs_f64();
    let cost = match (meter, cpu_before) {
        (Some(meter), Some(before)) => {
            Some(meter.report((&before, &meter.read()?), tool, accepted))
        }
        _ => None,
    };
    let created = persisted_rows(stores, &ids, not_before).await?;
    // The last batch's event follows its count by a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stages = stages::breakdown(&created, &listener.finish().await?);
    Ok(E2eReport {
        offered_per_sec: load.rate_per_sec,
        accepted_per_sec: rate(accepted, seconds),
        persisted_per_sec: rate(total_at_end.saturating_sub(total_before), seconds),
        backlog_secs,
        accepted,
        failed: result.failed,
        seconds,
        queue_max,
        queue_at_end,
        queue_bounded: (queue_at_end as f64) < load.rate_per_sec,
        commit_latency_ms: stages.commit,
        stages_ms: stages,
        answer_latency_ms: LatencyPercentiles::of(&result.latencies_ms),
        cost,
    })
}

/// The requests of an `e2e` run.
fn e2e_config(addr: &str, load: &E2eLoad) -> LoadConfig {
    let per_request = load.batch.unwrap_or(1) as f64;
    LoadConfig {
        addr: addr.to_owned(),
        path: if load.batch.is_some() {
            "/messages/batch"
        } else {
            "/messages"
        }
        .into(),
        connections: load.connections,
        duration: load.duration,
        requests: None,
        rate: Some(load.rate_per_sec / per_request),
        expect_status: if load.wait_secs.is_some() { 201 } else { 202 },
        keep_bodies: true,
        headers: load
            .wait_secs
            .map(|n| ("prefer", format!("wait={n}")))
            .into_iter()
            .collect(),
        tls: None,
        idempotent: load
            .idempotent
            .then(|| format!("bench-{}", Uuid::now_v7().simple())),
    }
}

/// Samples the queue's length every 100 ms while the load runs, and once more at its end.
struct QueueSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl QueueSampler {
    fn start(mut redis: redis::aio::MultiplexedConnection, key: String) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut max = 0u64;
            loop {
                max = max.max(llen(&mut redis, &key).await);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = &mut stopped => break,
                }
            }
            let last = llen(&mut redis, &key).await;
            (max.max(last), last)
        });
        Self { stop, task }
    }

    /// The longest the queue was, and its length now.
    async fn finish(self) -> anyhow::Result<(u64, u64)> {
        let _ = self.stop.send(());
        Ok(self.task.await?)
    }
}

async fn llen(redis: &mut redis::aio::MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("LLEN")
        .arg(key)
        .query_async(redis)
        .await
        .unwrap_or(0)
}

/// Waits until `total_messages` reaches `target` (the backlog counted), for at most 300 s
/// after the load ended.
async fn wait_counted(
    redis: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
    target: u64,
    load_ended: Instant,
) -> anyhow::Result<()> {
    loop {
        let total = total_messages(redis, keys).await?;
        if total >= target {
            return Ok(());
        }
        if load_ended.elapsed() > Duration::from_secs(300) {
            bail!("total_messages is {total}, {target} expected, 300 s after the load");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every accepted message's row (id, `created_at`), checking that each is in PostgreSQL once.
async fn persisted_rows(
    stores: &Stores,
    ids: &[Uuid],
    not_before: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<(Uuid, chrono::DateTime<chrono::Utc>)>> {
    let db = stores.postgres().await?;
    let created: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> = db
        .query(
            "SELECT m.id, m.created_at FROM unnest($1::uuid[]) a(id) \
             JOIN messages m ON m.id = a.id AND m.created_at >= $2",
            &[&ids, &not_before],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if created.len() != ids.len() {
        bail!(
            "{} of {} accepted messages are in PostgreSQL",
            created.len(),
            ids.len()
        );
    }
    Ok(created)
}

/// Waits until nothing is queued or in a processing list, so `total_messages` stands still.
async fn wait_idle(
    redis: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
) -> anyhow::Result<()> {
    let reader = sluice_core::stats::StatsReader::new(
        keys.clone(),
        Duration::from_millis(sluice_core::settings::WorkerSettings::default().dead_after_ms),
    );
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let stats = reader.read(redis).await?;
        if stats.queue_depth == 0 && stats.in_flight == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the pipeline is still busy with earlier messages after 300 s: {stats:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn total_messages(
    redis: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
) -> anyhow::Result<u64> {
    Ok(redis::cmd("GET")
        .arg(&keys.total_messages)
        .query_async::<Option<u64>>(redis)
        .await?
        .unwrap_or(0))
}

/// `redis-benchmark` LPUSH rate: 64 clients, values the size of a real envelope.
pub async fn redis_lpush_ceiling(host: &str, port: u16, requests: u64) -> anyhow::Result<f64> {
    let size = sample_envelope(0).to_json().len();
    let out = tokio::process::Command::new("redis-benchmark")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-c",
            "64",
            "-t",
            "lpush",
            "-q",
        ])
        .args(["-n", &requests.to_string(), "-d", &size.to_string()])
        .output()
        .await
        .context("running redis-benchmark (Debian package redis-tools)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_redis_benchmark(&text)
        .with_context(|| format!("unexpected redis-benchmark output: {text}"))
}

/// The requests per second of `redis-benchmark -q` output (`LPUSH: 123456.79 requests per
/// second, p50=0.2 msec`), whose progress lines are separated by carriage returns.
pub fn parse_redis_benchmark(text: &str) -> Option<f64> {
    text.split(['\r', '\n'])
        .filter_map(|line| line.strip_prefix("LPUSH: "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .next_back()
}

/// Rows per second of one `COPY` of `rows` realistic rows into a table shaped like `messages`.
pub async fn copy_ceiling(postgres_url: &str, rows: u64) -> anyhow::Result<f64> {
    use futures_util::SinkExt;
    let (client, connection) = tokio_postgres::connect(postgres_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(
            "DROP TABLE IF EXISTS sluice_copy_ceiling;
             CREATE TABLE sluice_copy_ceiling (LIKE messages INCLUDING ALL);",
        )
        .await?;
    let mut text = String::with_capacity(rows as usize * 160);
    for i in 0..rows {
        let e = sample_envelope(i);
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            e.id,
            e.user_id,
            e.channel_id,
            e.content.as_str(),
            e.created_at.to_rfc3339()
        ));
    }
    let started = Instant::now();
    let sink = client
        .copy_in(
            "COPY sluice_copy_ceiling (id, user_id, channel_id, content, created_at) FROM STDIN",
        )
        .await?;
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from(text)).await?;
    let copied = sink.finish().await?;
    let seconds = started.elapsed().as_secs_f64();
    client
        .batch_execute("DROP TABLE sluice_copy_ceiling")
        .await?;
    Ok(rate(copied, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_messages_are_valid_and_realistic() {
        let m = NewMessage::from_json(message_json(123_456).as_bytes()).expect("valid");
        assert_eq!(m.channel_id.get(), 57);
        let batch = batch_json(2, 3);
        let parsed = NewMessage::batch_from_json(batch.as_bytes(), 10).expect("valid batch");
        assert_eq!(parsed.len(), 3);
        assert!(parsed[0].content.as_str().ends_with("#6"));
        let size = sample_envelope(0).to_json().len();
        assert!((150..400).contains(&size), "{size} bytes");
    }

    #[test]
    fn reads_redis_benchmark_output() {
        let out = "LPUSH: rps=0.0 (overall: nan) avg_msec=nan\rLPUSH: 98765.43 requests per second, p50=0.319 msec\n";
        assert_eq!(parse_redis_benchmark(out), Some(98765.43));
        assert_eq!(parse_redis_benchmark("nothing"), None);
    }

    #[test]
    fn collects_ids_from_both_answer_shapes() {
        let a = Uuid::now_v7();
        let (b, c) = (Uuid::now_v7(), Uuid::now_v7());
        let bodies = vec![
            Bytes::from(format!(
                r#"{{"message_id":"{a}","status":"queued","queued_at":"x"}}"#
            )),
            Bytes::from(format!(
                r#"{{"message_ids":["{b}","{c}"],"status":"queued","queued_at":"x"}}"#
            )),
        ];
        assert_eq!(accepted_ids(&bodies).expect("ids"), vec![a, b, c]);
    }
}
