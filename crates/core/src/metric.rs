//! Prometheus metrics: every name, spelled once, and the process-wide recorder that `GET
//! /metrics` renders.
//!
//! Services record through the `metrics` facade (`metrics::counter!(metric::MESSAGES_ACCEPTED,
//! …)`); [`exporter`] installs `metrics-exporter-prometheus` as the recorder the first time it is
//! called, with the histograms' buckets and every metric's help text, and a thread that folds
//! recorded samples into the buckets every few seconds, so memory stays bounded whether or not
//! anything scrapes. Labels are low-cardinality by construction: routes are patterns, statuses
//! are codes, and no label ever holds a message, user or connection id.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use sluice_proto::stats::Stats;

/// Messages the ingest API put on the queue (counted as `accepted_total` counts them: answered
/// 202, or 503 `not_replicated` once queued; a replay is not counted again). Counter; ingest.
pub const MESSAGES_ACCEPTED: &str = "sluice_messages_accepted_total";
/// Rows the worker's batch inserts added to PostgreSQL. Counter; worker.
pub const MESSAGES_PERSISTED: &str = "sluice_messages_persisted_total";
/// Rows a worker inserted again on another PostgreSQL server (after a failover or a restart)
/// because that server lacked them: commits asynchronous replication lost, restored. Counter;
/// worker.
pub const ROWS_RESTORED: &str = "sluice_rows_restored_total";
/// Entries the worker moved to `dead_messages`. Counter; worker.
pub const DEAD_LETTERS: &str = "sluice_dead_letters_total";
/// HTTP requests answered, by `route` (the pattern, or `unmatched`), `method` and `status`.
/// Counter; every service.
pub const HTTP_REQUESTS: &str = "sluice_http_requests_total";
/// Time to answer an HTTP request, by `route`, `method` and `status`. Histogram; every service.
pub const HTTP_REQUEST_DURATION: &str = "sluice_http_request_duration_seconds";
/// Messages per committed batch. Histogram; worker.
pub const BATCH_SIZE: &str = "sluice_batch_size";
/// Time of one batch's PostgreSQL insert and commit. Histogram; worker.
pub const BATCH_INSERT_DURATION: &str = "sluice_batch_insert_duration_seconds";
/// Time from a message's POST to its commit. Histogram; worker.
pub const COMMIT_LATENCY: &str = "sluice_commit_latency_seconds";
/// Redis commands that failed or timed out, by `operation`. Counter; every service.
pub const REDIS_ERRORS: &str = "sluice_redis_errors_total";
/// PostgreSQL calls that failed, by `operation`. Counter; worker and ingest.
pub const POSTGRES_ERRORS: &str = "sluice_postgres_errors_total";
/// Messages waiting in `pending_messages`, at the last stats reading. Gauge.
pub const QUEUE_DEPTH: &str = "sluice_queue_depth";
/// Entries waiting in `dead_messages`, as last read. Gauge; gateway.
pub const DEAD_LETTERS_WAITING: &str = "sluice_dead_letters_waiting";
/// Messages taken by workers and not yet committed, at the last stats reading. Gauge.
pub const IN_FLIGHT: &str = "sluice_in_flight";
/// Workers with a fresh heartbeat, at the last stats reading. Gauge.
pub const WORKERS_ALIVE: &str = "sluice_workers_alive";
/// Live workers that report PostgreSQL down, at the last stats reading. Gauge.
pub const WORKERS_POSTGRES_DOWN: &str = "sluice_workers_postgres_down";
/// Age of the oldest waiting message, at the last stats reading. Gauge.
pub const OLDEST_PENDING_AGE: &str = "sluice_oldest_pending_age_seconds";
/// Whether this process's last stats reading succeeded (1) or failed (0). Gauge.
pub const REDIS_UP: &str = "sluice_redis_up";
/// Open WebSocket sessions. Gauge; gateway.
pub const WS_CONNECTIONS: &str = "sluice_ws_connections";
/// Text frames sent to WebSocket clients. Counter; gateway.
pub const WS_MESSAGES_SENT: &str = "sluice_ws_messages_sent_total";
/// Times a WebSocket client fell behind a topic and skipped ahead, by `topic`. Counter; gateway.
pub const WS_LAGGED: &str = "sluice_ws_lagged_total";
/// WebSocket sessions ended, by `reason`. Counter; gateway.
pub const WS_CLOSED: &str = "sluice_ws_closed_total";
/// Calls refused, by `reason`: `wrong_token` (a wrong or missing admin token, or a guess at a
/// known API key) or `throttled` (from an address past its failures). Counter; ingest, gateway.
pub const AUTH_FAILURES: &str = "sluice_auth_failures_total";
/// Answers with a 5xx status, by the error body's `code` (`redis_unavailable`,
/// `not_replicated`, `server_busy`, …). Counter; ingest.
pub const ERRORS: &str = "sluice_errors_total";
/// Replicas of the Redis primary in sync with it, as the upkeep last counted them. Gauge.
pub const REPLICAS_IN_SYNC: &str = "sluice_redis_replicas_in_sync";
/// Replicas a push needs (`redis.ack_replicas`). Gauge.
pub const REPLICAS_WANTED: &str = "sluice_redis_replicas_wanted";
/// Workers whose heartbeat is late, not yet presumed dead, at the last stats reading. Gauge.
pub const WORKERS_LATE: &str = "sluice_workers_late";
/// Workers presumed dead, or reclaimed in the last 5 minutes and not back, at the last stats
/// reading. Gauge.
pub const WORKERS_LOST: &str = "sluice_workers_lost";
/// Requests answered 429 `rate_limited`: their caller's key or token was past its rate.
/// Counter; ingest.
pub const RATE_LIMITED: &str = "sluice_rate_limited_total";
/// Redis's clock minus this process's, as last measured ([`crate::clock`]); every timestamp
/// the process writes is corrected by it. Gauge, seconds; ingest, worker, gateway.
pub const CLOCK_OFFSET: &str = "sluice_clock_offset_seconds";

/// Buckets of [`HTTP_REQUEST_DURATION`], seconds.
const HTTP_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];
/// Buckets of [`BATCH_SIZE`], messages.
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 25_000.0, 100_000.0,
];
/// Buckets of [`BATCH_INSERT_DURATION`] and [`COMMIT_LATENCY`], seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder, installed on first use.
pub fn exporter() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(install)
}

/// The exposition of every metric recorded so far, in the Prometheus text format.
pub fn render() -> String {
    exporter().render()
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn install() -> PrometheusHandle {
    let builder = [
        (HTTP_REQUEST_DURATION, HTTP_BUCKETS),
        (BATCH_SIZE, BATCH_SIZE_BUCKETS),
        (BATCH_INSERT_DURATION, LATENCY_BUCKETS),
        (COMMIT_LATENCY, LATENCY_BUCKETS),
    ]
    .into_iter()
    .fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
        builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .expect("the bucket lists are non-empty")
    });
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
    }
    describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(%e, "cannot start the metrics upkeep thread; histograms fold at scrapes only");
    }
    handle
}

fn describe() {
    describe_counter!(
        MESSAGES_ACCEPTED,
        "Messages the ingest API put on the queue."
    );
    describe_counter!(
        MESSAGES_PERSISTED,
        "Rows batch inserts added to PostgreSQL."
    );
    describe_counter!(DEAD_LETTERS, "Entries moved to the dead_messages list.");
    describe_counter!(
        ROWS_RESTORED,
        "Rows inserted again on a new PostgreSQL server that lacked them."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route, method and status."
    );
    describe_histogram!(HTTP_REQUEST_DURATION, "Time to answer an HTTP request.");
    describe_histogram!(BATCH_SIZE, "Messages per committed batch.");
    describe_histogram!(
        BATCH_INSERT_DURATION,
        "Time of one batch's insert and commit."
    );
    describe_histogram!(COMMIT_LATENCY, "Time from a message's POST to its commit.");
    describe_counter!(REDIS_ERRORS, "Redis commands that failed or timed out.");
    describe_counter!(POSTGRES_ERRORS, "PostgreSQL calls that failed.");
    describe_gauge!(QUEUE_DEPTH, "Messages waiting in pending_messages.");
    describe_gauge!(
        DEAD_LETTERS_WAITING,
        "Entries waiting in dead_messages for an operator."
    );
    describe_gauge!(
        CLOCK_OFFSET,
        "Redis's clock minus this process's, in seconds; the process's timestamps are corrected by it."
    );
    describe_gauge!(IN_FLIGHT, "Messages taken by workers, not yet committed.");
    describe_gauge!(WORKERS_ALIVE, "Workers with a fresh heartbeat.");
    describe_gauge!(
        WORKERS_POSTGRES_DOWN,
        "Live workers that report PostgreSQL down."
    );
    describe_gauge!(OLDEST_PENDING_AGE, "Age of the oldest waiting message.");
    describe_gauge!(
        REDIS_UP,
        "Whether the last stats reading from Redis succeeded."
    );
    describe_gauge!(WS_CONNECTIONS, "Open WebSocket sessions.");
    describe_counter!(WS_MESSAGES_SENT, "Text frames sent to WebSocket clients.");
    describe_counter!(WS_LAGGED, "Times a WebSocket client fell behind a topic.");
    describe_counter!(WS_CLOSED, "WebSocket sessions ended, by reason.");
    describe_counter!(
        AUTH_FAILURES,
        "Calls refused for a wrong admin token or API key, or throttled, by reason."
    );
    describe_counter!(ERRORS, "Answers with a 5xx status, by error code.");
    describe_gauge!(
        REPLICAS_IN_SYNC,
        "Replicas of the Redis primary in sync with it."
    );
    describe_gauge!(
        REPLICAS_WANTED,
        "Replicas a push needs (redis.ack_replicas)."
    );
    describe_gauge!(
        WORKERS_LATE,
        "Workers whose heartbeat is late, not yet presumed dead."
    );
    describe_gauge!(
        WORKERS_LOST,
        "Workers presumed dead, or reclaimed in the last 5 minutes and not back."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused because their caller was past its rate limit."
    );
}

/// Makes counters show in the exposition (at 0) before their first event, so dashboards and
/// `rate()` see a series from the start.
pub fn register_counters(names: &[&'static str]) {
    for name in names {
        metrics::counter!(*name).increment(0);
    }
}

/// Sets the pipeline gauges from a stats reading (the gateway's poller and the workers' rate
/// refresher both take them).
pub fn record_stats(stats: &Stats) {
    metrics::gauge!(QUEUE_DEPTH).set(stats.queue_depth as f64);
    metrics::gauge!(DEAD_LETTERS_WAITING).set(stats.dead_letters as f64);
    metrics::gauge!(IN_FLIGHT).set(stats.in_flight as f64);
    metrics::gauge!(WORKERS_ALIVE).set(stats.workers_alive as f64);
    metrics::gauge!(WORKERS_POSTGRES_DOWN).set(stats.workers_postgres_down as f64);
    metrics::gauge!(OLDEST_PENDING_AGE).set(stats.oldest_pending_age_ms as f64 / 1_000.0);
    metrics::gauge!(WORKERS_LATE).set(stats.workers_late as f64);
    metrics::gauge!(WORKERS_LOST).set(stats.workers_lost as f64);
    if let Some(in_sync) = stats.replicas_in_sync {
        metrics::gauge!(REPLICAS_IN_SYNC).set(in_sync as f64);
    }
    metrics::gauge!(REPLICAS_WANTED).set(stats.replicas_wanted as f64);
    metrics::gauge!(REDIS_UP).set(1.0);
}

/// Notes a failed stats reading.
pub fn record_stats_failed() {
    metrics::gauge!(REDIS_UP).set(0.0);
    metrics::counter!(REDIS_ERRORS, "operation" => "stats").increment(1);
}

/// Counts one failed Redis command of `operation` (a fixed name, never a key or value).
pub fn redis_error(operation: &'static str) {
    metrics::counter!(REDIS_ERRORS, "operation" => operation).increment(1);
}

/// Counts one failed PostgreSQL call of `operation` (a fixed name).
pub fn postgres_error(operation: &'static str) {
    metrics::counter!(POSTGRES_ERRORS, "operation" => operation).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_help_types_and_buckets() {
        exporter();
        metrics::counter!(MESSAGES_ACCEPTED).increment(3);
        metrics::histogram!(BATCH_SIZE).record(120.0);
        redis_error("push");
        exporter().run_upkeep();
        let text = render();
        assert!(
            text.contains(
                "# HELP sluice_messages_accepted_total Messages the ingest API put on the queue."
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE sluice_messages_accepted_total counter"),
            "{text}"
        );
        assert!(text.contains("sluice_messages_accepted_total 3"), "{text}");
        assert!(
            text.contains("# TYPE sluice_batch_size histogram"),
            "{text}"
        );
        assert!(
            text.contains("sluice_batch_size_bucket{le=\"250\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sluice_batch_size_bucket{le=\"100\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("sluice_redis_errors_total{operation=\"push\"} 1"),
            "{text}"
        );
    }
}
