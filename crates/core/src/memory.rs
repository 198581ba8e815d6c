//! The allocator every Sluice binary uses, and what it reports.
//!
//! glibc's malloc keeps what a burst of connections freed in per-thread arenas and rarely gives
//! it back: over four bursts of 10,000 connections the ingest API (release build) went from 17
//! to 100 MiB of RSS and stayed there, idle. It was retention, not a leak: jemalloc's count of
//! live bytes ([`stats`]) is the same after every burst (10–15 MiB). jemalloc with its
//! background threads returns freed pages to the OS a few seconds after they fall idle, so a
//! process that served a burst drops back toward its baseline (19 MiB after 15 s). Each binary declares it:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: sluice_core::memory::Allocator = sluice_core::memory::Allocator;
//! ```
//!
//! and calls [`configure`] first thing in `main` ([`crate::cli::start`] does).

use serde::{Deserialize, Serialize};

/// The global allocator of every Sluice binary.
pub use tikv_jemallocator::Jemalloc as Allocator;

/// Starts jemalloc's background threads, which purge freed pages while the process is idle
/// (without them, pages are only purged when the process allocates again).
pub fn configure() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(error = %e, "jemalloc background threads unavailable");
    }
}

/// Bytes the allocator reports, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemoryStats {
    /// Bytes in live allocations: what the process actually holds.
    pub allocated_bytes: u64,
    /// Bytes of physical memory the allocator has mapped (its share of RSS).
    pub resident_bytes: u64,
}

/// The allocator's current counts, or `None` when jemalloc is not the allocator in use (as in
/// in-process tests).
pub fn stats() -> Option<MemoryStats> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    let allocated = tikv_jemalloc_ctl::stats::allocated::read().ok()? as u64;
    let resident = tikv_jemalloc_ctl::stats::resident::read().ok()? as u64;
    (allocated > 0).then_some(MemoryStats {
        allocated_bytes: allocated,
        resident_bytes: resident,
    })
}
