//! `proto-docs/asyncapi.yaml` held against the code: every message the server sends, built by
//! the functions that build it, has exactly the fields the document declares (its required
//! ones included, none it does not list), and every client message the document describes is
//! accepted, with nothing more. The document is hand-written prose for people; this is what
//! keeps it from drifting.

use serde_json::{Map, Value, json};
use sluice_proto::api::{Alert, Rule};
use sluice_proto::events::BatchEvent;
use sluice_proto::history::{History, Window};
use sluice_proto::stats::{Latency, Stats};

use crate::protocol::{self, Topic};
use crate::snapshot::RedisState;

/// `asyncapi.yaml` as JSON.
fn document() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../proto-docs/asyncapi.yaml"
    );
    let text = std::fs::read_to_string(path).expect("proto-docs/asyncapi.yaml");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
    json_of(&docs[0])
}

fn json_of(yaml: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match yaml {
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), json_of(v)))
                .collect(),
        ),
        Yaml::Array(items) => Value::Array(items.iter().map(json_of).collect()),
        Yaml::String(s) | Yaml::Real(s) => s.parse().unwrap_or_else(|_| json!(s)),
        Yaml::Integer(n) => json!(n),
        Yaml::Boolean(b) => json!(b),
        _ => Value::Null,
    }
}

/// The payload schema of message `name`.
fn payload(doc: &Value, name: &str) -> Map<String, Value> {
    doc["components"]["messages"][name]["payload"]
        .as_object()
        .unwrap_or_else(|| panic!("asyncapi.yaml has no message {name}"))
        .clone()
}

/// Checks `message` (a JSON text) against the payload of `name`.
fn conforms(doc: &Value, name: &str, message: &str) {
    let message: Value = serde_json::from_str(message).expect("JSON");
    let fields = message.as_object().expect("an object");
    let schema = payload(doc, name);
    let properties = schema["properties"].as_object().expect("properties");
    assert_eq!(
        Some(&properties["type"]["const"]),
        fields.get("type"),
        "{name}: its type"
    );
    for required in schema["required"].as_array().into_iter().flatten() {
        let required = required.as_str().unwrap_or_default();
        assert!(
            fields.contains_key(required),
            "{name}: {required} missing from {message}"
        );
    }
    for field in fields.keys() {
        assert!(
            properties.contains_key(field),
            "{name}: {field} is sent but asyncapi.yaml does not declare it"
        );
    }
}

fn stats() -> Stats {
    let mut stats = Stats::at(chrono::Utc::now(), 10, 2, 3, 1.5);
    stats.commit_latency_ms = Latency {
        p50: Some(1.0),
        p95: Some(2.0),
        p99: Some(3.0),
    };
    stats
}

fn alert() -> Alert {
    Alert {
        kind: "alert".into(),
        rule: Rule::QueueDepthHigh,
        severity: "high".into(),
        state: "resolved".into(),
        value: 1.0,
        threshold: 2.0,
        started_at: "2026-12-05T12:00:00.000Z".into(),
        resolved_at: Some("2026-12-05T12:01:00.000Z".into()),
        summary: "…".into(),
    }
}

fn batch() -> BatchEvent {
    BatchEvent {
        batch_id: uuid::Uuid::now_v7(),
        worker_id: "w".into(),
        size: 2,
        inserted: 2,
        taken_at: Some(chrono::Utc::now()),
        committed_at: chrono::Utc::now(),
        message_ids: vec![uuid::Uuid::now_v7()],
        dead_letter_ids: vec![uuid::Uuid::now_v7()],
    }
}

#[test]
fn every_server_message_has_the_fields_asyncapi_declares() {
    let doc = document();
    let error = protocol::ProtocolError::new("no_snapshot", "none yet".into());
    let history = History::build(Window::Minute, 100, &[], &[]);
    for (name, message) in [
        (
            "connected",
            protocol::connected("c", 500, &[Topic::Stats], true, 15_000),
        ),
        ("stats", serde_json::to_string(&stats()).expect("json")),
        ("alert", serde_json::to_string(&alert()).expect("json")),
        ("history", crate::history::message(&history)),
        (
            "batchPersisted",
            crate::batches::frame(&batch(), true).to_string(),
        ),
        ("lagged", protocol::lagged(Topic::Batches, 3)),
        (
            "status",
            crate::pace::status_message(RedisState::Down).to_string(),
        ),
        ("pong", protocol::pong(Some(json!(7)))),
        ("error", protocol::error(&error)),
    ] {
        conforms(&doc, name, &message);
    }
}

/// A value for each property of a client message's schema, as a client would send.
fn sample(schema: &Value) -> Value {
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match schema["type"].as_str() {
        Some("integer") => schema.get("minimum").cloned().unwrap_or(json!(1)),
        Some("boolean") => json!(true),
        Some("array") => json!(["stats"]),
        _ => json!(1),
    }
}

#[test]
fn every_client_message_asyncapi_describes_is_accepted_and_nothing_more() {
    let doc = document();
    for name in [
        "ping",
        "getSnapshot",
        "getHistory",
        "subscribe",
        "unsubscribe",
        "setInterval",
    ] {
        let schema = payload(&doc, name);
        let message: Map<String, Value> = schema["properties"]
            .as_object()
            .expect("properties")
            .iter()
            .map(|(field, schema)| (field.clone(), sample(schema)))
            .collect();
        let text = Value::Object(message.clone()).to_string();
        assert!(protocol::parse(&text).is_ok(), "{name}: {text} refused");
        assert_eq!(schema["additionalProperties"], json!(false), "{name}");
        let mut more = message;
        more.insert("undeclared".into(), json!(1));
        let text = Value::Object(more).to_string();
        assert!(protocol::parse(&text).is_err(), "{name}: {text} accepted");
    }
}
