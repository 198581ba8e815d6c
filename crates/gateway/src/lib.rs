//! `sluice-gateway`: streams pipeline stats to dashboards over WebSocket.
//!
//! One [`poller`] per process reads Redis once per tick in one round trip and publishes the
//! snapshot through the [`hub`]; each [`session`] forwards it at its client's interval. Redis
//! load therefore does not depend on the number of dashboards.
//!
//! - [`Application`]: binds the listener (port 0 in tests), runs until the shutdown token
//!   fires, and closes every session with 1001.
//! - [`routes`]: `GET /ws/stats`, `GET /stats`, `GET /stats/stream`, `GET /health`.
//! - [`protocol`]: the messages of protocol v1; [`session`] runs one WebSocket session,
//!   [`sse`] one Server-Sent Events stream.
//! - [`batches`]: the one `batch_events` subscription, fanned out as `batch_persisted`.
//! - [`frames`]: the guard that enforces the frame limit on declared lengths.
//! - [`auth`]: optional HS256 JWT authentication.
//! - [`error`]: HTTP errors with stable codes.

pub mod auth;
pub mod batches;
pub mod error;
pub mod frames;
pub mod hub;
pub mod poller;
pub mod protocol;
pub mod routes;
pub mod session;
pub mod sse;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, web};
use anyhow::Context;
use redis::aio::ConnectionManager;
use sluice_core::stats::StatsReader;
use sluice_core::{CancellationToken, Keys, Settings, connect};
use sluice_http::{EdgeConfig, EdgeStats};
use tokio::sync::watch;

use crate::error::GatewayError;
use crate::hub::{Hub, Snapshot};

/// What the handlers share.
pub struct State {
    /// Snapshots, intervals and counters.
    pub hub: Arc<Hub>,
    /// For `GET /stats` reads when no fresh snapshot exists.
    pub redis: ConnectionManager,
    /// The one-round-trip stats read.
    pub reader: StatsReader,
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

/// A bound, not yet running, gateway.
pub struct Application {
    port: u16,
    server: actix_server::Server,
    state: web::Data<State>,
    sender: watch::Sender<Option<Arc<Snapshot>>>,
    redis_client: redis::Client,
    batch_channel: String,
}

impl Application {
    /// Binds `settings.gateway.listen`; Redis is connected lazily.
    pub fn build(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.gateway.listen)
            .with_context(|| format!("cannot listen on {}", settings.gateway.listen))?;
        let port = listener.local_addr()?.port();
        let gateway = &settings.gateway;
        let (hub, sender) = Hub::new(
            Duration::from_millis(gateway.interval_ms),
            gateway.client_queue,
            gateway.max_connections,
            gateway.max_connections_per_ip,
        );
        let keys = Keys::new(&settings.redis.key_prefix);
        let state = web::Data::new(State {
            hub,
            redis: connect::redis_manager(&settings.redis).context("invalid redis.url")?,
            reader: StatsReader::new(keys.clone()),
            redis_timeout: settings.redis.response_timeout(),
            heartbeat: Duration::from_millis(gateway.heartbeat_interval_ms),
            client_timeout: Duration::from_millis(gateway.client_timeout_ms),
            max_messages_per_sec: gateway.client_max_messages_per_sec,
            max_frame_bytes: gateway.max_frame_bytes,
            auth: auth::Auth::new(&gateway.auth.jwt_secret),
            shutdown: shutdown.clone(),
            edge: Arc::new(EdgeStats::default()),
        });
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
        let shared = state.clone();
        let origins: Vec<String> = gateway
            .cors_origin_list()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let edge_stats = Arc::clone(&state.edge);
        let server = sluice_http::serve(listener, edge, edge_stats, move || {
            App::new()
                .wrap(cors(&origins))
                .app_data(shared.clone())
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|err, _| GatewayError::InvalidQuery(err.to_string()).into()),
                )
                .route("/ws/stats", web::get().to(routes::ws_stats))
                .route("/stats", web::get().to(routes::stats))
                .route("/stats/stream", web::get().to(routes::stats_stream))
                .route("/health", web::get().to(routes::health))
                .default_service(web::to(routes::not_found))
        })?;
        Ok(Self {
            port,
            server,
            state,
            sender,
            redis_client: redis::Client::open(settings.redis.url.as_str())?,
            batch_channel: keys.batch_events,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the poller and serves until shutdown; sessions then close with 1001 and the
    /// server waits for them (at most 5 s).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let poller = tokio::spawn(poller::run(
            Arc::clone(&state.hub),
            self.sender,
            state.reader.clone(),
            state.redis.clone(),
            state.redis_timeout,
            state.shutdown.clone(),
        ));
        let batches = tokio::spawn(batches::run(
            Arc::clone(&state.hub),
            self.redis_client,
            self.batch_channel,
            state.shutdown.clone(),
        ));
        let handle = self.server.handle();
        let shutdown = state.shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            handle.stop(true).await;
        });
        let result = self.server.await;
        state.shutdown.cancel();
        let _ = poller.await;
        let _ = batches.await;
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
