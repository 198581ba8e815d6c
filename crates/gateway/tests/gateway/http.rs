//! `GET /stats`, `GET /health` and HTTP errors of the gateway.

use std::time::Duration;

use crate::helpers::{next_json, spawn_gateway};

#[tokio::test]
async fn stats_endpoint_serves_the_same_payload() {
    let mut g = spawn_gateway(&[]).await;
    let total = g.keys.total_messages.clone();
    g.set(&total, 7).await;
    let body: serde_json::Value = reqwest::get(g.http("/stats"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(body["type"], "stats");
    assert_eq!(body["total_messages"], 7);
    assert_eq!(body["queue_length"], 0);
    g.cleanup().await;
}

#[tokio::test]
async fn health_counts_connections() {
    let g = spawn_gateway(&[]).await;
    let mut ws = g.connect("").await;
    let _ = next_json(&mut ws, Duration::from_secs(2)).await;
    let body: serde_json::Value = reqwest::get(g.http("/health"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["active_connections"], 1);
    assert_eq!(body["publisher_running"], true);
    assert_eq!(body["redis"], "up");
    drop(ws);
    g.cleanup().await;
}

#[tokio::test]
async fn redis_down_gives_503_on_stats() {
    let g = spawn_gateway(&[("REDIS__URL", "redis://127.0.0.1:1")]).await;
    let r = reqwest::get(g.http("/stats")).await.expect("sent");
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "redis_unavailable");
    let r = reqwest::get(g.http("/nope")).await.expect("sent");
    assert_eq!(r.status().as_u16(), 404);
    g.cleanup().await;
}
