//! The HTTP stack's own ceiling: what actix-web answers on this machine when the handler does
//! nothing, measured with the same load engine and connections as `ingest`.
//!
//! `redis-benchmark` LPUSH is what Redis answers per command with nothing but a lean client on
//! the other core. A single-message `POST /messages` pays, before any of Sluice's work, a
//! request's HTTP parsing and syscalls on the same two cores as its load tool; this measures
//! that part alone, so `ingest` can be read against both: how far the HTTP stack is from the
//! LPUSH ceiling, and how much of what is left Sluice's own work takes.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;

use crate::pipeline;

/// The answer the no-op server gives: the size and shape of the ingest API's 202.
pub const ANSWER: &str = r#"{"message_id":"019ae2c2-0b9e-7000-8000-000000000000","status":"queued","queued_at":"2026-12-03T00:00:00.000000Z"}"#;

/// `POST /messages` that reads the body (the extractor reads all of it) and answers 202 with
/// [`ANSWER`], nothing else.
async fn accept(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Accepted()
        .content_type("application/json")
        .body(ANSWER)
}

/// Starts the no-op server on `workers` threads, loads it like `ingest` for `duration` and
/// returns the requests answered per second.
pub async fn http_noop_ceiling(
    workers: usize,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding the no-op server")?;
    let addr = listener.local_addr()?.to_string();
    let (started, handle) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| App::new().route("/messages", web::post().to(accept)))
                .workers(workers)
                .listen(listener)?
                .run();
            let _ = started.send(server.handle());
            server.await
        })
    });
    let handle = handle.recv().context("the no-op server did not start")?;
    let report = pipeline::ingest(&addr, connections, duration, None, Default::default()).await;
    handle.stop(true).await;
    let _ = server.join();
    let report = report?;
    if report.failed > 0 {
        anyhow::bail!("the no-op server failed {} requests", report.failed);
    }
    Ok(report.messages_per_sec)
}
