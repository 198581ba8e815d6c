//! Stats, alerts and reports as text.

use std::fmt::Write;

use sluice_client::send::SendReport;
use sluice_proto::api::{Alert, AlertList, DeadLetterPage};
use sluice_proto::cards::{Card, Unit};
use sluice_proto::stats::Stats;

/// The cards of the view: `sluice_proto`'s list, the one the dashboard shows.
pub fn cards() -> &'static [Card] {
    static CARDS: std::sync::LazyLock<Vec<Card>> =
        std::sync::LazyLock::new(sluice_proto::cards::cards);
    &CARDS
}

/// A card's label as the terminal shows it (lower case).
pub fn label(card: &Card) -> String {
    card.label.to_lowercase()
}

/// The card's figure in `stats`, as people read it.
pub fn show(card: &Card, stats: &Stats) -> String {
    let Some(number) = card.value(stats) else {
        return "–".into();
    };
    match card.unit {
        Unit::Rate => format!("{number:.1}"),
        Unit::Duration => duration(number),
        Unit::Millis => format!("{number:.1} ms"),
        Unit::Count => thousands(number as u64),
    }
}

pub use sluice_proto::cards::thousands;

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
pub fn stats_table(stats: &Stats) -> String {
    let mut out = String::new();
    for card in cards() {
        let _ = writeln!(out, "{:>15}  {}", label(card), show(card, stats));
    }
    let _ = writeln!(out, "{:>15}  {}", "at", stats.timestamp);
    out
}

/// One line per tick for `sluice watch --plain`.
pub fn plain_line(stats: &Stats, active_alerts: usize) -> String {
    let mut line = stats.timestamp.clone();
    for card in cards() {
        if let Some(key) = &card.plain {
            let _ = write!(line, " {key}={}", show(card, stats).replace(' ', ""));
        }
    }
    let _ = write!(line, " alerts={active_alerts}");
    line
}

/// One alert on one line: `FIRING critical no_live_workers  summary  (since …)`.
pub fn alert_line(alert: &Alert) -> String {
    let when = alert.resolved_at.as_deref().unwrap_or(&alert.started_at);
    format!(
        "{:<8} {:<8} {:<22} {}  ({when})",
        alert.state.to_uppercase(),
        alert.severity,
        alert.rule.name(),
        alert.summary,
    )
}

/// `sluice alerts`.
pub fn alerts_text(list: &AlertList) -> String {
    let mut out = String::new();
    for (title, alerts) in [("active", &list.active), ("recent", &list.recent)] {
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
        "{} messages in {:.1} s: {} accepted ({:.0} msg/s), {} refused, {} sent without an answer, {} not sent\n",
        thousands(report.messages),
        report.seconds,
        thousands(report.succeeded),
        report.messages_per_sec,
        thousands(report.refused),
        thousands(report.unanswered),
        thousands(report.not_sent),
    );
    if report.retried > 0 {
        let _ = writeln!(
            out,
            "{} answers 503 (not confirmed) were sent again under the same Idempotency-Key: \
             none was queued twice",
            thousands(report.retried)
        );
    }
    for (status, count) in &report.statuses {
        let _ = writeln!(
            out,
            "{} × {status}: {}",
            thousands(*count),
            meaning(*status)
        );
    }
    if let Some(latency) = &report.latency_ms {
        let _ = writeln!(
            out,
            "latency, from each message's scheduled send time: p50 {:.2} ms, p99 {:.2} ms, max \
             {:.2} ms",
            latency.p50, latency.p99, latency.max
        );
    }
    out
}

/// What an answer of the ingest API's `POST /messages` means for the message.
pub fn meaning(status: u16) -> &'static str {
    match status {
        400 | 413 | 415 | 422 => {
            "the message was refused as sent (see the error's code); not queued"
        }
        401 => "no valid credential (--key, or SLUICE_KEY); not queued",
        403 => "the key may not post this (its scope, user or channels); not queued",
        408 => "the body came too slowly; not queued",
        429 => {
            "the queue is full or the key's rate limit holds; not queued: slow down, retry later"
        }
        503 => {
            "not confirmed, still after every retry: the ingest API cannot reach Redis; it may or may not be queued (a retry under the same Idempotency-Key tells)"
        }
        500..=599 => "the server failed; not confirmed",
        _ => "not accepted",
    }
}

/// `sluice dead-letters list`: each entry on two lines, unreadable ones as such with their
/// first bytes in hex.
pub fn dead_letters(page: &DeadLetterPage) -> String {
    let text =
        |letter: &serde_json::Value, key: &str| letter[key].as_str().unwrap_or("").to_owned();
    let mut out = format!("{} dead letter(s)\n", page.total);
    for letter in &page.dead_letters {
        let bytes = letter["bytes"].as_u64().unwrap_or(0);
        if letter.get("unreadable").is_some() {
            let _ = writeln!(
                out,
                "unreadable entry {} ({bytes} bytes; delete it with `sluice dead-letters purge --unreadable`)\n    hex {}",
                text(letter, "id"),
                text(letter, "unreadable_hex"),
            );
            continue;
        }
        let kept = match letter["payload_bytes"].as_u64() {
            Some(size) => format!("  (first bytes of {size}; cannot be requeued)"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{}  {}  {}  {}{kept}\n    {}",
            text(letter, "id"),
            text(letter, "failed_at"),
            text(letter, "worker_id"),
            text(letter, "reason"),
            text(letter, "payload"),
        );
    }
    if let Some(next) = page.next_offset {
        let _ = writeln!(out, "(more: --offset {next})");
    }
    out
}

/// The user and channels a key is bound to, as ` user 7 channels 3,4`; empty when unbound.
fn binding(key: &sluice_proto::keys::KeyInfo) -> String {
    let mut out = String::new();
    if let Some(user) = key.user_id {
        let _ = write!(out, "  user {user}");
    }
    if let Some(channels) = &key.channels {
        let channels: Vec<String> = channels.iter().map(i64::to_string).collect();
        let _ = write!(out, "  channels {}", channels.join(","));
    }
    out
}

/// `sluice keys list`: one key a line (never the key itself), then its dates.
pub fn keys(keys: &[sluice_proto::keys::KeyInfo]) -> String {
    let when = |at: &Option<chrono::DateTime<chrono::Utc>>, none: &str| {
        at.map_or_else(
            || none.to_owned(),
            |at| at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        )
    };
    let mut out = format!("{} key(s)\n", keys.len());
    for key in keys {
        let scopes: Vec<&str> = key.scopes.iter().map(|s| s.name()).collect();
        let state = match key.revoked_at {
            Some(_) => "REVOKED",
            None => "active",
        };
        let _ = writeln!(
            out,
            "{}  {}  {}{}  {}  {state}\n    created {}  last used {}  expires {}  revoked {}",
            key.name,
            key.prefix,
            scopes.join(","),
            binding(key),
            match (key.rate, key.burst) {
                (Some(rate), Some(burst)) => format!("limit {rate}/s burst {burst}"),
                _ => "no limit".to_owned(),
            },
            when(&Some(key.created_at), ""),
            when(&key.last_used_at, "never"),
            when(&key.expires_at, "never"),
            when(&key.revoked_at, "no"),
        );
    }
    out
}

/// `sluice audit`: one line per action, newest first.
pub fn audit(entries: &[sluice_proto::audit::AuditEntry]) -> String {
    let mut out = format!("{} action(s), newest first\n", entries.len());
    for entry in entries {
        let _ = writeln!(
            out,
            "{}  {:<26}  {}  from {}  {}",
            entry.at.format("%Y-%m-%d %H:%M:%SZ"),
            entry.action,
            entry.actor,
            entry.address.as_deref().unwrap_or("unknown"),
            entry.target,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::stats::Latency;

    fn stats() -> Stats {
        let mut stats = Stats::at(chrono::Utc::now(), 1_234_567, 10, 0, 267.25);
        stats.oldest_pending_age_ms = 2_500;
        stats.workers_alive = 2;
        stats.timestamp = "t".into();
        stats.commit_latency_ms = Latency {
            p50: Some(4.25),
            p95: None,
            p99: None,
        };
        stats
    }

    fn card(name: &str) -> &'static Card {
        cards().iter().find(|c| label(c) == name).expect("a card")
    }

    #[test]
    fn cards_read_like_the_dashboard() {
        let stats = stats();
        assert_eq!(show(card("total messages"), &stats), "1,234,567");
        assert_eq!(show(card("persisted/s"), &stats), "267.2");
        assert_eq!(show(card("oldest message"), &stats), "2.5 s");
        assert_eq!(show(card("commit p50"), &stats), "4.2 ms");
        assert_eq!(show(card("commit p99"), &stats), "–");
        assert_eq!(show(card("queue depth"), &stats), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn a_plain_line_has_every_card_but_the_average() {
        let line = plain_line(&stats(), 1);
        assert_eq!(
            line,
            "t total=1,234,567 persisted/s=267.2 accepted/s=0.0 queue=0 in_flight=0 batches=10 \
             workers=2 dead=0 p50=4.2ms p99=– oldest=2.5s alerts=1"
        );
    }
}
