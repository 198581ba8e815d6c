//! Every caller known, across the fleet: the gateway checks the same keys as the ingest APIs,
//! an organisation's RS256 tokens are taken beside keys (with `aud` and `iss`), an `admin` key
//! opens the admin endpoints of both servers, a key's rate limit holds across two ingest APIs,
//! and each row records which credential sent it.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::keys::{ADMIN_TOKEN, create_with, second_ingest};
use crate::stack::{Options, Stack};

const AUDIENCE: &str = "sluice";
const ISSUER: &str = "https://id.sluice.test";
/// The limited key's rate and burst, and how long the two ingest APIs are pushed against it.
const RATE: u32 = 100;
const LIMIT_WINDOW: Duration = Duration::from_secs(10);

/// An RSA key pair made by `openssl`: the private key (PEM) and the public key's file.
fn rsa_pair(dir: &Path) -> (jsonwebtoken::EncodingKey, String) {
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let (private_s, public_s) = (private.to_string_lossy(), public.to_string_lossy());
    run(&["genrsa", "-traditional", "-out", &private_s, "2048"]);
    run(&["rsa", "-in", &private_s, "-pubout", "-out", &public_s]);
    let pem = std::fs::read(&private).expect("private key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("an RSA key");
    (key, public_s.into_owned())
}

/// An RS256 token with `claims`, valid for an hour, for Sluice's audience and issuer.
fn token(key: &jsonwebtoken::EncodingKey, mut claims: serde_json::Value) -> String {
    let exp = chrono::Utc::now().timestamp() + 3_600;
    for (name, value) in [
        ("exp", json!(exp)),
        ("aud", json!(AUDIENCE)),
        ("iss", json!(ISSUER)),
    ] {
        if claims.get(name).is_none() {
            claims[name] = value;
        }
    }
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, &claims, key).expect("signed")
}

/// A GET with `credential` (if any); the status and the body's error code.
async fn get(http: &reqwest::Client, url: &str, credential: Option<&str>) -> (u16, String) {
    let request = http.get(url);
    let request = match credential {
        Some(credential) => request.bearer_auth(credential),
        None => request,
    };
    let answer = request.send().await.expect("an answer");
    let status = answer.status().as_u16();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code)
}

/// Waits until `url` answers `credential` with 200: a new key reaches a server within a second.
async fn until_accepted(http: &reqwest::Client, url: &str, credential: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(http, url, Some(credential)).await.0 != 200 {
        assert!(Instant::now() < deadline, "{url} never accepted the key");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs one message with `credential`; the status and the body.
async fn post(http: &reqwest::Client, ingest: &str, credential: &str) -> reqwest::Response {
    http.post(format!("{ingest}/messages"))
        .bearer_auth(credential)
        .json(&json!({"user_id": 1, "channel_id": 2, "content": "who sent this"}))
        .send()
        .await
        .expect("an answer")
}

fn id_of(body: &serde_json::Value) -> Uuid {
    body["message_id"]
        .as_str()
        .expect("an id")
        .parse()
        .expect("a uuid")
}

#[tokio::test]
async fn the_gateway_tokens_and_limits_know_every_caller() {
    let _machine = crate::MACHINE.read().await;
    let dir = std::env::temp_dir().join(format!("sluice-callers-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (signer, public) = rsa_pair(&dir);
    let extra = [
        ("AUTH__MODE", "keys"),
        ("INGEST__ADMIN_TOKEN", ADMIN_TOKEN),
        ("AUTH__JWT__PUBLIC_KEY_FILE", public.as_str()),
        ("AUTH__JWT__AUDIENCE", AUDIENCE),
        ("AUTH__JWT__ISSUER", ISSUER),
    ];
    let options = Options {
        extra: &extra,
        ..Options::default()
    };
    let stack = Stack::start_with("callers", 1, options).await;
    let (ingest, gateway, http) = (&stack.ingest_url, &stack.gateway_url, &stack.http);
    let ops = create_with(ingest, "ops", &["--scope", "admin"]);
    let dash = create_with(ingest, "dash", &["--scope", "stats:read"]);
    let mut accepted = assert_the_gateway_checks_keys(http, gateway, ingest, &ops, &dash).await;
    accepted.push(assert_tokens(http, ingest, gateway, &signer).await);
    let (mut second, b) = second_ingest(&stack);
    let limited = create_with(
        ingest,
        "limited",
        &[
            "--scope",
            "messages:write",
            "--rate",
            "100",
            "--burst",
            "100",
        ],
    );
    let listed = crate::keys::sluice(ingest, &["keys", "list"]);
    assert!(listed.contains("limit 100/s burst 100"), "{listed}");
    accepted.extend(assert_limit_holds_across(http, [ingest.as_str(), b.as_str()], &limited).await);
    stack
        .assert_exactly_once(&accepted, Duration::from_secs(30))
        .await;
    assert_rows_name_their_sender(&stack, &limited).await;

    assert_audited(http, gateway, ingest, &ops).await;
    // Streams opened with the key before its revocation.
    let ws_url = format!("{}/ws/stats?token={dash}", gateway.replace("http", "ws"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
    let mut sse = http
        .get(format!("{gateway}/stats/stream"))
        .bearer_auth(&dash)
        .send()
        .await
        .expect("an answer");
    assert_eq!(sse.status(), 200);
    crate::keys::sluice(ingest, &["keys", "revoke", "dash"]);
    let revoked = Instant::now();
    let url = format!("{gateway}/stats");
    while get(http, &url, Some(&dash)).await != (401, "credentials_revoked".into()) {
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "still accepted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "CALLERS revocation refused by the gateway after {} ms",
        revoked.elapsed().as_millis()
    );
    // The open streams end too: the WebSocket with 4401, the SSE stream by closing.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await
    .expect("the WebSocket of a revoked key is closed within 5 s");
    assert_eq!(closed, Some(4401));
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = sse.chunk().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the SSE stream of a revoked key ends within 5 s"
    );
    println!(
        "CALLERS the revoked key's WebSocket and SSE stream ended {} ms after the revocation",
        revoked.elapsed().as_millis()
    );
    second.stop(Duration::from_secs(10)).await.expect("stops");
    stack.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

/// The gateway's stats, WebSocket and SSE take a `stats:read` key; its dead letters and the
/// ingest API's keys an `admin` key; each refusal with its code.
async fn assert_the_gateway_checks_keys(
    http: &reqwest::Client,
    gateway: &str,
    ingest: &str,
    ops: &str,
    dash: &str,
) -> Vec<Uuid> {
    let stats = format!("{gateway}/stats");
    until_accepted(http, &stats, dash).await;
    assert_eq!(
        get(http, &stats, None).await,
        (401, "missing_credentials".into())
    );
    assert_eq!(
        get(http, &stats, Some(ops)).await,
        (403, "insufficient_scope".into())
    );
    let forged = format!("{}{}", &dash[..dash.len() - 3], "zzz");
    assert_eq!(
        get(http, &stats, Some(&forged)).await,
        (401, "invalid_credentials".into())
    );
    let ws_url = format!("{}/ws/stats?token={dash}", gateway.replace("http", "ws"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.expect("ws");
    let hello = ws.next().await.expect("a frame").expect("ok");
    assert!(hello.to_text().expect("text").contains("\"connected\""));
    let sse = http
        .get(format!("{gateway}/stats/stream"))
        .bearer_auth(dash)
        .send()
        .await
        .expect("an answer");
    assert_eq!(sse.status(), 200);
    drop(sse);
    let letters = format!("{gateway}/admin/dead-letters");
    until_accepted(http, &letters, ops).await;
    assert_eq!(
        get(http, &letters, Some(dash)).await,
        (403, "insufficient_scope".into())
    );
    // The ingest API learns the new key on its own refresh, within a second, as the gateway.
    until_accepted(http, &format!("{ingest}/admin/keys"), ops).await;
    assert_eq!(
        get(http, &format!("{ingest}/admin/keys"), Some(ops))
            .await
            .0,
        200
    );
    // The admin key may not post: each scope is its own.
    let answer = post(http, ingest, ops).await;
    assert_eq!(answer.status(), 403);
    Vec::new()
}

/// An RS256 token with `messages:write` posts, its row naming `jwt:<sub>`; another audience is
/// refused; a token without scope reads the stats only.
async fn assert_tokens(
    http: &reqwest::Client,
    ingest: &str,
    gateway: &str,
    signer: &jsonwebtoken::EncodingKey,
) -> Uuid {
    let writer = token(signer, json!({"sub": "alice", "scope": "messages:write"}));
    let answer = post(http, ingest, &writer).await;
    assert_eq!(answer.status(), 202);
    let body: serde_json::Value = answer.json().await.expect("JSON");
    let id = id_of(&body);
    let elsewhere = token(
        signer,
        json!({"sub": "alice", "scope": "messages:write", "aud": "x"}),
    );
    let answer = post(http, ingest, &elsewhere).await;
    assert_eq!(answer.status(), 401);
    let bare = token(signer, json!({"sub": "dashboard"}));
    assert_eq!(post(http, ingest, &bare).await.status(), 403);
    assert_eq!(
        get(http, &format!("{gateway}/stats"), Some(&bare)).await.0,
        200
    );
    id
}

/// Two ingest APIs pushed by eight clients with one key of 100 messages a second (bursts of
/// 100) for [`LIMIT_WINDOW`]: the fleet admits the bucket's burst and rate, within 10 %; past
/// it, 429 with `Retry-After` and the RateLimit fields.
async fn assert_limit_holds_across(
    http: &reqwest::Client,
    ingests: [&str; 2],
    key: &str,
) -> Vec<Uuid> {
    let mut first = Vec::new();
    for ingest in ingests {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = post(http, ingest, key).await;
            if answer.status() == 202 {
                first.push(id_of(&answer.json().await.expect("JSON")));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{ingest} never took the limited key"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The bucket refills while the loops start: wait for it to be full, then count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = Instant::now();
    let clients = (0..8).map(|i| {
        let (http, ingest, key) = (http.clone(), ingests[i % 2].to_owned(), key.to_owned());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while start.elapsed() < LIMIT_WINDOW {
                let answer = post(&http, &ingest, &key).await;
                match answer.status().as_u16() {
                    202 => ids.push(id_of(&answer.json().await.expect("JSON"))),
                    429 => {
                        let headers = answer.headers();
                        assert!(headers.contains_key("retry-after"));
                        let policy = headers["ratelimit-policy"].to_str().expect("ascii");
                        assert_eq!(policy, format!(r#""key";q={RATE};w=1"#));
                        assert!(headers.contains_key("ratelimit"));
                        let body: serde_json::Value = answer.json().await.expect("JSON");
                        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    other => panic!("{ingest}: {other}"),
                }
            }
            ids
        })
    });
    let mut admitted = Vec::new();
    for client in clients.collect::<Vec<_>>() {
        admitted.extend(client.await.expect("a client"));
    }
    let seconds = start.elapsed().as_secs_f64();
    let allowed = f64::from(RATE) + f64::from(RATE) * seconds;
    let got = admitted.len() as f64;
    println!(
        "CALLERS rate limit: {got} admitted by two ingest APIs in {seconds:.2} s, bucket allows {allowed:.0}"
    );
    assert!(
        got <= allowed * 1.1 && got >= allowed * 0.9,
        "{got} admitted, {allowed:.0} allowed"
    );
    admitted.extend(first);
    admitted
}

/// Every row the limited key sent names it by its public prefix, never the key.
async fn assert_rows_name_their_sender(stack: &Stack, key: &str) {
    let prefix = sluice_core::auth::prefix_of(key).expect("a key");
    let client = stack.db.client().await.expect("a client");
    let rows = client
        .query(
            "SELECT key_id, count(*) FROM messages GROUP BY key_id ORDER BY key_id",
            &[],
        )
        .await
        .expect("rows");
    let senders: Vec<(Option<String>, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        senders
            .iter()
            .any(|(id, n)| id.as_deref() == Some(prefix) && *n > 100),
        "{senders:?}"
    );
    assert!(
        senders
            .iter()
            .any(|(id, _)| id.as_deref() == Some("jwt:alice")),
        "{senders:?}"
    );
    assert!(
        senders.iter().all(|(id, _)| id.as_deref() != Some(key)),
        "never the key itself"
    );
}

/// An admin key's requeue on the gateway and the keys made with the admin token are in the
/// audit trail, which `sluice audit` shows with the admin key.
async fn assert_audited(http: &reqwest::Client, gateway: &str, ingest: &str, ops: &str) {
    let answer = http
        .post(format!("{gateway}/admin/dead-letters/requeue"))
        .bearer_auth(ops)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 200);
    let output =
        std::process::Command::new(sluice_tests::process::binary("sluice").expect("sluice"))
            .args(["audit", "--ingest", ingest, "--key", ops])
            .output()
            .expect("runs");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    let prefix = sluice_core::auth::prefix_of(ops).expect("a key");
    assert!(
        lines[1].contains("dead_letters.requeue")
            && lines[1].contains(&format!("key ops ({prefix})")),
        "the newest first:\n{out}"
    );
    assert!(
        out.contains("keys.create")
            && out.contains("admin token")
            && out.contains("from 127.0.0.1"),
        "{out}"
    );
    assert!(!out.contains(ops), "never a key in the trail");
}
