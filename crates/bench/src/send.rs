//! `send`: a load generator for users, like the one the Python stack shipped: N messages from
//! C connections, optionally paced, with a live progress line (rate, successes, failures,
//! ETA) on stderr and a summary at the end.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use serde::Serialize;

use crate::http::{self, LoadConfig, Progress};
use crate::pipeline::message_json;
use crate::stats::{Summary, rate, summarize};

/// Presets: `(messages, concurrency, rate)`.
pub const QUICK: (u64, usize, Option<f64>) = (1_000, 10, None);
/// A sustained load.
pub const STRESS: (u64, usize, Option<f64>) = (100_000, 64, None);
/// As much as the machine takes.
pub const EXTREME: (u64, usize, Option<f64>) = (1_000_000, 128, None);

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

/// Sends `messages` messages to `addr` from `concurrency` connections, at `rate` per second
/// when given, with a progress line on stderr.
pub async fn run(
    addr: &str,
    messages: u64,
    concurrency: usize,
    rate_per_sec: Option<f64>,
) -> anyhow::Result<SendReport> {
    let started = Instant::now();
    let show = move |ok, failed| {
        let line = progress_line(ok, failed, messages, started.elapsed());
        let mut err = std::io::stderr();
        let _ = write!(err, "\r{line}");
        let _ = err.flush();
    };
    let report = run_with_progress(addr, messages, concurrency, rate_per_sec, show).await;
    // The last tick can come before the last answers: end on the final count (100 %).
    if let Ok(r) = &report {
        show(r.succeeded, r.failed);
    }
    eprintln!();
    report
}

/// [`run`], calling `on_progress(succeeded, failed)` four times a second instead of printing.
pub async fn run_with_progress(
    addr: &str,
    messages: u64,
    concurrency: usize,
    rate_per_sec: Option<f64>,
    on_progress: impl Fn(u64, u64) + Send + 'static,
) -> anyhow::Result<SendReport> {
    let progress = Arc::new(Progress::default());
    let config = LoadConfig {
        addr: addr.to_owned(),
        path: "/messages".into(),
        connections: concurrency.max(1),
        duration: Duration::from_secs(24 * 3600),
        requests: Some(messages),
        rate: rate_per_sec,
        expect_status: 202,
        keep_bodies: false,
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
        messages,
        succeeded: result.ok,
        failed: result.failed,
        seconds,
        messages_per_sec: rate(result.ok, seconds),
        latency_ms: summarize(&result.latencies_ms),
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
