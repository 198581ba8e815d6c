//! The OpenAPI documents, served by the live services, and schemathesis fuzzing the live APIs
//! from them: nothing may answer 5xx, and every answer must match the documented status codes,
//! content types and schemas.

use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::stack::{Options, Stack};

/// Fuzzes the API that `document` describes for `seconds`; panics with schemathesis's report
/// when it finds anything.
async fn schemathesis(document: &str, seconds: u64) {
    let dir = std::env::temp_dir().join(format!("sluice-schemathesis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let run = Command::new("schemathesis")
        .current_dir(&dir)
        .args([
            "run",
            document,
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--max-time",
            &seconds.to_string(),
            "--warnings",
            "off",
        ])
        .env("NO_COLOR", "1")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(seconds + 120), run)
        .await
        .expect("schemathesis finishes")
        .expect("schemathesis runs (pip install -r tests/requirements.txt; ./scripts/test does)");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems in {document}:\n{report}"
    );
    assert!(report.contains("No issues found"), "{report}");
}

async fn document(url: &str) -> Value {
    let response = reqwest::get(url).await.expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("json")
}

#[tokio::test]
async fn the_live_apis_match_their_openapi_documents() {
    let _shared = crate::MACHINE.read().await;
    let stack = Stack::start_with(
        "contract",
        1,
        Options {
            extra: &[
                // Waited requests end within a second, so fuzzing `Prefer` stays quick.
                ("INGEST__MAX_WAIT_SECS", "1"),
                ("INGEST__ADMIN_TOKEN", "contract-test-admin-token"),
            ],
            ..Options::default()
        },
    )
    .await;
    let ingest = format!("{}/openapi.json", stack.ingest_url);
    let gateway = format!("http://127.0.0.1:{}/openapi.json", stack.gateway_port);

    let doc = document(&ingest).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/messages",
        "/messages/batch",
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/stats",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
    let post = &doc["paths"]["/messages"]["post"];
    for status in ["201", "202", "422", "429", "503"] {
        assert!(
            post["responses"].get(status).is_some(),
            "POST /messages {status}"
        );
    }
    let doc = document(&gateway).await;
    for path in [
        "/ws/stats",
        "/stats",
        "/stats/history",
        "/alerts",
        "/workers",
        "/health",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }

    schemathesis(&ingest, 40).await;
    schemathesis(&gateway, 15).await;
    stack.stop().await;
}
