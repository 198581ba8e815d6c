//! The state every session of a gateway process shares: the latest stats snapshot, the batch
//! event fan-out, the intervals clients asked for, and the connection counts and limits.
//!
//! The poller is the only writer of snapshots; the per-thread delivery tasks
//! ([`crate::fanout`]) and SSE streams read them through a `watch` channel, which holds just
//! the latest value, so a slow reader skips snapshots instead of queueing them. Batch events go through a bounded `broadcast` channel: a session that falls more than
//! `stream.client_queue` events behind skips ahead and is told how many it missed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytestring::ByteString;
use tokio::sync::{Notify, broadcast, watch};

use crate::snapshot::{BatchFrames, RedisState, Snapshot};
use sluice_proto::api::Alert;

/// Why a new stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `stream.max_connections` streams are open.
    #[error("the gateway serves its maximum of {0} connections")]
    Total(usize),
    /// `stream.max_connections_per_ip` streams are open from this address.
    #[error("this address has its maximum of {0} connections open")]
    PerIp(usize),
}

/// The next [`Hub`]'s id (tests and the ingest API can run several hubs in one process).
static NEXT_HUB_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, Default)]
struct Registry {
    /// Interval (ms) → streams that asked for it. The poller ticks at the smallest one.
    intervals: BTreeMap<u64, usize>,
    /// Open streams per client address.
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// How many batch events a process keeps for `GET /batches/recent` (a few hundred bytes each).
pub const RECENT_BATCHES: usize = 50;

/// Shared gateway state.
#[derive(Debug)]
pub struct Hub {
    snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    /// Redis as the poller last saw it; sessions tell their clients about every change.
    pub(crate) redis_state: watch::Sender<RedisState>,
    /// Batch events, bounded per receiver.
    batches: broadcast::Sender<Arc<BatchFrames>>,
    /// The last [`RECENT_BATCHES`] `batch_persisted` frames without ids, newest last, for
    /// `GET /batches/recent`.
    recent_batches: Mutex<VecDeque<ByteString>>,
    /// Alert transitions as `alert` frames, bounded per receiver.
    alerts: broadcast::Sender<ByteString>,
    /// The `redis_down` alert firing on this gateway (it cannot be stored in Redis).
    outage: Mutex<Option<Alert>>,
    registry: Mutex<Registry>,
    /// Wakes the poller: a first client arrived, or one asked for a faster interval.
    pub(crate) wake: Notify,
    pub(crate) poller_running: AtomicBool,
    /// Whether the log line of the current Redis outage named its cause (a check to make):
    /// an outage first seen as a bare timeout is logged again once its cause is known.
    pub(crate) outage_cause_logged: AtomicBool,
    /// The current tick in milliseconds, kept beside the registry so the hot path (every
    /// session, every snapshot) reads it without taking the lock.
    tick_ms: AtomicU64,
    default_interval: Duration,
    /// Tells this hub's per-thread rosters apart ([`crate::fanout`]).
    id: u64,
    max_total: usize,
    max_per_ip: usize,
}

impl Hub {
    /// A hub and the sender the poller publishes snapshots with.
    pub fn new(
        default_interval: Duration,
        client_queue: usize,
        max_total: usize,
        max_per_ip: usize,
    ) -> (Arc<Self>, watch::Sender<Option<Arc<Snapshot>>>) {
        let (tx, rx) = watch::channel(None);
        let hub = Arc::new(Self {
            snapshots: rx,
            redis_state: watch::Sender::new(RedisState::Unknown),
            outage_cause_logged: AtomicBool::new(false),
            batches: broadcast::Sender::new(client_queue),
            recent_batches: Mutex::new(VecDeque::with_capacity(RECENT_BATCHES)),
            alerts: broadcast::Sender::new(client_queue),
            outage: Mutex::new(None),
            registry: Mutex::new(Registry::default()),
            wake: Notify::new(),
            poller_running: AtomicBool::new(false),
            tick_ms: AtomicU64::new(default_interval.as_millis() as u64),
            default_interval,
            id: NEXT_HUB_ID.fetch_add(1, Ordering::Relaxed),
            max_total,
            max_per_ip,
        });
        (hub, tx)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A receiver of snapshots for one session.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.snapshots.clone()
    }

    /// The latest snapshot, if any reading succeeded yet.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.snapshots.borrow().clone()
    }

    /// The latest snapshot if it is from the current poller cycle, not a leftover from before
    /// Redis became unreadable.
    pub fn fresh(&self) -> Option<Arc<Snapshot>> {
        self.latest().filter(|s| {
            self.poller_running() && s.taken_at.elapsed() <= self.tick() + self.tick() / 2
        })
    }

    /// A receiver of batch events for one session.
    pub fn batches(&self) -> broadcast::Receiver<Arc<BatchFrames>> {
        self.batches.subscribe()
    }

    /// Keeps a batch event's frame among the recent ones and publishes the event, if anyone
    /// listens (only then is the frame with ids built); returns whether someone did.
    pub(crate) fn publish_batch(
        &self,
        without_ids: ByteString,
        with_ids: impl FnOnce() -> ByteString,
    ) -> bool {
        {
            let mut recent = self
                .recent_batches
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if recent.len() == RECENT_BATCHES {
                recent.pop_front();
            }
            recent.push_back(without_ids.clone());
        }
        if self.batches.receiver_count() == 0 {
            return false;
        }
        let frames = BatchFrames {
            with_ids: with_ids(),
            without_ids,
        };
        self.batches.send(Arc::new(frames)).is_ok()
    }

    /// The last [`RECENT_BATCHES`] `batch_persisted` frames this process saw (without their id
    /// lists), newest first.
    pub fn recent_batches(&self) -> Vec<ByteString> {
        let recent = self
            .recent_batches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recent.iter().rev().cloned().collect()
    }

    /// A receiver of alert frames for one stream.
    pub fn alerts(&self) -> broadcast::Receiver<ByteString> {
        self.alerts.subscribe()
    }

    /// Sends an `alert` frame to every stream subscribed to alerts.
    pub fn publish_alert(&self, frame: ByteString) {
        let _ = self.alerts.send(frame);
    }

    /// The `redis_down` alert firing on this gateway, if any.
    pub fn outage(&self) -> Option<Alert> {
        self.outage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets (or clears) the `redis_down` alert this process is living through; `GET /alerts`
    /// and new sessions show it, since it cannot be stored in Redis.
    pub fn set_outage(&self, alert: Option<Alert>) {
        *self.outage.lock().unwrap_or_else(PoisonError::into_inner) = alert;
    }

    /// This hub's process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The configured default interval.
    pub fn default_interval(&self) -> Duration {
        self.default_interval
    }

    /// The poller's period: the smallest interval any stream asked for, or the default.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.load(Ordering::Relaxed))
    }

    /// Recomputes the tick; called with the registry locked after every change to it.
    fn update_tick(&self, registry: &Registry) {
        let default = self.default_interval.as_millis() as u64;
        let tick = registry
            .intervals
            .keys()
            .next()
            .map_or(default, |ms| (*ms).min(default));
        self.tick_ms.store(tick, Ordering::Relaxed);
    }

    /// Registers a stream from `ip` with its interval, within the connection limits; dropping
    /// the guard unregisters it.
    pub fn join(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
        interval: Duration,
    ) -> Result<SessionGuard, LimitError> {
        let ms = interval.as_millis() as u64;
        {
            let mut registry = self.registry();
            if registry.total >= self.max_total {
                return Err(LimitError::Total(self.max_total));
            }
            if let Some(ip) = ip {
                let open = registry.per_ip.entry(ip).or_insert(0);
                if *open >= self.max_per_ip {
                    return Err(LimitError::PerIp(self.max_per_ip));
                }
                *open += 1;
            }
            registry.total += 1;
            *registry.intervals.entry(ms).or_insert(0) += 1;
            self.update_tick(&registry);
        }
        // First client, or a faster one: the poller reads at once.
        self.wake.notify_one();
        Ok(SessionGuard {
            hub: Arc::clone(self),
            ip,
            interval_ms: ms,
        })
    }

    /// Open WebSocket and SSE streams.
    pub fn active_connections(&self) -> usize {
        self.registry().total
    }

    /// Whether the last Redis read succeeded.
    pub fn redis_up(&self) -> bool {
        *self.redis_state.borrow() == RedisState::Up
    }

    /// A receiver of Redis state changes for one session.
    pub fn redis_state(&self) -> watch::Receiver<RedisState> {
        self.redis_state.subscribe()
    }

    /// Whether the poller has started reading Redis (it reads whether or not a stream is open).
    pub fn poller_running(&self) -> bool {
        self.poller_running.load(Ordering::Relaxed)
    }
}

/// Keeps a stream counted and its interval registered while alive.
#[derive(Debug)]
pub struct SessionGuard {
    hub: Arc<Hub>,
    ip: Option<IpAddr>,
    interval_ms: u64,
}

impl SessionGuard {
    /// Moves this stream to another interval.
    pub fn set_interval(&mut self, interval: Duration) {
        let ms = interval.as_millis() as u64;
        {
            let mut registry = self.hub.registry();
            remove_interval(&mut registry, self.interval_ms);
            *registry.intervals.entry(ms).or_insert(0) += 1;
            self.hub.update_tick(&registry);
        }
        self.interval_ms = ms;
        self.hub.wake.notify_one();
    }
}

fn remove_interval(registry: &mut Registry, ms: u64) {
    if let Some(count) = registry.intervals.get_mut(&ms) {
        *count -= 1;
        if *count == 0 {
            registry.intervals.remove(&ms);
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut registry = self.hub.registry();
        remove_interval(&mut registry, self.interval_ms);
        if let Some(ip) = self.ip
            && let Some(open) = registry.per_ip.get_mut(&ip)
        {
            *open -= 1;
            if *open == 0 {
                registry.per_ip.remove(&ip);
            }
        }
        registry.total -= 1;
        self.hub.update_tick(&registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(total: usize, per_ip: usize) -> Arc<Hub> {
        Hub::new(Duration::from_millis(500), 16, total, per_ip).0
    }

    #[test]
    fn tick_follows_the_fastest_stream_and_returns_to_the_default() {
        let hub = hub(100, 100);
        assert_eq!(hub.tick(), Duration::from_millis(500));
        let slow = hub.join(None, Duration::from_millis(2000)).expect("joins");
        assert_eq!(
            hub.tick(),
            Duration::from_millis(500),
            "never slower than the default"
        );
        let mut fast = hub.join(None, Duration::from_millis(100)).expect("joins");
        let fast2 = hub.join(None, Duration::from_millis(100)).expect("joins");
        assert_eq!(hub.tick(), Duration::from_millis(100));
        assert_eq!(hub.active_connections(), 3);
        fast.set_interval(Duration::from_millis(1000));
        assert_eq!(hub.tick(), Duration::from_millis(100));
        drop(fast2);
        assert_eq!(hub.tick(), Duration::from_millis(500));
        drop(fast);
        drop(slow);
        assert_eq!(hub.active_connections(), 0);
    }

    #[test]
    fn limits_apply_in_total_and_per_address() {
        let hub = hub(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let d = Duration::from_millis(500);
        let a1 = hub.join(Some(a), d).expect("joins");
        let _a2 = hub.join(Some(a), d).expect("joins");
        assert_eq!(hub.join(Some(a), d).map(|_| ()), Err(LimitError::PerIp(2)));
        let _b1 = hub.join(Some(b), d).expect("joins");
        assert_eq!(hub.join(Some(b), d).map(|_| ()), Err(LimitError::Total(3)));
        drop(a1);
        assert!(
            hub.join(Some(a), d).is_ok(),
            "a closed stream frees its place"
        );
    }
}
