//! `sluice-gateway`: streams pipeline stats to dashboards over WebSocket.
//!
//! One [`poller`] per process reads Redis once per tick in one round trip and publishes the
//! snapshot, serialized once, through the [`hub`]; one [`fanout`] task per worker thread hands
//! its bytes to every WebSocket client due a reading, at the client's interval. Redis load
//! therefore does not depend on the number of dashboards, and a tick costs one wake-up per
//! thread, not one per client.
//!
//! - [`Application`]: binds the listener (port 0 in tests), runs until the shutdown token
//!   fires, and closes every session with 1001.
//! - [`StatsStream`]: the hub, poller and subscription of one process, and [`stream_routes`],
//!   which both the gateway and the ingest API (at the Python stack's URL) serve.
//! - [`routes`]: `GET /ws/stats`, `GET /stats`, `GET /stats/stream`, `GET /stats/history`,
//!   `GET /alerts`, `GET /workers`, `GET /health`; [`dashboard`]: `GET /` and its assets.
//! - [`alerts`]: the alert rules, evaluated by the poller on every reading, deduplicated
//!   through Redis; [`history`]: cached history reads; [`workers`]: the worker list.
//! - [`protocol`]: the messages of protocol v1; [`session`] runs one WebSocket session,
//!   [`sse`] one Server-Sent Events stream; [`fanout`] delivers `stats` to the sessions.
//! - [`batches`]: the one `batch_events` subscription, fanned out as `batch_persisted`.
//! - [`frames`]: the guard that enforces the frame limit on declared lengths.
//! - [`auth`]: optional HS256 JWT authentication.
//! - [`error`]: HTTP errors with stable codes.

pub mod alerts;
pub mod auth;
pub mod batches;
pub mod dashboard;
pub mod error;
pub mod fanout;
pub mod frames;
pub mod history;
pub mod hub;
pub mod openapi;
pub mod pace;
pub mod poller;
pub mod protocol;
pub mod routes;
pub mod session;
pub mod shared;
pub mod sse;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, web};
use anyhow::Context;
use sluice_core::connect::RedisConnection;
use sluice_core::stats::StatsReader;
use sluice_core::upkeep::Upkeep;
use sluice_core::{CancellationToken, Keys, Settings, connect};
use sluice_http::{EdgeConfig, EdgeStats};
use tokio::sync::watch;

use crate::alerts::Evaluator;
use crate::alerts::runtime::Alerting;
use crate::alerts::store::AlertStore;
use crate::batches::Channels;
use crate::error::GatewayError;
use crate::history::HistoryCache;
use crate::hub::{Hub, Snapshot};

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
    pub alert_list: shared::Shared<alerts::store::AlertList>,
    /// `GET /workers`, shared by every request for a second.
    pub worker_list: shared::Shared<workers::WorkerList>,
    /// `worker.dead_after_ms`: how late a heartbeat may be before its worker is not alive.
    pub worker_dead_after: Duration,
    /// Longest wait for Redis.
    pub redis_timeout: Duration,
    /// Server ping period.
    pub heartbeat: Duration,
    /// Silence after which a client is closed.
    pub client_timeout: Duration,
    /// `gateway.client_max_messages_per_sec`.
    pub max_messages_per_sec: u32,
    /// `gateway.max_frame_bytes`.
    pub max_frame_bytes: usize,
    /// Token verification, when `gateway.auth.jwt_secret` is set.
    pub auth: Option<auth::Auth>,
    /// Fired on SIGINT/SIGTERM; every session closes with 1001.
    pub shutdown: CancellationToken,
    /// What the HTTP edge counted (write timeouts, malformed requests), for `/health`.
    pub edge: Arc<EdgeStats>,
}

/// Connections the edge accepts beyond `gateway.max_connections`, so that upgrades past the
/// limit still get their 503 and plain HTTP requests (`/health`, `/stats`) are still served.
pub const EDGE_HEADROOM: usize = 1_024;

/// actix's per-connection write buffer: stats frames are a few hundred bytes.
pub const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// The stats stream of one process: the hub, its poller (with the alert rules) and its event
/// subscription, and the routes that serve them. The gateway serves it; the ingest API serves
/// it too, at the URL dashboards of the Python stack use.
pub struct StatsStream {
    state: web::Data<State>,
    sender: watch::Sender<Option<Arc<Snapshot>>>,
    redis_clients: Vec<redis::Client>,
    channels: Channels,
    evaluator: Evaluator,
}

impl StatsStream {
    /// The stream configured by `settings.gateway` and `settings.redis`; Redis is connected
    /// lazily. `edge` is what the serving process's HTTP edge counts.
    pub fn new(
        settings: &Settings,
        edge: Arc<EdgeStats>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let gateway = &settings.gateway;
        let (hub, sender) = Hub::new(
            Duration::from_millis(gateway.interval_ms),
            gateway.client_queue,
            gateway.max_connections,
            gateway.max_connections_per_ip,
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
            alert_list: shared::Shared::default(),
            worker_list: shared::Shared::default(),
            worker_dead_after,
            keys: keys.clone(),
            redis_timeout,
            heartbeat: Duration::from_millis(gateway.heartbeat_interval_ms),
            client_timeout: Duration::from_millis(gateway.client_timeout_ms),
            max_messages_per_sec: gateway.client_max_messages_per_sec,
            max_frame_bytes: gateway.max_frame_bytes,
            auth: auth::Auth::new(&gateway.auth.jwt_secret),
            shutdown,
            edge,
        });
        Ok(Self {
            state,
            sender,
            redis_clients: connect::pubsub_clients(&settings.redis)?,
            channels: Channels {
                batches: keys.batch_events,
                alerts: keys.alert_events,
            },
            evaluator: Evaluator::new(gateway.alerts.clone()),
        })
    }

    /// The shared handler state, for `App::app_data`.
    pub fn state(&self) -> web::Data<State> {
        self.state.clone()
    }

    /// Starts the poller and the event subscription; the returned future ends once both have
    /// stopped, after the shutdown token fired.
    pub fn start(self) -> impl std::future::Future<Output = ()> {
        let state = self.state;
        let alerting = Alerting::new(
            self.evaluator,
            state.alerts.clone(),
            Arc::clone(&state.hub),
            state.redis_timeout,
        );
        let poller = tokio::spawn(poller::run(
            Arc::clone(&state.hub),
            self.sender,
            state.reader.clone(),
            state.redis.clone(),
            state.redis_timeout,
            alerting,
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
            .run(state.redis.clone(), None, state.shutdown.clone()),
        );
        async move {
            let _ = poller.await;
            let _ = events.await;
            let _ = upkeep.await;
        }
    }
}

/// Registers the stream's routes (`/ws/stats`, `/stats`, `/stats/stream`, `/stats/history`,
/// `/alerts`, `/workers`); the `State` must be in the app data.
pub fn stream_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/stats", web::get().to(routes::ws_stats))
        .route("/stats", web::get().to(routes::stats))
        .route("/stats/stream", web::get().to(routes::stats_stream))
        .route("/stats/history", web::get().to(routes::history))
        .route("/alerts", web::get().to(routes::alerts))
        .route("/workers", web::get().to(routes::workers));
}

/// The query-string error handler both servers use for the stream's routes.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| GatewayError::InvalidQuery(err.to_string()).into())
}

/// A bound, not yet running, gateway.
pub struct Application {
    port: u16,
    server: actix_server::Server,
    stream: StatsStream,
}

impl Application {
    /// Binds `settings.gateway.listen`; Redis is connected lazily.
    pub fn build(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let (listener, port) = sluice_http::bind(settings.gateway.listen)?;
        let gateway = &settings.gateway;
        let edge_stats = Arc::new(EdgeStats::default());
        sluice_core::metric::exporter();
        sluice_core::metric::register_counters(&[sluice_core::metric::WS_MESSAGES_SENT]);
        metrics::gauge!(sluice_core::metric::WS_CONNECTIONS).set(0.0);
        let stream = StatsStream::new(settings, Arc::clone(&edge_stats), shutdown.clone())?;
        let edge = EdgeConfig {
            name: "sluice-gateway",
            workers: 0,
            max_connections: gateway.max_connections + EDGE_HEADROOM,
            write_timeout: Duration::from_millis(gateway.write_timeout_ms),
            send_buffer_bytes: gateway.send_buffer_bytes,
            write_buffer_bytes: WRITE_BUFFER_BYTES,
            shutdown_grace: Duration::from_secs(5),
            shutdown,
        };
        let shared = stream.state();
        let origins: Vec<String> = gateway
            .cors_origin_list()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let server = sluice_http::serve(listener, edge, edge_stats, move || {
            App::new()
                .wrap(cors(&origins))
                .wrap(actix_web::middleware::from_fn(sluice_http::observe::record))
                .app_data(shared.clone())
                .app_data(query_config())
                .configure(stream_routes)
                .route("/health", web::get().to(routes::health))
                .route("/ready", web::get().to(routes::ready))
                .route("/metrics", web::get().to(sluice_http::observe::metrics))
                .route("/openapi.json", web::get().to(openapi::openapi_json))
                .configure(dashboard::routes)
                .default_service(web::to(routes::not_found))
        })?;
        Ok(Self {
            port,
            server,
            stream,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the poller and serves until shutdown; sessions then close with 1001 and the
    /// server waits for them (at most 5 s).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.stream.state();
        let background = self.stream.start();
        sluice_http::stop_on(&self.server, state.shutdown.clone());
        let result = self.server.await;
        state.shutdown.cancel();
        background.await;
        result
    }
}

/// CORS for the HTTP endpoints: the configured origins, `*` for any, none when empty.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let cors = actix_cors::Cors::default()
        .allowed_methods(["GET"])
        .allowed_headers([actix_web::http::header::AUTHORIZATION])
        .max_age(3600);
    if origins.iter().any(|o| o == "*") {
        return cors.allow_any_origin().send_wildcard();
    }
    origins
        .iter()
        .fold(cors, |cors, origin| cors.allowed_origin(origin))
}
