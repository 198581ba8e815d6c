//! `sluice-ingest` binary: load settings, start telemetry, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use sluice_core::{cli, memory};

#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

/// jemalloc's options for this process.
///
/// `dirty_decay_ms:0`: freed pages go back to the OS at once. Batch bodies come and go in
/// megabytes; with the default 10 s decay, the pages one burst freed stayed resident while the
/// next burst allocated new ones, and 20 concurrent 8 MB batches took RSS to 155 MiB above idle
/// against a 96 MiB batch budget (89 MiB with this setting). A 500 ms decay was tried and let 20
/// concurrent 2 MB batches take RSS 53–73 MiB above idle against a 32 MiB budget.
///
/// `lg_tcache_nslots_mul:3`: each thread caches 8 times as many small blocks of each size as
/// the default (up to 200). Without it the caches flushed back to the arena often enough, at
/// 100,000 requests a second, that slabs kept emptying and each empty one was purged at once: a
/// `madvise` and a TLB shootdown on the other core 5,700 times a second, 15 % of the process's
/// CPU. With it, 1,100 a second; a batch burst's RSS is the same (22–26 MiB above idle).
///
/// jemalloc reads its options from this C string at start-up; the `unsafe` is only that the
/// symbol's name is chosen here (no other object defines it).
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 40] = b"dirty_decay_ms:0,lg_tcache_nslots_mul:3\0";

const BINARY: cli::Binary = cli::Binary {
    name: "sluice-ingest",
    about: "The ingest API: validates messages and queues them in Redis for the workers.",
    sections: &[
        "redis",
        "postgres",
        "ingest",
        "stream",
        "auth",
        "worker.dead_after_ms",
    ],
};

#[actix_web::main]
async fn main() -> ExitCode {
    cli::run(BINARY, |settings, shutdown| async move {
        let app = sluice_ingest::Application::build(&settings, shutdown)?;
        let callers = settings
            .auth
            .describe(settings.ingest.listen, settings.auth.keys());
        tracing::info!(port = app.port(), callers, "ingest API listening");
        app.run_until_stopped().await?;
        tracing::info!("ingest API stopped");
        anyhow::Ok(())
    })
    .await
}
