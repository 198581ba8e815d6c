//! `send`: a load generator for users, like the one the Python stack shipped: N messages from
//! C connections, optionally paced, with a live progress bar (rate, failures, ETA) on stderr and
//! a report at the end: `sluice send`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use serde::Serialize;
use uuid::Uuid;

use crate::load::{self, LoadConfig, Progress};
use crate::sample::{accepted_ids, message_json};
use crate::summary::{Summary, rate, summarize};

/// Presets: `(messages, concurrency, rate)`.
pub const QUICK: (u64, usize, Option<f64>) = (1_000, 10, None);
/// A sustained load.
pub const STRESS: (u64, usize, Option<f64>) = (100_000, 64, None);
/// As much as the machine takes.
pub const EXTREME: (u64, usize, Option<f64>) = (1_000_000, 128, None);

/// What to send.
#[derive(Debug, Clone)]
pub struct SendPlan {
    /// The ingest API, `host:port`.
    pub addr: String,
    /// Messages to send.
    pub messages: u64,
    /// Connections sending at once.
    pub concurrency: usize,
    /// Messages per second (`None`: as fast as answered).
    pub rate: Option<f64>,
    /// Keep the ids of the accepted messages, for a check of where they ended up.
    pub keep_ids: bool,
    /// HTTPS, trusting these certificates; `None` for plain HTTP.
    pub tls: Option<crate::tls::Tls>,
    /// An API key, sent as `Authorization: Bearer`.
    pub key: Option<String>,
}

/// What was sent.
#[derive(Debug, Clone, Serialize)]
pub struct SendReport {
    /// Messages asked for.
    pub messages: u64,
    /// Answered 202.
    pub succeeded: u64,
    /// Not accepted: refused, unanswered or never sent (`messages - succeeded`).
    pub failed: u64,
    /// Answered with another status than 202.
    pub refused: u64,
    /// Sent, but no answer came (the connection broke).
    pub unanswered: u64,
    /// Never sent: their connections broke first (the API went away).
    pub not_sent: u64,
    /// Seconds taken.
    pub seconds: f64,
    /// Accepted messages per second.
    pub messages_per_sec: f64,
    /// Request latency in milliseconds, from each message's scheduled send time (so time it
    /// waited in the client counts).
    pub latency_ms: Option<Summary>,
    /// The final answers other than 202, by status.
    pub statuses: std::collections::BTreeMap<u16, u64>,
    /// 503 answers sent again under the same `Idempotency-Key`.
    pub retried: u64,
    /// The accepted messages' ids, when the plan asked to keep them.
    #[serde(skip)]
    pub ids: Vec<Uuid>,
}

/// The live progress line both `sluice send` and `sluice-bench send` show on stderr: an
/// indicatif bar with the rate, the failures and the ETA. Hidden when stderr is not a
/// terminal.
pub fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let style = indicatif::ProgressStyle::with_template(
        "{bar:30.cyan/blue} {pos}/{len} {percent}%  {per_sec}  ETA {eta}  {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("█▉ ");
    indicatif::ProgressBar::new(total).with_style(style)
}

/// Sends the plan's messages with [`progress_bar`] on stderr, cleared at the end.
pub async fn run_with_bar(plan: &SendPlan) -> anyhow::Result<SendReport> {
    let bar = progress_bar(plan.messages);
    let shown = bar.clone();
    let report = run(plan, move |ok, failed| {
        shown.set_position(ok + failed);
        shown.set_message(format!("{failed} failed"));
    })
    .await;
    bar.finish_and_clear();
    report
}

/// Sends the plan's messages, calling `on_progress(succeeded, failed)` four times a second.
pub async fn run(
    plan: &SendPlan,
    on_progress: impl Fn(u64, u64) + Send + 'static,
) -> anyhow::Result<SendReport> {
    let progress = Arc::new(Progress::default());
    let config = LoadConfig {
        addr: plan.addr.clone(),
        path: "/messages".into(),
        connections: plan.concurrency.max(1),
        duration: Duration::from_secs(24 * 3600),
        requests: Some(plan.messages),
        rate: plan.rate,
        expect_status: 202,
        keep_bodies: plan.keep_ids,
        headers: plan
            .key
            .iter()
            .map(|key| ("authorization", format!("Bearer {key}")))
            .collect(),
        tls: plan.tls.clone(),
        // Each message its own key: a 503 ("not confirmed") is sent again under it, and the
        // ingest API queues it at most once.
        idempotent: Some(Uuid::now_v7().simple().to_string()),
    };
    let started = Instant::now();
    let reporter = {
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                on_progress(
                    progress.ok.load(Ordering::Relaxed),
                    progress.failed.load(Ordering::Relaxed),
                );
            }
        })
    };
    let result = load::run(&config, Arc::clone(&progress), |i| {
        Bytes::from(message_json(i))
    })
    .await;
    reporter.abort();
    let result = result?;
    let seconds = started.elapsed().as_secs_f64();
    let sent = result.ok + result.refused + result.unanswered;
    Ok(SendReport {
        messages: plan.messages,
        succeeded: result.ok,
        failed: plan.messages.saturating_sub(result.ok),
        refused: result.refused,
        unanswered: result.unanswered,
        not_sent: plan.messages.saturating_sub(sent),
        seconds,
        messages_per_sec: rate(result.ok, seconds),
        latency_ms: summarize(&result.latencies_ms),
        statuses: result.statuses,
        retried: result.retried,
        ids: accepted_ids(&result.bodies)?,
    })
}
