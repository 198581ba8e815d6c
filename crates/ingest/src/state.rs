//! What the handlers share: one [`Shared`] for the process, and per HTTP worker thread an
//! [`AppState`] that adds the thread's own Redis connection.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use sluice_core::connect::{self, RedisConnection};
use sluice_core::{Keys, Settings};

use crate::body::{Budget, Limits, Share};
use crate::group::{self, Pusher};
use crate::parse::Parsers;
use crate::persisted::Waiters;
use crate::queue::{Depth, Retention};

/// How long `/ready` waits for PostgreSQL to answer `SELECT 1`.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Per-worker-thread application state: the thread's Redis connection and the process's
/// [`Shared`] state, which it dereferences to.
pub struct AppState {
    /// This HTTP worker's own multiplexed Redis connection; each worker thread has one so the
    /// threads do not contend on a single socket.
    pub redis: RedisConnection,
    /// This HTTP worker's group commit: every push of the thread goes through it, on
    /// [`Self::redis`] (a connection of its own with acknowledgements on).
    pub pusher: Pusher,
    /// What every thread shares.
    pub shared: Arc<Shared>,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// What every handler of the process shares, built once from the settings.
pub struct Shared {
    /// Key names under the configured prefix.
    pub keys: Keys,
    /// With `auth.mode = keys`: every credential the data endpoints accept, checked in memory
    /// ([`crate::auth`]).
    pub verifier: Option<Arc<sluice_core::auth::Verifier>>,
    /// Guesses at a known key (its prefix with another secret) per client address: past 5 a
    /// minute, the address is answered 429 before its key is read.
    pub key_guesses: sluice_admin::throttle::Throttle,
    /// Guesses at one known key from any addresses, by its prefix: past 50 a minute, calls
    /// with that prefix are answered 429.
    pub prefix_guesses: sluice_admin::throttle::Throttle<String>,
    /// The leases of rate-limited callers ([`crate::limit`]).
    pub limiter: crate::limit::Limiter,
    /// The 5xx answers given, by code, on their way to Redis ([`crate::tally`]).
    pub errors: Arc<crate::tally::ErrorTally>,
    /// Whether the last push was short of replica confirmations ([`crate::group::Config`]).
    pub replication_short: Arc<std::sync::atomic::AtomicBool>,
    /// PostgreSQL pool (shared by every worker thread), for the persisted-row checks of a
    /// replayed `Prefer: wait`.
    pub pool: Pool,
    /// Where `GET /messages` reads, a pool of its own (`ingest.read_concurrency` connections,
    /// each with `ingest.read_timeout_ms` as its `statement_timeout`): to the replica at
    /// `postgres.read_url`, or to `postgres.url`.
    pub read_pool: Pool,
    /// How many more reads may start now; a read that finds none is answered 503
    /// `server_busy` rather than waiting for a connection.
    pub read_permits: Arc<tokio::sync::Semaphore>,
    /// `ingest.read_timeout_ms`, named in the answer to a read it cancelled.
    pub read_timeout: Duration,
    /// `/ready`'s own connection, so readiness never waits behind reads or writes.
    pub probe: Pool,
    /// The PostgreSQL server the probe reaches, and since when, for `/ready`.
    pub primary: sluice_core::primary::PrimaryWatch,
    /// `ingest.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `ingest.max_batch_body_bytes`.
    pub max_batch_body_bytes: usize,
    /// `ingest.batch_max_messages`.
    pub batch_max_messages: usize,
    /// Longest wait for a Redis answer before a request is answered 503.
    pub redis_timeout: Duration,
    /// Queue length gauge and bound, shared by every worker thread.
    pub depth: Arc<Depth>,
    /// `ingest.max_buffered_bytes`, shared by every worker thread.
    pub budget: Budget,
    /// Where large bodies are parsed, shared by every worker thread.
    pub parsers: Parsers,
    /// `ingest.body_timeout_ms`.
    pub body_timeout: Duration,
    /// `ingest.idempotency_ttl_secs` and `ingest.idempotency_max_keys`.
    pub idempotency: Retention,
    /// What the HTTP edge counted (write timeouts, malformed requests), for `/health`.
    pub edge: Arc<sluice_http::EdgeStats>,
    /// Requests waiting for their messages' commit (`Prefer: wait`), shared by every worker
    /// thread and fed by the process's one subscription.
    pub waiters: Arc<Waiters>,
    /// `ingest.max_wait_secs`.
    pub max_wait: Duration,
    /// `redis.ack_replicas` and `redis.ack_timeout_ms`, when acknowledgements are on.
    pub acks: Option<(u32, Duration)>,
    /// Whether `/ready` counts the primary's replicas in sync: with acknowledgements, against
    /// one primary (a cluster's shards each have their own; their pushes say `not_replicated`).
    pub checks_replication: bool,
}

impl Shared {
    /// The shared state from `settings`, with what the edge counts; builds the PostgreSQL
    /// pools (they connect lazily).
    pub fn new(settings: &Settings, edge: Arc<sluice_http::EdgeStats>) -> anyhow::Result<Self> {
        let ingest = &settings.ingest;
        let postgres = &settings.postgres;
        let read_timeout = Duration::from_millis(ingest.read_timeout_ms);
        let reads_from = postgres.reader().unwrap_or_else(|| postgres.clone());
        Ok(Self {
            keys: Keys::new(&settings.redis.effective_key_prefix()),
            pool: connect::postgres_pool(postgres)?,
            read_pool: connect::postgres_pool_sized(
                &reads_from,
                ingest.read_concurrency,
                Some(read_timeout),
            )?,
            read_permits: Arc::new(tokio::sync::Semaphore::new(ingest.read_concurrency)),
            read_timeout,
            probe: connect::postgres_pool_sized(postgres, 1, Some(PROBE_TIMEOUT))?,
            primary: sluice_core::primary::PrimaryWatch::default(),
            max_body_bytes: ingest.max_body_bytes,
            max_batch_body_bytes: ingest.max_batch_body_bytes,
            batch_max_messages: ingest.batch_max_messages,
            redis_timeout: settings.redis.response_timeout(),
            depth: Arc::new(Depth::new(ingest.max_queue_depth)),
            budget: Budget::new(ingest.max_buffered_bytes),
            parsers: Parsers::for_this_machine(),
            body_timeout: Duration::from_millis(ingest.body_timeout_ms),
            idempotency: Retention {
                ttl_secs: ingest.idempotency_ttl_secs,
                max_keys: ingest.idempotency_max_keys,
                max_bytes: ingest.idempotency_max_bytes,
            },
            edge,
            waiters: Arc::new(Waiters::new(ingest.max_waiters)),
            max_wait: Duration::from_secs(ingest.max_wait_secs),
            acks: settings.redis.acks(),
            checks_replication: settings.redis.acks().is_some()
                && settings.redis.cluster_node_urls().is_empty(),
            verifier: sluice_core::auth::Verifier::for_callers(settings)?,
            key_guesses: Default::default(),
            prefix_guesses: sluice_admin::throttle::Throttle::per_key(),
            limiter: Default::default(),
            errors: Default::default(),
            replication_short: Default::default(),
        })
    }

    /// How the group commit of each thread pushes.
    pub fn push_config(&self) -> group::Config {
        group::Config {
            keys: self.keys.clone(),
            depth: Arc::clone(&self.depth),
            timeout: self.redis_timeout,
            retention: self.idempotency,
            acks: self.acks,
            replication_short: Arc::clone(&self.replication_short),
        }
    }

    /// `ingest.read_concurrency`.
    pub fn read_concurrency(&self) -> usize {
        self.read_pool.status().max_size
    }

    /// How a `POST /messages` body is read.
    pub fn message_limits(&self) -> Limits<'_> {
        self.body_limits(self.max_body_bytes, Share::Single)
    }

    /// How a `POST /messages/batch` body is read.
    pub fn batch_limits(&self) -> Limits<'_> {
        self.body_limits(self.max_batch_body_bytes, Share::Batch)
    }

    fn body_limits(&self, max_bytes: usize, share: Share) -> Limits<'_> {
        Limits {
            max_bytes,
            timeout: self.body_timeout,
            budget: &self.budget,
            share,
        }
    }
}
