//! Alert rules, evaluated by the gateway on every stats reading.
//!
//! [`Evaluator`] is pure: it turns readings into [`Transition`]s (fire, resolve), holding each
//! rule's condition for its duration first. [`sluice_stream::alerts::store::AlertStore`] records transitions in Redis so that
//! an alert fires once and resolves once however many gateways evaluate the same readings: the
//! first gateway to fire a rule wins (`HSETNX alerts_active`), and only the one whose resolve
//! removes it announces the resolution. Each recorded transition is published on
//! `alert_events`, which every gateway forwards to its clients on the `alerts` topic.
//!
//! `redis_down` cannot go through Redis: each gateway tells its own clients, and records the
//! outage in `alerts_recent` once Redis is back (once per outage, whichever gateway is first).

pub mod runtime;
mod words;

pub use words::{firing, resolved_summary, summary};

use std::collections::VecDeque;
use std::time::Duration;

use sluice_core::settings::AlertSettings;
use sluice_proto::api::Rule;
use sluice_proto::stats::{NAMED_WORKERS, Stats};
use tokio::time::Instant;

/// The rules evaluated from readings (all but `redis_down`), the anomaly last: it looks at
/// the causes' conditions on the same reading.
pub const READING_RULES: [Rule; 11] = [
    Rule::QueueDepthHigh,
    Rule::QueueGrowing,
    Rule::NoLiveWorkers,
    Rule::DeadLettersIncreased,
    Rule::CommitLatencyHigh,
    Rule::PostgresDown,
    Rule::WorkerLate,
    Rule::WorkerLost,
    Rule::ReplicationDegraded,
    Rule::ErrorRate,
    Rule::ThroughputAnomaly,
];

/// The rules whose condition explains a fall of persisted/s: while one holds (or fires),
/// `throughput_anomaly` does not.
pub const CAUSES: [Rule; 6] = [
    Rule::RedisDown,
    Rule::PostgresDown,
    Rule::NoLiveWorkers,
    Rule::WorkerLate,
    Rule::WorkerLost,
    Rule::ReplicationDegraded,
];

/// A rule's condition on one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Whether the condition holds.
    pub breaching: bool,
    /// The measured value.
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// Severity if it fires.
    pub severity: &'static str,
    /// What the summary names: the workers concerned, the error codes and their rates.
    pub named: Vec<String>,
}

impl Check {
    fn new(breaching: bool, value: f64, threshold: f64, severity: &'static str) -> Self {
        Self {
            breaching,
            value,
            threshold,
            severity,
            named: Vec::new(),
        }
    }

    fn naming(mut self, named: Vec<String>) -> Self {
        self.named = named;
        self
    }
}

/// What the evaluator decided on one reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The rule's condition has held for its duration: fire it.
    Fire(Rule, Check),
    /// The condition has been false for long enough: resolve it (with the current reading).
    Resolve(Rule, Check),
}

#[derive(Debug, Clone, Default)]
struct RuleState {
    breaching_since: Option<Instant>,
    clear_since: Option<Instant>,
    /// Whether the rule is active in Redis, as far as this gateway knows; `None` at start.
    active: Option<bool>,
    /// The last reading's check.
    last: Option<Check>,
}

/// Turns readings into transitions.
#[derive(Debug)]
pub struct Evaluator {
    settings: AlertSettings,
    states: [RuleState; Rule::ALL.len()],
    /// persisted/s, one value per Redis second, for the anomaly rule.
    persisted: VecDeque<(u64, f64)>,
    dead_letters: Option<u64>,
    dead_letters_before: u64,
    last_dead_letter: Option<Instant>,
}

/// Fewest seconds of persisted/s the anomaly rule needs before it judges.
pub const ANOMALY_MIN_SAMPLES: usize = 60;
/// The most recent seconds left out of the anomaly rule's baseline, so an anomaly does not
/// hide itself by moving the mean.
pub const ANOMALY_RECENT_SECS: usize = 15;

impl Evaluator {
    /// An evaluator with `settings`.
    pub fn new(settings: AlertSettings) -> Self {
        Self {
            settings,
            states: std::array::from_fn(|_| RuleState::default()),
            persisted: VecDeque::new(),
            dead_letters: None,
            dead_letters_before: 0,
            last_dead_letter: None,
        }
    }

    /// Evaluates every reading rule on `stats`, taken at `now`.
    pub fn evaluate(&mut self, stats: &Stats, now: Instant) -> Vec<Transition> {
        self.observe(stats, now);
        READING_RULES
            .into_iter()
            .filter_map(|rule| {
                let check = self.check(rule, stats, now);
                self.step(rule, check, now)
            })
            .collect()
    }

    /// Evaluates `redis_down`: `down` is whether the last read failed.
    pub fn evaluate_redis(&mut self, down: bool, now: Instant) -> Option<Transition> {
        let since = self.states[Rule::RedisDown.index()].breaching_since;
        let check = Check::new(
            down,
            since.map_or(0.0, |s| (now - s).as_secs_f64().round()),
            self.settings.redis_down_for_secs as f64,
            "critical",
        );
        self.step(Rule::RedisDown, check, now)
    }

    /// Records what the store did with a transition: the rule is now active (fired, by this
    /// gateway or another) or not.
    pub fn applied(&mut self, transition: &Transition) {
        match transition {
            Transition::Fire(rule, _) => self.states[rule.index()].active = Some(true),
            Transition::Resolve(rule, _) => self.states[rule.index()].active = Some(false),
        }
    }

    /// Whether `rule`'s condition holds now, or its alert still fires (it resolves only after
    /// `resolve_after_secs`).
    fn holds(&self, rule: Rule) -> bool {
        let state = &self.states[rule.index()];
        state.breaching_since.is_some() || state.active == Some(true)
    }

    /// When `rule`'s condition began holding, if it holds: the measured start of an alert.
    pub fn breaching_since(&self, rule: Rule) -> Option<Instant> {
        self.states[rule.index()].breaching_since
    }

    /// The last reading's check of `rule`, while its condition holds: what a firing alert's
    /// text says now.
    pub fn current(&self, rule: Rule) -> Option<Check> {
        let state = &self.states[rule.index()];
        state.last.clone().filter(|check| check.breaching)
    }

    /// When `rule`'s condition stopped holding, if it no longer holds: the measured end of an
    /// alert (its resolution comes `resolve_after_secs` later).
    pub fn clear_since(&self, rule: Rule) -> Option<Instant> {
        self.states[rule.index()].clear_since
    }

    fn observe(&mut self, stats: &Stats, now: Instant) {
        let second = chrono::DateTime::parse_from_rfc3339(&stats.timestamp)
            .map_or(0, |t| t.timestamp() as u64);
        if self.persisted.back().is_none_or(|&(s, _)| s < second) {
            self.persisted.push_back((second, stats.current_rps));
        }
        while self.persisted.len() > self.settings.anomaly_window_secs as usize {
            self.persisted.pop_front();
        }
        let total = stats.dead_letters_total;
        if let Some(before) = self.dead_letters
            && total > before
        {
            if self.last_dead_letter.is_none_or(|at| {
                now - at >= Duration::from_secs(self.settings.dead_letters_quiet_secs)
            }) {
                self.dead_letters_before = before;
            }
            self.last_dead_letter = Some(now);
        }
        self.dead_letters = Some(total);
    }

    fn check(&self, rule: Rule, stats: &Stats, now: Instant) -> Check {
        let s = &self.settings;
        let check = Check::new;
        match rule {
            Rule::QueueDepthHigh => {
                let depth = stats.queue_depth as f64;
                let limit = s.queue_depth_threshold as f64;
                check(depth > limit, depth, limit, "high")
            }
            Rule::QueueGrowing => {
                let surplus = round2(stats.accepted_per_second - stats.current_rps);
                let growing = surplus > s.queue_growing_min_rate && stats.queue_depth > 0;
                check(growing, surplus, s.queue_growing_min_rate, "medium")
            }
            Rule::NoLiveWorkers => {
                let waiting = stats.queue_depth + stats.in_flight;
                let none = stats.workers_alive == 0 && waiting > 0;
                check(none, stats.workers_alive as f64, 1.0, "critical")
            }
            Rule::DeadLettersIncreased => {
                let quiet = Duration::from_secs(s.dead_letters_quiet_secs);
                let recent = self.last_dead_letter.is_some_and(|at| now - at < quiet);
                let total = stats.dead_letters_total as f64;
                // Dealt with once none is left: requeued or purged, nothing waits for an
                // operator, so neither the alert nor the card stays amber over a 0.
                let waiting = stats.dead_letters > 0;
                check(
                    recent && waiting,
                    total,
                    self.dead_letters_before as f64,
                    "medium",
                )
            }
            Rule::CommitLatencyHigh => {
                let p99 = stats.commit_latency_ms.p99.unwrap_or(0.0);
                let limit = s.commit_latency_p99_ms;
                check(p99 > limit, p99, limit, "medium")
            }
            Rule::PostgresDown => {
                let down = stats.workers_postgres_down as f64;
                check(down > 0.0, down, 0.0, "critical")
            }
            Rule::ThroughputAnomaly => {
                let check = self.anomaly(stats);
                // A symptom: held while a rule naming its cause holds, as Alertmanager's
                // inhibit rules would, so one outage pages once.
                let explained = CAUSES.iter().any(|cause| self.holds(*cause));
                Check {
                    breaching: check.breaching && !explained,
                    ..check
                }
            }
            Rule::WorkerLate | Rule::WorkerLost => workers(rule, stats),
            Rule::ReplicationDegraded => replication(stats),
            Rule::ErrorRate => {
                let total = round2(stats.errors_per_second.values().sum());
                let limit = s.error_rate_threshold;
                check(total > limit, total, limit, "high").naming(by_code(stats))
            }
            Rule::RedisDown => check(false, 0.0, 0.0, "critical"),
        }
    }

    /// persisted/s now against its mean over the window, the recent seconds excluded: an
    /// anomaly when its z-score passes `anomaly_z_medium`, it moved at least
    /// `anomaly_min_change` msg/s, and the pipeline no longer keeps up with arrivals. A load
    /// that starts (from idle or not), grows, shrinks or stops moves persisted/s with the
    /// arrivals, and a backlog draining lifts it above them: none of these is an anomaly. The
    /// check's value is the rate now and its threshold the mean, which the summary says in
    /// words; the z-score sets the severity.
    fn anomaly(&self, stats: &Stats) -> Check {
        let s = &self.settings;
        let current = stats.current_rps;
        let baseline: Vec<f64> = self
            .persisted
            .iter()
            .rev()
            .skip(ANOMALY_RECENT_SECS)
            .map(|&(_, v)| v)
            .collect();
        let mean = mean(&baseline);
        let z = z_score(current, &baseline, s.anomaly_min_stddev).unwrap_or(0.0);
        let arriving = stats.accepted_per_second;
        let keeps_up = current + s.anomaly_min_change.max(arriving * 0.1) >= arriving;
        let moved = (current - mean).abs() >= s.anomaly_min_change;
        let severity = if z.abs() >= s.anomaly_z_high {
            "high"
        } else {
            "medium"
        };
        Check::new(
            z.abs() >= s.anomaly_z_medium && moved && !keeps_up,
            current.round(),
            mean.round(),
            severity,
        )
    }

    fn duration(&self, rule: Rule) -> Duration {
        let s = &self.settings;
        Duration::from_secs(match rule {
            Rule::QueueDepthHigh => s.queue_depth_for_secs,
            Rule::QueueGrowing => s.queue_growing_for_secs,
            Rule::NoLiveWorkers => s.no_live_workers_for_secs,
            Rule::DeadLettersIncreased => 0,
            Rule::CommitLatencyHigh => s.commit_latency_for_secs,
            Rule::RedisDown => s.redis_down_for_secs,
            Rule::PostgresDown => s.postgres_down_for_secs,
            Rule::ThroughputAnomaly => s.anomaly_for_secs,
            Rule::WorkerLate => s.worker_late_for_secs,
            Rule::WorkerLost => s.worker_lost_for_secs,
            Rule::ReplicationDegraded => s.replication_degraded_for_secs,
            Rule::ErrorRate => s.error_rate_for_secs,
        })
    }

    fn resolve_after(&self, rule: Rule) -> Duration {
        match rule {
            // Its condition already includes a quiet period.
            Rule::DeadLettersIncreased => Duration::ZERO,
            _ => Duration::from_secs(self.settings.resolve_after_secs),
        }
    }

    fn step(&mut self, rule: Rule, check: Check, now: Instant) -> Option<Transition> {
        let held_for = self.duration(rule);
        let resolve_after = self.resolve_after(rule);
        let state = &mut self.states[rule.index()];
        state.last = Some(check.clone());
        if check.breaching {
            state.clear_since = None;
            let since = *state.breaching_since.get_or_insert(now);
            (state.active != Some(true) && now - since >= held_for)
                .then_some(Transition::Fire(rule, check))
        } else {
            state.breaching_since = None;
            let since = *state.clear_since.get_or_insert(now);
            (state.active != Some(false) && now - since >= resolve_after)
                .then_some(Transition::Resolve(rule, check))
        }
    }
}

/// `worker_late` (late or lost: silent past the late bound) or `worker_lost`, naming the
/// workers: the value is how many, the threshold 0.
fn workers(rule: Rule, stats: &Stats) -> Check {
    let (count, severity, ids) = if rule == Rule::WorkerLost {
        (stats.workers_lost, "high", stats.lost_worker_ids.clone())
    } else {
        let ids = stats.late_worker_ids.iter().chain(&stats.lost_worker_ids);
        let ids = ids.take(NAMED_WORKERS).cloned().collect();
        (stats.workers_late + stats.workers_lost, "medium", ids)
    };
    Check::new(count > 0, count as f64, 0.0, severity).naming(ids)
}

/// `replication_degraded`: fewer replicas in sync than a push needs, or pushes refused with
/// `not_replicated` (which also catches a replica that is connected but does not answer).
/// The value is the replicas in sync, the threshold those wanted; the refusals are named.
fn replication(stats: &Stats) -> Check {
    let wanted = stats.replicas_wanted;
    let in_sync = stats.replicas_in_sync.unwrap_or(wanted);
    let refused = stats.errors_per_second.get(NOT_REPLICATED).copied();
    let refused = refused.filter(|rate| *rate > 0.0);
    let named = refused.map(|rate| vec![format!("{NOT_REPLICATED} {}", words::per_second(rate))]);
    Check::new(
        in_sync < wanted || refused.is_some(),
        in_sync as f64,
        wanted as f64,
        "critical",
    )
    .naming(named.unwrap_or_default())
}

/// The error code of a push that was not confirmed by enough replicas.
pub const NOT_REPLICATED: &str = "not_replicated";

/// The error codes of the reading, most frequent first, with their rates.
fn by_code(stats: &Stats) -> Vec<String> {
    let mut codes: Vec<_> = stats.errors_per_second.iter().collect();
    codes.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
    codes
        .into_iter()
        .map(|(code, rate)| format!("{code} {}", words::per_second(*rate)))
        .collect()
}

/// z-score of `value` against `baseline`; `None` with too few samples. The deviation has a
/// floor (5 % of the mean, and `min_stddev` msg/s) so a perfectly steady rate does not make
/// every wobble infinitely anomalous.
pub fn z_score(value: f64, baseline: &[f64], min_stddev: f64) -> Option<f64> {
    if baseline.len() < ANOMALY_MIN_SAMPLES - ANOMALY_RECENT_SECS {
        return None;
    }
    let mean = mean(baseline);
    let n = baseline.len() as f64;
    let variance = baseline.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let sigma = variance.sqrt().max(mean.abs() * 0.05).max(min_stddev);
    Some((value - mean) / sigma)
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests;
