//! One WebSocket session: stats at the client's interval, server pings, clean closes.
//!
//! The loop selects over the next snapshot, the client's frames, the heartbeat tick and
//! shutdown, and ends with one close frame carrying the reason. A send that cannot complete
//! within [`SEND_TIMEOUT`] (a client that stopped reading) ends the session: nothing is queued
//! for it beyond actix-ws's small bounded channel.

use std::sync::Arc;
use std::time::Duration;

use actix_ws::{CloseCode, CloseReason, Message, ProtocolError, Session};
use futures_util::StreamExt;
use sluice_core::CancellationToken;
use tokio::time::Instant;

use crate::hub::{Hub, RedisState};

/// Longest wait for one frame to be accepted for sending.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-session settings.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Period of the stats stream for this client.
    pub interval: Duration,
    /// Period of server pings.
    pub heartbeat: Duration,
    /// Silence after which the client is presumed gone.
    pub client_timeout: Duration,
}

/// Runs a session to its end.
pub async fn run(
    hub: Arc<Hub>,
    mut session: Session,
    stream: actix_ws::MessageStream,
    config: SessionConfig,
    shutdown: CancellationToken,
) {
    let _guard = hub.join(config.interval);
    let mut stream = stream.max_frame_size(crate::MAX_FRAME_BYTES);
    let mut snapshots = hub.subscribe();
    let mut redis_state = hub.redis_state();
    let mut last_seq = 0;
    let mut last_sent: Option<Instant> = None;

    // The first stats message goes out right away if a reading exists.
    let first = snapshots.borrow_and_update().clone();
    let state = *redis_state.borrow_and_update();
    if state == RedisState::Down && send(&mut session, status_message(state)).await.is_err() {
        return;
    }
    if let Some(snapshot) = first {
        if send(&mut session, snapshot.json.clone()).await.is_err() {
            return;
        }
        last_seq = snapshot.seq;
        last_sent = Some(Instant::now());
    }

    let mut heartbeat =
        tokio::time::interval_at(Instant::now() + config.heartbeat, config.heartbeat);
    let mut last_heard = Instant::now();
    let reason = loop {
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break Some(CloseReason { code: CloseCode::Away, description: Some("gateway stopping".into()) });
                }
                let snapshot = snapshots.borrow_and_update().clone();
                let Some(snapshot) = snapshot else { continue };
                // Half a poller tick of slack, so a client at the poller's own pace gets every
                // reading despite scheduling jitter.
                let slack = hub.tick() / 2;
                let due = last_sent.is_none_or(|at| at.elapsed() + slack >= config.interval);
                if snapshot.seq != last_seq && due {
                    if send(&mut session, snapshot.json.clone()).await.is_err() {
                        break None;
                    }
                    last_seq = snapshot.seq;
                    last_sent = Some(Instant::now());
                }
            }
            changed = redis_state.changed() => {
                if changed.is_err() {
                    continue;
                }
                let state = *redis_state.borrow_and_update();
                if state != RedisState::Unknown && send(&mut session, status_message(state)).await.is_err() {
                    break None;
                }
            }
            frame = stream.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(Message::Close(reason))) => break reason,
                    Some(Ok(_)) => {}
                    Some(Err(ProtocolError::Overflow)) => {
                        break Some(CloseReason { code: CloseCode::Size, description: Some("frame too large".into()) });
                    }
                    Some(Err(e)) => {
                        break Some(CloseReason { code: CloseCode::Protocol, description: Some(e.to_string()) });
                    }
                    None => break None,
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > config.client_timeout {
                    tracing::debug!("closing an unresponsive client");
                    break Some(CloseReason { code: CloseCode::Policy, description: Some("heartbeat timeout".into()) });
                }
                if session.ping(b"").await.is_err() {
                    break None;
                }
            }
            () = shutdown.cancelled() => {
                break Some(CloseReason { code: CloseCode::Away, description: Some("gateway shutting down".into()) });
            }
        }
    };
    let _ = session.close(reason).await;
}

/// `{"type": "status", "redis": "up" | "down"}`.
fn status_message(state: RedisState) -> bytestring::ByteString {
    serde_json::json!({"type": "status", "redis": state})
        .to_string()
        .into()
}

async fn send(session: &mut Session, text: bytestring::ByteString) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
