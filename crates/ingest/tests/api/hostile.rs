//! A table of hostile and edge-case requests: each gets its documented 4xx JSON error, or 202
//! when valid; never a 5xx.

use reqwest::Body;

use crate::helpers::spawn_app;

enum Payload {
    Json(String),
    Bytes(Vec<u8>),
    Chunked(Vec<u8>),
}

struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    payload: Payload,
    status: u16,
    code: Option<&'static str>,
}

fn json(
    name: &'static str,
    body: impl Into<String>,
    status: u16,
    code: Option<&'static str>,
) -> Case {
    Case {
        name,
        content_type: Some("application/json"),
        payload: Payload::Json(body.into()),
        status,
        code,
    }
}

fn message(content: &str) -> String {
    serde_json::json!({"user_id": 1, "channel_id": 1, "content": content}).to_string()
}

fn with_user(user: &str) -> String {
    format!(r#"{{"user_id": {user}, "channel_id": 1, "content": "x"}}"#)
}

fn with_channel(channel: &str) -> String {
    format!(r#"{{"user_id": 1, "channel_id": {channel}, "content": "x"}}"#)
}

fn with_content_raw(content: &str) -> String {
    format!(r#"{{"user_id": 1, "channel_id": 1, "content": {content}}}"#)
}

const OK: Option<&str> = None;
const BAD_JSON: Option<&str> = Some("malformed_json");
const INVALID: Option<&str> = Some("validation_failed");

fn cases() -> Vec<Case> {
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    vec![
        json("valid", message("hello"), 202, OK),
        json(
            "unknown fields are ignored",
            r#"{"user_id":1,"channel_id":1,"content":"x","extra":{"a":[1]}}"#,
            202,
            OK,
        ),
        json(
            "missing user_id",
            r#"{"channel_id":1,"content":"x"}"#,
            422,
            INVALID,
        ),
        json(
            "missing channel_id",
            r#"{"user_id":1,"content":"x"}"#,
            422,
            INVALID,
        ),
        json(
            "missing content",
            r#"{"user_id":1,"channel_id":1}"#,
            422,
            INVALID,
        ),
        json("empty object", "{}", 422, INVALID),
        json("null user_id", with_user("null"), 422, INVALID),
        json("null channel_id", with_channel("null"), 422, INVALID),
        json("null content", with_content_raw("null"), 422, INVALID),
        json("string user_id", with_user(r#""1""#), 422, INVALID),
        json("float user_id", with_user("1.5"), 422, INVALID),
        json("integral float user_id", with_user("1.0"), 422, INVALID),
        json("exponent user_id", with_user("1e2"), 422, INVALID),
        json("zero user_id", with_user("0"), 422, INVALID),
        json("negative user_id", with_user("-1"), 422, INVALID),
        json(
            "largest i64 user_id",
            with_user("9223372036854775807"),
            202,
            OK,
        ),
        json(
            "i64::MAX + 1 user_id",
            with_user("9223372036854775808"),
            422,
            INVALID,
        ),
        json(
            "u64::MAX + 1 user_id",
            with_user("18446744073709551616"),
            422,
            INVALID,
        ),
        json(
            "i64::MIN - 1 user_id",
            with_user("-9223372036854775809"),
            422,
            INVALID,
        ),
        json("huge exponent user_id", with_user("1e400"), 400, BAD_JSON),
        json("boolean user_id", with_user("true"), 422, INVALID),
        json("array user_id", with_user("[1]"), 422, INVALID),
        json("object user_id", with_user(r#"{"id":1}"#), 422, INVALID),
        json("zero channel_id", with_channel("0"), 422, INVALID),
        json("negative channel_id", with_channel("-5"), 422, INVALID),
        json("string channel_id", with_channel(r#""abc""#), 422, INVALID),
        json("float channel_id", with_channel("2.5"), 422, INVALID),
        json("number content", with_content_raw("123"), 422, INVALID),
        json("boolean content", with_content_raw("true"), 422, INVALID),
        json("array content", with_content_raw(r#"["x"]"#), 422, INVALID),
        json(
            "object content",
            with_content_raw(r#"{"text":"x"}"#),
            422,
            INVALID,
        ),
        json("empty content", message(""), 422, INVALID),
        json("spaces-only content", message("    "), 422, INVALID),
        json("whitespace-only content", message("\t\n \r"), 422, INVALID),
        json("2000 ASCII characters", message(&"a".repeat(2000)), 202, OK),
        json(
            "2001 ASCII characters",
            message(&"a".repeat(2001)),
            422,
            INVALID,
        ),
        json(
            "2000 emoji (8000 bytes)",
            message(&"😀".repeat(2000)),
            202,
            OK,
        ),
        json("2001 emoji", message(&"😀".repeat(2001)), 422, INVALID),
        json(
            "combining marks count as characters (2000)",
            message(&"e\u{301}".repeat(1000)),
            202,
            OK,
        ),
        json(
            "combining marks count as characters (2002)",
            message(&"e\u{301}".repeat(1001)),
            422,
            INVALID,
        ),
        json("right-to-left text", message("שלום עולם مرحبا"), 202, OK),
        json(
            "bidi override character",
            message("abc\u{202e}def"),
            202,
            OK,
        ),
        json(
            "zero-width joiner sequence",
            message("👩\u{200d}💻"),
            202,
            OK,
        ),
        json("NUL", message("a\u{0}b"), 422, INVALID),
        json("BEL", message("a\u{7}b"), 422, INVALID),
        json("ESC", message("\u{1b}[31mred"), 422, INVALID),
        json("DEL", message("a\u{7f}b"), 422, INVALID),
        json("C1 control", message("a\u{85}b"), 422, INVALID),
        json(
            "tab, newline, carriage return",
            message("a\tb\nc\r\nd"),
            202,
            OK,
        ),
        json(
            "escaped NUL",
            with_content_raw(r#""a\u0000b""#),
            422,
            INVALID,
        ),
        json(
            "lone surrogate escape",
            with_content_raw(r#""\ud800""#),
            400,
            BAD_JSON,
        ),
        Case {
            name: "invalid UTF-8 bytes",
            content_type: Some("application/json"),
            payload: Payload::Bytes(
                b"{\"user_id\":1,\"channel_id\":1,\"content\":\"\xff\xfe\"}".to_vec(),
            ),
            status: 400,
            code: BAD_JSON,
        },
        Case {
            name: "UTF-8 byte order mark",
            content_type: Some("application/json"),
            payload: Payload::Bytes([b"\xef\xbb\xbf".as_slice(), message("x").as_bytes()].concat()),
            status: 400,
            code: BAD_JSON,
        },
        json(
            "nested 200 deep in an unknown field (ignored)",
            format!(
                r#"{{"user_id":1,"channel_id":1,"content":"x","a":{}}}"#,
                nested(200)
            ),
            202,
            OK,
        ),
        json(
            "nested 30000 deep in an unknown field (ignored, no stack overflow)",
            format!(
                r#"{{"user_id":1,"channel_id":1,"content":"x","a":{}}}"#,
                nested(30_000)
            ),
            202,
            OK,
        ),
        json(
            "nested 200 deep as user_id",
            with_user(&nested(200)),
            400,
            BAD_JSON,
        ),
        json(
            "nested 20 deep as user_id",
            with_user(&nested(20)),
            422,
            INVALID,
        ),
        json(
            "duplicate keys",
            r#"{"user_id":1,"user_id":2,"channel_id":1,"content":"x"}"#,
            422,
            INVALID,
        ),
        json(
            "array of messages",
            format!("[{}]", message("x")),
            422,
            INVALID,
        ),
        json("number", "42", 422, INVALID),
        json("string", r#""hello""#, 422, INVALID),
        json("null", "null", 422, INVALID),
        json("boolean", "true", 422, INVALID),
        json("empty body", "", 400, BAD_JSON),
        json("whitespace body", "  \n ", 400, BAD_JSON),
        json("truncated", r#"{"user_id": 1, "channel_id""#, 400, BAD_JSON),
        json(
            "trailing garbage",
            format!("{} x", message("x")),
            400,
            BAD_JSON,
        ),
        json(
            "two objects",
            format!("{}{}", message("x"), message("y")),
            400,
            BAD_JSON,
        ),
        json(
            "single quotes",
            "{'user_id': 1, 'channel_id': 1, 'content': 'x'}",
            400,
            BAD_JSON,
        ),
        json(
            "comment",
            format!("/* hi */ {}", message("x")),
            400,
            BAD_JSON,
        ),
        json("NaN", with_user("NaN"), 400, BAD_JSON),
        json(
            "trailing comma",
            r#"{"user_id":1,"channel_id":1,"content":"x",}"#,
            400,
            BAD_JSON,
        ),
        Case {
            name: "10 MB body",
            content_type: Some("application/json"),
            payload: Payload::Json(message(&"a".repeat(10 << 20))),
            status: 413,
            code: Some("payload_too_large"),
        },
        Case {
            name: "no content type",
            content_type: None,
            payload: Payload::Json(message("x")),
            status: 415,
            code: Some("unsupported_media_type"),
        },
        Case {
            name: "text/plain",
            content_type: Some("text/plain"),
            payload: Payload::Json(message("x")),
            status: 415,
            code: Some("unsupported_media_type"),
        },
        Case {
            name: "form encoded",
            content_type: Some("application/x-www-form-urlencoded"),
            payload: Payload::Json("user_id=1&channel_id=1&content=x".into()),
            status: 415,
            code: Some("unsupported_media_type"),
        },
        Case {
            name: "garbage content type",
            content_type: Some(";;;"),
            payload: Payload::Json(message("x")),
            status: 415,
            code: Some("unsupported_media_type"),
        },
        Case {
            name: "JSON with charset",
            content_type: Some("application/json; charset=utf-8"),
            payload: Payload::Json(message("x")),
            status: 202,
            code: OK,
        },
        Case {
            name: "upper-case JSON type",
            content_type: Some("APPLICATION/JSON"),
            payload: Payload::Json(message("x")),
            status: 202,
            code: OK,
        },
        Case {
            name: "+json suffix",
            content_type: Some("application/vnd.sluice+json"),
            payload: Payload::Json(message("x")),
            status: 202,
            code: OK,
        },
        Case {
            name: "chunked valid body",
            content_type: Some("application/json"),
            payload: Payload::Chunked(message("chunked").into_bytes()),
            status: 202,
            code: OK,
        },
        Case {
            name: "chunked 1 MB body",
            content_type: Some("application/json"),
            payload: Payload::Chunked(message(&"a".repeat(1 << 20)).into_bytes()),
            status: 413,
            code: Some("payload_too_large"),
        },
    ]
}

#[tokio::test]
async fn every_hostile_request_gets_its_documented_answer() {
    let app = spawn_app().await;
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    let mut accepted = 0;
    for case in &cases {
        let mut request = app.http.post(app.url("/messages"));
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        request = match &case.payload {
            Payload::Json(s) => request.body(s.clone()),
            Payload::Bytes(b) => request.body(b.clone()),
            Payload::Chunked(b) => {
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                    b.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
                request.body(Body::wrap_stream(futures_util::stream::iter(chunks)))
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: request failed: {e}", case.name));
                continue;
            }
        };
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if status >= 500 {
            failures.push(format!("{}: server error {status} {body}", case.name));
            continue;
        }
        if status != case.status {
            failures.push(format!(
                "{}: expected {}, got {status} {body}",
                case.name, case.status
            ));
            continue;
        }
        match case.code {
            Some(code) => {
                if body["error"]["code"] != code || !body["error"]["message"].is_string() {
                    failures.push(format!(
                        "{}: expected error code {code}, got {body}",
                        case.name
                    ));
                }
            }
            None => {
                accepted += 1;
                if body["status"] != "queued" {
                    failures.push(format!(
                        "{}: expected a queued answer, got {body}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let mut redis = app.redis.clone();
    let queued: u64 = redis::cmd("LLEN")
        .arg(&app.keys.pending_messages)
        .query_async(&mut redis)
        .await
        .expect("LLEN");
    assert_eq!(
        queued, accepted,
        "exactly the accepted requests were queued"
    );
    app.cleanup().await;
}
