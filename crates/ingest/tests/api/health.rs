//! `GET /health` and `GET /ready` with dependencies up and down.

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn health_reports_the_queue_length() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.post_json(&serde_json::json!({"user_id": 1, "channel_id": 1, "content": "x"}))
            .await;
    }
    let body: serde_json::Value = app
        .http
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["redis"], "up");
    assert_eq!(body["queue_length"], 3);
    app.cleanup().await;
}

#[tokio::test]
async fn ready_when_both_dependencies_answer() {
    let app = spawn_app().await;
    let r = app.http.get(app.url("/ready")).send().await.expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    app.cleanup().await;
}

#[tokio::test]
async fn not_ready_names_the_dependency_that_is_down() {
    let app = spawn_app_with(&[("REDIS__URL", "redis://127.0.0.1:1")]).await;
    let r = app.http.get(app.url("/ready")).send().await.expect("sent");
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["redis"], "down");
    assert_eq!(body["postgres"], "up");
    let health: serde_json::Value = app
        .http
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(health["redis"], "down");
    assert!(health["queue_length"].is_null());
    app.cleanup().await;
}
