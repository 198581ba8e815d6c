//! The message domain: validated field types, request parsing, and the envelope that travels
//! through `pending_messages`.
//!
//! Parse, don't validate: a [`NewMessage`] can only be built from input that passed every rule,
//! and an [`Envelope`] read back from Redis goes through the same types, so a worker never
//! inserts a row the API would have refused.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Most characters (Unicode scalar values) a message's content may hold.
pub const CONTENT_MAX_CHARS: usize = 2_000;

/// A positive user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct UserId(i64);

/// A positive channel id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct ChannelId(i64);

macro_rules! positive_id {
    ($ty:ident) => {
        impl $ty {
            /// The id as stored in PostgreSQL.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $ty {
            type Error = FieldError;

            fn try_from(value: i64) -> Result<Self, Self::Error> {
                if value > 0 {
                    Ok(Self(value))
                } else {
                    Err(FieldError::new(format!(
                        "must be an integer between 1 and {}, got {value}",
                        i64::MAX
                    )))
                }
            }
        }

        impl From<$ty> for i64 {
            fn from(id: $ty) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

positive_id!(UserId);
positive_id!(ChannelId);

/// Message text: 1 to [`CONTENT_MAX_CHARS`] Unicode scalar values, not only whitespace, and no
/// control characters other than tab, line feed and carriage return (PostgreSQL cannot store
/// NUL, and the others are never part of a chat message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Content(String);

impl Content {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Content {
    type Error = FieldError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let chars = value.chars().count();
        if chars == 0 {
            return Err(FieldError::new("must not be empty".into()));
        }
        if chars > CONTENT_MAX_CHARS {
            return Err(FieldError::new(format!(
                "must be at most {CONTENT_MAX_CHARS} characters, got {chars}"
            )));
        }
        if let Some((at, c)) = value
            .chars()
            .enumerate()
            .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(FieldError::new(format!(
                "must not contain control characters, found U+{:04X} at character {at}",
                u32::from(c)
            )));
        }
        if value.chars().all(char::is_whitespace) {
            return Err(FieldError::new("must not be only whitespace".into()));
        }
        Ok(Self(value))
    }
}

impl From<Content> for String {
    fn from(content: Content) -> String {
        content.0
    }
}

/// Why one field was refused. Its `Display` is the human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(String);

impl FieldError {
    fn new(reason: String) -> Self {
        Self(reason)
    }
}

/// A request body that is not an acceptable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not JSON at all (syntax error, truncated, invalid UTF-8, nested too deeply).
    #[error("request body is not valid JSON: {0}")]
    Malformed(String),
    /// JSON, but not a message: reasons keyed by field name (`"body"` for the whole body).
    #[error("message is invalid: {}", describe(.0))]
    Invalid(BTreeMap<String, String>),
}

fn describe(fields: &BTreeMap<String, String>) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A message a client asked to send, fully validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Author.
    pub user_id: UserId,
    /// Destination channel.
    pub channel_id: ChannelId,
    /// Text.
    pub content: Content,
}

/// A message as a client sends it: the body of `POST /messages`, and each element of
/// `POST /messages/batch`. For writing such bodies (the bench, the tests, Rust clients) and for
/// the OpenAPI document; the ingest API reads bodies with [`NewMessage::from_json`], which
/// applies the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageRequest {
    /// Author: 1 ..= 9223372036854775807.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub user_id: i64,
    /// Destination channel: 1 ..= 9223372036854775807.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub channel_id: i64,
    /// 1 to 2000 Unicode scalar values, not only whitespace, no control characters but tab,
    /// LF and CR.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 2000, pattern = r"\S")
    )]
    pub content: String,
}

impl MessageRequest {
    /// A message from `user_id` to `channel_id`.
    pub fn new(user_id: i64, channel_id: i64, content: impl Into<String>) -> Self {
        Self {
            user_id,
            channel_id,
            content: content.into(),
        }
    }
}

/// The request body as JSON sees it, before any rule is applied. Unknown fields are ignored so
/// older and newer clients can send extras; a field given twice is an error.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with user_id, channel_id and content")]
struct RawMessage {
    #[serde(default, deserialize_with = "present")]
    user_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    channel_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    content: Option<Value>,
}

/// Keeps an explicit `null` apart from a missing field: present fields are always `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl NewMessage {
    /// Parses a JSON request body. Every field problem is reported, not just the first.
    pub fn from_json(body: &[u8]) -> Result<Self, MessageError> {
        let raw: RawMessage = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                MessageError::Invalid(BTreeMap::from([("body".to_owned(), e.to_string())]))
            } else {
                MessageError::Malformed(e.to_string())
            }
        })?;
        Self::from_raw(raw)
    }

    /// Parses a JSON array of 1 to `max` messages, all or nothing: every problem of every
    /// element is reported, keyed `<index>.<field>` (`<index>.body` for an element that is not
    /// an object).
    pub fn batch_from_json(body: &[u8], max: usize) -> Result<Vec<Self>, MessageError> {
        let items: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(body).map_err(|e| {
                if e.is_data() {
                    invalid_body(format!("must be a JSON array of messages ({e})"))
                } else {
                    MessageError::Malformed(e.to_string())
                }
            })?;
        if items.is_empty() {
            return Err(invalid_body("must hold at least one message".into()));
        }
        if items.len() > max {
            return Err(invalid_body(format!(
                "must hold at most {max} messages, got {}",
                items.len()
            )));
        }
        let mut messages = Vec::with_capacity(items.len());
        let mut errors = BTreeMap::new();
        for (index, item) in items.iter().enumerate() {
            match Self::from_json(item.get().as_bytes()) {
                Ok(message) => messages.push(message),
                Err(MessageError::Invalid(fields)) => {
                    for (field, reason) in fields {
                        errors.insert(format!("{index}.{field}"), reason);
                    }
                }
                Err(MessageError::Malformed(reason)) => {
                    errors.insert(format!("{index}.body"), reason);
                }
            }
        }
        if errors.is_empty() {
            Ok(messages)
        } else {
            Err(MessageError::Invalid(errors))
        }
    }

    fn from_raw(raw: RawMessage) -> Result<Self, MessageError> {
        let mut errors = BTreeMap::new();
        let user_id = field(&mut errors, "user_id", raw.user_id, integer_field)
            .and_then(|v| keep(&mut errors, "user_id", UserId::try_from(v)));
        let channel_id = field(&mut errors, "channel_id", raw.channel_id, integer_field)
            .and_then(|v| keep(&mut errors, "channel_id", ChannelId::try_from(v)));
        let content = field(&mut errors, "content", raw.content, string_field)
            .and_then(|v| keep(&mut errors, "content", Content::try_from(v)));
        match (user_id, channel_id, content) {
            (Some(user_id), Some(channel_id), Some(content)) if errors.is_empty() => Ok(Self {
                user_id,
                channel_id,
                content,
            }),
            _ => Err(MessageError::Invalid(errors)),
        }
    }
}

fn invalid_body(reason: String) -> MessageError {
    MessageError::Invalid(BTreeMap::from([("body".to_owned(), reason)]))
}

fn field<T>(
    errors: &mut BTreeMap<String, String>,
    name: &str,
    value: Option<Value>,
    convert: fn(Value) -> Result<T, FieldError>,
) -> Option<T> {
    match value {
        None => {
            errors.insert(name.to_owned(), "is required".to_owned());
            None
        }
        Some(Value::Null) => {
            errors.insert(name.to_owned(), "must not be null".to_owned());
            None
        }
        Some(v) => keep(errors, name, convert(v)),
    }
}

fn keep<T>(
    errors: &mut BTreeMap<String, String>,
    name: &str,
    result: Result<T, FieldError>,
) -> Option<T> {
    result
        .map_err(|e| errors.insert(name.to_owned(), e.to_string()))
        .ok()
}

fn integer_field(value: Value) -> Result<i64, FieldError> {
    let range = || format!("must be an integer between 1 and {}", i64::MAX);
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            if n.is_u64() {
                FieldError::new(format!("{}, got {n}", range()))
            } else {
                FieldError::new(format!("{}, got the non-integer {n}", range()))
            }
        }),
        other => Err(FieldError::new(format!(
            "{}, got {}",
            range(),
            json_type(&other)
        ))),
    }
}

fn string_field(value: Value) -> Result<String, FieldError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(FieldError::new(format!(
            "must be a string, got {}",
            json_type(&other)
        ))),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What the ingest API pushes onto `pending_messages` and a worker inserts as one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Server-assigned UUIDv7: unique, and ordered by creation time.
    pub id: Uuid,
    /// Author.
    pub user_id: UserId,
    /// Destination channel.
    pub channel_id: ChannelId,
    /// Text.
    pub content: Content,
    /// When the ingest API accepted the message (microsecond precision, like PostgreSQL).
    pub created_at: DateTime<Utc>,
    /// Which credential sent it: an API key's public prefix (`slk_…`) or a token's
    /// `jwt:<sub>`, never the credential; absent where callers are not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Whether its sender waits for the commit (`Prefer: wait`): a worker inserts the batch
    /// holding it without waiting for the batch to fill. Serialized last, and only when true,
    /// so that [`Envelope::json_is_awaited`] reads it from an entry's last bytes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaited: bool,
}

/// How an awaited envelope's JSON ends ([`Envelope::awaited`] is its last field).
const AWAITED_END: &[u8] = br#","awaited":true}"#;

impl Envelope {
    /// A validated message with its id and `created_at` (messages of one batch share it; their
    /// ids still increase in order). The ingest API stamps both from the fleet's clock
    /// (`sluice_core::clock::envelope`).
    pub fn stamped(message: NewMessage, id: Uuid, created_at: DateTime<Utc>) -> Self {
        Self {
            id,
            user_id: message.user_id,
            channel_id: message.channel_id,
            content: message.content,
            created_at,
            key_id: None,
            awaited: false,
        }
    }

    /// The envelope, its sender waiting for the commit or not.
    pub fn awaited(mut self, awaited: bool) -> Self {
        self.awaited = awaited;
        self
    }

    /// Whether `json`, an entry of `pending_messages`, is an envelope whose sender waits for
    /// the commit, read from its last bytes without parsing it. A string field cannot end the
    /// JSON this way: its quotes would be escaped, and other fields follow it.
    pub fn json_is_awaited(json: &[u8]) -> bool {
        json.ends_with(AWAITED_END)
    }

    /// The envelope, recording that the credential `key_id` sent it.
    pub fn sent_by(mut self, key_id: Option<String>) -> Self {
        self.key_id = key_id;
        self
    }

    /// The JSON stored in Redis.
    pub fn to_json(&self) -> Vec<u8> {
        // An Envelope holds only strings, integers, a UUID and a timestamp: serialization
        // cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Appends the JSON stored in Redis to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // As in `to_json`: writing into a Vec cannot fail.
        let _ = serde_json::to_writer(out, self);
    }

    /// Parses an envelope read from Redis.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<NewMessage, MessageError> {
        NewMessage::from_json(v.to_string().as_bytes())
    }

    fn invalid_fields(v: Value) -> BTreeMap<String, String> {
        match parse(v) {
            Err(MessageError::Invalid(f)) => f,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_valid_message() {
        let m = parse(json!({"user_id": 1, "channel_id": 9, "content": "hi"})).expect("valid");
        assert_eq!(m.user_id.get(), 1);
        assert_eq!(m.channel_id.get(), 9);
        assert_eq!(m.content.as_str(), "hi");
    }

    #[test]
    fn reports_every_bad_field() {
        let f = invalid_fields(json!({"user_id": 0, "content": ""}));
        assert!(f["user_id"].contains("between 1 and"), "{f:?}");
        assert_eq!(f["channel_id"], "is required");
        assert_eq!(f["content"], "must not be empty");
    }

    #[test]
    fn content_length_counts_unicode_scalars() {
        let emoji = "😀".repeat(CONTENT_MAX_CHARS);
        assert!(parse(json!({"user_id": 1, "channel_id": 1, "content": emoji})).is_ok());
        let too_long = "é".repeat(CONTENT_MAX_CHARS + 1);
        let f = invalid_fields(json!({"user_id": 1, "channel_id": 1, "content": too_long}));
        assert!(f["content"].contains("got 2001"), "{f:?}");
    }

    #[test]
    fn rejects_whitespace_only_and_control_characters() {
        let f = invalid_fields(json!({"user_id": 1, "channel_id": 1, "content": " \t\n "}));
        assert_eq!(f["content"], "must not be only whitespace");
        let f = invalid_fields(json!({"user_id": 1, "channel_id": 1, "content": "a\u{0}b"}));
        assert!(f["content"].contains("U+0000"), "{f:?}");
        assert!(parse(json!({"user_id": 1, "channel_id": 1, "content": "a\tb\r\nc"})).is_ok());
    }

    #[test]
    fn ids_must_be_positive_i64_integers() {
        for bad in [
            json!(-1),
            json!(1.5),
            json!(1e3),
            json!("7"),
            json!(true),
            json!([1]),
        ] {
            let f = invalid_fields(json!({"user_id": bad, "channel_id": 1, "content": "x"}));
            assert!(f.contains_key("user_id"), "{bad}: {f:?}");
        }
        let body = br#"{"user_id": 9223372036854775808, "channel_id": 1, "content": "x"}"#;
        assert!(matches!(
            NewMessage::from_json(body),
            Err(MessageError::Invalid(_))
        ));
        let body = br#"{"user_id": 9223372036854775807, "channel_id": 1, "content": "x"}"#;
        assert!(NewMessage::from_json(body).is_ok());
        let f = invalid_fields(json!({"user_id": null, "channel_id": 1, "content": "x"}));
        assert_eq!(f["user_id"], "must not be null");
    }

    #[test]
    fn malformed_json_differs_from_wrong_shape() {
        assert!(matches!(
            NewMessage::from_json(b"{\"user_id\": 1,"),
            Err(MessageError::Malformed(_))
        ));
        assert!(matches!(
            NewMessage::from_json(b"\xff\xfe"),
            Err(MessageError::Malformed(_))
        ));
        assert!(matches!(
            NewMessage::from_json(b"[1,2]"),
            Err(MessageError::Invalid(_))
        ));
        assert!(matches!(
            NewMessage::from_json(b"\"hi\""),
            Err(MessageError::Invalid(_))
        ));
        let dup = br#"{"user_id": 1, "user_id": 2, "channel_id": 1, "content": "x"}"#;
        match NewMessage::from_json(dup) {
            Err(MessageError::Invalid(f)) => assert!(f["body"].contains("duplicate"), "{f:?}"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn batches_are_all_or_nothing_and_name_each_problem() {
        let ok = br#"[{"user_id":1,"channel_id":1,"content":"a"},{"user_id":2,"channel_id":3,"content":"b"}]"#;
        let batch = NewMessage::batch_from_json(ok, 10).expect("valid");
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].channel_id.get(), 3);

        let bad = br#"[{"user_id":1,"channel_id":1,"content":"a"},{"user_id":0,"content":""},7,
            {"user_id":1,"user_id":1,"channel_id":1,"content":"x"}]"#;
        match NewMessage::batch_from_json(bad, 10) {
            Err(MessageError::Invalid(f)) => {
                assert_eq!(
                    f.keys().collect::<Vec<_>>(),
                    ["1.channel_id", "1.content", "1.user_id", "2.body", "3.body"]
                );
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let too_many = format!(
            "[{}]",
            [r#"{"user_id":1,"channel_id":1,"content":"a"}"#; 3].join(",")
        );
        assert!(matches!(
            NewMessage::batch_from_json(too_many.as_bytes(), 2),
            Err(MessageError::Invalid(_))
        ));
        assert!(matches!(
            NewMessage::batch_from_json(b"[]", 2),
            Err(MessageError::Invalid(_))
        ));
        assert!(matches!(
            NewMessage::batch_from_json(b"{}", 2),
            Err(MessageError::Invalid(_))
        ));
        assert!(matches!(
            NewMessage::batch_from_json(b"[{", 2),
            Err(MessageError::Malformed(_))
        ));
    }

    #[test]
    fn envelope_round_trips_through_json() {
        let m = parse(json!({"user_id": 3, "channel_id": 4, "content": "héllo"})).expect("valid");
        let created_at = "2026-12-05T12:00:00.123456Z".parse().expect("a time");
        let e = Envelope::stamped(m, Uuid::now_v7(), created_at);
        let back = Envelope::from_json(&e.to_json()).expect("parses");
        assert_eq!(back, e);
        assert_eq!(e.id.get_version_num(), 7);
    }

    #[test]
    fn an_awaited_envelope_says_so_in_its_last_bytes_and_no_content_can_fake_it() {
        let created_at = "2026-12-05T12:00:00.123456Z".parse().expect("a time");
        let stamp = |content: &str| {
            let m = parse(json!({"user_id": 3, "channel_id": 4, "content": content}));
            Envelope::stamped(m.expect("valid"), Uuid::now_v7(), created_at)
                .sent_by(Some("slk_Ab3dEf9h".into()))
        };
        let plain = stamp("hello");
        assert!(!Envelope::json_is_awaited(&plain.to_json()));
        assert!(
            !String::from_utf8(plain.to_json())
                .expect("utf-8")
                .contains("awaited")
        );
        let awaited = plain.clone().awaited(true);
        let json = awaited.to_json();
        assert!(
            Envelope::json_is_awaited(&json),
            "{}",
            String::from_utf8_lossy(&json)
        );
        assert_eq!(Envelope::from_json(&json).expect("parses"), awaited);
        let forged = stamp(r#"x","awaited":true}"#);
        assert!(!Envelope::json_is_awaited(&forged.to_json()));
        let mut written = Vec::new();
        awaited.write_json(&mut written);
        assert_eq!(written, json);
    }

    #[test]
    fn envelope_parsing_applies_the_same_rules() {
        let bad = br#"{"id":"0190b3c4-0000-7000-8000-000000000000","user_id":-1,"channel_id":1,
            "content":"x","created_at":"2026-01-01T00:00:00Z"}"#;
        assert!(Envelope::from_json(bad).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic_and_accepted_input_is_valid(
                body in proptest::collection::vec(any::<u8>(), 0..512)
            ) {
                if let Ok(m) = NewMessage::from_json(&body) {
                    prop_assert!(m.user_id.get() > 0);
                    prop_assert!(m.channel_id.get() > 0);
                    let n = m.content.as_str().chars().count();
                    prop_assert!((1..=CONTENT_MAX_CHARS).contains(&n));
                }
            }

            #[test]
            fn arbitrary_field_values_are_judged_like_the_rules_say(
                user in any::<i64>(),
                channel in any::<i64>(),
                content in "\\PC{0,40}|[\\x00-\\x1f ]{0,5}",
            ) {
                let body = json!({"user_id": user, "channel_id": channel, "content": content});
                let expected_ok = user > 0
                    && channel > 0
                    && !content.is_empty()
                    && !content.chars().all(char::is_whitespace)
                    && !content.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'));
                prop_assert_eq!(parse(body).is_ok(), expected_ok);
            }
        }
    }
}
