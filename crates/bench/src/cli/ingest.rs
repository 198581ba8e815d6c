//! `sluice-bench ingest` and `ingest-batch`: single messages or batches over keep-alive
//! connections, as fast as they are answered.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use sluice_bench::pipeline;
use sluice_client::tls::Tls;

use super::report::{json_line, json_line_with, ratio, row, summary_rows};

/// The options of `sluice-bench ingest`.
#[derive(Args)]
pub struct IngestArgs {
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
    /// HTTPS (`ingest-tls`): the PEM file of the CA that signed the API's certificate.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// `ingest-auth`: an API key (`messages:write`) sent with every request.
    #[arg(long)]
    key: Option<String>,
    /// Same-run plain `ingest` rate, to print the ratio to it (with `--cacert` or `--key`).
    #[arg(long)]
    plain: Option<f64>,
}

impl IngestArgs {
    pub async fn run(self) -> anyhow::Result<()> {
        let Self {
            addr,
            connections,
            duration,
            ceiling,
            http_ceiling,
            cacert,
            key,
            plain,
        } = self;
        let tls = cacert.as_deref().map(|ca| Tls::new(Some(ca))).transpose()?;
        let name = match (&tls, &key) {
            (Some(_), _) => "ingest-tls",
            (None, Some(_)) => "ingest-auth",
            (None, None) => "ingest",
        };
        let duration = Duration::from_secs_f64(duration);
        let reach = pipeline::Reach { tls, key };
        let r = pipeline::ingest(&addr, connections, duration, None, reach).await?;
        println!("{name}: {connections} connections, single messages");
        ingest_rows(&r);
        let lpush = ratio(r.messages_per_sec, ceiling, "LPUSH ceiling");
        let http = ratio(r.messages_per_sec, http_ceiling, "no-op HTTP ceiling");
        let plain = ratio(r.messages_per_sec, plain, "plain ingest");
        let fields = [
            ("ratio_to_http_ceiling".to_owned(), http.into()),
            ("ratio_to_plain_ingest".to_owned(), plain.into()),
        ];
        json_line_with(name, &r, lpush, fields.into_iter().collect());
        Ok(())
    }
}

/// The options of `sluice-bench ingest-batch`.
#[derive(Args)]
pub struct IngestBatchArgs {
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

impl IngestBatchArgs {
    pub async fn run(self) -> anyhow::Result<()> {
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
            Default::default(),
        )
        .await?;
        println!("ingest-batch: {connections} connections, {batch_size} messages per request");
        ingest_rows(&r);
        let ratio = ratio(r.messages_per_sec, ceiling, "LPUSH ceiling");
        json_line("ingest-batch", &r, ratio);
        Ok(())
    }
}

fn ingest_rows(r: &pipeline::IngestReport) {
    row("requests accepted", r.requests.to_string());
    row("messages accepted", r.messages.to_string());
    row("failed", r.failed.to_string());
    row("messages per second", format!("{:.0}", r.messages_per_sec));
    summary_rows("latency", &r.latency_ms);
}
