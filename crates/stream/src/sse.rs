//! `GET /stats/stream`: the stats stream as Server-Sent Events.
//!
//! Each `stats` payload is one `data:` event; Redis state changes are `event: status` events;
//! with `?topics=` naming them, batch events are `event: batch` (`batch_persisted`, without
//! ids) and alert transitions `event: alert`. A comment line every heartbeat keeps proxies
//! from closing an idle connection. The stream ends when the gateway shuts down or the
//! client's token expires.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::Stream;
use sluice_core::CancellationToken;
use tokio::time::Instant;

use bytestring::ByteString;
use tokio::sync::broadcast;

use crate::auth::Validity;
use crate::hub::{Hub, SessionGuard};
use crate::pace::{Pacer, RedisNotice, status_message};
use crate::snapshot::{BatchFrames, RedisState};

struct SseState {
    hub: Arc<Hub>,
    _guard: SessionGuard,
    snapshots: tokio::sync::watch::Receiver<Option<Arc<crate::snapshot::Snapshot>>>,
    redis_state: tokio::sync::watch::Receiver<RedisState>,
    pacer: Pacer,
    keepalive: tokio::time::Interval,
    validity: Validity,
    shutdown: CancellationToken,
    first: bool,
    redis_notice: RedisNotice,
    batches: Option<broadcast::Receiver<Arc<BatchFrames>>>,
    alerts: Option<broadcast::Receiver<ByteString>>,
}

/// What an SSE stream carries besides stats.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// `event: batch`.
    pub batches: bool,
    /// `event: alert`.
    pub alerts: bool,
}

/// The event stream for one client.
pub fn stream(
    hub: Arc<Hub>,
    guard: SessionGuard,
    interval: Duration,
    heartbeat: Duration,
    validity: Validity,
    extras: Extras,
    shutdown: CancellationToken,
) -> impl Stream<Item = Bytes> {
    let state = SseState {
        batches: extras.batches.then(|| hub.batches()),
        alerts: extras.alerts.then(|| hub.alerts()),
        snapshots: hub.subscribe(),
        redis_state: hub.redis_state(),
        hub,
        _guard: guard,
        pacer: Pacer::new(interval),
        keepalive: tokio::time::interval_at(Instant::now() + heartbeat, heartbeat),
        validity,
        shutdown,
        first: true,
        redis_notice: RedisNotice::default(),
    };
    futures_util::stream::unfold(state, |mut s| async move {
        if s.first {
            s.first = false;
            s.snapshots.borrow_and_update();
            s.redis_state.borrow_and_update();
            if let Some(snapshot) = s.hub.fresh() {
                s.pacer.sent(&snapshot);
                return Some((data_event(&snapshot.json), s));
            }
            return Some((Bytes::from_static(b": connected\n\n"), s));
        }
        loop {
            tokio::select! {
                changed = s.snapshots.changed() => {
                    changed.ok()?;
                    let snapshot = s.snapshots.borrow_and_update().clone();
                    let Some(snapshot) = snapshot else { continue };
                    if s.pacer.due(&snapshot, s.hub.tick()) {
                        s.pacer.sent(&snapshot);
                        return Some((data_event(&snapshot.json), s));
                    }
                }
                changed = s.redis_state.changed() => {
                    changed.ok()?;
                    let state = *s.redis_state.borrow_and_update();
                    if s.redis_notice.tell(state) {
                        return Some((named_event("status", &status_message(state)), s));
                    }
                }
                event = recv(&mut s.batches) => {
                    if let Ok(frames) = event {
                        return Some((named_event("batch", &frames.without_ids), s));
                    }
                }
                event = recv(&mut s.alerts) => {
                    if let Ok(frame) = event {
                        return Some((named_event("alert", &frame), s));
                    }
                }
                _ = s.keepalive.tick() => return Some((Bytes::from_static(b": keep-alive\n\n"), s)),
                () = s.validity.ended() => return None,
                () = s.shutdown.cancelled() => return None,
            }
        }
    })
}

/// One event of the stream as a client reads it (`event`, `data`), for the OpenAPI document:
/// under OpenAPI 3.1 the schema of a `text/event-stream` answer describes each event.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SseEvent {
    /// The event's name.
    pub event: SseEventName,
    /// Its payload: one line of JSON (`stats`, `status`, `batch_persisted` or alert frame).
    pub data: String,
}

/// The names of the stream's events.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SseEventName {
    /// A `stats` payload (sent without a name, so it is a `message` event).
    Message,
    /// Redis became unavailable, or came back.
    Status,
    /// A committed batch (`?topics=batches`).
    Batch,
    /// An alert transition (`?topics=alerts`).
    Alert,
}

fn named_event(name: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// The next message of an optional receiver; a lagging receiver skips ahead (SSE clients
/// re-read `/alerts` when they reconnect), a closed one never yields again.
async fn recv<T: Clone>(rx: &mut Option<broadcast::Receiver<T>>) -> Result<T, ()> {
    let Some(receiver) = rx else {
        return std::future::pending().await;
    };
    match receiver.recv().await {
        Ok(value) => Ok(value),
        Err(broadcast::error::RecvError::Lagged(_)) => Err(()),
        Err(broadcast::error::RecvError::Closed) => {
            *rx = None;
            Err(())
        }
    }
}

fn data_event(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}
