//! `GET /stats`, `GET /health`, `GET /ready` and HTTP errors of the gateway.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{next_of, spawn_gateway};

#[tokio::test]
async fn stats_endpoint_serves_the_same_payload() {
    let mut g = spawn_gateway(&[]).await;
    let total = g.keys.total_messages.clone();
    g.set(&total, 7).await;
    g.settle().await;
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
    let _ = next_of(&mut ws, "stats", Duration::from_secs(2)).await;
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
async fn ready_once_redis_was_read() {
    let g = spawn_gateway(&[]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let r = reqwest::get(g.http("/ready")).await.expect("sent");
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.expect("json");
        if status == 200 {
            break body;
        }
        assert_eq!((status, &body["status"]), (503, &json!("not_ready")));
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body, json!({"status": "ready", "redis": "up"}));
    g.cleanup().await;
}

#[tokio::test]
async fn redis_down_gives_503_on_stats_and_ready() {
    let g = spawn_gateway(&[("REDIS__URL", "redis://127.0.0.1:1")]).await;
    let r = reqwest::get(g.http("/stats")).await.expect("sent");
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "redis_unavailable");
    let r = reqwest::get(g.http("/ready")).await.expect("sent");
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body, json!({"status": "not_ready", "redis": "down"}));
    let r = reqwest::get(g.http("/nope")).await.expect("sent");
    assert_eq!(r.status().as_u16(), 404);
    g.cleanup().await;
}

#[tokio::test]
async fn sse_streams_the_same_payloads_at_the_asked_cadence() {
    let mut g = spawn_gateway(&[]).await;
    let total = g.keys.total_messages.clone();
    g.set(&total, 11).await;
    g.settle().await;
    let mut response = reqwest::get(g.http("/stats/stream?interval_ms=200"))
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    );
    let mut buffer = String::new();
    let mut events = Vec::new();
    let start = std::time::Instant::now();
    while events.len() < 5 {
        let chunk = tokio::time::timeout(Duration::from_secs(3), response.chunk())
            .await
            .expect("an event in time")
            .expect("stream")
            .expect("not ended");
        buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.strip_prefix("data: ") {
                events.push(serde_json::from_str::<serde_json::Value>(data.trim()).expect("JSON"));
            }
        }
    }
    assert!(
        start.elapsed() < Duration::from_millis(2000),
        "five events at 200 ms took {:?}",
        start.elapsed()
    );
    for event in &events {
        assert_eq!(event["type"], "stats");
        assert_eq!(event["total_messages"], 11);
    }
    let health: serde_json::Value = reqwest::get(g.http("/health"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(
        health["active_connections"], 1,
        "an SSE stream counts as a connection"
    );
    drop(response);
    g.cleanup().await;
}

#[tokio::test]
async fn the_poller_runs_without_clients_and_samples_the_history() {
    let mut g = spawn_gateway(&[]).await;
    let health = |g: &crate::helpers::TestGateway| {
        let url = g.http("/health");
        async move {
            reqwest::get(url)
                .await
                .expect("sent")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while health(&g).await["publisher_running"] != true {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the poller did not start without clients"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nobody watches, yet every second gets its history sample.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let history = g.keys.history_1s.clone();
    let samples: Vec<String> = g.lrange(&history).await;
    assert!(samples.len() >= 2, "{samples:?}");
    let seconds: Vec<u64> = samples
        .iter()
        .map(|s| {
            serde_json::from_str::<Vec<serde_json::Value>>(s).expect("json")[0]
                .as_u64()
                .expect("second")
        })
        .collect();
    assert!(
        seconds.windows(2).all(|w| w[0] == w[1] + 1),
        "one sample per second, newest first: {seconds:?}"
    );
    // Changed while nobody watched: a client arriving a tick later sees it in its first stats.
    let total = g.keys.total_messages.clone();
    g.set(&total, 99).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut ws = g.connect("").await;
    let first = next_of(&mut ws, "stats", Duration::from_secs(2)).await;
    assert_eq!(first["total_messages"], 99, "first stats are current");
    g.cleanup().await;
}

#[tokio::test]
async fn cors_allows_the_configured_origins() {
    let g = spawn_gateway(&[("GATEWAY__CORS_ORIGINS", "https://dash.example")]).await;
    let http = reqwest::Client::new();
    let allowed = http
        .get(g.http("/health"))
        .header("origin", "https://dash.example")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://dash.example")
    );
    let other = http
        .get(g.http("/health"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("sent");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    g.cleanup().await;
}

#[tokio::test]
async fn a_plain_get_of_the_websocket_url_gets_a_json_400() {
    let g = spawn_gateway(&[]).await;
    let r = reqwest::get(g.http("/ws/stats")).await.expect("sent");
    assert_eq!(r.status().as_u16(), 400);
    let content_type = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_a_websocket_upgrade");
    // The place it took within the connection limits is given back.
    let health: serde_json::Value = reqwest::get(g.http("/health"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(health["active_connections"], 0);
    g.cleanup().await;
}

#[tokio::test]
async fn the_dead_letter_admin_is_served_here_with_the_gateways_own_token() {
    let off = spawn_gateway(&[]).await;
    let r = reqwest::get(off.http("/admin/dead-letters"))
        .await
        .expect("sent");
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.expect("json");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("SLUICE__GATEWAY__ADMIN_TOKEN"),
        "{message}"
    );
    off.cleanup().await;

    let token = "gateway-admin-token-0123";
    let mut g = spawn_gateway(&[("GATEWAY__ADMIN_TOKEN", token)]).await;
    let dead = g.keys.dead_messages.clone();
    let letter = json!({"payload": "p", "reason": "r", "failed_at": "2026-12-02T00:00:00Z", "worker_id": "w"});
    let _: () = redis::cmd("LPUSH")
        .arg(&dead)
        .arg(letter.to_string())
        .query_async(&mut g.redis)
        .await
        .expect("LPUSH");
    let http = reqwest::Client::new();
    let r = http
        .get(g.http("/admin/dead-letters"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 401);
    let admin =
        sluice_client::Client::new(g.http(""), None, Some(token.to_owned())).expect("a client");
    let page = admin.dead_letters(100, 0, None).await.expect("a page");
    assert_eq!(page.total, 1);
    let id = page.dead_letters[0]["id"].as_str().expect("id");
    let r = http
        .post(g.http(&format!("/admin/dead-letters/{id}/requeue")))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let pending = g.keys.pending_messages.clone();
    assert_eq!(g.lrange(&pending).await, ["p"]);
    assert!(g.lrange(&dead).await.is_empty());
    g.cleanup().await;
}

/// The active `dead_letters_increased` of `g`, when there is one.
async fn dead_letters_alert(g: &crate::helpers::TestGateway) -> Option<serde_json::Value> {
    let list: serde_json::Value = reqwest::get(g.http("/alerts"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    list["active"]
        .as_array()?
        .iter()
        .find(|a| a["rule"] == "dead_letters_increased")
        .cloned()
}

#[tokio::test]
async fn a_firing_alert_says_what_is_true_now_not_what_was_when_it_fired() {
    let mut g = spawn_gateway(&[]).await;
    let (total, list) = (g.keys.dead_letters.clone(), g.keys.dead_messages.clone());
    g.set(&total, 6).await;
    let _: () = redis::cmd("RPUSH")
        .arg(&list)
        .arg("a dead letter")
        .query_async(&mut g.redis)
        .await
        .expect("RPUSH");
    g.settle().await;
    g.set(&total, 7).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let fired = loop {
        if let Some(alert) = dead_letters_alert(&g).await {
            break alert;
        }
        assert!(
            Instant::now() < deadline,
            "dead_letters_increased never fired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(fired["summary"], "dead letters rose from 6 to 7", "{fired}");
    // Five more while it fires: within the refresh period, the alert says 12, same start.
    g.set(&total, 12).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let now = loop {
        let alert = dead_letters_alert(&g).await.expect("still firing");
        if alert["summary"] != fired["summary"] {
            break alert;
        }
        assert!(
            Instant::now() < deadline,
            "the alert still says {}",
            alert["summary"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(now["summary"], "dead letters rose from 6 to 12", "{now}");
    assert_eq!(now["started_at"], fired["started_at"], "the same alert");
    g.cleanup().await;
}
