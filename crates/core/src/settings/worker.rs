//! `[worker]`: the batching workers.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

use super::{ListenerTlsSettings, SettingsError, invalid, limits};

/// `[worker]`
#[derive(Debug, Clone, SmartDefault, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Stable identity of this worker; its processing list is named after it. Empty means
    /// `<hostname>-<pid>-<random>`, unique per process.
    pub id: String,
    /// A batch is flushed as soon as it holds this many messages.
    #[default(5_000)]
    #[schemars(range(min = limits::BATCH_MAX_SIZE.0, max = limits::BATCH_MAX_SIZE.1))]
    pub batch_max_size: usize,
    /// How long a worker that emptied the queue keeps waiting for more messages before it
    /// inserts its batch, counted from the batch's first message. 0 inserts at once: batches
    /// still form by themselves, from what arrives while a worker inserts. A wait trades
    /// latency for fewer, larger transactions at moderate load.
    #[schemars(range(min = limits::BATCH_MAX_WAIT_MS.0, max = limits::BATCH_MAX_WAIT_MS.1))]
    pub batch_max_wait_ms: u64,
    /// Under load, the size a batch waits to reach before it is inserted, when this worker's
    /// own intake brings that many messages within `batch_fill_max_wait_ms`: each batch costs
    /// PostgreSQL, Redis and the worker a fixed amount besides its rows, so larger ones cost
    /// less CPU per message. A worker taking 2,500 a second would need 80 ms for 200 and
    /// inserts at once; from 8,000 a second it waits, at most 25 ms (8 ms at 25,000 a
    /// second). 0 turns it off. Past `batch_max_size`, that is the size waited for. A batch
    /// holding a message whose sender waits for its commit (`Prefer: wait`) never waits to
    /// fill.
    #[default(200)]
    #[schemars(range(min = 0, max = limits::BATCH_MAX_SIZE.1))]
    pub batch_fill_size: usize,
    /// The longest a batch waits to reach `batch_fill_size`, from its first message: the
    /// latency load may add. The worker waits only when its intake rate (averaged over the
    /// last 100 ms) fills the batch in this time.
    #[default(25)]
    #[schemars(range(min = 1, max = 1_000))]
    pub batch_fill_max_wait_ms: u64,
    /// Most bytes of message content a worker keeps of the batches it committed last, to
    /// check them again when it reaches another PostgreSQL server (a failover, a restart)
    /// and insert what that server lacks: what asynchronous replication, or
    /// `synchronous_commit = off`, lost. At 20,000 messages of 200 bytes a second on two
    /// workers, 16 MiB covers the last 5 seconds or so. 0 turns it off.
    #[default(16 << 20)]
    #[schemars(range(min = 0, max = 1 << 30))]
    pub recheck_max_bytes: usize,
    /// How long one blocking wait for the first message of a batch lasts before the worker
    /// checks for shutdown and takes again what is waiting.
    #[default(1_000)]
    #[schemars(range(min = 10, max = 60_000))]
    pub idle_poll_ms: u64,
    /// A worker whose heartbeat is older than this is presumed dead: a live worker reclaims
    /// its batch (within a tenth of this more, 250 ms at the least), and the stats no longer
    /// count it in `workers_alive`. Every service reads this one setting: give all of them the
    /// same. A worker beats every tenth of it, between 250 ms and a second, and is presumed
    /// dead only once it has also missed four of its own beats, however its peers are set.
    #[default(10_000)]
    #[schemars(range(min = limits::DEAD_AFTER_MS.0, max = limits::DEAD_AFTER_MS.1))]
    pub dead_after_ms: u64,
    /// Most entries kept in `dead_messages`; past it the oldest are dropped and counted in
    /// `dead_letters_trimmed`.
    #[default(100_000)]
    #[schemars(range(min = 1, max = 100_000_000))]
    pub dead_letters_max: u64,
    /// Most bytes of an entry a dead letter keeps: a longer one (which the ingest API never
    /// queues: its largest message is about 8.3 KB) keeps its first bytes and its size, and
    /// cannot be requeued. An entry of `dead_messages` costs at most about 8 times this (its
    /// JSON, and hex for bytes that are not UTF-8).
    #[default(16_384)]
    #[schemars(range(min = 1_024, max = 131_072))]
    pub dead_letter_max_bytes: usize,
    /// Address of the worker's HTTP listener (`/metrics`, `/health`, `/ready`), e.g.
    /// `127.0.0.1:9101`; empty (the default) turns it off.
    pub listen: String,
    /// HTTPS on `listen`.
    pub tls: ListenerTlsSettings,
}

impl WorkerSettings {
    /// [`Self::listen`] parsed; `None` when the listener is off.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.trim().parse().ok()
    }

    /// A listener address, when set; an id without spaces.
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let listen = self.listen.trim();
        self.tls.validate("worker")?;
        if !listen.is_empty() && listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "worker.listen",
                format!("must be empty or an address such as 127.0.0.1:9101, got {listen:?}"),
            ));
        }
        if self.id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "worker.id",
                format!(
                    "must not contain spaces or control characters, got {:?}",
                    self.id
                ),
            ));
        }
        Ok(())
    }
}
