//! Protocol v1 of `/ws/stats`: the messages a client may send and the ones the server sends.
//! `proto-docs/websocket.md` documents each with examples.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Version announced in `connected`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A stream a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    /// `stats` messages at the client's interval.
    Stats,
    /// `batch_persisted` messages, one per committed batch.
    Batches,
    /// `alert` messages, one per alert transition (firing, resolved).
    Alerts,
}

impl Topic {
    /// Parses a topic name.
    pub fn parse(name: &str) -> Result<Self, ProtocolError> {
        match name.trim() {
            "stats" => Ok(Self::Stats),
            "batches" => Ok(Self::Batches),
            "alerts" => Ok(Self::Alerts),
            other => Err(ProtocolError::new(
                "unknown_topic",
                format!(
                    "unknown topic {other:?}; topics are \"stats\", \"batches\" and \"alerts\""
                ),
            )),
        }
    }
}

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Answered with `pong`, echoing `id` if given.
    Ping {
        /// Anything the client wants echoed.
        #[serde(default)]
        id: Option<Value>,
    },
    /// Answered at once with a `stats` message from the latest reading. (Braces, not a unit
    /// variant: serde lets a unit variant through with fields it does not know.)
    GetSnapshot {},
    /// Adds topics; `include_ids` asks for message ids in `batch_persisted`.
    Subscribe {
        /// Topic names.
        topics: Vec<String>,
        /// Include `message_ids` in `batch_persisted` (default: keep the current choice).
        #[serde(default)]
        include_ids: Option<bool>,
    },
    /// Removes topics.
    Unsubscribe {
        /// Topic names.
        topics: Vec<String>,
    },
    /// Answered with a `history` message for the window.
    GetHistory {
        /// `1m`, `5m`, `1h` or `24h`.
        window: String,
    },
    /// Changes the stats period (100–60000 ms).
    SetInterval {
        /// New period in milliseconds.
        interval_ms: u64,
    },
}

/// Why a client message was refused; sent back as an `error` message, the session stays open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// Stable code.
    pub code: &'static str,
    /// Human-readable reason.
    pub message: String,
}

impl ProtocolError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: String) -> Self {
        Self { code, message }
    }
}

const TYPES: &str = "ping, get_snapshot, get_history, subscribe, unsubscribe, set_interval";

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientMessage, ProtocolError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::new("invalid_json", format!("message is not JSON: {e}")))?;
    let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return Err(ProtocolError::new(
            "invalid_message",
            format!("message must be a JSON object with a string \"type\" ({TYPES})"),
        ));
    };
    serde_json::from_value(value).map_err(|e| {
        if e.to_string().starts_with("unknown variant") {
            ProtocolError::new(
                "unknown_type",
                format!("unknown message type {kind:?}; expected one of {TYPES}"),
            )
        } else {
            ProtocolError::new("invalid_message", format!("invalid {kind:?} message: {e}"))
        }
    })
}

/// `{"type": "error", "code", "message"}`.
pub fn error(e: &ProtocolError) -> String {
    json!({"type": "error", "code": e.code, "message": e.message}).to_string()
}

/// `{"type": "pong"}`, with the ping's `id` when it had one.
pub fn pong(id: Option<Value>) -> String {
    match id {
        Some(id) => json!({"type": "pong", "id": id}).to_string(),
        None => json!({"type": "pong"}).to_string(),
    }
}

/// `{"type": "lagged", "topic", "missed"}`: a slow client skipped `missed` messages.
pub fn lagged(topic: Topic, missed: u64) -> String {
    json!({"type": "lagged", "topic": topic, "missed": missed}).to_string()
}

/// `{"type": "connected", ...}`: the first message of every session.
pub fn connected(
    connection_id: &str,
    interval_ms: u64,
    topics: &[Topic],
    include_ids: bool,
    heartbeat_ms: u64,
) -> String {
    json!({
        "type": "connected",
        "connection_id": connection_id,
        "protocol_version": PROTOCOL_VERSION,
        "interval_ms": interval_ms,
        "topics": topics,
        "include_ids": include_ids,
        "heartbeat_interval_ms": heartbeat_ms,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_message() {
        assert_eq!(
            parse(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping { id: None })
        );
        assert_eq!(
            parse(r#"{"type":"ping","id":7}"#),
            Ok(ClientMessage::Ping { id: Some(json!(7)) })
        );
        assert_eq!(
            parse(r#"{"type":"get_snapshot"}"#),
            Ok(ClientMessage::GetSnapshot {})
        );
        assert_eq!(
            parse(r#"{"type":"subscribe","topics":["batches"],"include_ids":true}"#),
            Ok(ClientMessage::Subscribe {
                topics: vec!["batches".into()],
                include_ids: Some(true)
            })
        );
        assert_eq!(
            parse(r#"{"type":"unsubscribe","topics":["stats"]}"#),
            Ok(ClientMessage::Unsubscribe {
                topics: vec!["stats".into()]
            })
        );
        assert_eq!(
            parse(r#"{"type":"get_history","window":"5m"}"#),
            Ok(ClientMessage::GetHistory {
                window: "5m".into()
            })
        );
        assert_eq!(Topic::parse("alerts"), Ok(Topic::Alerts));
        assert_eq!(
            parse(r#"{"type":"set_interval","interval_ms":1000}"#),
            Ok(ClientMessage::SetInterval { interval_ms: 1000 })
        );
    }

    #[test]
    fn refusals_have_stable_codes() {
        let code = |text: &str| parse(text).map(|_| ()).expect_err(text).code;
        assert_eq!(code("nope"), "invalid_json");
        assert_eq!(code("[1]"), "invalid_message");
        assert_eq!(code(r#"{"kind":"ping"}"#), "invalid_message");
        assert_eq!(code(r#"{"type":"dance"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"set_interval"}"#), "invalid_message");
        assert_eq!(
            code(r#"{"type":"set_interval","interval_ms":"fast"}"#),
            "invalid_message"
        );
        assert_eq!(
            code(r#"{"type":"subscribe","topics":"stats"}"#),
            "invalid_message"
        );
        assert_eq!(code(r#"{"type":"ping","extra":1}"#), "invalid_message");
        assert_eq!(
            Topic::parse("weather").expect_err("unknown").code,
            "unknown_topic"
        );
    }
}
