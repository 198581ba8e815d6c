//! A host whose clock is off (issue 28): the real binaries under libfaketime, which shifts the
//! wall clock a process reads (Debian's `faketime`; `./scripts/test` installs it). A process
//! stamps its ids and times with Redis's clock, so one host two hours behind changes no figure;
//! one a month off refuses to start.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_tests::process::{Service, wait_http_ok};
use uuid::Uuid;

use crate::stack::Stack;

/// Debian's libfaketime: preloaded, it shifts what `clock_gettime(CLOCK_REALTIME)` answers.
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// `env` plus what shifts the process's wall clock by `shift` (`-2h`, `+30d`), its monotonic
/// clock left alone.
fn skewed(env: &[(String, String)], shift: &str) -> Vec<(String, String)> {
    assert!(
        std::path::Path::new(FAKETIME).exists(),
        "{FAKETIME} is missing: apt-get install faketime (./scripts/test does)"
    );
    let mut env = env.to_vec();
    env.extend([
        ("LD_PRELOAD".to_owned(), FAKETIME.to_owned()),
        ("FAKETIME".to_owned(), shift.to_owned()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
    ]);
    env
}

fn seconds_from_now(time: SystemTime) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("now");
    let then = time.duration_since(UNIX_EPOCH).expect("then");
    now.as_secs().abs_diff(then.as_secs())
}

#[tokio::test]
async fn a_host_whose_clock_is_a_month_off_refuses_to_start_and_says_why() {
    let stack = Stack::start("clockoff", 0).await;
    let mut ingest =
        Service::start("sluice-ingest", &skewed(&stack.env, "+30d"), &[]).expect("starts");
    let status = ingest.wait(Duration::from_secs(20)).await.expect("exits");
    assert!(!status.success());
    let logs = ingest.logs();
    assert!(
        logs.contains("(30.0 days) ahead of Redis's") && logs.contains("MAX_CLOCK_SKEW_MS"),
        "{logs}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn an_ingest_api_two_hours_behind_stamps_the_fleets_time() {
    let _shared = crate::MACHINE.read().await;
    let mut stack = Stack::start("clockbehind", 1).await;
    stack
        .ingest
        .stop(Duration::from_secs(10))
        .await
        .expect("stops");
    // The same ingest API, on a host two hours behind, allowed to start with it.
    let mut env = skewed(&stack.env, "-2h");
    env.push((
        "SLUICE__REDIS__MAX_CLOCK_SKEW_MS".into(),
        (3 * 3_600_000).to_string(),
    ));
    stack.ingest = Service::start("sluice-ingest", &env, &[]).expect("starts");
    let ready = format!("{}/ready", stack.ingest_url);
    wait_http_ok(&mut stack.ingest, &ready, Duration::from_secs(20))
        .await
        .expect("ready");
    let http = reqwest::Client::new();
    let answer: serde_json::Value = http
        .post(format!("{}/messages", stack.ingest_url))
        .header("prefer", "wait=10")
        .json(&serde_json::json!({"user_id": 1, "channel_id": 1, "content": "on time"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["status"], "persisted", "{answer}");
    let id: Uuid = answer["message_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("an id");
    let (secs, nanos) = id.get_timestamp().expect("v7").to_unix();
    let stamped = UNIX_EPOCH + Duration::new(secs, nanos);
    assert!(
        seconds_from_now(stamped) < 60,
        "the id's time is now's: {id}"
    );
    let queued_at: chrono::DateTime<chrono::Utc> = answer["queued_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("queued_at");
    assert!(seconds_from_now(queued_at.into()) < 60, "{answer}");
    // Its row is in today's partition, and the commit latency is what it took, not two hours.
    let client = stack.db.client().await.expect("client");
    let partition: String = client
        .query_one(
            "SELECT tableoid::regclass::text FROM messages WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the row")
        .get(0);
    assert_ne!(partition, "messages_default");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{}/stats", stack.gateway_port))
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
    // What commit_latency_high reads: under its threshold (1 s), where the host's clock would
    // have made it two hours, firing for the fleet.
    let p99 = stats["commit_latency_ms"]["p99"].as_f64().expect("a p99");
    assert!(p99 < 1_000.0, "commit p99 {p99} ms: {stats}");
    let logs = stack.ingest.logs();
    assert!(logs.contains("(2.0 h) behind Redis's"), "{logs}");
    stack.stop().await;
}
