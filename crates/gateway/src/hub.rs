//! The state every session of a gateway process shares: the latest stats snapshot, the
//! intervals clients asked for, and connection counts.
//!
//! The poller is the only writer of snapshots; sessions read them through a `watch` channel,
//! which holds just the latest value, so a slow session skips snapshots instead of queueing
//! them and memory does not grow with slow clients.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytestring::ByteString;
use sluice_core::stats::Stats;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// One stats reading, serialized once for every session.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one per reading.
    pub seq: u64,
    /// When the reading was taken.
    pub taken_at: Instant,
    /// The reading.
    pub stats: Stats,
    /// `stats` as the JSON text frame sessions send.
    pub json: ByteString,
}

/// Whether the poller can read Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisState {
    /// Not read yet.
    Unknown,
    /// The last read succeeded.
    Up,
    /// The last read failed.
    Down,
}

/// Shared gateway state.
#[derive(Debug)]
pub struct Hub {
    snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    /// Redis as the poller last saw it; sessions tell their clients about every change.
    pub(crate) redis_state: watch::Sender<RedisState>,
    /// Interval (ms) → sessions that asked for it. The poller ticks at the smallest one.
    intervals: Mutex<BTreeMap<u64, usize>>,
    /// Wakes the poller when a faster interval appears.
    pub(crate) interval_changed: Notify,
    connections: AtomicUsize,
    pub(crate) poller_running: AtomicBool,
    default_interval: Duration,
}

impl Hub {
    /// A hub and the sender the poller publishes snapshots with.
    pub fn new(default_interval: Duration) -> (Arc<Self>, watch::Sender<Option<Arc<Snapshot>>>) {
        let (tx, rx) = watch::channel(None);
        let hub = Arc::new(Self {
            snapshots: rx,
            intervals: Mutex::new(BTreeMap::new()),
            interval_changed: Notify::new(),
            connections: AtomicUsize::new(0),
            redis_state: watch::Sender::new(RedisState::Unknown),
            poller_running: AtomicBool::new(false),
            default_interval,
        });
        (hub, tx)
    }

    /// A receiver of snapshots for one session.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.snapshots.clone()
    }

    /// The latest snapshot, if any reading succeeded yet.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.snapshots.borrow().clone()
    }

    /// The configured default interval.
    pub fn default_interval(&self) -> Duration {
        self.default_interval
    }

    /// The poller's period: the smallest interval any session asked for, or the default.
    pub fn tick(&self) -> Duration {
        let intervals = self
            .intervals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        intervals.keys().next().map_or(self.default_interval, |ms| {
            Duration::from_millis(*ms).min(self.default_interval)
        })
    }

    /// Registers a session with its interval; dropping the guard unregisters it.
    pub fn join(self: &Arc<Self>, interval: Duration) -> SessionGuard {
        let ms = interval.as_millis() as u64;
        let faster = {
            let mut intervals = self
                .intervals
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let faster = intervals.keys().next().is_none_or(|min| ms < *min);
            *intervals.entry(ms).or_insert(0) += 1;
            faster
        };
        self.connections.fetch_add(1, Ordering::Relaxed);
        if faster && interval < self.default_interval {
            self.interval_changed.notify_one();
        }
        SessionGuard {
            hub: Arc::clone(self),
            interval_ms: ms,
        }
    }

    /// Open WebSocket sessions.
    pub fn active_connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Whether the last Redis read succeeded.
    pub fn redis_up(&self) -> bool {
        *self.redis_state.borrow() == RedisState::Up
    }

    /// A receiver of Redis state changes for one session.
    pub fn redis_state(&self) -> watch::Receiver<RedisState> {
        self.redis_state.subscribe()
    }

    /// Whether the poller task is running.
    pub fn poller_running(&self) -> bool {
        self.poller_running.load(Ordering::Relaxed)
    }
}

/// Keeps a session counted and its interval registered while alive.
#[derive(Debug)]
pub struct SessionGuard {
    hub: Arc<Hub>,
    interval_ms: u64,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut intervals = self
            .hub
            .intervals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = intervals.get_mut(&self.interval_ms) {
            *count -= 1;
            if *count == 0 {
                intervals.remove(&self.interval_ms);
            }
        }
        self.hub.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_follows_the_fastest_session_and_returns_to_the_default() {
        let (hub, _tx) = Hub::new(Duration::from_millis(500));
        assert_eq!(hub.tick(), Duration::from_millis(500));
        let slow = hub.join(Duration::from_millis(2000));
        assert_eq!(
            hub.tick(),
            Duration::from_millis(500),
            "never slower than the default"
        );
        let fast = hub.join(Duration::from_millis(100));
        let fast2 = hub.join(Duration::from_millis(100));
        assert_eq!(hub.tick(), Duration::from_millis(100));
        assert_eq!(hub.active_connections(), 3);
        drop(fast);
        assert_eq!(hub.tick(), Duration::from_millis(100));
        drop(fast2);
        assert_eq!(hub.tick(), Duration::from_millis(500));
        drop(slow);
        assert_eq!(hub.active_connections(), 0);
    }
}
