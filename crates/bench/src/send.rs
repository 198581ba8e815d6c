//! `send`: a load generator for users, like the one the Python stack shipped: N messages from
//! C connections, optionally paced, with a live progress line (rate, successes, failures,
//! ETA) on stderr and a summary at the end.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use serde::Serialize;
use uuid::Uuid;

use crate::http::{self, LoadConfig, Progress};
use crate::pipeline::{accepted_ids, message_json};
use crate::stats::{Summary, rate, summarize};

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
}

/// What was sent.
#[derive(Debug, Clone, Serialize)]
pub struct SendReport {
    /// Messages asked for.
    pub messages: u64,
    /// Answered 202.
    pub succeeded: u64,
    /// Refused or failed.
    pub failed: u64,
    /// Seconds taken.
    pub seconds: f64,
    /// Accepted messages per second.
    pub messages_per_sec: f64,
    /// Request latency in milliseconds.
    pub latency_ms: Option<Summary>,
    /// The accepted messages' ids, when the plan asked to keep them.
    #[serde(skip)]
    pub ids: Vec<Uuid>,
}

/// One progress line: `[#####-----] 50.0%  12345 ok  0 failed  9876/s  ETA 3s`.
pub fn progress_line(done: u64, failed: u64, total: u64, elapsed: Duration) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        (done + failed) as f64 / total as f64
    };
    let filled = (fraction * 30.0).round() as usize;
    let per_sec = rate(done, elapsed.as_secs_f64());
    let remaining = total.saturating_sub(done + failed);
    let eta = if per_sec > 0.0 {
        format!("{:.0}s", remaining as f64 / per_sec)
    } else {
        "?".into()
    };
    format!(
        "[{}{}] {:5.1}%  {done} ok  {failed} failed  {per_sec:.0}/s  ETA {eta}",
        "#".repeat(filled.min(30)),
        "-".repeat(30 - filled.min(30)),
        fraction * 100.0
    )
}

/// Sends the plan's messages, with a progress line on stderr.
pub async fn run(plan: &SendPlan) -> anyhow::Result<SendReport> {
    let started = Instant::now();
    let total = plan.messages;
    let show = move |ok, failed| {
        let line = progress_line(ok, failed, total, started.elapsed());
        let mut err = std::io::stderr();
        let _ = write!(err, "\r{line}");
        let _ = err.flush();
    };
    let report = run_with_progress(plan, show).await;
    // The last tick can come before the last answers: end on the final count (100 %).
    if let Ok(r) = &report {
        show(r.succeeded, r.failed);
    }
    eprintln!();
    report
}

/// [`run`], calling `on_progress(succeeded, failed)` four times a second instead of printing.
pub async fn run_with_progress(
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
        headers: Vec::new(),
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
    let result = http::run(&config, Arc::clone(&progress), |i| {
        Bytes::from(message_json(i))
    })
    .await;
    reporter.abort();
    let result = result?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(SendReport {
        messages: plan.messages,
        succeeded: result.ok,
        failed: result.failed,
        seconds,
        messages_per_sec: rate(result.ok, seconds),
        latency_ms: summarize(&result.latencies_ms),
        ids: accepted_ids(&result.bodies)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_share_rate_and_eta() {
        let line = progress_line(500, 0, 1000, Duration::from_secs(5));
        assert!(
            line.starts_with("[###############---------------]  50.0%"),
            "{line}"
        );
        assert!(
            line.contains("500 ok") && line.contains("100/s") && line.contains("ETA 5s"),
            "{line}"
        );
        let line = progress_line(0, 0, 1000, Duration::ZERO);
        assert!(line.contains("ETA ?"), "{line}");
        let line = progress_line(990, 10, 1000, Duration::from_secs(1));
        assert!(line.contains("100.0%") && line.contains("ETA 0s"), "{line}");
    }
}
