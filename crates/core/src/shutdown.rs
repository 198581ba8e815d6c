//! The one cancellation signal of a process.
//!
//! Every long-lived task (HTTP server, worker loop, WebSocket session, poller) receives a clone
//! of the same [`CancellationToken`] and finishes its in-flight work when it fires.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Waits for a background task of the process to end after shutdown; a task that panicked (or
/// was aborted) is logged as an error by `name` instead of vanishing.
pub async fn joined<T>(name: &str, task: JoinHandle<T>) -> Option<T> {
    match task.await {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::error!(error = %e, "the {name} task failed");
            None
        }
    }
}

/// A token cancelled by the first SIGINT or SIGTERM. A second signal exits at once with status
/// 130, for the impatient operator whose graceful shutdown is waiting on something stuck.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing in-flight work (signal again to force)");
        trigger.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting immediately");
        std::process::exit(130);
    });
    token
}

/// The "tick until cancelled" loop of every periodic task:
/// `while ticker.tick().await { … }` runs the body every `period`, the first time at once,
/// until `stop` is cancelled. A body that runs late delays the next ticks instead of bunching
/// them, and a body in progress is finished, not cut short, when `stop` fires.
#[derive(Debug)]
pub struct Ticker {
    interval: tokio::time::Interval,
    stop: CancellationToken,
}

impl Ticker {
    /// Ticks every `period` until `stop` is cancelled.
    pub fn new(period: std::time::Duration, stop: CancellationToken) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { interval, stop }
    }

    /// Waits for the next tick: `true`, or `false` once `stop` is cancelled.
    pub async fn tick(&mut self) -> bool {
        tokio::select! {
            _ = self.interval.tick() => !self.stop.is_cancelled(),
            () = self.stop.cancelled() => false,
        }
    }
}

/// Sleeps `delay` unless `stop` fires first; returns `true` when the sleep ran out, `false`
/// when `stop` fired.
pub async fn sleep_unless(delay: std::time::Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stop.cancelled() => false,
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; only Ctrl-C will stop this process");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
