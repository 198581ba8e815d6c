//! Every Redis key and channel name Sluice uses, spelled once.
//!
//! The names are a public contract: users read them with `redis-cli`, and `proto-docs/redis.md`
//! documents each one. Every name is `<key_prefix><name>`; [`Keys`] applies the prefix.

/// The list the ingest API LPUSHes envelopes onto and the workers consume from the tail.
pub const PENDING_MESSAGES: &str = "pending_messages";
/// Messages persisted since the counters were created (string holding an integer).
pub const TOTAL_MESSAGES: &str = "total_messages";
/// Batches committed since the counters were created (string holding an integer).
pub const TOTAL_BATCHES: &str = "total_batches";
/// Messages persisted per second over the last [`RATE_WINDOW_SECS`] seconds, all workers together.
pub const CURRENT_RPS: &str = "current_rps";
/// Hash of per-second buckets (`unix second` → messages persisted in it) behind `current_rps`.
pub const RATE_WINDOW: &str = "rate_window";
/// Sorted set of live workers: member = worker id, score = last heartbeat (ms, Redis clock).
pub const WORKERS: &str = "workers";
/// Prefix of the keys recording used `Idempotency-Key`s: `idempotency:<key>`.
pub const IDEMPOTENCY_PREFIX: &str = "idempotency:";
/// Sorted set indexing the remembered `idempotency:<key>` keys: member = `"<bytes> <key name>"`
/// (what the entry costs, then the full key name), score = when it expires (ms, Redis clock).
/// It bounds how many are kept, and how many bytes.
pub const IDEMPOTENCY_KEYS: &str = "idempotency_keys";
/// The bytes the entries of `idempotency_keys` cost in all (string holding an integer).
pub const IDEMPOTENCY_BYTES: &str = "idempotency_bytes";
/// Prefix of each worker's processing list: `processing:<worker_id>`.
pub const PROCESSING_PREFIX: &str = "processing:";
/// Pub/sub channel on which workers announce every committed batch.
pub const BATCH_EVENTS: &str = "batch_events";
/// List of messages that can never be inserted, each with its original payload and the reason.
pub const DEAD_MESSAGES: &str = "dead_messages";
/// Messages ever moved to `dead_messages` (string holding an integer).
pub const DEAD_LETTERS: &str = "dead_letters";
/// Dead letters dropped from the old end of `dead_messages` to keep it within
/// `worker.dead_letters_max` (string holding an integer).
pub const DEAD_LETTERS_TRIMMED: &str = "dead_letters_trimmed";

/// Messages the ingest API answered 202 for, all ingest processes together (string holding an
/// integer).
pub const ACCEPTED_TOTAL: &str = "accepted_total";
/// Hash of per-second buckets (`unix second` → messages accepted in it) behind
/// `accepted_per_second`.
pub const ACCEPTED_WINDOW: &str = "accepted_window";
/// Hash of per-second commit-latency histograms: field `<unix second>:<bucket>` → messages
/// committed in that second whose POST→commit latency fell in that bucket (see
/// [`crate::stats::latency_bucket`]).
pub const COMMIT_LATENCY: &str = "commit_latency";
/// Hash of each live worker's view of PostgreSQL: field = worker id, value = `up` or `down`.
pub const WORKERS_POSTGRES: &str = "workers_postgres";
/// Hash of what each live worker has done since it started, as its last full heartbeat said:
/// field = worker id, value = `<batches> <rows persisted> <rows per second, last 10 s>`.
pub const WORKERS_OUTPUT: &str = "workers_output";
/// Sorted set of the workers whose last heartbeat reported PostgreSQL down: member = worker id,
/// score = that heartbeat (ms, Redis clock). Counting its fresh members is O(log workers).
pub const WORKERS_POSTGRES_DOWN: &str = "workers_postgres_down";
/// Messages in all processing lists together (string holding an integer), kept by the scripts
/// that move messages, so reading it does not cost a walk over the workers.
pub const IN_FLIGHT: &str = "in_flight";
/// Hash behind [`IN_FLIGHT`]: field = worker id, value = its processing list's length as last
/// seen by one of its scripts.
pub const IN_FLIGHT_BY_WORKER: &str = "in_flight_by_worker";
/// The stats upkeep lease (string holding the holder's id, with a TTL): the process holding it
/// refreshes the window figures and the history once a second for the whole fleet.
pub const UPKEEP_LEASE: &str = "upkeep_lease";
/// Hash of the window figures the upkeep computes once a second: `accepted_per_second`, `p50`,
/// `p95`, `p99` (ms, empty when nothing was committed in the window) and `updated_ms`.
pub const WINDOW_STATS: &str = "window_stats";
/// List of one-second history samples, newest first (at most [`HISTORY_1S_POINTS`]).
pub const HISTORY_1S: &str = "history_1s";
/// List of one-minute history samples, newest first (at most [`HISTORY_1M_POINTS`]).
pub const HISTORY_1M: &str = "history_1m";
/// Hash of the alerts firing now: field = rule, value = the alert's JSON.
pub const ALERTS_ACTIVE: &str = "alerts_active";
/// List of the latest alert transitions (firing and resolved), newest first.
pub const ALERTS_RECENT: &str = "alerts_recent";
/// Pub/sub channel on which each alert transition is announced, once, by the gateway that
/// recorded it.
pub const ALERT_EVENTS: &str = "alert_events";

/// One-second samples kept: ten minutes.
pub const HISTORY_1S_POINTS: usize = 600;
/// One-minute samples kept: 24 hours.
pub const HISTORY_1M_POINTS: usize = 1_440;
/// Alert transitions kept in `alerts_recent`.
pub const ALERTS_RECENT_MAX: usize = 100;

/// Width of the window `current_rps` averages over.
pub const RATE_WINDOW_SECS: u64 = 10;

/// How long `accepted_window` lives without a new count.
pub const ACCEPTED_WINDOW_TTL_SECS: u64 = 120;

/// The key names for one key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
    /// `<prefix>pending_messages`
    pub pending_messages: String,
    /// `<prefix>total_messages`
    pub total_messages: String,
    /// `<prefix>total_batches`
    pub total_batches: String,
    /// `<prefix>current_rps`
    pub current_rps: String,
    /// `<prefix>rate_window`
    pub rate_window: String,
    /// `<prefix>batch_events`
    pub batch_events: String,
    /// `<prefix>dead_messages`
    pub dead_messages: String,
    /// `<prefix>dead_letters`
    pub dead_letters: String,
    /// `<prefix>dead_letters_trimmed`
    pub dead_letters_trimmed: String,
    /// `<prefix>workers`
    pub workers: String,
    /// `<prefix>idempotency_keys`
    pub idempotency_keys: String,
    /// `<prefix>idempotency_bytes`
    pub idempotency_bytes: String,
    /// `<prefix>accepted_total`
    pub accepted_total: String,
    /// `<prefix>accepted_window`
    pub accepted_window: String,
    /// `<prefix>commit_latency`
    pub commit_latency: String,
    /// `<prefix>workers_postgres`
    pub workers_postgres: String,
    /// `<prefix>workers_postgres_down`
    pub workers_postgres_down: String,
    /// `<prefix>workers_output`
    pub workers_output: String,
    /// `<prefix>in_flight`
    pub in_flight: String,
    /// `<prefix>in_flight_by_worker`
    pub in_flight_by_worker: String,
    /// `<prefix>upkeep_lease`
    pub upkeep_lease: String,
    /// `<prefix>window_stats`
    pub window_stats: String,
    /// `<prefix>history_1s`
    pub history_1s: String,
    /// `<prefix>history_1m`
    pub history_1m: String,
    /// `<prefix>alerts_active`
    pub alerts_active: String,
    /// `<prefix>alerts_recent`
    pub alerts_recent: String,
    /// `<prefix>alert_events`
    pub alert_events: String,
}

impl Keys {
    /// Names under `prefix` (may be empty).
    pub fn new(prefix: &str) -> Self {
        let key = |name: &str| format!("{prefix}{name}");
        Self {
            prefix: prefix.to_owned(),
            pending_messages: key(PENDING_MESSAGES),
            total_messages: key(TOTAL_MESSAGES),
            total_batches: key(TOTAL_BATCHES),
            current_rps: key(CURRENT_RPS),
            rate_window: key(RATE_WINDOW),
            batch_events: key(BATCH_EVENTS),
            dead_messages: key(DEAD_MESSAGES),
            dead_letters: key(DEAD_LETTERS),
            dead_letters_trimmed: key(DEAD_LETTERS_TRIMMED),
            workers: key(WORKERS),
            idempotency_keys: key(IDEMPOTENCY_KEYS),
            idempotency_bytes: key(IDEMPOTENCY_BYTES),
            accepted_total: key(ACCEPTED_TOTAL),
            accepted_window: key(ACCEPTED_WINDOW),
            commit_latency: key(COMMIT_LATENCY),
            workers_postgres: key(WORKERS_POSTGRES),
            workers_postgres_down: key(WORKERS_POSTGRES_DOWN),
            workers_output: key(WORKERS_OUTPUT),
            in_flight: key(IN_FLIGHT),
            in_flight_by_worker: key(IN_FLIGHT_BY_WORKER),
            upkeep_lease: key(UPKEEP_LEASE),
            window_stats: key(WINDOW_STATS),
            history_1s: key(HISTORY_1S),
            history_1m: key(HISTORY_1M),
            alerts_active: key(ALERTS_ACTIVE),
            alerts_recent: key(ALERTS_RECENT),
            alert_events: key(ALERT_EVENTS),
        }
    }

    /// The key called `name` (a constant of this module, such as `"pending_messages"`), for
    /// scripts that name their KEYS ([`crate::lua`]).
    pub fn named(&self, name: &str) -> Option<&str> {
        let key = match name {
            PENDING_MESSAGES => &self.pending_messages,
            TOTAL_MESSAGES => &self.total_messages,
            TOTAL_BATCHES => &self.total_batches,
            CURRENT_RPS => &self.current_rps,
            RATE_WINDOW => &self.rate_window,
            BATCH_EVENTS => &self.batch_events,
            DEAD_MESSAGES => &self.dead_messages,
            DEAD_LETTERS => &self.dead_letters,
            DEAD_LETTERS_TRIMMED => &self.dead_letters_trimmed,
            WORKERS => &self.workers,
            IDEMPOTENCY_KEYS => &self.idempotency_keys,
            IDEMPOTENCY_BYTES => &self.idempotency_bytes,
            ACCEPTED_TOTAL => &self.accepted_total,
            ACCEPTED_WINDOW => &self.accepted_window,
            COMMIT_LATENCY => &self.commit_latency,
            WORKERS_POSTGRES => &self.workers_postgres,
            WORKERS_POSTGRES_DOWN => &self.workers_postgres_down,
            WORKERS_OUTPUT => &self.workers_output,
            IN_FLIGHT => &self.in_flight,
            IN_FLIGHT_BY_WORKER => &self.in_flight_by_worker,
            UPKEEP_LEASE => &self.upkeep_lease,
            WINDOW_STATS => &self.window_stats,
            HISTORY_1S => &self.history_1s,
            HISTORY_1M => &self.history_1m,
            ALERTS_ACTIVE => &self.alerts_active,
            ALERTS_RECENT => &self.alerts_recent,
            ALERT_EVENTS => &self.alert_events,
            _ => return None,
        };
        Some(key)
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>processing:<worker_id>`, the list holding a worker's batch in hand.
    pub fn processing(&self, worker_id: &str) -> String {
        format!("{}{PROCESSING_PREFIX}{worker_id}", self.prefix)
    }

    /// `<prefix>idempotency:<key>`, recording the message a client's `Idempotency-Key` queued.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}{IDEMPOTENCY_PREFIX}{key}", self.prefix)
    }
}

/// Escapes the glob metacharacters of `s` for `SCAN MATCH` / `KEYS`.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_prefix_gives_the_bare_contract_names() {
        let k = Keys::new("");
        assert_eq!(k.pending_messages, "pending_messages");
        assert_eq!(k.total_messages, "total_messages");
        assert_eq!(k.total_batches, "total_batches");
        assert_eq!(k.current_rps, "current_rps");
        assert_eq!(k.batch_events, "batch_events");
        assert_eq!(k.processing("w1"), "processing:w1");
    }

    #[test]
    fn prefix_applies_to_every_name() {
        let k = Keys::new("t1:");
        assert_eq!(k.pending_messages, "t1:pending_messages");
        assert_eq!(k.rate_window, "t1:rate_window");
        assert_eq!(k.processing("w"), "t1:processing:w");
        assert_eq!(k.accepted_total, "t1:accepted_total");
        assert_eq!(k.history_1s, "t1:history_1s");
        assert_eq!(k.alert_events, "t1:alert_events");
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*[b]:?\\"), r"a\*\[b\]:\?\\");
    }
}
