//! The worker's small HTTP listener, at `worker.listen` (off when empty; HTTPS with
//! `[worker.tls]`): `GET /metrics` (the Prometheus exposition), `GET /health` (200 while the
//! process runs) and `GET /ready` (200 while the worker's last heartbeat reached Redis and
//! PostgreSQL answers, 503 otherwise). It runs on the same bounded edge as the servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, middleware::from_fn, web};
use sluice_core::primary::PrimaryWatch;
use sluice_core::settings::WorkerSettings;
use sluice_core::{CancellationToken, metric};
use sluice_http::health::{Dependency, Readiness};
use sluice_http::tls::ServerTls;
use sluice_http::{BodyLimits, EdgeConfig, observe};

/// Most connections the listener holds open: scrapers and probes.
pub const MAX_CONNECTIONS: usize = 64;

/// What the heartbeat last found, read by `/ready`.
#[derive(Debug, Default)]
pub struct Status {
    /// The last heartbeat reached Redis.
    pub redis_up: AtomicBool,
    /// PostgreSQL answered the last probe and the last insert did not fail.
    pub postgres_up: AtomicBool,
    /// The PostgreSQL server the probes and inserts reach.
    pub primary: PrimaryWatch,
}

/// A bound listener; [`Listener::run`] serves until shutdown.
pub struct Listener {
    port: u16,
    server: actix_web::dev::Server,
}

impl Listener {
    /// Binds `worker.listen`, when it is set; fails when the address is taken or the TLS
    /// files cannot be used.
    pub fn bind(
        settings: &WorkerSettings,
        status: Arc<Status>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Option<Self>> {
        let Some(addr) = settings.listen_addr() else {
            return Ok(None);
        };
        let (listener, port) = sluice_http::bind(addr, "worker.listen")?;
        metric::exporter();
        sluice_core::metric::register_counters(&[
            metric::MESSAGES_PERSISTED,
            metric::DEAD_LETTERS,
            metric::ROWS_RESTORED,
        ]);
        let status = web::Data::from(status);
        let edge = EdgeConfig {
            name: "sluice-worker",
            workers: 1,
            max_connections: MAX_CONNECTIONS,
            write_timeout: Duration::from_secs(10),
            send_buffer_bytes: 0,
            write_buffer_bytes: 32 * 1024,
            shutdown_grace: Duration::from_secs(2),
            shutdown,
            body_limits: BodyLimits::new(0),
            tls: ServerTls::load("worker", &settings.tls)?,
        };
        let server = sluice_http::serve(listener, edge, Arc::default(), move || {
            App::new()
                .wrap(from_fn(observe::record))
                .app_data(status.clone())
                .route("/metrics", web::get().to(observe::metrics))
                .route("/health", web::get().to(health))
                .route("/ready", web::get().to(ready))
        })?;
        Ok(Some(Self { port, server }))
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` fires.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        sluice_http::stop_on(&self.server, shutdown);
        self.server.await
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn ready(status: web::Data<Status>) -> HttpResponse {
    Readiness::of(
        Dependency::from_up(status.redis_up.load(Ordering::Relaxed)),
        Dependency::from_up(status.postgres_up.load(Ordering::Relaxed)),
    )
    .with_primary(status.primary.report())
    .respond()
}
