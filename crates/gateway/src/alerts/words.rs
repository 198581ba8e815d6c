//! What an alert says, in words a person reads: one line while it fires (rewritten while it
//! fires, see `runtime`), one when it resolves.

use sluice_proto::api::{Alert, Rule};

use super::Check;

/// A rate for summaries a person reads, with commas between thousands (rates are never
/// negative).
fn thousands(value: f64) -> String {
    sluice_proto::cards::thousands(value.round().max(0.0) as u64)
}

/// A rate per second as a summary says it: `12/s`, `1,234/s`, and one decimal under 10
/// (`0.4/s`), where rounding would say 0.
pub fn per_second(rate: f64) -> String {
    if rate < 10.0 {
        format!("{:.1}/s", rate.max(0.0))
    } else {
        format!("{}/s", thousands(rate))
    }
}

/// `w-1`, `w-1 and w-2`, `w-1, w-2 and w-3`, then `and N more` past the named ones.
fn listing(named: &[String], count: u64) -> String {
    let more = count.saturating_sub(named.len() as u64);
    let mut items: Vec<String> = named.to_vec();
    if more > 0 {
        items.push(format!("{more} more"));
    }
    match items.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A firing alert for `check`.
pub fn firing(rule: Rule, check: &Check, started_at: String) -> Alert {
    Alert {
        kind: "alert".into(),
        rule,
        severity: check.severity.into(),
        state: "firing".into(),
        value: check.value,
        threshold: check.threshold,
        started_at,
        resolved_at: None,
        summary: summary(rule, check),
    }
}

/// One line describing a resolved alert, from the reading that resolved it.
pub fn resolved_summary(rule: Rule, check: &Check) -> String {
    let (value, threshold) = (check.value, check.threshold);
    match rule {
        Rule::QueueDepthHigh => format!("{value} messages waiting (threshold {threshold})"),
        Rule::QueueGrowing => format!("persistence keeps up again ({value} msg/s surplus)"),
        Rule::NoLiveWorkers => "a worker is alive, or nothing waits".into(),
        Rule::DeadLettersIncreased => format!("no new dead letter lately; {value} in all"),
        Rule::CommitLatencyHigh => format!("commit latency p99 {value} ms again"),
        Rule::RedisDown => "the gateway reads Redis again".into(),
        Rule::PostgresDown => "every live worker reaches PostgreSQL".into(),
        Rule::ThroughputAnomaly => format!(
            "persisted/s back near its recent mean: {}/s (mean {}/s)",
            thousands(value),
            thousands(threshold)
        ),
        Rule::WorkerLate => "every worker beats on time".into(),
        Rule::WorkerLost => "no worker is lost: each came back, or left 5 minutes ago".into(),
        Rule::ReplicationDegraded => {
            format!("{value} of {threshold} replica(s) in sync, and pushes are acknowledged again")
        }
        Rule::ErrorRate => format!(
            "5xx answers at {} again (threshold {})",
            per_second(value),
            per_second(threshold)
        ),
    }
}

/// One line describing a firing alert.
pub fn summary(rule: Rule, check: &Check) -> String {
    let (value, threshold) = (check.value, check.threshold);
    match rule {
        Rule::QueueDepthHigh => format!("{value} messages waiting (threshold {threshold})"),
        Rule::QueueGrowing => {
            format!("arrivals outpace persistence by {value} msg/s (threshold {threshold})")
        }
        Rule::NoLiveWorkers => "messages are waiting and no worker is alive".into(),
        Rule::DeadLettersIncreased => {
            format!("dead letters rose from {threshold} to {value}")
        }
        Rule::CommitLatencyHigh => {
            format!("commit latency p99 {value} ms (threshold {threshold} ms)")
        }
        Rule::RedisDown => "the gateway cannot read Redis".into(),
        Rule::PostgresDown => format!("{value} live worker(s) report PostgreSQL down"),
        Rule::ThroughputAnomaly => {
            let moved = if value >= threshold { "rose" } else { "fell" };
            format!(
                "persisted/s {moved} from {}/s (its recent mean) to {}/s",
                thousands(threshold),
                thousands(value)
            )
        }
        Rule::WorkerLate | Rule::WorkerLost => workers(rule, check),
        Rule::ReplicationDegraded => replication(check),
        Rule::ErrorRate => format!(
            "the ingest APIs answer 5xx at {} (threshold {}): {}",
            per_second(value),
            per_second(threshold),
            check.named.join(", ")
        ),
    }
}

fn workers(rule: Rule, check: &Check) -> String {
    let count = check.value as u64;
    let who = listing(&check.named, count);
    let one = count == 1;
    match (rule, one) {
        (Rule::WorkerLost, true) => {
            format!("worker {who} is lost: presumed dead or reclaimed, and not back")
        }
        (Rule::WorkerLost, false) => {
            format!("{count} workers are lost (presumed dead or reclaimed, and not back): {who}")
        }
        (_, true) => format!("worker {who} has missed its heartbeats"),
        (_, false) => format!("{count} workers have missed their heartbeats: {who}"),
    }
}

fn replication(check: &Check) -> String {
    let (in_sync, wanted) = (check.value, check.threshold);
    let short = in_sync < wanted;
    let refused = check.named.first();
    match (short, refused) {
        (true, Some(refused)) => format!(
            "the Redis primary has {in_sync} of the {wanted} replica(s) a push needs in sync; \
             pushes are refused with 503 {refused}"
        ),
        (true, None) => format!(
            "the Redis primary has {in_sync} of the {wanted} replica(s) a push needs in sync"
        ),
        (false, Some(refused)) => {
            format!("pushes are refused with 503 {refused}: too few replicas confirm them in time")
        }
        (false, None) => "replication is short".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: f64, threshold: f64, named: &[&str]) -> Check {
        Check::new(true, value, threshold, "high")
            .naming(named.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn workers_are_named_at_any_fleet_size() {
        let one = check(1.0, 0.0, &["w-2"]);
        assert_eq!(
            summary(Rule::WorkerLate, &one),
            "worker w-2 has missed its heartbeats"
        );
        assert_eq!(
            summary(Rule::WorkerLost, &one),
            "worker w-2 is lost: presumed dead or reclaimed, and not back"
        );
        let many = check(40.0, 0.0, &["a", "b", "c"]);
        assert_eq!(
            summary(Rule::WorkerLate, &many),
            "40 workers have missed their heartbeats: a, b, c and 37 more"
        );
        let two = check(2.0, 0.0, &["a", "b"]);
        assert_eq!(
            summary(Rule::WorkerLost, &two),
            "2 workers are lost (presumed dead or reclaimed, and not back): a and b"
        );
    }

    #[test]
    fn replication_and_errors_say_what_is_short_and_what_clients_get() {
        let short = check(0.0, 1.0, &["not_replicated 1,950/s"]);
        assert_eq!(
            summary(Rule::ReplicationDegraded, &short),
            "the Redis primary has 0 of the 1 replica(s) a push needs in sync; pushes are \
             refused with 503 not_replicated 1,950/s"
        );
        let refusing = check(1.0, 1.0, &["not_replicated 0.4/s"]);
        assert!(summary(Rule::ReplicationDegraded, &refusing).starts_with("pushes are refused"));
        let errors = check(
            44.0,
            1.0,
            &["not_replicated 41/s", "redis_unavailable 3.0/s"],
        );
        assert_eq!(
            summary(Rule::ErrorRate, &errors),
            "the ingest APIs answer 5xx at 44/s (threshold 1.0/s): not_replicated 41/s, \
             redis_unavailable 3.0/s"
        );
        assert_eq!(per_second(0.04), "0.0/s");
        assert_eq!(per_second(12_345.4), "12,345/s");
    }
}
