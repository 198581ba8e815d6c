//! `sluice-stream`: the live stats stream that both servers mount: the gateway at its own
//! address, the ingest API at the URL the Python stack's dashboards connect to.
//!
//! One [`poller`] per process reads Redis once per tick in one round trip that writes nothing,
//! and publishes the snapshot, serialized once, through the [`hub`]; one [`fanout`] task per
//! worker thread hands its bytes to every WebSocket client due a reading, at the client's
//! interval. Redis load therefore does not depend on the number of dashboards, and a tick costs
//! one wake-up per thread, not one per client. Each stream also contends for the stats upkeep
//! lease (`sluice_core::upkeep`). Alert rules are not evaluated here: the gateway observes the
//! poller's [`Reading`]s for that; every stream serves what they recorded.
//!
//! - [`StatsStream`]: the hub, poller, subscription and upkeep of one process, and
//!   [`stream_routes`], which both servers mount.
//! - [`routes`]: `GET /ws/stats`, `GET /stats`, `GET /stats/stream`, `GET /stats/history`,
//!   `GET /alerts`, `GET /workers`, `GET /batches/recent`; [`openapi`]: their OpenAPI document.
//! - [`snapshot`]: what the poller and the subscription produce; [`hub`]: what every session
//!   of a process shares.
//! - [`protocol`]: the messages of protocol v1; [`session`] runs one WebSocket session,
//!   [`sse`] one Server-Sent Events stream; [`pace`]: when a client's next reading is due;
//!   [`fanout`] delivers `stats` to the sessions.
//! - [`batches`]: the one `batch_events` and `alert_events` subscription, fanned out.
//! - [`alerts`]: alerts as clients see them, and their keys in Redis; [`history`]: cached
//!   history reads; [`workers`]: the worker list; [`shared`]: one Redis read shared by the
//!   requests of a second.
//! - [`frames`]: the guard that enforces the frame limit on declared lengths.
//! - [`auth`]: optional HS256 JWT authentication.
//! - [`error`]: HTTP errors with stable codes.

pub mod alerts;
pub mod auth;
pub mod batches;
#[cfg(test)]
mod contract;
pub mod error;
pub mod extract;
pub mod fanout;
pub mod frames;
pub mod history;
pub mod hub;
pub mod lua;
pub mod openapi;
pub mod pace;
pub mod poller;
pub mod protocol;
pub mod read;
pub mod routes;
pub mod session;
pub mod shared;
pub mod snapshot;
pub mod sse;
pub mod workers;

use sluice_core::shutdown::joined;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::Context;
use sluice_core::auth::Verifier;
use sluice_core::connect::RedisConnection;
use sluice_core::stats::StatsReader;
use sluice_core::upkeep::Upkeep;
use sluice_core::{CancellationToken, Keys, Settings, connect};
use sluice_http::EdgeStats;
use tokio::sync::watch;

use crate::alerts::store::AlertStore;
use crate::batches::Channels;
use crate::error::StreamError;
use crate::history::HistoryCache;
use crate::hub::Hub;
use crate::snapshot::{Reading, Snapshot};

/// What the handlers share.
pub struct State {
    /// Snapshots, intervals and counters.
    pub hub: Arc<Hub>,
    /// For `GET /stats` reads when no fresh snapshot exists, and the other reads.
    pub redis: RedisConnection,
    /// Key names under the configured prefix.
    pub keys: Keys,
    /// The one-round-trip stats read.
    pub reader: StatsReader,
    /// History answers, shared by every client.
    pub history: Arc<HistoryCache>,
    /// The alert keys.
    pub alerts: AlertStore,
    /// `GET /alerts`' Redis part, shared by every request for a second.
    pub alert_list: shared::SharedRead<sluice_proto::api::AlertList>,
    /// `GET /workers`, shared by every request for a second.
    pub worker_list: shared::SharedRead<sluice_proto::api::WorkerList>,
    /// `worker.dead_after_ms`: how late a heartbeat may be before its worker is not alive.
    pub worker_dead_after: Duration,
    /// `redis.ack_replicas`, which the upkeep records as the replicas a push needs.
    pub ack_replicas: u32,
    /// Longest wait for Redis.
    pub redis_timeout: Duration,
    /// Server ping period.
    pub heartbeat: Duration,
    /// Silence after which a client is closed.
    pub client_timeout: Duration,
    /// `stream.client_max_messages_per_sec`.
    pub max_messages_per_sec: u32,
    /// `stream.max_frame_bytes`.
    pub max_frame_bytes: usize,
    /// Who may read: every credential with `stats:read`, when callers are checked
    /// (`auth.mode = keys`, or the older `stream.auth.jwt_secret`).
    pub verifier: Option<Arc<Verifier>>,
    /// Fired on SIGINT/SIGTERM; every session closes with 1001.
    pub shutdown: CancellationToken,
    /// What the HTTP edge counted (write timeouts, malformed requests), for `/health`.
    pub edge: Arc<EdgeStats>,
}

/// The stats stream of one process: the hub, its poller, its event subscription and its share
/// of the stats upkeep, and the routes that serve them. The gateway serves it; the ingest API
/// serves it too, at the URL dashboards of the Python stack use.
pub struct StatsStream {
    state: web::Data<State>,
    sender: watch::Sender<Option<Arc<Snapshot>>>,
    readings: watch::Sender<Reading>,
    redis_clients: connect::Subscriptions,
    channels: Channels,
}

impl StatsStream {
    /// The stream configured by `settings.stream` and `settings.redis`; Redis is connected
    /// lazily. `edge` is what the serving process's HTTP edge counts; `verifier`, the credentials a
    /// caller may present instead of a JWT (an ingest API with `auth.mode = keys`).
    pub fn new(
        settings: &Settings,
        edge: Arc<EdgeStats>,
        verifier: Option<Arc<Verifier>>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let stream = &settings.stream;
        let (hub, sender) = Hub::new(
            Duration::from_millis(stream.interval_ms),
            stream.client_queue,
            stream.max_connections,
            stream.max_connections_per_ip,
        );
        let keys = Keys::new(&settings.redis.effective_key_prefix());
        let redis = connect::redis_manager(&settings.redis).context("invalid redis.url")?;
        let redis_timeout = settings.redis.response_timeout();
        let worker_dead_after = Duration::from_millis(settings.worker.dead_after_ms);
        let state = web::Data::new(State {
            hub,
            history: Arc::new(HistoryCache::new(
                keys.clone(),
                redis.clone(),
                redis_timeout,
            )),
            redis,
            reader: StatsReader::new(keys.clone(), worker_dead_after),
            alerts: AlertStore::new(keys.clone()),
            alert_list: shared::SharedRead::default(),
            worker_list: shared::SharedRead::default(),
            worker_dead_after,
            ack_replicas: settings.redis.ack_replicas,
            keys: keys.clone(),
            redis_timeout,
            heartbeat: Duration::from_millis(stream.heartbeat_interval_ms),
            client_timeout: Duration::from_millis(stream.client_timeout_ms),
            max_messages_per_sec: stream.client_max_messages_per_sec,
            max_frame_bytes: stream.max_frame_bytes,
            verifier,
            shutdown,
            edge,
        });
        Ok(Self {
            state,
            sender,
            readings: watch::Sender::new(Reading::None),
            redis_clients: connect::pubsub_clients(&settings.redis)?,
            channels: Channels {
                batches: keys.batch_events,
                alerts: keys.alert_events,
            },
        })
    }

    /// Every outcome of the poller's reads, for observers such as the gateway's alert rules.
    pub fn readings(&self) -> watch::Receiver<Reading> {
        self.readings.subscribe()
    }

    /// The shared handler state, for `App::app_data`.
    pub fn state(&self) -> web::Data<State> {
        self.state.clone()
    }

    /// Starts the poller, the event subscription and the upkeep; the returned future ends once
    /// all have stopped, after the shutdown token fired.
    pub fn start(self) -> impl std::future::Future<Output = ()> {
        let state = self.state;
        let poller = tokio::spawn(poller::run(
            Arc::clone(&state.hub),
            self.sender,
            self.readings,
            state.reader.clone(),
            state.redis.clone(),
            state.redis_timeout,
            state.shutdown.clone(),
        ));
        let events = tokio::spawn(batches::run(
            Arc::clone(&state.hub),
            self.redis_clients,
            self.channels,
            state.shutdown.clone(),
        ));
        let upkeep = tokio::spawn(
            Upkeep::new(
                state.keys.clone(),
                sluice_core::cli::process_id(),
                state.worker_dead_after,
            )
            .wanting_replicas(state.ack_replicas)
            .run(state.redis.clone(), None, state.shutdown.clone()),
        );
        async move {
            joined("stats poller", poller).await;
            joined("batch events", events).await;
            joined("upkeep", upkeep).await;
        }
    }
}

/// Registers the stream's routes (`/ws/stats`, `/stats`, `/stats/stream`, `/stats/history`,
/// `/alerts`, `/workers`, `/batches/recent`); the `State` must be in the app data.
pub fn stream_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/stats", web::get().to(routes::ws_stats))
        .route("/stats", web::get().to(routes::stats))
        .route("/stats/stream", web::get().to(routes::stats_stream))
        .route("/stats/history", web::get().to(routes::history))
        .route("/alerts", web::get().to(routes::alerts))
        .route("/workers", web::get().to(routes::workers))
        .route("/batches/recent", web::get().to(routes::recent_batches));
}

/// The query-string error handler both servers use for the stream's routes.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| StreamError::InvalidQuery(err.to_string()).into())
}
