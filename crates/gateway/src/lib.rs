//! `sluice-gateway`: streams pipeline stats to dashboards over WebSocket, and evaluates the
//! alert rules.
//!
//! The stream itself (poller, hub, sessions, routes) is `sluice-stream`, which the ingest API
//! mounts too; the gateway adds what only it does:
//!
//! - [`Application`]: binds the listener (port 0 in tests), runs until the shutdown token
//!   fires, and closes every session with 1001.
//! - [`alerts`]: the alert rules, evaluated on every reading of the stream's poller and
//!   deduplicated through Redis, so an alert fires once however many gateways run.
//! - [`routes`]: `GET /health`, `GET /ready`; [`dashboard`]: `GET /` and its assets (with the
//!   dead-letters page, on `sluice_admin`'s routes, which the ingest API mounts too);
//!   [`openapi`]: the gateway's OpenAPI document.

pub mod alerts;
pub mod dashboard;
pub mod openapi;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, web};
use sluice_core::auth::Verifier;
use sluice_core::{CancellationToken, Settings};
use sluice_http::{BodyLimits, EdgeConfig, EdgeStats};
use sluice_stream::{StatsStream, query_config, stream_routes};

use crate::alerts::Evaluator;
use crate::alerts::runtime::Alerting;

/// Connections the edge accepts beyond `stream.max_connections`, so that upgrades past the
/// limit still get their 503 and plain HTTP requests (`/health`, `/stats`) are still served.
pub const EDGE_HEADROOM: usize = 1_024;

/// actix's per-connection write buffer: stats frames are a few hundred bytes.
pub const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// Connections of the gateway's PostgreSQL pool: the API keys' refresh, and the audit trail.
pub const POSTGRES_CONNECTIONS: usize = 2;

/// A bound, not yet running, gateway.
pub struct Application {
    port: u16,
    server: actix_server::Server,
    stream: StatsStream,
    /// The credentials callers present, with `auth.mode = keys`.
    callers: Option<Arc<Verifier>>,
    /// The gateway's few PostgreSQL connections (made when first used): the keys' refresh, and
    /// the audit trail.
    postgres: deadpool_postgres::Pool,
    /// The alert rules, fed every reading of the stream's poller.
    alerting: Alerting,
}

impl Application {
    /// Binds `settings.gateway.listen`; Redis is connected lazily.
    pub fn build(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let (listener, port) = sluice_http::bind(settings.gateway.listen, "gateway.listen")?;
        let gateway = &settings.gateway;
        let edge_stats = Arc::new(EdgeStats::default());
        sluice_core::metric::exporter();
        sluice_core::metric::register_counters(&[sluice_core::metric::WS_MESSAGES_SENT]);
        metrics::gauge!(sluice_core::metric::WS_CONNECTIONS).set(0.0);
        let callers = Verifier::for_callers(settings)?;
        let postgres = sluice_core::connect::postgres_pool_sized(
            &settings.postgres,
            POSTGRES_CONNECTIONS,
            Some(Duration::from_secs(5)),
        )?;
        let verifier = Verifier::for_stream(settings, callers.as_ref())?;
        let stream = StatsStream::new(
            settings,
            Arc::clone(&edge_stats),
            verifier,
            shutdown.clone(),
        )?;
        let edge = EdgeConfig {
            name: "sluice-gateway",
            workers: 0,
            max_connections: settings.stream.max_connections + EDGE_HEADROOM,
            write_timeout: Duration::from_millis(gateway.write_timeout_ms),
            send_buffer_bytes: gateway.send_buffer_bytes,
            write_buffer_bytes: WRITE_BUFFER_BYTES,
            shutdown_grace: Duration::from_secs(5),
            shutdown,
            // The gateway reads no request body.
            body_limits: BodyLimits::new(0),
            tls: sluice_http::tls::ServerTls::load("gateway", &gateway.tls)?,
        };
        let shared = stream.state();
        let alerting = Alerting::new(
            Evaluator::new(gateway.alerts.clone()),
            shared.alerts.clone(),
            Arc::clone(&shared.hub),
            shared.redis_timeout,
        );
        let admin = admin(settings, &shared, callers.clone(), postgres.clone());
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
                .app_data(admin.clone())
                .configure(stream_routes)
                .configure(sluice_admin::routes)
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
            callers,
            postgres,
            alerting,
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
        let alerts = tokio::spawn(
            self.alerting
                .run(self.stream.readings(), state.redis.clone()),
        );
        let keyring = self
            .callers
            .as_ref()
            .and_then(|callers| callers.keep_current(&self.postgres, &state.shutdown));
        let background = self.stream.start();
        sluice_http::stop_on(&self.server, state.shutdown.clone());
        let result = self.server.await;
        state.shutdown.cancel();
        background.await;
        if let Some(keyring) = keyring {
            sluice_core::shutdown::joined("API key refresher", keyring).await;
        }
        sluice_core::shutdown::joined("alert rules", alerts).await;
        result
    }
}

/// The admin endpoints' state: the gateway's admin token, or an `admin`-scoped credential.
fn admin(
    settings: &Settings,
    shared: &web::Data<sluice_stream::State>,
    callers: Option<Arc<Verifier>>,
    postgres: deadpool_postgres::Pool,
) -> web::Data<sluice_admin::Admin> {
    let credentials = sluice_admin::Credentials {
        token: &settings.gateway.admin_token,
        setting: "SLUICE__GATEWAY__ADMIN_TOKEN",
        verifier: callers,
    };
    web::Data::new(sluice_admin::Admin::new(
        shared.redis.clone(),
        shared.keys.clone(),
        shared.redis_timeout,
        credentials,
        postgres,
    ))
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
