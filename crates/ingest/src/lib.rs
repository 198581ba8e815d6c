//! `sluice-ingest`: the HTTP API that validates chat messages and queues them on Redis.
//!
//! - [`Application`]: builds the server from [`Settings`], binds its listener (port 0 in tests),
//!   and runs until the shutdown token fires, draining in-flight requests.
//! - [`routes`]: the handlers (`POST /messages`, `POST /messages/batch`, `GET /messages`,
//!   `/health`, `/ready`); the token-guarded `/admin/dead-letters` are `sluice_admin`'s.
//! - [`auth`]: with `auth.mode = keys`, the one extractor that checks a caller's API key for
//!   the endpoint's scope; `/admin/keys` makes, lists and revokes keys.
//! - [`body`]: content-type and size checks before any parsing; [`parse`]: large bodies parsed
//!   off the threads that answer requests.
//! - [`group`]: group commit, every push of a thread sent with those that arrived while the
//!   last was in flight, in one round trip, confirmed by one `WAIT` with `redis.ack_replicas`.
//! - [`queue`]: the queue bound and Redis's failures as answers.
//! - [`enqueue`]: queueing a request's messages, under its `Idempotency-Key`, and waiting for
//!   their commit (`Prefer: wait=N`); [`persisted`]: the waiting requests, fed by `batch_events`.
//! - [`store`]: the reads of PostgreSQL (`GET /messages`, a replay's persisted messages).
//! - [`error`]: every failure with its status code and stable `code`.
//! - [`openapi`]: the OpenAPI 3.1 document, served at `/openapi.json`.
//!
//! With `ingest.serve_stats` (the default) it also serves the stats stream (`/ws/stats`,
//! `/stats`, `/stats/stream`, `/stats/history`, `/alerts`, `/workers`) through
//! `sluice_stream::StatsStream`, at the URL the Python stack's dashboards connect to. It does
//! not evaluate alert rules: gateways do, and the stream serves what they recorded.

pub mod auth;
pub mod body;
pub mod enqueue;
pub mod error;
pub mod group;
pub mod limit;
pub mod lua;
pub mod openapi;
pub mod parse;
pub mod persisted;
pub mod queue;
pub mod routes;
pub mod state;
pub mod store;
pub mod tally;

use sluice_core::shutdown::joined;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, web};
use anyhow::Context;
use sluice_core::auth::Verifier;
use sluice_core::settings::IngestSettings;
use sluice_core::{CancellationToken, Settings, connect};
use sluice_http::tls::ServerTls;
use sluice_http::{BodyLimits, EdgeConfig, EdgeStats};
use sluice_stream::StatsStream;

use crate::group::Pusher;

use crate::error::ApiError;
use crate::state::{AppState, Shared};

/// How long a graceful shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// actix's per-connection write buffer: answers are small JSON documents.
pub const WRITE_BUFFER_BYTES: usize = 32 * 1024;

/// A bound, not yet running, ingest server.
pub struct Application {
    port: u16,
    server: actix_server::Server,
    shutdown: CancellationToken,
    shared: Arc<Shared>,
    /// The queue-depth gauge's connection.
    redis: sluice_core::connect::RedisConnection,
    stream: Option<StatsStream>,
    redis_clients: connect::Subscriptions,
}

impl Application {
    /// Binds `settings.ingest.listen` and prepares the server. Redis and PostgreSQL are
    /// connected lazily, so this succeeds while they are down (requests then get 503).
    pub fn build(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let (listener, port) = sluice_http::bind(settings.ingest.listen, "ingest.listen")?;
        // Built here, so that an unusable URL fails now and not in each worker thread.
        let redis = connect::redis_manager(&settings.redis).context("invalid redis.url")?;
        let edge_stats = Arc::new(EdgeStats::default());
        sluice_core::metric::exporter();
        let shared = Arc::new(Shared::new(settings, Arc::clone(&edge_stats))?);
        let admin = web::Data::new(sluice_admin::Admin::new(
            redis.clone(),
            shared.keys.clone(),
            shared.redis_timeout,
            sluice_admin::Credentials {
                token: &settings.ingest.admin_token,
                setting: "SLUICE__INGEST__ADMIN_TOKEN",
                verifier: shared.verifier.clone(),
            },
            shared.pool.clone(),
        ));
        let stream = stats_stream(settings, &shared, &edge_stats, &shutdown)?;
        let stream_state = stream.as_ref().map(StatsStream::state);
        let (redis_settings, app_shared) = (settings.redis.clone(), Arc::clone(&shared));
        let edge = edge_config(&settings.ingest, shutdown.clone())?;
        // Each HTTP worker thread: its own Redis connection, the shared state, and the stats
        // stream when this process serves it.
        let server = sluice_http::serve(listener, edge, edge_stats, move || {
            let valid = "redis.url was validated when the server was built";
            let redis = connect::redis_manager(&redis_settings).expect(valid);
            // A WAIT holds its connection in Redis: with acknowledgements the pushes get a
            // connection of their own, so that /health and /ready never queue behind one.
            // Large pushes always have one (connected when the first comes).
            let own = || {
                connect::redis_manager_within(&redis_settings, redis_settings.confirmed_timeout())
                    .expect(valid)
            };
            let pushes = match app_shared.acks {
                None => redis.clone(),
                Some(_) => own(),
            };
            let state = AppState {
                redis,
                pusher: Pusher::start(pushes, own(), app_shared.push_config()),
                shared: Arc::clone(&app_shared),
            };
            let app = App::new()
                .wrap(actix_web::middleware::from_fn(tally::record))
                .wrap(actix_web::middleware::from_fn(sluice_http::observe::record))
                .app_data(web::Data::new(state))
                .app_data(admin.clone())
                .app_data(web::Data::new(openapi::ServeStats(stream_state.is_some())))
                .app_data(web::QueryConfig::default().error_handler(|err, _| {
                    ApiError::InvalidQuery([("query".to_owned(), err.to_string())].into()).into()
                }));
            match &stream_state {
                // The stats stream at the Python stack's URL, as the gateway serves it.
                Some(stream) => app
                    .app_data(stream.clone())
                    .configure(sluice_stream::stream_routes)
                    .configure(routes_config),
                None => app.configure(routes_config),
            }
        })?;
        Ok(Self {
            port,
            server,
            shutdown,
            shared,
            redis,
            stream,
            redis_clients: connect::pubsub_clients(&settings.redis).context("invalid redis.url")?,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the shutdown token fires, then stops accepting connections and lets
    /// in-flight requests finish (at most [`SHUTDOWN_GRACE`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let shared = self.shared;
        let stream = self.stream.map(StatsStream::start);
        let waiting = tokio::spawn(persisted::listen(
            Arc::clone(&shared.waiters),
            self.redis_clients,
            shared.keys.batch_events.clone(),
            self.shutdown.clone(),
        ));
        sluice_http::stop_on(&self.server, self.shutdown.clone());
        let errors = tokio::spawn(Arc::clone(&shared.errors).flush_periodically(
            self.redis.clone(),
            shared.keys.clone(),
            shared.redis_timeout,
            self.shutdown.clone(),
        ));
        let (gauge_state, conn, stop) = (Arc::clone(&shared), self.redis, self.shutdown.clone());
        let gauge = tokio::spawn(async move {
            let pending = gauge_state.keys.pending_messages.clone();
            let timeout = gauge_state.redis_timeout;
            let mut conn = conn;
            queue::check_memory_policy(&mut conn, timeout).await;
            gauge_state
                .depth
                .refresh_periodically(conn, pending, timeout, stop)
                .await;
        });
        let keyring = shared
            .verifier
            .as_ref()
            .and_then(|verifier| verifier.keep_current(&shared.pool, &self.shutdown));
        let result = self.server.await;
        self.shutdown.cancel();
        if let Some(keyring) = keyring {
            joined("API key refresher", keyring).await;
        }
        joined("queue depth gauge", gauge).await;
        joined("error tally", errors).await;
        joined("persisted-message listener", waiting).await;
        if let Some(stream) = stream {
            stream.await;
        }
        result
    }
}

/// The stats stream, when this process serves it (`ingest.serve_stats`).
fn stats_stream(
    settings: &Settings,
    shared: &Shared,
    edge_stats: &Arc<EdgeStats>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<StatsStream>> {
    if !settings.ingest.serve_stats {
        return Ok(None);
    }
    let verifier = Verifier::for_stream(settings, shared.verifier.as_ref())?;
    let edge = Arc::clone(edge_stats);
    Ok(Some(StatsStream::new(
        settings,
        edge,
        verifier,
        shutdown.clone(),
    )?))
}

/// The edge the ingest API runs on.
fn edge_config(ingest: &IngestSettings, shutdown: CancellationToken) -> anyhow::Result<EdgeConfig> {
    Ok(EdgeConfig {
        name: "sluice-ingest",
        workers: ingest.http_workers,
        max_connections: ingest.max_connections,
        write_timeout: Duration::from_millis(ingest.write_timeout_ms),
        send_buffer_bytes: 0,
        write_buffer_bytes: WRITE_BUFFER_BYTES,
        shutdown_grace: SHUTDOWN_GRACE,
        shutdown,
        body_limits: BodyLimits::new(ingest.max_body_bytes)
            .path("/messages/batch", ingest.max_batch_body_bytes),
        tls: ServerTls::load("ingest", &ingest.tls)?,
    })
}

/// Registers every route; shared by the server and by tests that build an `App` directly.
pub fn routes_config(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/messages")
            .route(web::post().to(routes::messages::post_message))
            .route(web::get().to(routes::list::list_messages))
            .default_service(web::to(routes::method_not_allowed)),
    )
    .service(
        web::resource("/messages/batch")
            .route(web::post().to(routes::messages::post_batch))
            .default_service(web::to(routes::method_not_allowed)),
    )
    .service(
        web::resource("/health")
            .route(web::get().to(routes::health::health))
            .default_service(web::to(routes::method_not_allowed)),
    )
    .service(
        web::resource("/ready")
            .route(web::get().to(routes::health::ready))
            .default_service(web::to(routes::method_not_allowed)),
    )
    .service(
        web::resource("/openapi.json")
            .route(web::get().to(openapi::openapi_json))
            .default_service(web::to(routes::method_not_allowed)),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(sluice_http::observe::metrics))
            .default_service(web::to(routes::method_not_allowed)),
    )
    .service(
        web::resource("/admin/keys")
            .route(web::post().to(routes::keys::create))
            .route(web::get().to(routes::keys::list))
            .default_service(web::to(routes::method_not_allowed)),
    )
    .service(
        web::resource("/admin/keys/{name}")
            .route(web::delete().to(routes::keys::revoke))
            .default_service(web::to(routes::method_not_allowed)),
    )
    .configure(sluice_admin::routes)
    .default_service(web::to(routes::not_found));
}
