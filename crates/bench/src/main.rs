//! `sluice-bench` binary: one subcommand per scenario, each printing a table and one JSON line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use sluice_bench::attacks;
use sluice_bench::fanout::{self, FanoutConfig, FanoutReport};
use sluice_bench::http_ceiling;
use sluice_bench::pipeline::{self, Stores};
use sluice_bench::redis_cost;
use sluice_client::send;
use sluice_client::summary::Summary;

#[derive(Parser)]
#[command(
    name = "sluice-bench",
    version,
    about = "Measure a running Sluice on this machine."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// The services' Redis.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// The services' key prefix.
    #[arg(long, default_value = "")]
    key_prefix: String,
    /// The services' PostgreSQL database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/sluice")]
    postgres: String,
}

impl StoreArgs {
    fn stores(&self) -> Stores {
        Stores {
            redis_url: self.redis.clone(),
            key_prefix: self.key_prefix.clone(),
            postgres_url: self.postgres.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// What this machine's Redis and PostgreSQL allow: redis-benchmark LPUSH and one COPY.
    Ceilings(CeilingsArgs),
    /// Single-message POSTs over keep-alive connections, as fast as they are answered.
    Ingest(IngestArgs),
    /// The same with `POST /messages/batch`.
    IngestBatch(IngestBatchArgs),
    /// Prefill N messages, start W workers, time until all are committed.
    Drain(DrainArgs),
    /// A fixed offered rate through ingest → workers → PostgreSQL.
    E2e(E2eArgs),
    /// N WebSocket dashboards against a gateway.
    Fanout(FanoutArgs),
    /// The hardening attacks at full scale against a running ingest API and gateway.
    Attacks(AttacksArgs),
    /// Send messages like a user would, with a live progress line.
    Send(SendArgs),
    /// What the fleet using a private Redis costs it: commands, script calls and CPU per second.
    RedisCost(RedisCostArgs),
}

/// The options of `sluice-bench ceilings`.
#[derive(Args)]
struct CeilingsArgs {
    /// Redis host for redis-benchmark.
    #[arg(long, default_value = "127.0.0.1")]
    redis_host: String,
    /// Redis port for redis-benchmark.
    #[arg(long, default_value_t = 6379)]
    redis_port: u16,
    /// LPUSH requests.
    #[arg(long, default_value_t = 1_000_000)]
    lpush_requests: u64,
    /// A database with the `messages` table.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/sluice")]
    postgres: String,
    /// Rows copied.
    #[arg(long, default_value_t = 500_000)]
    copy_rows: u64,
    /// Seconds of load on a no-op actix-web server (the HTTP stack's own ceiling); 0 skips it.
    #[arg(long, default_value_t = 10.0)]
    http_seconds: f64,
    /// The no-op server's threads (0: one per core, the ingest API's default).
    #[arg(long, default_value_t = 0)]
    http_workers: usize,
    /// Keep-alive connections to it, as `ingest` uses.
    #[arg(long, default_value_t = 64)]
    http_connections: usize,
}

/// The options of `sluice-bench ingest`.
#[derive(Args)]
struct IngestArgs {
    /// Ingest API `host:port`.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Same-run redis-benchmark LPUSH rate, to print the ratio to it.
    #[arg(long)]
    ceiling: Option<f64>,
    /// Same-run no-op HTTP server rate (`ceilings`), to print the ratio to it.
    #[arg(long)]
    http_ceiling: Option<f64>,
}

/// The options of `sluice-bench ingest-batch`.
#[derive(Args)]
struct IngestBatchArgs {
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Messages per request.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Same-run redis-benchmark LPUSH rate, to print the ratio to it.
    #[arg(long)]
    ceiling: Option<f64>,
}

/// The options of `sluice-bench drain`.
#[derive(Args)]
struct DrainArgs {
    #[command(flatten)]
    stores: StoreArgs,
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The worker binary (started with this process's environment).
    #[arg(long, default_value = "target/release/sluice-worker")]
    worker_bin: PathBuf,
    /// Same-run COPY rate, to print the ratio to it.
    #[arg(long)]
    ceiling: Option<f64>,
}

/// The options of `sluice-bench e2e`.
#[derive(Args)]
struct E2eArgs {
    #[command(flatten)]
    stores: StoreArgs,
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// Messages per second offered.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Send batches of this many messages instead of single ones.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Send `Prefer: wait=N`: each request waits for its commit, and counts when answered
    /// 201 (persisted).
    #[arg(long, value_name = "SECS")]
    wait: Option<u64>,
    /// Same-run COPY rate, to print the ratio to it.
    #[arg(long)]
    ceiling: Option<f64>,
}

/// The options of `sluice-bench fanout`.
#[derive(Args)]
struct FanoutArgs {
    #[arg(long, default_value = "ws://127.0.0.1:8001/ws/stats")]
    url: String,
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 250)]
    connect_batch: usize,
    /// Gateway pid, for its RSS and CPU.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// The gateway's Redis, for the command rate it causes.
    #[arg(long)]
    redis: Option<String>,
}

/// The options of `sluice-bench attacks`.
#[derive(Args)]
struct AttacksArgs {
    #[arg(long, default_value = "127.0.0.1:8000")]
    ingest: String,
    #[arg(long)]
    ingest_pid: u32,
    #[arg(long, default_value = "127.0.0.1:8001")]
    gateway: String,
    #[arg(long)]
    gateway_pid: u32,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    #[arg(long, default_value = "")]
    key_prefix: String,
    /// Seconds the stalled-reader attacks hold their clients.
    #[arg(long, default_value_t = 30)]
    stall_secs: u64,
    /// The ingest API's admin token, for the dead-letters attack (skipped without it).
    #[arg(long, env = "SLUICE__INGEST__ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// The services' PostgreSQL, for slow-reads to give a channel a million rows first.
    #[arg(long)]
    postgres: Option<String>,
    /// Attacks to run (frame-flood, frame-10mb, fragments, ping-flood, close-code,
    /// stalled-ws, stalled-sse, slow-bodies, stalled-uploads, parser-errors, idempotency,
    /// bursts, hangup-waits, waiting-bodies, batch-memory, concurrent-waits,
    /// idempotency-batches, dead-letters, edges); all of those when none is named. The third
    /// pass's run only when named: big-idempotent, queue-bound, hangups, slow-reads,
    /// dead-letter-shapes, admin-guess, heavy-batches.
    only: Vec<String>,
}

/// The options of `sluice-bench send`.
#[derive(Args)]
struct SendArgs {
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// Messages to send [default: 10000, or the preset's].
    #[arg(long)]
    messages: Option<u64>,
    /// Connections sending at once [default: 32, or the preset's].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Messages per second (default: as fast as answered).
    #[arg(long)]
    rate: Option<f64>,
    /// 1,000 messages, 10 connections.
    #[arg(long, conflicts_with_all = ["stress", "extreme"])]
    quick: bool,
    /// 100,000 messages, 64 connections.
    #[arg(long, conflicts_with = "extreme")]
    stress: bool,
    /// 1,000,000 messages, 128 connections.
    #[arg(long)]
    extreme: bool,
    /// Write the id of every accepted message to this file, one per line.
    #[arg(long, value_name = "FILE")]
    ids: Option<PathBuf>,
}

/// The options of `sluice-bench redis-cost`.
#[derive(Args)]
struct RedisCostArgs {
    /// The private Redis the fleet uses (every command on it is counted).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Seconds between the two readings.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// A label for the table and the JSON line (for example "8 workers, idle").
    #[arg(long, default_value = "")]
    label: String,
}

fn row(name: &str, value: String) {
    println!("  {name:<28}{value:>16}");
}

fn summary_rows(prefix: &str, s: &Option<Summary>) {
    if let Some(s) = s {
        row(&format!("{prefix} p50"), format!("{:.2} ms", s.p50));
        row(&format!("{prefix} p99"), format!("{:.2} ms", s.p99));
        row(&format!("{prefix} max"), format!("{:.2} ms", s.max));
    }
}

fn ratio(value: f64, ceiling: Option<f64>, name: &str) -> Option<f64> {
    let ceiling = ceiling?;
    let r = value / ceiling;
    row(&format!("ratio to {name}"), format!("{:.0}%", r * 100.0));
    Some(r)
}

fn json_line(scenario: &str, report: &impl Serialize, ratio: Option<f64>) {
    json_line_with(scenario, report, ratio, serde_json::Map::new());
}

/// [`json_line`] with more top-level fields (`ingest`'s second ratio).
fn json_line_with(
    scenario: &str,
    report: &impl Serialize,
    ratio: Option<f64>,
    mut fields: serde_json::Map<String, serde_json::Value>,
) {
    fields.insert("scenario".into(), scenario.into());
    fields.insert("report".into(), serde_json::json!(report));
    fields.insert("ratio_to_ceiling".into(), ratio.into());
    println!("{}", serde_json::Value::Object(fields));
}

fn print_fanout(r: &FanoutReport) {
    println!("fanout: {} clients", r.clients);
    row("connections established", r.established.to_string());
    row("connections failed", r.failed.to_string());
    row("window", format!("{:.1} s", r.window_secs));
    row("stats messages received", r.messages.to_string());
    row("messages per second", format!("{:.0}", r.messages_per_sec));
    row(
        "fewest messages per client",
        r.min_messages_per_client.to_string(),
    );
    summary_rows("delivery skew", &r.skew_ms);
    let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".to_owned(), |v| format!("{v:.1}{unit}"));
    row(
        "gateway RSS",
        opt(r.gateway_rss_bytes.map(|b| b as f64 / 1_048_576.0), " MiB"),
    );
    row(
        "gateway RSS per connection",
        opt(r.rss_per_connection_bytes.map(|b| b / 1024.0), " KiB"),
    );
    row(
        "gateway heap per connection",
        opt(r.heap_per_connection_bytes.map(|b| b / 1024.0), " KiB"),
    );
    row("gateway CPU", opt(r.gateway_cpu_percent, " %"));
    row(
        "gateway CPU per tick",
        opt(r.gateway_cpu_ms_per_tick, " ms"),
    );
    row(
        "Redis commands per second",
        opt(r.redis_commands_per_sec, ""),
    );
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Ceilings(args) => args.run().await,
        Command::Ingest(args) => args.run().await,
        Command::IngestBatch(args) => args.run().await,
        Command::Drain(args) => args.run().await,
        Command::E2e(args) => args.run().await,
        Command::Fanout(args) => args.run().await,
        Command::Attacks(args) => args.run().await,
        Command::Send(args) => args.run().await,
        Command::RedisCost(args) => args.run().await,
    }
}

impl CeilingsArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            redis_host,
            redis_port,
            lpush_requests,
            postgres,
            copy_rows,
            http_seconds,
            http_workers,
            http_connections,
        } = self;
        let lpush = pipeline::redis_lpush_ceiling(&redis_host, redis_port, lpush_requests).await?;
        let copy = pipeline::copy_ceiling(&postgres, copy_rows).await?;
        let workers = match http_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let http = match http_seconds > 0.0 {
            true => Some(
                http_ceiling::http_noop_ceiling(
                    workers,
                    http_connections,
                    Duration::from_secs_f64(http_seconds),
                )
                .await?,
            ),
            false => None,
        };
        print_ceilings(lpush, copy, http);
        Ok(())
    }
}

impl IngestArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            addr,
            connections,
            duration,
            ceiling,
            http_ceiling,
        } = self;
        let r =
            pipeline::ingest(&addr, connections, Duration::from_secs_f64(duration), None).await?;
        println!("ingest: {connections} connections, single messages");
        ingest_rows(&r);
        let lpush = ratio(r.messages_per_sec, ceiling, "LPUSH ceiling");
        let http = ratio(r.messages_per_sec, http_ceiling, "no-op HTTP ceiling");
        let fields = [("ratio_to_http_ceiling".to_owned(), http.into())];
        json_line_with("ingest", &r, lpush, fields.into_iter().collect());
        Ok(())
    }
}

impl IngestBatchArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            addr,
            connections,
            duration,
            batch_size,
            ceiling,
        } = self;
        let r = pipeline::ingest(
            &addr,
            connections,
            Duration::from_secs_f64(duration),
            Some(batch_size),
        )
        .await?;
        println!("ingest-batch: {connections} connections, {batch_size} messages per request");
        ingest_rows(&r);
        let ratio = ratio(r.messages_per_sec, ceiling, "LPUSH ceiling");
        json_line("ingest-batch", &r, ratio);
        Ok(())
    }
}

impl DrainArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            stores,
            messages,
            workers,
            worker_bin,
            ceiling,
        } = self;
        let env: Vec<(String, String)> = std::env::vars().collect();
        let r = pipeline::drain(&stores.stores(), messages, workers, &worker_bin, &env).await?;
        println!("drain: {messages} messages, {workers} workers");
        row("seconds", format!("{:.2}", r.seconds));
        row("messages per second", format!("{:.0}", r.messages_per_sec));
        let ratio = ratio(r.messages_per_sec, ceiling, "COPY ceiling");
        json_line("drain", &r, ratio);
        Ok(())
    }
}

impl E2eArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            stores,
            addr,
            rate,
            duration,
            connections,
            batch_size,
            wait,
            ceiling,
        } = self;
        let load = pipeline::E2eLoad {
            rate_per_sec: rate,
            duration: Duration::from_secs_f64(duration),
            connections,
            batch: batch_size,
            wait_secs: wait,
        };
        let r = pipeline::e2e(&addr, &stores.stores(), load).await?;
        print_e2e(&r, &load);
        let ratio = ratio(r.persisted_per_sec, ceiling, "COPY ceiling");
        json_line("e2e", &r, ratio);
        Ok(())
    }
}

impl FanoutArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            url,
            clients,
            duration,
            warmup,
            connect_batch,
            gateway_pid,
            redis,
        } = self;
        let config = FanoutConfig {
            url,
            clients,
            connect_batch,
            warmup: Duration::from_secs_f64(warmup),
            duration: Duration::from_secs_f64(duration),
            gateway_pid,
            redis_url: redis,
        };
        let r = fanout::run(&config).await?;
        print_fanout(&r);
        json_line("fanout", &r, None);
        Ok(())
    }
}

impl AttacksArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            ingest,
            ingest_pid,
            gateway,
            gateway_pid,
            redis,
            key_prefix,
            stall_secs,
            admin_token,
            postgres,
            only,
        } = self;
        sluice_core::cli::raise_open_files_limit();
        let targets = attacks::Targets {
            ingest: (ingest, ingest_pid),
            gateway: (gateway, gateway_pid),
            redis_url: redis,
            key_prefix,
            stall_secs,
            admin_token,
            postgres_url: postgres,
        };
        println!("attacks");
        let figures = attacks::run(&targets, &only).await?;
        json_line("attacks", &figures, None);
        Ok(())
    }
}

impl SendArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            addr,
            messages,
            concurrency,
            rate,
            quick,
            stress,
            extreme,
            ids,
        } = self;
        let preset = if extreme {
            send::EXTREME
        } else if stress {
            send::STRESS
        } else if quick {
            send::QUICK
        } else {
            (10_000, 32, None)
        };
        let plan = send::SendPlan {
            addr,
            messages: messages.unwrap_or(preset.0),
            concurrency: concurrency.unwrap_or(preset.1),
            rate: rate.or(preset.2),
            keep_ids: ids.is_some(),
        };
        let r = send::run_with_bar(&plan).await?;
        if let Some(path) = ids {
            let lines: String = r.ids.iter().map(|id| format!("{id}\n")).collect();
            std::fs::write(&path, lines)
                .with_context(|| format!("writing the ids to {}", path.display()))?;
        }
        print_send(&r, plan.messages, plan.concurrency);
        Ok(())
    }
}

fn print_ceilings(lpush: f64, copy: f64, http: Option<f64>) {
    println!("ceilings");
    row("redis-benchmark LPUSH", format!("{lpush:.0}/s"));
    row("PostgreSQL COPY", format!("{copy:.0} rows/s"));
    if let Some(http) = http {
        row("no-op actix-web POST", format!("{http:.0}/s"));
    }
    json_line(
        "ceilings",
        &serde_json::json!({"lpush_per_sec": lpush, "copy_rows_per_sec": copy,
            "http_noop_per_sec": http}),
        None,
    );
}

fn print_e2e(r: &pipeline::E2eReport, load: &pipeline::E2eLoad) {
    println!(
        "e2e: {:.0} msg/s offered{}{}",
        load.rate_per_sec,
        load.batch
            .map_or(String::new(), |b| format!(", batches of {b}")),
        load.wait_secs
            .map_or(String::new(), |w| format!(", Prefer: wait={w}"))
    );
    row("accepted per second", format!("{:.0}", r.accepted_per_sec));
    row(
        "persisted per second",
        format!("{:.0}", r.persisted_per_sec),
    );
    row("backlog after the run", format!("{:.2} s", r.backlog_secs));
    row("failed requests", r.failed.to_string());
    row("queue max", r.queue_max.to_string());
    row("queue at end", r.queue_at_end.to_string());
    row("queue bounded", r.queue_bounded.to_string());
    let answer = if load.wait_secs.is_some() {
        "201"
    } else {
        "202"
    };
    let stages = &r.stages_ms;
    for (name, latency) in [
        ("POST→commit".to_owned(), &r.commit_latency_ms),
        ("  queue".to_owned(), &stages.queue),
        ("  insert".to_owned(), &stages.insert),
        ("  then record".to_owned(), &stages.record),
        (format!("POST→{answer}"), &r.answer_latency_ms),
    ] {
        if let Some(l) = latency {
            row(&format!("{name} p50"), format!("{:.2} ms", l.p50));
            row(&format!("{name} p95"), format!("{:.2} ms", l.p95));
            row(&format!("{name} p99"), format!("{:.2} ms", l.p99));
            row(&format!("{name} max"), format!("{:.2} ms", l.max));
        }
    }
}

fn print_send(r: &send::SendReport, messages: u64, concurrency: usize) {
    println!("send: {messages} messages, {concurrency} connections");
    row("succeeded", r.succeeded.to_string());
    row("failed", r.failed.to_string());
    row("seconds", format!("{:.2}", r.seconds));
    row("messages per second", format!("{:.0}", r.messages_per_sec));
    summary_rows("latency", &r.latency_ms);
    json_line("send", r, None);
}

fn ingest_rows(r: &pipeline::IngestReport) {
    row("requests accepted", r.requests.to_string());
    row("messages accepted", r.messages.to_string());
    row("failed", r.failed.to_string());
    row("messages per second", format!("{:.0}", r.messages_per_sec));
    summary_rows("latency", &r.latency_ms);
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sluice_core::cli::raise_open_files_limit();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl RedisCostArgs {
    async fn run(self) -> anyhow::Result<()> {
        let window = Duration::from_secs_f64(self.duration);
        let cost = redis_cost::measure(&self.redis, window).await?;
        println!("redis-cost: {}", self.label);
        row(
            "commands per second",
            format!("{:.0}", cost.commands_per_sec),
        );
        row(
            "script calls per second",
            format!("{:.1}", cost.script_calls_per_sec),
        );
        row(
            "command time per second",
            format!("{:.2} ms", cost.command_usec_per_sec / 1000.0),
        );
        row(
            "main thread CPU per second",
            format!("{:.2} ms", cost.main_thread_cpu_ms_per_sec),
        );
        for (name, calls) in &cost.top_commands {
            row(&format!("  {name}"), format!("{calls:.1}/s"));
        }
        println!(
            "{}",
            serde_json::json!({"scenario": "redis-cost", "label": self.label, "report": cost})
        );
        Ok(())
    }
}
