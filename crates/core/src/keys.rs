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
/// Sorted set indexing the remembered `idempotency:<key>` keys: member = the full key name,
/// score = when it expires (ms, Redis clock). It bounds how many are kept.
pub const IDEMPOTENCY_KEYS: &str = "idempotency_keys";
/// Prefix of each worker's processing list: `processing:<worker_id>`.
pub const PROCESSING_PREFIX: &str = "processing:";
/// Pub/sub channel on which workers announce every committed batch.
pub const BATCH_EVENTS: &str = "batch_events";
/// List of messages that can never be inserted, each with its original payload and the reason.
pub const DEAD_MESSAGES: &str = "dead_messages";
/// Messages ever moved to `dead_messages` (string holding an integer).
pub const DEAD_LETTERS: &str = "dead_letters";

/// Width of the window `current_rps` averages over.
pub const RATE_WINDOW_SECS: u64 = 10;

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
    /// `<prefix>workers`
    pub workers: String,
    /// `<prefix>idempotency_keys`
    pub idempotency_keys: String,
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
            workers: key(WORKERS),
            idempotency_keys: key(IDEMPOTENCY_KEYS),
        }
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
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*[b]:?\\"), r"a\*\[b\]:\?\\");
    }
}
