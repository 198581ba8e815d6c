//! Every Redis key and channel name Sluice uses, spelled once.
//!
//! The names are a public contract: users read them with `redis-cli`, and `proto-docs/redis.md`
//! documents each one. Every name is `<key_prefix><name>`; [`Keys`] applies the prefix.

/// Prefix of the keys recording used `Idempotency-Key`s: `idempotency:<key>`.
pub const IDEMPOTENCY_PREFIX: &str = "idempotency:";
/// Prefix of the hash holding a rate-limited caller's fleet-wide allowance.
pub const ALLOWANCE_PREFIX: &str = "allowance:";
/// Prefix of each worker's processing list: `processing:<worker_id>`.
pub const PROCESSING_PREFIX: &str = "processing:";

/// One-second samples kept: ten minutes.
pub const HISTORY_1S_POINTS: usize = 600;
/// One-minute samples kept: 24 hours.
pub const HISTORY_1M_POINTS: usize = 1_440;
/// Alert transitions kept in `alerts_recent`.
pub const ALERTS_RECENT_MAX: usize = 100;

/// Width of the window `current_rps` averages over.
pub const RATE_WINDOW_SECS: u64 = 10;

/// How long a worker that left stays in `workers_gone`: listed as gone, and counted lost when it
/// was reclaimed and has not come back.
pub const WORKERS_GONE_KEPT_MS: u64 = 300_000;

/// Most entries kept in `workers_gone`, however many workers come and go.
pub const WORKERS_GONE_MAX: usize = 1_000;

/// How long `accepted_window` lives without a new count.
pub const ACCEPTED_WINDOW_TTL_SECS: u64 = 120;

/// Declares every fixed key once: its name (the field's), its meaning, and so the field of
/// [`Keys`] holding `<prefix><name>` and the arm of [`Keys::named`] that finds it.
macro_rules! keys {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// The key names for one key prefix.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Keys {
            prefix: String,
            $($(#[doc = $doc])* pub $name: String,)*
        }

        impl Keys {
            /// Names under `prefix` (may be empty).
            pub fn new(prefix: &str) -> Self {
                Self {
                    prefix: prefix.to_owned(),
                    $($name: format!("{prefix}{}", stringify!($name)),)*
                }
            }

            /// The key called `name` (a field of [`Keys`], such as `"pending_messages"`), for
            /// scripts that name their KEYS ([`crate::lua`]).
            pub fn named(&self, name: &str) -> Option<&str> {
                match name {
                    $(stringify!($name) => Some(&self.$name),)*
                    _ => None,
                }
            }
        }
    };
}

keys! {
    /// The list the ingest API LPUSHes envelopes onto and the workers consume from the tail.
    pending_messages,
    /// Messages persisted since the counters were created (string holding an integer).
    total_messages,
    /// Batches committed since the counters were created (string holding an integer).
    total_batches,
    /// Messages persisted per second over the last [`RATE_WINDOW_SECS`] seconds, all workers together.
    current_rps,
    /// Hash of per-second buckets (`unix second` → messages persisted in it) behind `current_rps`.
    rate_window,
    /// Sorted set of live workers: member = worker id, score = last heartbeat (ms, Redis clock).
    workers,
    /// Sorted set indexing the remembered `idempotency:<key>` keys: member = `"<bytes> <key name>"`
    /// (what the entry costs, then the full key name), score = when it expires (ms, Redis clock).
    /// It bounds how many are kept, and how many bytes.
    idempotency_keys,
    /// The bytes the entries of `idempotency_keys` cost in all (string holding an integer).
    idempotency_bytes,
    /// Pub/sub channel on which workers announce every committed batch.
    batch_events,
    /// List of messages that can never be inserted, each with its original payload and the reason.
    dead_messages,
    /// Messages ever moved to `dead_messages` (string holding an integer).
    dead_letters,
    /// Dead letters dropped from the old end of `dead_messages` to keep it within
    /// `worker.dead_letters_max` (string holding an integer).
    dead_letters_trimmed,
    /// Messages the ingest API answered 202 for, all ingest processes together (string holding an
    /// integer).
    accepted_total,
    /// Hash of per-second buckets (`unix second` → messages accepted in it) behind
    /// `accepted_per_second`.
    accepted_window,
    /// Hash of per-second commit-latency histograms: field `<unix second>:<bucket>` → messages
    /// committed in that second whose POST→commit latency fell in that bucket (see
    /// [`crate::stats::latency_bucket`]).
    commit_latency,
    /// Hash of each live worker's view of PostgreSQL: field = worker id, value = `up` or `down`.
    workers_postgres,
    /// Hash of the PostgreSQL server each live worker reaches (its last insert or probe): field =
    /// worker id, value = `<since, ms, Redis clock> <address>`, the address `host:port` or `a
    /// local socket`. With a multi-host `postgres.url`, the primary; written when it changes.
    workers_postgres_server,
    /// Hash of what each live worker has done since it started, as its last full heartbeat said:
    /// field = worker id, value = `<batches> <rows persisted> <rows per second, last 10 s>`.
    workers_output,
    /// Hash of each live worker's heartbeat period: field = worker id, value = ms. A peer
    /// presumes a worker dead only once it has missed four of its own beats.
    workers_heartbeat_ms,
    /// Sorted set of the workers whose last heartbeat reported PostgreSQL down: member = worker id,
    /// score = that heartbeat (ms, Redis clock). Counting its fresh members is O(log workers).
    workers_postgres_down,
    /// Sorted set of the workers that left the registry in the last [`WORKERS_GONE_KEPT_MS`]:
    /// member = worker id, score = when it left (ms, Redis clock). A worker that beats again
    /// (it was paused, not dead) leaves it.
    workers_gone,
    /// Hash of how each worker of `workers_gone` left: `exit` (it unregistered, a clean stop) or
    /// `reclaimed <peer id>` (presumed dead, its batch taken by that peer).
    workers_gone_how,
    /// Hash of per-second, per-worker buckets behind each worker's rate: field
    /// `<unix second>:<worker id>` → rows it persisted in that second (the same rows as
    /// `rate_window`'s, so the workers' rates add up to `current_rps`).
    workers_rate_window,
    /// Hash of each worker's rows per second over the window of `current_rps`, written by the
    /// upkeep with it: field = worker id, value = a decimal string.
    workers_rate,
    /// Hash of per-second buckets of the ingest APIs' 5xx answers: field `<unix second>:<code>`
    /// (the error body's `code`, such as `not_replicated`) → answers in that second.
    errors_window,
    /// Messages in all processing lists together (string holding an integer), kept by the scripts
    /// that move messages, so reading it does not cost a walk over the workers.
    in_flight,
    /// Hash behind `in_flight`: field = worker id, value = its processing list's length as last
    /// seen by one of its scripts.
    in_flight_by_worker,
    /// The stats upkeep lease (string holding the holder's id, with a TTL): the process holding it
    /// refreshes the window figures and the history once a second for the whole fleet.
    upkeep_lease,
    /// Hash of the window figures the upkeep computes once a second: `accepted_per_second`, `p50`,
    /// `p95`, `p99` (ms, empty when nothing was committed in the window), `errors` (the 5xx
    /// answers per second by code, `<code>:<rate>,…`), `replicas_in_sync` (the primary's
    /// replicas with `state=online`), `replicas_wanted` (`redis.ack_replicas`) and `updated_ms`.
    window_stats,
    /// List of one-second history samples, newest first (at most [`HISTORY_1S_POINTS`]).
    history_1s,
    /// List of one-minute history samples, newest first (at most [`HISTORY_1M_POINTS`]).
    history_1m,
    /// Hash of the alerts firing now: field = rule, value = the alert's JSON.
    alerts_active,
    /// List of the latest alert transitions (firing and resolved), newest first.
    alerts_recent,
    /// Pub/sub channel on which each alert transition is announced, once, by the gateway that
    /// recorded it.
    alert_events,
}

impl Keys {
    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>processing:<worker_id>`, the list holding a worker's batch in hand.
    pub fn processing(&self, worker_id: &str) -> String {
        format!("{}{PROCESSING_PREFIX}{worker_id}", self.prefix)
    }

    /// `<prefix>allowance:<key id>`, a rate-limited caller's fleet-wide allowance (a token
    /// bucket).
    pub fn allowance(&self, key_id: &str) -> String {
        format!("{}{ALLOWANCE_PREFIX}{key_id}", self.prefix)
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
    fn a_script_finds_each_key_by_its_name() {
        let k = Keys::new("t1:");
        assert_eq!(
            k.named("in_flight_by_worker"),
            Some("t1:in_flight_by_worker")
        );
        assert_eq!(k.named("alert_events"), Some(k.alert_events.as_str()));
        assert_eq!(k.named("processing"), None);
        assert_eq!(k.named("t1:pending_messages"), None);
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*[b]:?\\"), r"a\*\[b\]:\?\\");
    }
}
