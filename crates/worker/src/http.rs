//! The worker's small HTTP listener, at `worker.listen` (off when empty): `GET /metrics` (the
//! Prometheus exposition), `GET /health` (200 while the process runs) and `GET /ready` (200
//! while the worker's last heartbeat reached Redis and PostgreSQL answers, 503 otherwise).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{App, HttpResponse, HttpServer, middleware::from_fn, web};
use sluice_core::{CancellationToken, metric};
use sluice_http::health::{Dependency, Readiness};
use sluice_http::observe;

/// What the heartbeat last found, read by `/ready`.
#[derive(Debug, Default)]
pub struct Status {
    /// The last heartbeat reached Redis.
    pub redis_up: AtomicBool,
    /// PostgreSQL answered the last probe and the last insert did not fail.
    pub postgres_up: AtomicBool,
}

/// A bound listener; [`Listener::run`] serves until shutdown.
pub struct Listener {
    port: u16,
    server: actix_web::dev::Server,
}

impl Listener {
    /// Binds `addr`; fails when the address is taken.
    pub fn bind(addr: SocketAddr, status: Arc<Status>) -> anyhow::Result<Self> {
        let (listener, port) = sluice_http::bind(addr)?;
        metric::exporter();
        sluice_core::metric::register_counters(&[metric::MESSAGES_PERSISTED, metric::DEAD_LETTERS]);
        let status = web::Data::from(status);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(observe::record))
                .app_data(status.clone())
                .route("/metrics", web::get().to(observe::metrics))
                .route("/health", web::get().to(health))
                .route("/ready", web::get().to(ready))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(2)
        .listen(listener)?
        .run();
        Ok(Self { port, server })
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
    .respond()
}
