//! Fault injection: crashed, paused and stopped processes, server restarts, poison and
//! overload, each under concurrent load with three workers. Every scenario ends with the same
//! check: every id answered 202 is in PostgreSQL exactly once, no other rows, `total_messages`
//! equals the row count, and no message is left in any list.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nix::sys::signal::Signal;
use sluice_tests::servers::{PostgresServer, RedisServer};
use tokio_tungstenite::tungstenite::Message;

use crate::stack::{Options, Stack, produce};

/// Workers presumed dead after one second, so reclaims happen within the test.
const FAST_RECLAIM: (&str, &str) = ("WORKER__DEAD_AFTER_MS", "1000");
const SETTLE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_every_two_seconds_lose_and_duplicate_nothing() {
    let _shared = crate::MACHINE.read().await;
    let mut stack = Stack::start_with(
        "kill",
        3,
        Options {
            extra: &[FAST_RECLAIM],
            ..Default::default()
        },
    )
    .await;
    // 40,000 messages: at this machine's rate (about 1,000 a second from 32 debug-build
    // clients beside the rest of the suite) some 20 kills, each worker several times; what is
    // tested is the kills, not the count.
    let producing = tokio::spawn(produce_owned(stack.ingest_url.clone(), 40_000, 32));
    let mut kills = 0;
    while !producing.is_finished() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let victim = kills % stack.workers.len();
        let worker = &mut stack.workers[victim];
        worker.signal(Signal::SIGKILL).expect("SIGKILL");
        worker.wait(Duration::from_secs(5)).await.expect("killed");
        stack.workers[victim] = stack.spawn("sluice-worker");
        kills += 1;
    }
    let accepted = producing.await.expect("producers");
    assert_eq!(accepted.len(), 40_000);
    assert!(kills >= 6, "only {kills} kills happened during the load");
    stack.assert_exactly_once(&accepted, SETTLE).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_dead_after_resumes_without_duplicates() {
    let _shared = crate::MACHINE.read().await;
    let stack = Stack::start_with(
        "pause",
        3,
        Options {
            extra: &[FAST_RECLAIM],
            ..Default::default()
        },
    )
    .await;
    let producing = tokio::spawn(produce_owned(stack.ingest_url.clone(), 20_000, 16));
    tokio::time::sleep(Duration::from_millis(800)).await;
    stack.workers[0].signal(Signal::SIGSTOP).expect("SIGSTOP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.workers[0].signal(Signal::SIGCONT).expect("SIGCONT");
    let accepted = producing.await.expect("producers");
    stack.assert_exactly_once(&accepted, SETTLE).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarting_mid_load_loses_nothing() {
    let _shared = crate::MACHINE.read().await;
    let postgres = PostgresServer::start().await.expect("private PostgreSQL");
    let stack = Stack::start_with(
        "pgrestart",
        3,
        Options {
            postgres_admin_url: Some(postgres.admin_url()),
            extra: &[
                ("WORKER__DEAD_AFTER_MS", "4000"),
                ("GATEWAY__ALERTS__POSTGRES_DOWN_FOR_SECS", "1"),
                ("GATEWAY__ALERTS__RESOLVE_AFTER_SECS", "1"),
            ],
            ..Default::default()
        },
    )
    .await;
    let producing = tokio::spawn(produce_owned(stack.ingest_url.clone(), 20_000, 16));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    postgres.stop().await.expect("PostgreSQL stops");

    // Ingest keeps accepting, and readiness names the dependency that is down.
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("{}/ready", stack.ingest_url))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(
        (body["postgres"].as_str(), body["redis"].as_str()),
        (Some("down"), Some("up"))
    );
    // The workers report it in their heartbeats, and the gateway fires postgres_down.
    let gateway = format!("http://127.0.0.1:{}", stack.gateway_port);
    let fired = wait_alert(&http, &gateway, "postgres_down", Duration::from_secs(20)).await;
    assert_eq!(fired["severity"], "critical");
    let stats: serde_json::Value = http
        .get(format!("{gateway}/stats"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(
        stats["workers_postgres_down"].as_u64() >= Some(1),
        "{stats}"
    );
    postgres.start_again().await.expect("PostgreSQL restarts");

    let accepted = producing.await.expect("producers");
    stack.assert_exactly_once(&accepted, SETTLE).await;
    wait_resolved(&http, &gateway, "postgres_down", Duration::from_secs(20)).await;
    stack.stop().await;
    drop(postgres);
}

async fn alert_list(http: &reqwest::Client, gateway: &str) -> serde_json::Value {
    http.get(format!("{gateway}/alerts"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

/// Polls `GET /alerts` until `rule` is active; returns the alert.
async fn wait_alert(
    http: &reqwest::Client,
    gateway: &str,
    rule: &str,
    timeout: Duration,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let list = alert_list(http, gateway).await;
        let found = list["active"]
            .as_array()
            .and_then(|a| a.iter().find(|alert| alert["rule"] == rule).cloned());
        if let Some(alert) = found {
            return alert;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{rule} never fired: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `GET /alerts` until `rule` is no longer active and its resolution is recorded.
async fn wait_resolved(http: &reqwest::Client, gateway: &str, rule: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let list = alert_list(http, gateway).await;
        let states: Vec<&str> = list["recent"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["rule"] == rule)
            .filter_map(|a| a["state"].as_str())
            .collect();
        let active = list["active"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["rule"] == rule));
        if !active && states == ["resolved", "firing"] {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{rule} not resolved once: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_mid_load_loses_nothing_and_dashboards_are_told() {
    let _shared = crate::MACHINE.read().await;
    let mut redis = RedisServer::start().await.expect("private Redis");
    let stack = Stack::start_with(
        "redisrestart",
        3,
        Options {
            redis_url: Some(redis.url()),
            extra: &[("GATEWAY__ALERTS__REDIS_DOWN_FOR_SECS", "1")],
            ..Default::default()
        },
    )
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{}/ws/stats?topics=stats,alerts",
        stack.gateway_port
    ))
    .await
    .expect("WebSocket");
    let statuses = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut alerts = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
            if let Message::Text(text) = frame {
                let v: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
                if v["type"] == "alert" && v["rule"] == "redis_down" {
                    let state = v["state"].as_str().expect("state").to_owned();
                    alerts.push((state, v["value"].as_f64().unwrap_or(-1.0)));
                }
                // Statuses from before the outage (the gateway's first read) do not count.
                if v["type"] == "status" && (v["redis"] == "down" || !seen.is_empty()) {
                    seen.push(v["redis"].as_str().expect("redis").to_owned());
                }
                if seen.last().map(String::as_str) == Some("up") && alerts.len() >= 2 {
                    break;
                }
            }
        }
        (seen, alerts)
    });

    let producing = tokio::spawn(produce_owned(stack.ingest_url.clone(), 20_000, 16));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.stop().await.expect("Redis stops");

    // While Redis is down, a POST is refused quickly and never accepted.
    let http = reqwest::Client::new();
    let started = Instant::now();
    let r = http
        .post(format!("{}/messages", stack.ingest_url))
        .header("content-type", "application/json")
        .body(r#"{"user_id": 1, "channel_id": 1, "content": "during the outage"}"#)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "503 within the response timeout, took {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.start_again().await.expect("Redis restarts");
    let down_for = started.elapsed();

    let accepted = producing.await.expect("producers");
    stack.assert_exactly_once(&accepted, SETTLE).await;
    let (seen, alerts) = tokio::time::timeout(Duration::from_secs(30), statuses)
        .await
        .expect("status messages")
        .expect("task");
    assert_eq!(
        seen,
        ["down", "up"],
        "the dashboard was told Redis went down and came back"
    );
    let states: Vec<&str> = alerts.iter().map(|(state, _)| state.as_str()).collect();
    assert_eq!(
        states,
        ["firing", "resolved"],
        "redis_down fired and resolved once"
    );
    // Its length is the outage's as measured (first failed read to first good one), not up to
    // the resolution that comes resolve_after_secs later.
    let lasted = alerts[1].1;
    let outage = down_for.as_secs_f64();
    println!("FAULTS Redis down for {outage:.1} s, the alert says {lasted} s");
    assert!(
        (lasted - outage).abs() <= 1.5,
        "the resolved redis_down says {lasted} s for an outage of {outage:.1} s"
    );
    // Recorded once, although the gateway and the ingest API's stream both lived through it.
    let gateway = format!("http://127.0.0.1:{}", stack.gateway_port);
    wait_resolved(&http, &gateway, "redis_down", Duration::from_secs(10)).await;
    for service in [&stack.ingest, &stack.gateway]
        .into_iter()
        .chain(stack.workers.iter())
    {
        assert!(
            !service.logs().contains("panicked"),
            "a process panicked:\n{}",
            service.logs()
        );
    }
    stack.stop().await;
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_in_the_queue_is_dead_lettered_while_its_batch_mates_commit() {
    let _shared = crate::MACHINE.read().await;
    let stack = Stack::start("poison", 3).await;
    let producing = tokio::spawn(produce_owned(stack.ingest_url.clone(), 10_000, 16));
    let mut redis = stack.redis().await;
    for i in 0..20 {
        let poison = match i % 4 {
            0 => "not json at all".to_owned(),
            1 => r#"{"id": "nope", "user_id": 1}"#.to_owned(),
            2 => r#"{"id":"01936f0e-9a4b-7c12-8d3e-6f1a2b3c4d5e","user_id":-5,"channel_id":1,"content":"x","created_at":"2026-01-01T00:00:00Z"}"#.to_owned(),
            _ => format!("[{i}]"),
        };
        let _: () = redis::cmd("LPUSH")
            .arg(&stack.keys.pending_messages)
            .arg(poison)
            .query_async(&mut redis)
            .await
            .expect("LPUSH");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let accepted = producing.await.expect("producers");
    stack.assert_exactly_once(&accepted, SETTLE).await;
    let (letters, dead): (i64, i64) = redis::pipe()
        .cmd("GET")
        .arg(&stack.keys.dead_letters)
        .cmd("LLEN")
        .arg(&stack.keys.dead_messages)
        .query_async(&mut redis)
        .await
        .expect("counters");
    assert_eq!((letters, dead), (20, 20));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_answers_429_and_the_queue_stays_under_its_bound() {
    let _shared = crate::MACHINE.read().await;
    const BOUND: i64 = 2_000;
    let bound = BOUND.to_string();
    let mut stack = Stack::start_with(
        "overload",
        3,
        Options {
            extra: &[("INGEST__MAX_QUEUE_DEPTH", &bound)],
            ..Default::default()
        },
    )
    .await;
    // Workers stopped: the queue fills up to the bound and no further.
    for worker in &mut stack.workers {
        worker.stop(Duration::from_secs(10)).await.expect("stops");
    }
    let watcher = {
        let mut redis = stack.redis().await;
        let key = stack.keys.pending_messages.clone();
        tokio::spawn(async move {
            let mut peak = 0i64;
            for _ in 0..600 {
                let len: i64 = redis::cmd("LLEN")
                    .arg(&key)
                    .query_async(&mut redis)
                    .await
                    .expect("LLEN");
                peak = peak.max(len);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let producing = tokio::spawn(produce_owned(stack.ingest_url.clone(), 6_000, 16));
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut probes = Vec::new();
    let refused = loop {
        let r = http
            .post(format!("{}/messages", stack.ingest_url))
            .header("content-type", "application/json")
            .body(r#"{"user_id": 1, "channel_id": 1, "content": "probe"}"#)
            .send()
            .await
            .expect("sent");
        if r.status().as_u16() == 429 {
            break r;
        }
        assert_eq!(r.status().as_u16(), 202);
        let body: serde_json::Value = r.json().await.expect("json");
        probes.push(
            body["message_id"]
                .as_str()
                .expect("id")
                .parse::<uuid::Uuid>()
                .expect("uuid"),
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never filled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "queue_full");

    // Workers back: the queue drains, the producers' retries get through.
    stack.workers = (0..3).map(|_| stack.spawn("sluice-worker")).collect();
    let mut accepted = producing.await.expect("producers");
    accepted.extend(probes);
    let peak = watcher.await.expect("watcher");
    assert!(
        peak <= BOUND,
        "queue peaked at {peak}, above its bound {BOUND}"
    );
    assert!(peak >= BOUND - 100, "the queue did fill (peak {peak})");
    stack.assert_exactly_once(&accepted, SETTLE).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_each_service_under_load_loses_nothing() {
    let _shared = crate::MACHINE.read().await;
    let mut stack = Stack::start("sigterm", 3).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws/stats", stack.gateway_port))
            .await
            .expect("WebSocket");
    let producing = tokio::spawn(produce_owned(stack.ingest_url.clone(), 30_000, 16));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = stack.workers[0]
        .stop(Duration::from_secs(15))
        .await
        .expect("worker exits");
    assert!(
        status.success(),
        "worker exit 0:\n{}",
        stack.workers[0].logs()
    );
    stack.workers[0] = stack.spawn("sluice-worker");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = stack
        .ingest
        .stop(Duration::from_secs(15))
        .await
        .expect("ingest exits");
    assert!(status.success(), "ingest exit 0:\n{}", stack.ingest.logs());
    stack.ingest = stack.spawn("sluice-ingest");

    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.gateway.signal(Signal::SIGTERM).expect("SIGTERM");
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(6), ws.next())
            .await
            .expect("close within 5 s")
        {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close, Some(1001));
    let status = stack
        .gateway
        .wait(Duration::from_secs(10))
        .await
        .expect("gateway exits");
    assert!(status.success());
    stack.gateway = stack.spawn("sluice-gateway");

    let accepted = producing.await.expect("producers");
    stack.assert_exactly_once(&accepted, SETTLE).await;
    stack.stop().await;
}

async fn produce_owned(url: String, total: usize, concurrency: usize) -> Vec<uuid::Uuid> {
    produce(&url, total, concurrency).await
}

#[tokio::test]
async fn a_redis_outage_is_logged_once_not_once_per_call() {
    let _shared = crate::MACHINE.read().await;
    let db = sluice_tests::TestDb::create("outagelog")
        .await
        .expect("database");
    let prefix = sluice_tests::unique_prefix("outagelog");
    let listen = format!("127.0.0.1:{}", sluice_tests::process::free_port());
    let nowhere = format!("redis://127.0.0.1:{}", sluice_tests::process::free_port());
    let env = sluice_tests::env_for(
        &prefix,
        &db,
        &[
            ("INGEST__LISTEN", listen.as_str()),
            ("REDIS__URL", nowhere.as_str()),
            ("INGEST__SERVE_STATS", "false"),
        ],
    );
    let mut ingest =
        sluice_tests::process::Service::start("sluice-ingest", &env, &[]).expect("starts");
    sluice_tests::process::wait_http_ok(
        &mut ingest,
        &format!("http://{listen}/health"),
        Duration::from_secs(20),
    )
    .await
    .expect("ingest up without Redis");
    // The queue gauge reads Redis ten times a second, and every POST tries too.
    let http = reqwest::Client::new();
    for _ in 0..20 {
        let r = http
            .post(format!("http://{listen}/messages"))
            .header("content-type", "application/json")
            .body(r#"{"user_id": 1, "channel_id": 1, "content": "no Redis"}"#)
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 503);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let logs = ingest.logs();
    // Each part that needs Redis (requests, the subscription for waits) says so once, naming
    // where Redis is; none repeats itself per call.
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("Redis"))
        .map(|l| l.split_once("WARN").map_or(l, |(_, message)| message))
        .collect();
    let distinct: std::collections::HashSet<&&str> = warnings.iter().collect();
    assert_eq!(
        distinct.len(),
        warnings.len(),
        "a warning repeated:\n{logs}"
    );
    let outage: Vec<_> = warnings
        .iter()
        .filter(|w| w.contains("unavailable"))
        .collect();
    assert_eq!(outage.len(), 1, "one warning for the outage:\n{logs}");
    assert!(outage[0].contains("Redis at 127.0.0.1:"), "{logs}");
    assert!(!logs.contains("LLEN failed\n"), "{logs}");
    ingest.stop(Duration::from_secs(10)).await.expect("stops");
    db.drop_db().await.expect("drop");
}

#[tokio::test]
async fn while_redis_is_down_no_old_snapshot_passes_for_the_present() {
    let _shared = crate::MACHINE.read().await;
    let mut redis = RedisServer::start().await.expect("private Redis");
    let stack = Stack::start_with(
        "stalesnap",
        1,
        Options {
            redis_url: Some(redis.url()),
            ..Default::default()
        },
    )
    .await;
    let url = format!("ws://127.0.0.1:{}/ws/stats", stack.gateway_port);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket");
    while next_json(&mut ws).await["type"] != "stats" {}
    redis.stop().await.expect("Redis stops");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    use futures_util::SinkExt;
    ws.send(Message::text(r#"{"type":"get_snapshot"}"#))
        .await
        .expect("sent");
    let answer = loop {
        let message = next_json(&mut ws).await;
        if message["type"] != "status" && message["type"] != "stats" {
            break message;
        }
    };
    assert_eq!(answer["code"], "no_snapshot", "{answer}");
    let r = reqwest::get(format!("http://127.0.0.1:{}/stats", stack.gateway_port))
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 503);
    redis.start_again().await.expect("Redis restarts");
    stack.stop().await;
    drop(redis);
}

async fn next_json<S>(ws: &mut S) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame")
            .expect("open")
            .expect("ok");
        if let Message::Text(text) = frame {
            return serde_json::from_str(text.as_str()).expect("JSON");
        }
    }
}

/// One `POST /messages/batch` of 100 messages of 2,000 characters: the ids when queued, the
/// error code when refused.
async fn post_large_batch(url: &str, i: usize) -> Result<Vec<uuid::Uuid>, (u16, String)> {
    let content = format!("{i:06}{}", "x".repeat(1_994));
    let batch: Vec<_> = (0..100)
        .map(|_| serde_json::json!({"user_id": 1, "channel_id": 1, "content": content}))
        .collect();
    let response = reqwest::Client::new()
        .post(format!("{url}/messages/batch"))
        .json(&batch)
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("json");
    match status {
        202 => Ok(serde_json::from_value(body["message_ids"].clone()).expect("ids")),
        _ => Err((
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_with_503_and_keeps_everything_it_acknowledged() {
    let _shared = crate::MACHINE.read().await;
    let redis = RedisServer::start().await.expect("private Redis");
    let mut conn = sluice_tests::redis_at(&redis.url()).await.expect("redis");
    for (name, value) in [("maxmemory", "24mb"), ("maxmemory-policy", "noeviction")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async(&mut conn)
            .await
            .expect("CONFIG SET");
    }
    let options = Options {
        redis_url: Some(redis.url()),
        ..Default::default()
    };
    let mut stack = Stack::start_with("full", 1, options).await;
    // The worker has created the table; with it stopped, push until Redis is full (24 MB is
    // about 100 batches of 200 KB).
    let mut worker = stack.workers.pop().expect("a worker");
    let _ = worker.stop(Duration::from_secs(10)).await;
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..400 {
        match post_large_batch(&stack.ingest_url, i).await {
            Ok(ids) => accepted.extend(ids),
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    assert_eq!(refused, Some((503, "redis_full".to_owned())));
    let health = crate::stack::get_json(&format!("{}/health", stack.ingest_url)).await;
    assert_eq!(
        health["redis"], "up",
        "a full Redis is not a Redis that is down"
    );

    // A worker drains the full Redis (its scripts may run past maxmemory, BLMOVE may not):
    // every acknowledged message is persisted once, and pushes fit again.
    stack.workers.push(stack.spawn("sluice-worker"));
    stack
        .assert_exactly_once(&accepted, Duration::from_secs(60))
        .await;
    let more = post_large_batch(&stack.ingest_url, 999)
        .await
        .expect("queued again");
    accepted.extend(more);
    stack
        .assert_exactly_once(&accepted, Duration::from_secs(30))
        .await;
    eprintln!(
        "figures: 24 MB Redis: {} messages acknowledged before 503 redis_full, all persisted once",
        accepted.len() - 100
    );
    stack.stop().await;
    drop(redis);
}
