//! API keys, as an operator and clients meet them: made and revoked with `sluice keys`, checked
//! by two ingest APIs with `auth.mode = keys`, each refusal with its answer.

use std::time::{Duration, Instant};

use sluice_tests::process::{Service, binary, free_port};
use uuid::Uuid;

use crate::stack::{Options, Stack};

pub(crate) const ADMIN_TOKEN: &str = "keys-test-admin-token-0123";

/// `sluice <args>` against `ingest` with the admin token; its stdout.
pub(crate) fn sluice(ingest: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(binary("sluice").expect("sluice"))
        .args(args)
        .args(["--ingest", ingest, "--admin-token", ADMIN_TOKEN])
        .output()
        .expect("runs");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "sluice {args:?}: {out}{err}");
    out.into_owned()
}

/// `sluice keys create`: the key, the last line of its output.
fn create(ingest: &str, name: &str, scope: &str) -> String {
    create_with(ingest, name, &["--scope", scope])
}

/// `sluice keys create --name NAME <args>`: the key.
pub(crate) fn create_with(ingest: &str, name: &str, args: &[&str]) -> String {
    let mut all = vec!["keys", "create", "--name", name];
    all.extend_from_slice(args);
    let out = sluice(ingest, &all);
    out.lines().last().expect("a line").trim().to_owned()
}

/// POSTs one message with `key`; the status and the body.
async fn post(
    http: &reqwest::Client,
    ingest: &str,
    key: Option<&str>,
) -> (u16, serde_json::Value, String) {
    let request = http
        .post(format!("{ingest}/messages"))
        .json(&serde_json::json!({"user_id": 1, "channel_id": 2, "content": "keyed"}));
    let request = match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let answer = request.send().await.expect("an answer");
    let status = answer.status().as_u16();
    let challenge = answer
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, answer.json().await.expect("JSON"), challenge)
}

#[tokio::test]
async fn keys_are_checked_by_scope_and_a_revocation_reaches_every_ingest_api() {
    let _machine = crate::MACHINE.read().await;
    let extra = [("AUTH__MODE", "keys"), ("INGEST__ADMIN_TOKEN", ADMIN_TOKEN)];
    let stack = Stack::start_with(
        "keys",
        1,
        Options {
            extra: &extra,
            ..Options::default()
        },
    )
    .await;
    let (a, http) = (stack.ingest_url.clone(), stack.http.clone());
    let mut second = second_ingest(&stack);
    let b = second.1.clone();

    let (status, body, challenge) = post(&http, &a, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_credentials")),
        "{body}"
    );
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let writer = create(&a, "writer", "messages:write");
    let reader = create(&a, "reader", "messages:read");
    assert!(writer.starts_with("slk_") && writer != reader, "{writer}");
    let forged = format!("{}{}", &writer[..writer.len() - 4], "AAAA");
    let mut accepted = accepted_within(&http, &a, &writer).await;
    accepted.extend(accepted_within(&http, &b, &writer).await);
    let (status, body, _) = post(&http, &a, Some(&forged)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{body}"
    );
    let (status, body, challenge) = post(&http, &a, Some(&reader)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("insufficient_scope")),
        "{body}"
    );
    assert!(
        challenge.contains(r#"scope="messages:write""#),
        "{challenge}"
    );
    assert_reads(&http, &a, &reader, &writer).await;
    let watcher = create(&a, "dashboard", "stats:read");
    assert_stats(&http, &a, &watcher, &reader).await;
    accepted.extend(assert_bound(&http, &a).await);

    // The command's load carries the key too.
    let ids = stack.db.name.clone() + ".ids";
    let ids = std::env::temp_dir().join(ids);
    let path = ids.to_string_lossy().into_owned();
    let out = std::process::Command::new(binary("sluice").expect("sluice"))
        .args([
            "send",
            "--ingest",
            &a,
            "--key",
            &writer,
            "--messages",
            "300",
            "--ids",
            &path,
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all: Vec<Uuid> = std::fs::read_to_string(&ids)
        .expect("ids")
        .lines()
        .map(|l| l.parse().expect("uuid"))
        .collect();
    let _ = std::fs::remove_file(&ids);
    all.extend(accepted);

    let (refused_after, accepted_meanwhile) = revoke_and_time(&http, &a, &b, &writer).await;
    all.extend(accepted_meanwhile);
    println!(
        "KEYS revocation refused by the other ingest API after {} ms",
        refused_after.as_millis()
    );
    let listed = sluice(&a, &["keys", "list"]);
    assert!(
        listed.contains("writer") && listed.contains("REVOKED"),
        "{listed}"
    );
    assert!(
        !listed.contains(&writer) && !listed.contains(&reader),
        "a list never shows a key:\n{listed}"
    );
    for text in [stack.ingest.logs(), second.0.logs()] {
        assert!(
            !text.contains(&writer[writer.len() - 32..]),
            "no key in a log line"
        );
        assert!(
            !text.contains('\u{1b}'),
            "no colour codes in a log that is not a terminal"
        );
    }
    assert_guessing_is_throttled(&a, &reader).await;
    let guessed = create(&a, "guessed", "messages:read");
    assert_guessing_from_many_addresses_is_throttled(&http, &a, &guessed).await;
    stack
        .assert_exactly_once(&all, Duration::from_secs(30))
        .await;
    second.0.stop(Duration::from_secs(10)).await.expect("stops");
    stack.stop().await;
}

/// From one address, 5 guesses at a known key (its prefix, another secret) a minute: past them,
/// 429 before any key is read, the good one included; another address is not held up.
async fn assert_guessing_is_throttled(ingest: &str, reader: &str) {
    let guesser = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 3]))
        .build()
        .expect("client");
    let url = format!("{ingest}/messages");
    let prefix = sluice_core::auth::prefix_of(reader).expect("a key");
    let guess = format!("{prefix}_{}", "B".repeat(sluice_core::auth::SECRET_LEN));
    for _ in 0..sluice_admin::throttle::MAX_FAILURES {
        let answer = guesser
            .get(&url)
            .bearer_auth(&guess)
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), 401);
    }
    let answer = guesser
        .get(&url)
        .bearer_auth(reader)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 429);
    assert!(answer.headers().contains_key("retry-after"));
    let body: serde_json::Value = answer.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "too_many_failures", "{body}");
    let other = reqwest::Client::new();
    let answer = other
        .get(&url)
        .bearer_auth(reader)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 200, "127.0.0.1 is not held up");
}

/// Guesses at one key spread over many addresses, 5 from each (each address's own limit):
/// past 50 on its prefix, the key itself is answered 429 from a fresh address too.
async fn assert_guessing_from_many_addresses_is_throttled(
    http: &reqwest::Client,
    ingest: &str,
    key: &str,
) {
    let url = format!("{ingest}/messages");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http
        .get(&url)
        .bearer_auth(key)
        .send()
        .await
        .expect("sent")
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "the new key is never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let prefix = sluice_core::auth::prefix_of(key).expect("a key");
    let guess = format!("{prefix}_{}", "C".repeat(sluice_core::auth::SECRET_LEN));
    let per_address = sluice_admin::throttle::MAX_FAILURES;
    let addresses = sluice_admin::throttle::MAX_KEY_FAILURES.div_ceil(per_address);
    for host in 0..addresses {
        let from = std::net::IpAddr::from([127, 0, 1, u8::try_from(host + 10).expect("small")]);
        let guesser = reqwest::Client::builder()
            .local_address(from)
            .build()
            .expect("client");
        for _ in 0..per_address {
            let status = guesser
                .get(&url)
                .bearer_auth(&guess)
                .send()
                .await
                .expect("sent");
            assert_eq!(status.status(), 401, "from {from}");
        }
    }
    let fresh = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 2, 1]))
        .build()
        .expect("client");
    let answer = fresh.get(&url).bearer_auth(key).send().await.expect("sent");
    assert_eq!(
        answer.status(),
        429,
        "the guessed key is held for the window"
    );
    let answer = fresh.get(&url).send().await.expect("sent");
    assert_eq!(
        answer.status(),
        401,
        "other callers from that address are not"
    );
}

/// Another ingest API on the stack's settings and servers; it and its URL.
pub(crate) fn second_ingest(stack: &Stack) -> (Service, String) {
    let port = free_port();
    let mut env = stack.env.clone();
    env.push(("SLUICE__INGEST__LISTEN".into(), format!("127.0.0.1:{port}")));
    let service = Service::start("sluice-ingest", &env, &[]).expect("starts");
    (service, format!("http://127.0.0.1:{port}"))
}

/// Posts with `key` until it is accepted (a new key reaches a server's ring within a second or
/// so); the ids accepted.
async fn accepted_within(http: &reqwest::Client, ingest: &str, key: &str) -> Vec<Uuid> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body, _) = post(http, ingest, Some(key)).await;
        if status == 202 {
            return vec![
                body["message_id"]
                    .as_str()
                    .expect("id")
                    .parse()
                    .expect("uuid"),
            ];
        }
        assert!(
            Instant::now() < deadline,
            "{ingest} never accepted the new key: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /messages` needs `messages:read`.
async fn assert_reads(http: &reqwest::Client, ingest: &str, reader: &str, writer: &str) {
    let url = format!("{ingest}/messages?limit=5");
    let answer = http
        .get(&url)
        .bearer_auth(reader)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 200);
    let answer = http
        .get(&url)
        .bearer_auth(writer)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 403);
    let answer = http.get(&url).send().await.expect("an answer");
    assert_eq!(answer.status(), 401);
}

/// A chat client's key, bound to user 7 and channels 3 and 4: it posts only as its user into
/// its channels (a batch with one other message is refused whole) and reads only its channels.
async fn assert_bound(http: &reqwest::Client, ingest: &str) -> Vec<Uuid> {
    let args = [
        "--scope",
        "messages:write",
        "--scope",
        "messages:read",
        "--user-id",
        "7",
        "--channel",
        "3",
        "--channel",
        "4",
    ];
    let key = create_with(ingest, "chat-user-7", &args);
    let post = |user: i64, channel: i64| {
        http.post(format!("{ingest}/messages"))
            .bearer_auth(&key)
            .json(&serde_json::json!({"user_id": user, "channel_id": channel, "content": "bound"}))
            .send()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let accepted: serde_json::Value = loop {
        let answer = post(7, 3).await.expect("an answer");
        if answer.status() == 202 {
            break answer.json().await.expect("JSON");
        }
        assert!(Instant::now() < deadline, "the bound key is never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (user, channel, code) in [(8, 3, "user_not_allowed"), (7, 5, "channel_not_allowed")] {
        let answer = post(user, channel).await.expect("an answer");
        assert_eq!(answer.status(), 403);
        let body: serde_json::Value = answer.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let batch = serde_json::json!([
        {"user_id": 7, "channel_id": 4, "content": "fine"},
        {"user_id": 7, "channel_id": 9, "content": "not its channel"},
    ]);
    let url = format!("{ingest}/messages/batch");
    let answer = http
        .post(url)
        .bearer_auth(&key)
        .json(&batch)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 403, "nothing of the batch is queued");
    for (query, status) in [("?channel_id=4", 200), ("?channel_id=5", 403), ("", 403)] {
        let url = format!("{ingest}/messages{query}");
        let answer = http
            .get(url)
            .bearer_auth(&key)
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), status, "GET /messages{query}");
    }
    vec![
        accepted["message_id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("uuid"),
    ]
}

/// The stats the ingest API serves need `stats:read`, as a header or `?token=`.
async fn assert_stats(http: &reqwest::Client, ingest: &str, watcher: &str, reader: &str) {
    let url = format!("{ingest}/stats");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = http
            .get(&url)
            .bearer_auth(watcher)
            .send()
            .await
            .expect("an answer");
        if answer.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stats key is never accepted: {}",
            answer.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let by_query = http
        .get(format!("{url}?token={watcher}"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(by_query.status(), 200);
    let answer = http
        .get(&url)
        .bearer_auth(reader)
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 403);
    let answer = http.get(&url).send().await.expect("an answer");
    assert_eq!(answer.status(), 401);
    let body: serde_json::Value = answer.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "missing_credentials", "{body}");
}

/// Revokes `key` on `a` and polls `b` until it refuses it as revoked; how long that took, and
/// the ids `b` accepted meanwhile.
async fn revoke_and_time(
    http: &reqwest::Client,
    a: &str,
    b: &str,
    key: &str,
) -> (Duration, Vec<Uuid>) {
    sluice(a, &["keys", "revoke", "writer"]);
    let revoked = Instant::now();
    let mut accepted = Vec::new();
    loop {
        let (status, body, _) = post(http, b, Some(key)).await;
        if status == 401 {
            assert_eq!(body["error"]["code"], "credentials_revoked", "{body}");
            return (revoked.elapsed(), accepted);
        }
        assert_eq!(status, 202, "{body}");
        accepted.push(
            body["message_id"]
                .as_str()
                .expect("id")
                .parse()
                .expect("uuid"),
        );
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "still accepted 5 s after its revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
