//! What the WebSocket and SSE sessions share: when a client's next `stats` reading is due, and
//! when it hears that Redis went down or came back.

use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use tokio::time::Instant;

use crate::snapshot::{RedisState, Snapshot};

/// When a client's next reading is due: a new one, at least an interval after the last sent.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    last_seq: u64,
    last_sent: Option<Instant>,
}

impl Pacer {
    /// A client at `interval` that has been sent nothing yet.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_seq: 0,
            last_sent: None,
        }
    }

    /// Changes the period (the next reading is due by the new one).
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// Makes the next reading due at once (a client that subscribes to stats again).
    pub fn restart(&mut self) {
        self.last_sent = None;
    }

    /// Whether `snapshot` goes out now: it is new to this client, and an interval has passed
    /// since the last, less half a poller `tick` of slack so a client at the poller's own pace
    /// gets every reading despite scheduling jitter.
    pub fn due(&self, snapshot: &Snapshot, tick: Duration) -> bool {
        snapshot.seq != self.last_seq
            && self
                .last_sent
                .is_none_or(|at| at.elapsed() + tick / 2 >= self.interval)
    }

    /// Records that `snapshot` was sent.
    pub fn sent(&mut self, snapshot: &Arc<Snapshot>) {
        self.last_seq = snapshot.seq;
        self.last_sent = Some(Instant::now());
    }
}

/// Whether to tell a client about Redis: `down` once when it goes down, and `up` only after a
/// `down` was told.
#[derive(Debug, Default)]
pub struct RedisNotice {
    told_down: bool,
}

impl RedisNotice {
    /// Whether `state` should be told now.
    pub fn tell(&mut self, state: RedisState) -> bool {
        match state {
            RedisState::Down => !std::mem::replace(&mut self.told_down, true),
            RedisState::Up => std::mem::replace(&mut self.told_down, false),
            RedisState::Unknown => false,
        }
    }
}

/// `{"type": "status", "redis": "up" | "down"}`.
pub fn status_message(state: RedisState) -> ByteString {
    serde_json::json!({"type": "status", "redis": state})
        .to_string()
        .into()
}
