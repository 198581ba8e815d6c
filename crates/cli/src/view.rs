//! Stats, alerts and reports as text.

use std::fmt::Write;

use serde_json::Value;
use sluice_bench::send::SendReport;

/// The cards of the dashboard: label and the stats field behind it.
pub const CARDS: [(&str, &str); 12] = [
    ("total messages", "total_messages"),
    ("persisted/s", "current_rps"),
    ("accepted/s", "accepted_per_second"),
    ("queue depth", "queue_depth"),
    ("in flight", "in_flight"),
    ("batches", "total_batches"),
    ("avg batch", "avg_batch_size"),
    ("workers alive", "workers_alive"),
    ("dead letters", "dead_letters"),
    ("commit p50", "commit_latency_ms.p50"),
    ("commit p99", "commit_latency_ms.p99"),
    ("oldest message", "oldest_pending_age_ms"),
];

/// The value at a dotted path.
pub fn field<'a>(stats: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(stats, |v, key| &v[key])
}

/// A card's value as people read it.
pub fn card(stats: &Value, path: &str) -> String {
    let value = field(stats, path);
    let Some(number) = value.as_f64() else {
        return "–".into();
    };
    match path {
        "current_rps" | "accepted_per_second" | "avg_batch_size" => format!("{number:.1}"),
        "oldest_pending_age_ms" => duration(number),
        p if p.starts_with("commit_latency_ms") => format!("{number:.1} ms"),
        _ => thousands(number as u64),
    }
}

/// `12345678` → `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn duration(ms: f64) -> String {
    if ms < 1_000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1_000.0)
    } else {
        format!(
            "{:.0} m {:.0} s",
            (ms / 60_000.0).floor(),
            (ms % 60_000.0) / 1_000.0
        )
    }
}

/// `sluice stats`: one card per line.
pub fn stats_table(stats: &Value) -> String {
    let mut out = String::new();
    for (label, path) in CARDS {
        let _ = writeln!(out, "{label:>15}  {}", card(stats, path));
    }
    let _ = writeln!(
        out,
        "{:>15}  {}",
        "at",
        stats["timestamp"].as_str().unwrap_or("")
    );
    out
}

/// One line per tick for `sluice watch --plain`.
pub fn plain_line(stats: &Value, active_alerts: usize) -> String {
    let short = |path| card(stats, path).replace(' ', "");
    format!(
        "{} total={} persisted/s={} accepted/s={} queue={} in_flight={} batches={} workers={} dead={} p50={} p99={} oldest={} alerts={active_alerts}",
        stats["timestamp"].as_str().unwrap_or("-"),
        short("total_messages"),
        short("current_rps"),
        short("accepted_per_second"),
        short("queue_depth"),
        short("in_flight"),
        short("total_batches"),
        short("workers_alive"),
        short("dead_letters"),
        short("commit_latency_ms.p50"),
        short("commit_latency_ms.p99"),
        short("oldest_pending_age_ms"),
    )
}

/// One alert on one line: `FIRING critical no_live_workers  summary  (since …)`.
pub fn alert_line(alert: &Value) -> String {
    let state = alert["state"].as_str().unwrap_or("?").to_uppercase();
    let when = alert["resolved_at"]
        .as_str()
        .or(alert["started_at"].as_str())
        .unwrap_or("");
    format!(
        "{state:<8} {:<8} {:<22} {}  ({when})",
        alert["severity"].as_str().unwrap_or("?"),
        alert["rule"].as_str().unwrap_or("?"),
        alert["summary"].as_str().unwrap_or(""),
    )
}

/// `sluice alerts`.
pub fn alerts_text(list: &Value) -> String {
    let mut out = String::new();
    for (title, key) in [("active", "active"), ("recent", "recent")] {
        let alerts = list[key].as_array().map(Vec::as_slice).unwrap_or_default();
        let _ = writeln!(out, "{title} ({}):", alerts.len());
        if alerts.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for alert in alerts {
            let _ = writeln!(out, "  {}", alert_line(alert));
        }
    }
    out
}

/// `sluice send`'s summary.
pub fn send_report(report: &SendReport) -> String {
    let mut out = format!(
        "sent {} messages in {:.1} s: {} accepted, {} failed, {:.0} msg/s\n",
        thousands(report.messages),
        report.seconds,
        thousands(report.succeeded),
        thousands(report.failed),
        report.messages_per_sec,
    );
    if let Some(latency) = &report.latency_ms {
        let _ = writeln!(
            out,
            "latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            latency.p50, latency.p99, latency.max
        );
    }
    out
}

/// `sluice dead-letters list`.
pub fn dead_letters(page: &Value) -> String {
    let mut out = format!("{} dead letter(s)\n", page["total"]);
    for letter in page["dead_letters"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let _ = writeln!(
            out,
            "{}  {}  {}\n    {}",
            letter["failed_at"].as_str().unwrap_or(""),
            letter["worker_id"].as_str().unwrap_or(""),
            letter["reason"].as_str().unwrap_or(""),
            letter["payload"].as_str().unwrap_or(""),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cards_read_like_the_dashboard() {
        let stats = json!({
            "total_messages": 1234567, "current_rps": 267.25, "oldest_pending_age_ms": 2500,
            "commit_latency_ms": {"p50": 4.25, "p99": null}
        });
        assert_eq!(card(&stats, "total_messages"), "1,234,567");
        assert_eq!(card(&stats, "current_rps"), "267.2");
        assert_eq!(card(&stats, "oldest_pending_age_ms"), "2.5 s");
        assert_eq!(card(&stats, "commit_latency_ms.p50"), "4.2 ms");
        assert_eq!(card(&stats, "commit_latency_ms.p99"), "–");
        assert_eq!(card(&stats, "queue_depth"), "–");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn a_plain_line_has_every_card() {
        let line = plain_line(
            &json!({"timestamp": "t", "total_messages": 5, "workers_alive": 2}),
            1,
        );
        assert!(line.starts_with("t total=5 "), "{line}");
        assert!(
            line.contains(" workers=2 ") && line.ends_with(" alerts=1"),
            "{line}"
        );
    }
}
