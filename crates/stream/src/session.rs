//! One WebSocket session of protocol v1 (see `proto-docs/websocket.md`).
//!
//! The loop selects over the next batch event or alert, Redis state changes, the client's
//! frames, the heartbeat tick, the token's expiry and shutdown, and ends with one close frame
//! carrying the reason. `stats` readings do not pass through it: the thread's delivery task
//! ([`crate::fanout`]) hands them to the connection directly. A send that cannot complete within [`SEND_TIMEOUT`] (a
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
use sluice_core::settings::limits;
use sluice_proto::history::Window;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::auth::{TOKEN_EXPIRED_CLOSE_CODE, Validity};
use crate::fanout::Member;
use crate::frames::Report;
use crate::history::HistoryCache;
use crate::hub::{Hub, SessionGuard};
use crate::pace::{Pacer, RedisNotice, status_message};
use crate::protocol::{self, ClientMessage, ProtocolError, Topic};
use crate::snapshot::RedisState;
use sluice_core::metric;

/// Longest wait for one frame to be accepted for sending.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-session settings, fixed at the upgrade.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Period of the stats stream for this client at the upgrade (`set_interval` changes it
    /// through the session's pacer).
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
    /// How long the client's credential stays valid, when callers are checked.
    pub validity: Validity,
    /// Whether the client may ask for message ids: not with a credential bound to channels.
    pub ids_allowed: bool,
    /// Where `get_history` is answered from.
    pub history: Arc<HistoryCache>,
}

/// The client's frame budget: `rate` per second, bursts of `rate` (a token bucket).
type RateLimit = governor::DefaultDirectRateLimiter;

fn rate_limit(rate: u32) -> RateLimit {
    let rate = std::num::NonZeroU32::new(rate).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::direct(governor::Quota::per_second(rate))
}

/// Why a session ended: the close frame to send, if any, and the `reason` label it is counted
/// under in `sluice_ws_closed_total`.
struct End {
    label: &'static str,
    reason: Option<CloseReason>,
}

impl End {
    /// The server closes with `code` and `description`.
    fn close(label: &'static str, code: CloseCode, description: &str) -> Self {
        Self {
            label,
            reason: Some(CloseReason {
                code,
                description: Some(description.into()),
            }),
        }
    }

    /// The connection is gone or unwritable: no close frame can be delivered.
    fn gone(label: &'static str) -> Self {
        Self {
            label,
            reason: None,
        }
    }
}

/// What one event handler decided: carry on, or end the session.
type Step = Result<(), End>;

/// What one session subscribes to and how (`stats` is on its [`Member`] entry).
struct Subscriptions {
    batches: Option<broadcast::Receiver<Arc<crate::snapshot::BatchFrames>>>,
    alerts: Option<broadcast::Receiver<ByteString>>,
    include_ids: bool,
    /// Whether the caller may have message ids: not when its credential is bound to channels
    /// (the ids of a batch span every channel).
    ids_allowed: bool,
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

/// Counts the session in `sluice_ws_connections` while it lives.
struct Connected;

impl Connected {
    fn new() -> Self {
        metrics::gauge!(metric::WS_CONNECTIONS).increment(1.0);
        Self
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!(metric::WS_CONNECTIONS).decrement(1.0);
    }
}

/// A session's state between events.
struct Live {
    hub: Arc<Hub>,
    guard: SessionGuard,
    session: Session,
    config: SessionConfig,
    subs: Subscriptions,
    connection_id: String,
    /// The `stats` subscription and pacing, shared with the thread's delivery task.
    member: Member,
    rate: RateLimit,
    redis_notice: RedisNotice,
    sent: metrics::Counter,
}

/// Runs a session to its end.
pub async fn run(
    hub: Arc<Hub>,
    guard: SessionGuard,
    session: Session,
    stream: actix_ws::MessageStream,
    report: Report,
    config: SessionConfig,
    shutdown: CancellationToken,
) {
    let _connected = Connected::new();
    // Fragmented messages are assembled up to the same bound as single frames (the frame
    // guard has already refused any whose declared lengths add up to more).
    let mut stream = stream
        .max_frame_size(config.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(config.max_frame_bytes);
    let mut redis_state = hub.redis_state();
    let mut validity = config.validity.clone();
    let mut live = Live::new(hub, guard, session, config);
    let end = match live.greet(&mut redis_state).await {
        Err(end) => end,
        Ok(()) => {
            let heartbeat = live.config.heartbeat;
            let mut heartbeat = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
            let mut last_heard = Instant::now();
            loop {
                let step = tokio::select! {
                    event = recv(&mut live.subs.batches) => live.on_batch(event).await,
                    event = recv(&mut live.subs.alerts) => live.on_alert(event).await,
                    changed = redis_state.changed() => match changed {
                        Ok(()) => live.on_redis_state(*redis_state.borrow_and_update()).await,
                        Err(_) => Ok(()),
                    },
                    frame = stream.next() => {
                        last_heard = Instant::now();
                        live.on_frame(frame, &report).await
                    }
                    _ = heartbeat.tick() => live.on_heartbeat(last_heard).await,
                    () = validity.ended() => Err(End::close(
                        "credentials_ended",
                        CloseCode::Other(TOKEN_EXPIRED_CLOSE_CODE),
                        "credentials expired or revoked",
                    )),
                    () = shutdown.cancelled() => Err(End::close(
                        "shutdown",
                        CloseCode::Away,
                        "gateway shutting down",
                    )),
                };
                if let Err(end) = step {
                    break end;
                }
            }
        }
    };
    metrics::counter!(metric::WS_CLOSED, "reason" => end.label).increment(1);
    let _ = live.session.close(end.reason).await;
}

impl Live {
    fn new(hub: Arc<Hub>, guard: SessionGuard, session: Session, config: SessionConfig) -> Self {
        let subs = Subscriptions {
            batches: config
                .topics
                .contains(&Topic::Batches)
                .then(|| hub.batches()),
            alerts: config.topics.contains(&Topic::Alerts).then(|| hub.alerts()),
            include_ids: config.include_ids,
            ids_allowed: config.ids_allowed,
        };
        // Off the delivery round until the greeting is out (`greet` turns it on).
        let member = crate::fanout::join(&hub, session.clone(), Pacer::new(config.interval));
        Self {
            rate: rate_limit(config.max_messages_per_sec),
            member,
            hub,
            guard,
            session,
            config,
            subs,
            connection_id: uuid::Uuid::now_v7().to_string(),
            redis_notice: RedisNotice::default(),
            sent: metrics::counter!(metric::WS_MESSAGES_SENT),
        }
    }

    async fn send(&mut self, text: ByteString) -> Step {
        match tokio::time::timeout(SEND_TIMEOUT, self.session.text(text)).await {
            Ok(Ok(())) => {
                self.sent.increment(1);
                Ok(())
            }
            Ok(Err(_)) => Err(End::gone("disconnected")),
            Err(_) => Err(End::gone("send_timeout")),
        }
    }

    /// `connected`, then `status` if Redis is down, then the current stats (at most one
    /// poller tick old; while Redis cannot be read there are none); then the client joins the
    /// delivery round of its thread if it asked for `stats`.
    async fn greet(&mut self, redis_state: &mut tokio::sync::watch::Receiver<RedisState>) -> Step {
        let stats = self.config.topics.contains(&Topic::Stats);
        let hello = protocol::connected(
            &self.connection_id,
            self.config.interval.as_millis() as u64,
            &self.config.topics,
            self.subs.include_ids,
            self.config.heartbeat.as_millis() as u64,
        );
        self.send(hello.into()).await?;
        // Clients hear about Redis going down, and about it coming back after that.
        let state = *redis_state.borrow_and_update();
        if state == RedisState::Down && self.redis_notice.tell(state) {
            self.send(status_message(state)).await?;
        }
        if let Some(snapshot) = self.hub.fresh().filter(|_| stats) {
            self.send(snapshot.json.clone()).await?;
            self.member.pacer().sent(&snapshot);
        }
        self.member.open(stats);
        Ok(())
    }

    async fn on_batch(
        &mut self,
        event: Result<Arc<crate::snapshot::BatchFrames>, RecvError>,
    ) -> Step {
        let frame = match event {
            Ok(frames) if self.subs.include_ids => frames.with_ids.clone(),
            Ok(frames) => frames.without_ids.clone(),
            Err(RecvError::Lagged(missed)) => lagged(Topic::Batches, missed),
            Err(RecvError::Closed) => {
                self.subs.batches = None;
                return Ok(());
            }
        };
        self.send(frame).await
    }

    async fn on_alert(&mut self, event: Result<ByteString, RecvError>) -> Step {
        let frame = match event {
            Ok(frame) => frame,
            Err(RecvError::Lagged(missed)) => lagged(Topic::Alerts, missed),
            Err(RecvError::Closed) => {
                self.subs.alerts = None;
                return Ok(());
            }
        };
        self.send(frame).await
    }

    async fn on_redis_state(&mut self, state: RedisState) -> Step {
        if self.redis_notice.tell(state) {
            self.send(status_message(state)).await?;
        }
        Ok(())
    }

    async fn on_frame(
        &mut self,
        frame: Option<Result<AggregatedMessage, WsProtocolError>>,
        report: &Report,
    ) -> Step {
        let message = match frame {
            Some(Ok(AggregatedMessage::Close(reason))) => {
                return Err(End {
                    label: "client",
                    reason,
                });
            }
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(refusal(report, &e)),
            None => return Err(End::gone("disconnected")),
        };
        // Every frame counts toward the rate, pings and pongs included.
        if self.rate.check().is_err() {
            tracing::debug!(connection_id = %self.connection_id, "closing a client over its message rate");
            return Err(End::close(
                "rate_limited",
                CloseCode::Policy,
                "message rate limit exceeded",
            ));
        }
        let reply = match message {
            AggregatedMessage::Ping(bytes) => {
                return match self.session.pong(&bytes).await {
                    Ok(()) => Ok(()),
                    Err(_) => Err(End::gone("disconnected")),
                };
            }
            AggregatedMessage::Pong(_) | AggregatedMessage::Close(_) => return Ok(()),
            AggregatedMessage::Binary(_) => Reply::Text(protocol::error(&ProtocolError::new(
                "unsupported_frame",
                "binary frames are not part of the protocol; send JSON text".into(),
            ))),
            AggregatedMessage::Text(text) => handle(
                &self.hub,
                &mut self.guard,
                &mut self.subs,
                &self.member,
                &text,
            ),
        };
        let frame: ByteString = match reply {
            Reply::None => return Ok(()),
            Reply::Text(text) => text.into(),
            Reply::History(window) => match self.config.history.get(window).await {
                Some(json) => json,
                None => protocol::error(&ProtocolError::new(
                    "history_unavailable",
                    "the history cannot be read now (is Redis up?)".into(),
                ))
                .into(),
            },
        };
        self.send(frame).await
    }

    async fn on_heartbeat(&mut self, last_heard: Instant) -> Step {
        if last_heard.elapsed() > self.config.client_timeout {
            tracing::debug!(connection_id = %self.connection_id, "closing an unresponsive client");
            return Err(End::close(
                "heartbeat_timeout",
                CloseCode::Policy,
                "heartbeat timeout",
            ));
        }
        match self.session.ping(b"").await {
            Ok(()) => Ok(()),
            Err(_) => Err(End::gone("disconnected")),
        }
    }
}

/// The `lagged` notice for `topic`, counted in `sluice_ws_lagged_total`.
fn lagged(topic: Topic, missed: u64) -> ByteString {
    let label = match topic {
        Topic::Stats => "stats",
        Topic::Batches => "batches",
        Topic::Alerts => "alerts",
    };
    metrics::counter!(metric::WS_LAGGED, "topic" => label).increment(1);
    protocol::lagged(topic, missed).into()
}

/// The close for a stream error: what the frame guard refused, or actix's own finding.
fn refusal(report: &Report, error: &WsProtocolError) -> End {
    if let Some(violation) = report.get() {
        let (code, reason) = violation.close();
        return End::close("protocol_violation", code, &reason);
    }
    match error {
        WsProtocolError::Overflow => End::close("too_large", CloseCode::Size, "message too large"),
        e => End::close("protocol_violation", CloseCode::Protocol, &e.to_string()),
    }
}

/// `subscribe`: adds `topics`; `include_ids` only for a caller that may have ids.
fn subscribe(
    hub: &Hub,
    subs: &mut Subscriptions,
    member: &Member,
    topics: &[String],
    include_ids: Option<bool>,
) -> Reply {
    let topics = match parse_topics(topics) {
        Ok(topics) => topics,
        Err(e) => return Reply::Text(protocol::error(&e)),
    };
    if include_ids == Some(true) && !subs.ids_allowed {
        return Reply::Text(protocol::error(&ProtocolError::new(
            "channel_not_allowed",
            "message ids span every channel; this credential is bound to channels".into(),
        )));
    }
    for topic in topics {
        match topic {
            Topic::Stats => member.set_stats(true),
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

/// Handles one client message; returns what to send back.
fn handle(
    hub: &Hub,
    guard: &mut SessionGuard,
    subs: &mut Subscriptions,
    member: &Member,
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
        ClientMessage::GetSnapshot {} => Reply::Text(match hub.fresh() {
            Some(snapshot) => snapshot.json.to_string(),
            None => protocol::error(&ProtocolError::new(
                "no_snapshot",
                "no current stats: Redis cannot be read now".into(),
            )),
        }),
        ClientMessage::Subscribe {
            topics,
            include_ids,
        } => subscribe(hub, subs, member, &topics, include_ids),
        ClientMessage::Unsubscribe { topics } => {
            let topics = match parse_topics(&topics) {
                Ok(topics) => topics,
                Err(e) => return Reply::Text(protocol::error(&e)),
            };
            for topic in topics {
                match topic {
                    Topic::Stats => member.set_stats(false),
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
            let interval = Duration::from_millis(interval_ms);
            member.pacer().set_interval(interval);
            guard.set_interval(interval);
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
