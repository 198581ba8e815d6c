//! Attacks on the ingest API.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Target, raw_http, status_and_json};

const MESSAGE: &str = r#"{"user_id": 1, "channel_id": 1, "content": "legit"}"#;

/// Asserts that a legitimate `POST /messages` is accepted now.
async fn assert_legit_accepted(target: &Target) {
    let response = reqwest::Client::new()
        .post(target.url("/messages"))
        .header("content-type", "application/json")
        .body(MESSAGE)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("the legitimate client is answered");
    assert_eq!(response.status(), 202);
}

fn post_head(path: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_get_408_with_a_json_body_and_the_connection_closes() {
    let target = Target::start(
        "sluice-ingest",
        "atk_slow",
        &[("INGEST__BODY_TIMEOUT_MS", "1000")],
    )
    .await;

    // A chunked body with one chunk every 400 ms, forever.
    let mut drip = super::connect(target.port, 0).await;
    drip.write_all(post_head("/messages", "Transfer-Encoding: chunked\r\n").as_bytes())
        .await
        .expect("head");
    let started = Instant::now();
    let dripping = tokio::spawn(async move {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..50 {
            if drip.write_all(b"1\r\n \r\n").await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(400), drip.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    // A body shorter than its Content-Length.
    let short_request = format!(
        "{}{}",
        post_head("/messages", "Content-Length: 100\r\n"),
        r#"{"user_id""#
    );
    let short = raw_http(
        target.port,
        short_request.as_bytes(),
        Duration::from_secs(5),
    );
    assert_legit_accepted(&target).await;
    let (short, drip) = tokio::join!(short, dripping);
    let drip = drip.expect("drip task");
    for answer in [&short, &drip] {
        let (status, body) = status_and_json(answer);
        assert_eq!(status, 408, "{answer}");
        assert_eq!(body["error"]["code"], "body_timeout", "{answer}");
    }
    eprintln!(
        "figures: drip-fed body: 408 and closed after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the drip was held {:?}",
        started.elapsed()
    );
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_batch_uploads_hold_bounded_memory_and_past_the_budget_get_503() {
    let _shared = crate::MACHINE.read().await;
    let settings = [
        ("INGEST__BODY_TIMEOUT_MS", "3000"),
        ("INGEST__MAX_BATCH_BODY_BYTES", "2097152"),
        ("INGEST__MAX_BUFFERED_BYTES", "16777216"),
    ];
    let target = Target::start("sluice-ingest", "atk_stall_up", &settings).await;
    let baseline = target.rss_mib();
    // 100 uploads that declare 2 MiB, send 256 KiB and stall.
    let head = post_head("/messages/batch", "Content-Length: 2097152\r\n");
    let mut uploads = Vec::new();
    for _ in 0..100 {
        let mut stream = super::connect(target.port, 0).await;
        stream.write_all(head.as_bytes()).await.expect("head");
        let _ = stream.write_all(&[b' '; 256 * 1024]).await;
        uploads.push(stream);
    }
    let peak = super::peak_while(Duration::from_millis(1500), || target.rss_mib()).await;
    assert_legit_accepted(&target).await;
    let health = target.health().await;
    let buffered = health["connections"]["buffered_bytes"]
        .as_u64()
        .expect("buffered_bytes");
    assert!(
        buffered <= 12 << 20,
        "{buffered} bytes buffered; batches may hold 12 MiB of 16"
    );
    // Every upload is answered: 503 at once past the budget, 408 at the body timeout.
    let mut statuses = Vec::new();
    for mut stream in uploads {
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(6), stream.read_to_end(&mut answer)).await;
        let (status, body) = status_and_json(&String::from_utf8_lossy(&answer));
        assert!(
            body["error"]["code"].is_string(),
            "status {status} without a JSON error"
        );
        statuses.push(status);
    }
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    let timed_out = statuses.iter().filter(|&&s| s == 408).count();
    eprintln!(
        "figures: 100 stalled uploads: RSS {baseline:.1} -> peak {peak:.1} MiB; {busy} answered 503, {timed_out} 408"
    );
    assert!(
        busy > 0 && timed_out > 0 && busy + timed_out == 100,
        "{statuses:?}"
    );
    assert!(
        peak - baseline < 48.0,
        "RSS grew {:.1} MiB for 100 stalled uploads of 256 KiB",
        peak - baseline
    );
    assert_legit_accepted(&target).await;
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_json_bodies_and_one_summary_log_line() {
    let target = Target::start("sluice-ingest", "atk_parse", &[]).await;
    let long_query = format!(
        "GET /messages?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100_000)
    );
    let huge_head = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "b".repeat(140_000)
    );
    let cases: [(&[u8], u16, &str); 4] = [
        (
            b"POST /messages HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            b"GET /mess ages HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "malformed_request",
        ),
        (long_query.as_bytes(), 400, "malformed_request"),
        (huge_head.as_bytes(), 431, "request_head_too_large"),
    ];
    for (request, expected_status, expected_code) in cases {
        let answer = raw_http(target.port, request, Duration::from_secs(5)).await;
        let (status, body) = status_and_json(&answer);
        assert_eq!(status, expected_status, "{answer}");
        assert_eq!(body["error"]["code"], expected_code, "{answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/json")
        );
    }
    for _ in 0..300 {
        raw_http(
            target.port,
            b"GET /a b HTTP/1.1\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
    }
    assert_legit_accepted(&target).await;
    let logs = target.service.logs();
    let noisy = logs.lines().filter(|l| l.contains("actix_http")).count();
    eprintln!("figures: 304 malformed requests: {noisy} actix_http log lines");
    assert!(
        noisy <= 20,
        "{noisy} actix_http lines for 304 malformed requests"
    );
    assert!(
        logs.contains("answered malformed HTTP requests"),
        "no summary line:\n{logs}"
    );
    assert_eq!(
        target.health().await["connections"]["malformed_requests"],
        304
    );
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_max_connections_wait_in_the_backlog() {
    let _shared = crate::MACHINE.read().await;
    let settings = [
        ("INGEST__MAX_CONNECTIONS", "32"),
        ("INGEST__HTTP_WORKERS", "2"),
    ];
    let target = Target::start("sluice-ingest", "atk_conns", &settings).await;
    let before = target.sockets();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(super::connect(target.port, 0).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = target.sockets() - before;
    eprintln!("figures: 300 idle connections, limit 32: the process holds {held}");
    assert!(
        held <= 32,
        "the process holds {held} client sockets for a limit of 32"
    );
    drop(idle);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_legit_accepted(&target).await;
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_capped_and_expire() {
    let settings = [
        ("INGEST__IDEMPOTENCY_MAX_KEYS", "50"),
        ("INGEST__IDEMPOTENCY_TTL_SECS", "2"),
    ];
    let target = Target::start("sluice-ingest", "atk_idem", &settings).await;
    let client = reqwest::Client::new();
    let post = |key: String| {
        client
            .post(target.url("/messages"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(MESSAGE)
            .send()
    };
    let mut first_answer = String::new();
    for i in 0..120 {
        let answer = post(format!("key-{i}")).await.expect("answered");
        assert_eq!(answer.status(), 202);
        if i == 119 {
            first_answer = answer.text().await.expect("body");
        }
    }
    let mut redis = sluice_tests::redis().await.expect("redis");
    let index = format!("{}idempotency_keys", target.prefix);
    let kept: u64 = redis.zcard(&index).await.expect("zcard");
    assert_eq!(kept, 50);
    let stored = sluice_tests::keys_under(&mut redis, &format!("{}idempotency:", target.prefix))
        .await
        .expect("scan");
    assert_eq!(stored.len(), 50, "{stored:?}");
    // The newest key still replays the first answer and queues nothing.
    let pending = format!("{}pending_messages", target.prefix);
    let queued: u64 = redis.llen(&pending).await.expect("llen");
    let replay = post("key-119".into()).await.expect("answered");
    assert_eq!(replay.text().await.expect("body"), first_answer);
    assert_eq!(redis.llen::<_, u64>(&pending).await.expect("llen"), queued);
    // Past the retention window the keys are gone.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let stored = sluice_tests::keys_under(&mut redis, &format!("{}idempotency:", target.prefix))
        .await
        .expect("scan");
    assert!(stored.is_empty(), "{stored:?}");
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_answers_are_bounded_in_bytes() {
    let settings = [("INGEST__IDEMPOTENCY_MAX_BYTES", "1048576")];
    let target = Target::start("sluice-ingest", "atk_idem_bytes", &settings).await;
    let client = reqwest::Client::new();
    let batch = format!("[{}]", vec![MESSAGE; 1_000].join(","));
    for i in 0..60 {
        let answer = client
            .post(target.url("/messages/batch"))
            .header("content-type", "application/json")
            .header("idempotency-key", format!("batch-{i}"))
            .body(batch.clone())
            .send()
            .await
            .expect("answered");
        assert_eq!(answer.status(), 202);
    }
    let mut redis = sluice_tests::redis().await.expect("redis");
    let index = format!("{}idempotency_keys", target.prefix);
    let counted: u64 = redis
        .get(format!("{}idempotency_bytes", target.prefix))
        .await
        .expect("total");
    assert!(
        counted <= 1 << 20,
        "{counted} bytes counted for a 1 MiB bound"
    );
    let stored = sluice_tests::keys_under(&mut redis, &format!("{}idempotency:", target.prefix))
        .await
        .expect("scan");
    let kept: u64 = redis.zcard(&index).await.expect("zcard");
    assert_eq!(stored.len() as u64, kept);
    assert!(
        (20..60).contains(&kept),
        "{kept} of 60 batch answers (41 KB each) kept under 1 MiB"
    );
    // What Redis itself says the answers and the index cost stays near the bound.
    let mut used = 0u64;
    for key in stored.iter().chain(std::iter::once(&index)) {
        let bytes: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(&mut redis)
            .await
            .expect("MEMORY USAGE");
        used += bytes;
    }
    assert!(
        used <= (1 << 20) + (1 << 18),
        "Redis holds {used} bytes of answers and index for a 1 MiB bound"
    );
    // The newest still replays; the oldest is forgotten (queued again: 1,000 more messages).
    eprintln!(
        "figures: 60 batch answers, 1 MiB bound: {kept} kept, {counted} B counted, {used} B in Redis"
    );
    assert!(stored.iter().any(|k| k.ends_with("batch-59")));
    assert!(!stored.iter().any(|k| k.ends_with("batch-0")));
    target.stop().await;
}

/// One connection per message, `count` at once, each sending its POST and reading the answer.
async fn burst(port: u16, count: usize) {
    let length = format!("Content-Length: {}\r\n", MESSAGE.len());
    let request = std::sync::Arc::new(format!("{}{MESSAGE}", post_head("/messages", &length)));
    let mut tasks = Vec::new();
    for _ in 0..count {
        let request = std::sync::Arc::clone(&request);
        tasks.push(tokio::spawn(async move {
            let answer = raw_http(port, request.as_bytes(), Duration::from_secs(20)).await;
            status_and_json(&answer).0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task"), 202);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_drops_back_after_bursts_of_connections() {
    let _shared = crate::MACHINE.read().await;
    sluice_core::cli::raise_open_files_limit();
    let target = Target::start("sluice-ingest", "atk_burst", &[]).await;
    let baseline = target.rss_mib();
    let mut live = Vec::new();
    for _ in 0..3 {
        burst(target.port, 2_000).await;
        live.push(
            target.health().await["memory"]["allocated_bytes"]
                .as_u64()
                .expect("jemalloc"),
        );
    }
    eprintln!(
        "figures: live bytes after each burst of 2,000: {live:?}; RSS at start {baseline:.1} MiB, after {:.1}",
        target.rss_mib()
    );
    // Live bytes do not grow from burst to burst: nothing leaks.
    assert!(
        live[2] <= live[0] + (4 << 20),
        "live bytes after each burst: {live:?}"
    );
    // Idle, the allocator gives the freed pages back.
    let mut rss = target.rss_mib();
    for _ in 0..40 {
        if rss < baseline + 24.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss = target.rss_mib();
    }
    eprintln!("figures: RSS after idling {rss:.1} MiB");
    assert!(
        rss < baseline + 24.0,
        "RSS {rss:.1} MiB 20 s after the bursts, from {baseline:.1} MiB at start"
    );
    assert_legit_accepted(&target).await;
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_oversized_body_gets_413_before_it_is_sent_and_encodings_get_415() {
    let _shared = crate::MACHINE.read().await;
    let target = Target::start("sluice-ingest", "atk_expect", &[]).await;
    // 100 MB announced with Expect: 100-continue, and no body sent: 413 at once, not 100.
    let head = post_head(
        "/messages/batch",
        "Expect: 100-continue\r\nContent-Length: 104857600\r\n",
    );
    let answer = raw_http(target.port, head.as_bytes(), Duration::from_secs(3)).await;
    let (status, body) = status_and_json(&answer);
    assert_eq!(status, 413, "{answer}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");

    // Within the limit, the client is told to go on and the message is queued.
    let mut stream = super::connect(target.port, 0).await;
    let head = post_head(
        "/messages",
        &format!(
            "Expect: 100-continue\r\nConnection: close\r\nContent-Length: {}\r\n",
            MESSAGE.len()
        ),
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
        .await
        .expect("an interim answer")
        .expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 100 Continue"),
        "{:?}",
        &buf[..n]
    );
    stream.write_all(MESSAGE.as_bytes()).await.expect("body");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    // A gzip body, and a bogus coding on a plain body: 415 naming what is accepted.
    for coding in ["gzip", "bogus"] {
        let request = format!(
            "{}{MESSAGE}",
            post_head(
                "/messages",
                &format!(
                    "Content-Encoding: {coding}\r\nConnection: close\r\nContent-Length: {}\r\n",
                    MESSAGE.len()
                )
            )
        );
        let answer = raw_http(target.port, request.as_bytes(), Duration::from_secs(3)).await;
        let (status, body) = status_and_json(&answer);
        assert_eq!(status, 415, "{answer}");
        assert_eq!(body["error"]["code"], "unsupported_content_encoding");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("accept-encoding: identity"),
            "{answer}"
        );
    }
    assert_legit_accepted(&target).await;
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_batches_keep_rss_within_the_budget() {
    let _shared = crate::MACHINE.read().await;
    let settings = [
        ("INGEST__HTTP_WORKERS", "2"),
        ("INGEST__MAX_BATCH_BODY_BYTES", "2097152"),
        ("INGEST__MAX_BUFFERED_BYTES", "33554432"),
    ];
    let target = Target::start("sluice-ingest", "atk_batch_rss", &settings).await;
    let baseline = target.rss_mib();
    // 20 batches of 500 × 1,000 emoji (2 MB each) at once, against a 24 MiB batch share.
    let one =
        serde_json::json!({"user_id": 1, "channel_id": 1, "content": "\u{1F600}".repeat(1_000)});
    let body = std::sync::Arc::new(serde_json::to_string(&vec![one; 500]).expect("json"));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (url, body) = (target.url("/messages/batch"), std::sync::Arc::clone(&body));
        tasks.push(tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body.as_str().to_owned())
                .send()
                .await
                .expect("answered");
            response.status().as_u16()
        }));
    }
    let mut peak = baseline;
    while !tasks.iter().all(tokio::task::JoinHandle::is_finished) {
        peak = peak.max(target.rss_mib());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_legit_accepted(&target).await;
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    let accepted = statuses.iter().filter(|&&s| s == 202).count();
    assert!(
        accepted > 0 && statuses.iter().all(|&s| s == 202 || s == 503),
        "{statuses:?}"
    );
    eprintln!(
        "figures: 20 concurrent 2 MB batches, 32 MiB budget: {accepted} accepted, RSS {baseline:.1} -> peak {peak:.1} MiB"
    );
    // The budget, plus what it does not count: each HTTP thread's Redis write buffer (up to
    // twice the largest command) and the bodies of the batches refused mid-read.
    assert!(
        peak - baseline <= 32.0 + 2.0 * 2.0 * 2.2 + 8.0,
        "RSS grew {:.1} MiB for a 32 MiB budget",
        peak - baseline
    );
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeue_of_many_dead_letters_is_many_small_redis_calls() {
    let _shared = crate::MACHINE.read().await;
    // A private Redis, so that its command counts are this test's alone.
    let redis = sluice_tests::servers::RedisServer::start()
        .await
        .expect("private Redis");
    let url = redis.url();
    let token = "attack-admin-token-0123456789";
    let settings = [("REDIS__URL", url.as_str()), ("INGEST__ADMIN_TOKEN", token)];
    let target = Target::start("sluice-ingest", "atk_requeue", &settings).await;
    let mut conn = sluice_tests::redis_at(&url).await.expect("redis");
    let list = format!("{}dead_messages", target.prefix);
    for _ in 0..20 {
        let mut pipe = redis::pipe();
        for _ in 0..1_000 {
            let letter = serde_json::json!({"payload": MESSAGE, "reason": "test"});
            pipe.lpush(&list, letter.to_string()).ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.expect("LPUSH");
    }
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .expect("RESETSTAT");
    let answer: serde_json::Value = reqwest::Client::new()
        .post(target.url("/admin/dead-letters/requeue"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(
        answer,
        serde_json::json!({"requeued": 20_000, "unreadable": 0})
    );
    assert_legit_accepted(&target).await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    let line = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .expect("script calls");
    let calls: u64 = line
        .split(['=', ','])
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("calls");
    eprintln!("figures: 20,000 dead letters requeued: {line}");
    // 500 entries at most per call, and one call per legitimate message besides.
    assert!(
        calls >= 40,
        "{calls} script calls for 20,000 entries: {line}"
    );
    target.stop().await;
    drop(redis);
}
