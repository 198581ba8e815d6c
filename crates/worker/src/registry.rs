//! Worker heartbeats and the detection of dead peers.
//!
//! Each worker writes its heartbeat into the `workers` sorted set (score: the Redis clock in
//! ms) every tenth of `worker.dead_after_ms`, between 250 ms and a second
//! ([`limits::heartbeat_period_ms`]), from a task of its own so a long retry in the batching loop
//! never makes a live worker look dead. Each beat also returns the peers that have been silent
//! for longer than `dead_after_ms` (at least four periods); the batching loop reclaims their
//! batches between batches of its own. The beat also reports this worker's view of PostgreSQL
//! and its output, keeps its share of `in_flight` current and takes the stats upkeep lease when
//! it is free ([`sluice_core::upkeep`]), so a worker contends for it at no extra cost. It is one
//! script call (`lua/heartbeat.lua`): an idle worker costs Redis that, and its blocking wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sluice_core::connect::RedisConnection;
use sluice_core::settings::limits;
use sluice_core::shutdown::Ticker;
use sluice_core::{CancellationToken, Keys, lua, primary};
use sluice_proto::api::WorkerOutput;
use tokio::sync::watch;

pub use crate::lua::heartbeat::{Beat, BeatReply};

/// How often a worker whose peers are presumed dead after `dead_after` beats.
pub fn heartbeat_period(dead_after: Duration) -> Duration {
    Duration::from_millis(limits::heartbeat_period_ms(dead_after.as_millis() as u64))
}

/// How often an idle worker checks that PostgreSQL answers, and how long the check may take.
const POSTGRES_PROBE_PERIOD: Duration = Duration::from_secs(1);

/// How a worker sees PostgreSQL: down when its last insert failed, or when the probe at the
/// heartbeat fails, so an idle worker notices an outage too. The probe asks the server who it
/// is ([`primary::who`]), so an idle worker also notices a failover, and a server that is a
/// standby counts as down: it refuses the worker's writes.
pub struct PostgresView {
    /// The worker's pool.
    pub pool: deadpool_postgres::Pool,
    /// Set by the batching loop while inserts fail.
    pub loop_down: Arc<AtomicBool>,
    /// Where the server the probe reached is noted.
    pub status: Arc<crate::http::Status>,
}

impl PostgresView {
    /// Whether PostgreSQL answers as a writable server, within `timeout`.
    pub async fn is_up(&self, timeout: Duration) -> bool {
        if self.loop_down.load(Ordering::Relaxed) {
            return false;
        }
        let probe = primary::probe(&self.pool);
        let Ok(Some(found)) = tokio::time::timeout(timeout, probe).await else {
            return false;
        };
        if found.in_recovery {
            return false;
        }
        self.status
            .primary
            .observe(&found.server, sluice_core::clock::now());
        true
    }

    /// Probes every second until shutdown, keeping `up` current. Runs beside the heartbeat so a
    /// slow probe never delays a beat.
    async fn probe_periodically(self, up: Arc<AtomicBool>, shutdown: CancellationToken) {
        let mut ticker = Ticker::new(POSTGRES_PROBE_PERIOD, shutdown);
        while ticker.tick().await {
            up.store(self.is_up(POSTGRES_PROBE_PERIOD).await, Ordering::Relaxed);
        }
    }
}

/// What this worker has persisted since it started: the batching loop adds each recorded
/// batch, and each full heartbeat reports it in `workers_output`.
#[derive(Debug, Default)]
pub struct Output {
    batches: AtomicU64,
    rows: AtomicU64,
}

impl Output {
    /// Counts one recorded batch of `rows` new rows.
    pub fn add(&self, rows: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
    }
}

/// Over how long a worker's reported rate is averaged.
pub const OUTPUT_RATE_WINDOW: Duration = Duration::from_secs(10);

/// The samples behind a worker's rate: `(when, rows so far)`, one per full beat, spanning
/// [`OUTPUT_RATE_WINDOW`] at most.
#[derive(Debug, Default)]
pub(crate) struct OutputRate {
    samples: std::collections::VecDeque<(tokio::time::Instant, u64)>,
}

impl OutputRate {
    /// `'<batches> <rows> <rows/s>'` for `output` now: the rate over the samples of the last
    /// [`OUTPUT_RATE_WINDOW`], and over one second at least (0 until there are two samples).
    pub(crate) fn report(&mut self, output: &Output, now: tokio::time::Instant) -> String {
        let (batches, rows) = (
            output.batches.load(Ordering::Relaxed),
            output.rows.load(Ordering::Relaxed),
        );
        self.samples.push_back((now, rows));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > OUTPUT_RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let (since, rows_then) = self.samples.front().copied().unwrap_or((now, rows));
        // Over at least a second, so a worker's first beats do not report a burst as a rate.
        let secs = now.duration_since(since).as_secs_f64().max(1.0);
        WorkerOutput {
            batches,
            persisted: rows,
            persisted_per_second: (rows - rows_then) as f64 / secs,
        }
        .to_field()
    }
}

/// What the heartbeat task writes.
pub struct Heartbeat {
    /// Key names.
    pub keys: Keys,
    /// This worker.
    pub worker_id: String,
    /// Silence after which a worker is presumed dead.
    pub dead_after: Duration,
    /// Reported as `up` or `down` in `workers_postgres`.
    pub postgres: PostgresView,
    /// Where `/ready` reads what the last beat found.
    pub status: Arc<crate::http::Status>,
    /// Told after every beat whether this worker holds the upkeep lease.
    pub upkeep: watch::Sender<bool>,
    /// Reported in `workers_output` with each beat.
    pub output: Arc<Output>,
}

/// Beats until shutdown, publishing the ids of dead peers on `dead`.
pub async fn beat_periodically(
    mut redis: RedisConnection,
    heartbeat: Heartbeat,
    dead: watch::Sender<Vec<String>>,
    shutdown: CancellationToken,
) {
    let Heartbeat {
        keys,
        worker_id,
        dead_after,
        postgres,
        status,
        upkeep,
        output,
    } = heartbeat;
    let mut rate = OutputRate::default();
    let loop_down = Arc::clone(&postgres.loop_down);
    let probed_up = Arc::new(AtomicBool::new(true));
    let probe = tokio::spawn(postgres.probe_periodically(Arc::clone(&probed_up), shutdown.clone()));
    let mut failing = false;
    let processing = keys.processing(&worker_id);
    let mut ticker = Ticker::new(heartbeat_period(dead_after), shutdown);
    while ticker.tick().await {
        let postgres_up = probed_up.load(Ordering::Relaxed) && !loop_down.load(Ordering::Relaxed);
        status.postgres_up.store(postgres_up, Ordering::Relaxed);
        let report = rate.report(&output, tokio::time::Instant::now());
        let said = Beat {
            processing: &processing,
            worker_id: &worker_id,
            dead_after_ms: dead_after.as_millis() as u64,
            postgres_up,
            output: &report,
            postgres_server: &status.primary.registry_field(),
        };
        match beat(&mut redis, &keys, &said).await {
            Ok(reply) => {
                status.redis_up.store(true, Ordering::Relaxed);
                if std::mem::take(&mut failing) {
                    tracing::info!("heartbeats resumed");
                }
                let holds = reply.holds_upkeep;
                upkeep.send_if_modified(|held| std::mem::replace(held, holds) != holds);
                // Published every beat, so a reclaim that failed is retried at the next one.
                dead.send_replace(reply.dead_peers);
            }
            Err(e) => {
                status.redis_up.store(false, Ordering::Relaxed);
                sluice_core::metric::redis_error("heartbeat");
                if !std::mem::replace(&mut failing, true) {
                    let (e, redis) = (e.to_string(), sluice_core::connect::redis_name());
                    let check = sluice_core::connect::redis_hint(&e);
                    tracing::warn!(e, check, "cannot write heartbeat to {redis}; retrying");
                }
            }
        }
    }
    sluice_core::shutdown::joined("PostgreSQL probe", probe).await;
}

/// Writes one heartbeat and returns what it found: the peers silent for longer than its
/// `dead_after_ms` (by the Redis clock, so the workers' clocks need not agree), and whether this
/// worker holds the upkeep lease.
#[tracing::instrument(name = "redis.heartbeat", skip_all, err(level = "debug"))]
pub async fn beat(
    redis: &mut RedisConnection,
    keys: &Keys,
    beat: &Beat<'_>,
) -> redis::RedisResult<BeatReply> {
    lua::call(redis, keys, beat).await
}
