//! One WebSocket session of protocol v1 (see `proto-docs/websocket.md`).
//!
//! The loop selects over the next stats snapshot, the next batch event, Redis state changes,
//! the client's frames, the heartbeat tick, the token's expiry and shutdown, and ends with one
//! close frame carrying the reason. A send that cannot complete within [`SEND_TIMEOUT`] (a
//! client that stopped reading) ends the session: nothing is queued for it beyond actix-ws's
//! small bounded channel and the bounded batch queue.

use std::sync::Arc;
use std::time::Duration;

use actix_ws::{
    AggregatedMessage, CloseCode, CloseReason, ProtocolError as WsProtocolError, Session,
};
use bytestring::ByteString;
use futures_util::StreamExt;
use sluice_core::CancellationToken;
use sluice_core::history::Window;
use sluice_core::settings::limits;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::auth::TOKEN_EXPIRED_CLOSE_CODE;
use crate::frames::Report;
use crate::history::HistoryCache;
use crate::hub::{Hub, RedisState, SessionGuard};
use crate::protocol::{self, ClientMessage, ProtocolError, Topic};

/// Longest wait for one frame to be accepted for sending.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-session settings, fixed at the upgrade.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Period of the stats stream for this client.
    pub interval: Duration,
    /// Period of server pings.
    pub heartbeat: Duration,
    /// Silence after which the client is presumed gone.
    pub client_timeout: Duration,
    /// Client frames (messages, pings and pongs) allowed per second.
    pub max_messages_per_sec: u32,
    /// Largest frame accepted from the client.
    pub max_frame_bytes: usize,
    /// Topics chosen at connect time.
    pub topics: Vec<Topic>,
    /// Whether `batch_persisted` carries message ids.
    pub include_ids: bool,
    /// How long the client's token stays valid, when authentication is on.
    pub token_ttl: Option<Duration>,
    /// Where `get_history` is answered from.
    pub history: Arc<HistoryCache>,
}

/// Token bucket: `rate` messages per second, bursts of `rate`.
struct RateLimit {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + (now - self.at).as_secs_f64() * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn close(code: CloseCode, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code,
        description: Some(description.into()),
    })
}

/// What one session subscribes to and how.
struct Subscriptions {
    stats: bool,
    batches: Option<broadcast::Receiver<Arc<crate::hub::BatchFrames>>>,
    alerts: Option<broadcast::Receiver<ByteString>>,
    include_ids: bool,
}

/// What a client message calls for.
enum Reply {
    /// Nothing.
    None,
    /// This text frame.
    Text(String),
    /// The `history` message of this window.
    History(Window),
}

/// Runs a session to its end.
pub async fn run(
    hub: Arc<Hub>,
    mut guard: SessionGuard,
    mut session: Session,
    stream: actix_ws::MessageStream,
    report: Report,
    mut config: SessionConfig,
    shutdown: CancellationToken,
) {
    // Fragmented messages are assembled up to the same bound as single frames (the frame
    // guard has already refused any whose declared lengths add up to more).
    let mut stream = stream
        .max_frame_size(config.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(config.max_frame_bytes);
    let mut snapshots = hub.subscribe();
    let mut redis_state = hub.redis_state();
    let mut subs = Subscriptions {
        stats: config.topics.contains(&Topic::Stats),
        batches: config
            .topics
            .contains(&Topic::Batches)
            .then(|| hub.batches()),
        alerts: config.topics.contains(&Topic::Alerts).then(|| hub.alerts()),
        include_ids: config.include_ids,
    };
    let connection_id = uuid::Uuid::now_v7().to_string();
    let mut last_seq = 0;
    let mut last_sent: Option<Instant> = None;
    let mut rate = RateLimit::new(config.max_messages_per_sec);
    let expires = config.token_ttl.map(|ttl| Instant::now() + ttl);

    let hello = protocol::connected(
        &connection_id,
        config.interval.as_millis() as u64,
        &config.topics,
        subs.include_ids,
        config.heartbeat.as_millis() as u64,
    );
    if send(&mut session, hello.into()).await.is_err() {
        return;
    }
    // Clients hear about Redis going down, and about it coming back after that.
    let mut told_down = *redis_state.borrow_and_update() == RedisState::Down;
    if told_down
        && send(&mut session, status_message(RedisState::Down))
            .await
            .is_err()
    {
        return;
    }
    // The first stats come from the current poller cycle (at most one tick old); while Redis
    // cannot be read there are none, and the client hears `status` instead.
    snapshots.borrow_and_update();
    if let Some(snapshot) = hub.fresh().filter(|_| subs.stats) {
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
            changed = snapshots.changed(), if subs.stats => {
                if changed.is_err() {
                    break close(CloseCode::Away, "gateway stopping");
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
            event = recv(&mut subs.batches) => {
                let frame = match event {
                    Ok(frames) => {
                        if subs.include_ids { frames.with_ids.clone() } else { frames.without_ids.clone() }
                    }
                    Err(RecvError::Lagged(missed)) => protocol::lagged(Topic::Batches, missed).into(),
                    Err(RecvError::Closed) => {
                        subs.batches = None;
                        continue;
                    }
                };
                if send(&mut session, frame).await.is_err() {
                    break None;
                }
            }
            event = recv(&mut subs.alerts) => {
                let frame = match event {
                    Ok(frame) => frame,
                    Err(RecvError::Lagged(missed)) => protocol::lagged(Topic::Alerts, missed).into(),
                    Err(RecvError::Closed) => {
                        subs.alerts = None;
                        continue;
                    }
                };
                if send(&mut session, frame).await.is_err() {
                    break None;
                }
            }
            changed = redis_state.changed() => {
                if changed.is_err() {
                    continue;
                }
                let state = *redis_state.borrow_and_update();
                let tell = match state {
                    RedisState::Down => !std::mem::replace(&mut told_down, true),
                    RedisState::Up => std::mem::replace(&mut told_down, false),
                    RedisState::Unknown => false,
                };
                if tell && send(&mut session, status_message(state)).await.is_err() {
                    break None;
                }
            }
            frame = stream.next() => {
                last_heard = Instant::now();
                let text = match frame {
                    Some(Ok(AggregatedMessage::Close(reason))) => break reason,
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => break refusal(&report, &e),
                    None => break None,
                };
                // Every frame counts toward the rate, pings and pongs included.
                if !rate.allow() {
                    tracing::debug!(%connection_id, "closing a client over its message rate");
                    break close(CloseCode::Policy, "message rate limit exceeded");
                }
                let reply = match text {
                    AggregatedMessage::Ping(bytes) => {
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                        continue;
                    }
                    AggregatedMessage::Pong(_) | AggregatedMessage::Close(_) => continue,
                    AggregatedMessage::Binary(_) => Reply::Text(protocol::error(&ProtocolError::new(
                        "unsupported_frame",
                        "binary frames are not part of the protocol; send JSON text".into(),
                    ))),
                    AggregatedMessage::Text(text) => {
                        handle(&hub, &mut guard, &mut config, &mut subs, &mut last_sent, &text)
                    }
                };
                let frame: ByteString = match reply {
                    Reply::None => continue,
                    Reply::Text(text) => text.into(),
                    Reply::History(window) => match config.history.get(window).await {
                        Some(json) => json,
                        None => protocol::error(&ProtocolError::new(
                            "history_unavailable",
                            "the history cannot be read now (is Redis up?)".into(),
                        ))
                        .into(),
                    },
                };
                if send(&mut session, frame).await.is_err() {
                    break None;
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > config.client_timeout {
                    tracing::debug!(%connection_id, "closing an unresponsive client");
                    break close(CloseCode::Policy, "heartbeat timeout");
                }
                if session.ping(b"").await.is_err() {
                    break None;
                }
            }
            () = sleep_until_opt(expires) => {
                break close(CloseCode::Other(TOKEN_EXPIRED_CLOSE_CODE), "token expired");
            }
            () = shutdown.cancelled() => break close(CloseCode::Away, "gateway shutting down"),
        }
    };
    let _ = session.close(reason).await;
}

/// The close for a stream error: what the frame guard refused, or actix's own finding.
fn refusal(report: &Report, error: &WsProtocolError) -> Option<CloseReason> {
    if let Some(violation) = report.get() {
        let (code, reason) = violation.close();
        return close(code, &reason);
    }
    match error {
        WsProtocolError::Overflow => close(CloseCode::Size, "message too large"),
        e => close(CloseCode::Protocol, &e.to_string()),
    }
}

/// Handles one client message; returns what to send back.
fn handle(
    hub: &Hub,
    guard: &mut SessionGuard,
    config: &mut SessionConfig,
    subs: &mut Subscriptions,
    last_sent: &mut Option<Instant>,
    text: &str,
) -> Reply {
    let message = match protocol::parse(text) {
        Ok(message) => message,
        Err(e) => return Reply::Text(protocol::error(&e)),
    };
    match message {
        ClientMessage::Ping { id } => Reply::Text(protocol::pong(id)),
        // Only a reading from the current tick: while Redis cannot be read, an old one would
        // pass for the present.
        ClientMessage::GetSnapshot => Reply::Text(match hub.fresh() {
            Some(snapshot) => snapshot.json.to_string(),
            None => protocol::error(&ProtocolError::new(
                "no_snapshot",
                "no current stats: Redis cannot be read now".into(),
            )),
        }),
        ClientMessage::Subscribe {
            topics,
            include_ids,
        } => {
            let topics = match parse_topics(&topics) {
                Ok(topics) => topics,
                Err(e) => return Reply::Text(protocol::error(&e)),
            };
            for topic in topics {
                match topic {
                    Topic::Stats if !subs.stats => {
                        subs.stats = true;
                        *last_sent = None;
                    }
                    Topic::Batches if subs.batches.is_none() => subs.batches = Some(hub.batches()),
                    Topic::Alerts if subs.alerts.is_none() => subs.alerts = Some(hub.alerts()),
                    _ => {}
                }
            }
            if let Some(include_ids) = include_ids {
                subs.include_ids = include_ids;
            }
            Reply::None
        }
        ClientMessage::Unsubscribe { topics } => {
            let topics = match parse_topics(&topics) {
                Ok(topics) => topics,
                Err(e) => return Reply::Text(protocol::error(&e)),
            };
            for topic in topics {
                match topic {
                    Topic::Stats => subs.stats = false,
                    Topic::Batches => subs.batches = None,
                    Topic::Alerts => subs.alerts = None,
                }
            }
            Reply::None
        }
        ClientMessage::GetHistory { window } => match Window::parse(&window) {
            Ok(window) => Reply::History(window),
            Err(message) => Reply::Text(protocol::error(&ProtocolError::new(
                "invalid_window",
                message,
            ))),
        },
        ClientMessage::SetInterval { interval_ms } => {
            let (min, max) = limits::INTERVAL_MS;
            if !(min..=max).contains(&interval_ms) {
                return Reply::Text(protocol::error(&ProtocolError::new(
                    "invalid_interval",
                    format!("interval_ms must be between {min} and {max}, got {interval_ms}"),
                )));
            }
            config.interval = Duration::from_millis(interval_ms);
            guard.set_interval(config.interval);
            Reply::None
        }
    }
}

fn parse_topics(names: &[String]) -> Result<Vec<Topic>, ProtocolError> {
    if names.is_empty() {
        return Err(ProtocolError::new(
            "invalid_message",
            "topics must not be empty".into(),
        ));
    }
    names.iter().map(|n| Topic::parse(n)).collect()
}

async fn recv<T: Clone>(rx: &mut Option<broadcast::Receiver<T>>) -> Result<T, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `{"type": "status", "redis": "up" | "down"}`.
fn status_message(state: RedisState) -> ByteString {
    serde_json::json!({"type": "status", "redis": state})
        .to_string()
        .into()
}

async fn send(session: &mut Session, text: ByteString) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
