//! JWT authentication: accepted, refused (missing, invalid, expired), and expiry while
//! connected.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::helpers::{close_code, next_of, spawn_gateway};

const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn signed(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

fn token(secret: &str, valid_for_secs: i64) -> String {
    signed(
        secret,
        json!({"sub": "dashboard", "exp": now() + valid_for_secs}),
    )
}

async fn refused(port: u16, query: &str) -> (u16, String) {
    let url = format!("ws://127.0.0.1:{port}/ws/stats{query}");
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("JSON");
            (
                response.status().as_u16(),
                body["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn tokens_are_required_and_checked_before_the_upgrade() {
    let g = spawn_gateway(&[("STREAM__AUTH__JWT_SECRET", SECRET)]).await;
    assert_eq!(
        refused(g.port, "").await,
        (401, "missing_credentials".into())
    );
    let forged = token("another-secret-of-at-least-32-bytes!", 60);
    assert_eq!(
        refused(g.port, &format!("?token={forged}")).await,
        (401, "invalid_credentials".into())
    );
    assert_eq!(
        refused(g.port, "?token=garbage").await,
        (401, "invalid_credentials".into())
    );
    let expired = token(SECRET, -10);
    assert_eq!(
        refused(g.port, &format!("?token={expired}")).await,
        (401, "credentials_expired".into())
    );

    let mut ws = g.connect(&format!("?token={}", token(SECRET, 60))).await;
    next_of(&mut ws, "stats", Duration::from_secs(3)).await;

    // The header works too, and plain HTTP endpoints are guarded the same way.
    let http = reqwest::Client::new();
    let r = http.get(g.http("/stats")).send().await.expect("sent");
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .get(g.http("/stats"))
        .bearer_auth(token(SECRET, 60))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200);
    g.cleanup().await;
}

/// A token valid for an hour whose `nbf` is `not_before_secs` from now.
fn token_not_before(not_before_secs: i64) -> String {
    let now = now();
    signed(
        SECRET,
        json!({"sub": "dashboard", "exp": now + 3600, "nbf": now + not_before_secs}),
    )
}

#[tokio::test]
async fn a_token_is_refused_before_its_nbf() {
    let g = spawn_gateway(&[("STREAM__AUTH__JWT_SECRET", SECRET)]).await;
    let early = token_not_before(500);
    assert_eq!(
        refused(g.port, &format!("?token={early}")).await,
        (401, "credentials_not_yet_valid".into())
    );
    let http = reqwest::Client::new();
    let r = http
        .get(g.http("/stats"))
        .bearer_auth(&early)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .get(g.http("/stats"))
        .bearer_auth(token_not_before(-10))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 200, "a token past its nbf is accepted");
    g.cleanup().await;
}

#[tokio::test]
async fn a_session_whose_token_expires_is_closed_with_4401() {
    let g = spawn_gateway(&[("STREAM__AUTH__JWT_SECRET", SECRET)]).await;
    let mut ws = g.connect(&format!("?token={}", token(SECRET, 2))).await;
    next_of(&mut ws, "stats", Duration::from_secs(3)).await;
    assert_eq!(close_code(&mut ws, Duration::from_secs(5)).await, 4401);
    g.cleanup().await;
}
