//! The attacks of the third hardening pass: through group commit, the queue bound, the
//! `accepted_total` count, the read path, the dead-letters list, the admin token and heavy
//! batches. Each reports what happened; `tests/e2e` and the crates' own tests check the same
//! at a smaller scale.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use sluice_client::summary::summarize;

use super::Targets;
use super::hardening::{batch_of, send};
use crate::process::cpu_seconds;

/// `LLEN pending_messages` and `accepted_total`.
async fn queued_and_counted(t: &Targets) -> anyhow::Result<(u64, u64)> {
    let mut redis = redis_at(&t.redis_url).await?;
    let prefix = &t.key_prefix;
    let len: u64 = redis.llen(format!("{prefix}pending_messages")).await?;
    let total: Option<u64> = redis.get(format!("{prefix}accepted_total")).await?;
    Ok((len, total.unwrap_or(0)))
}

/// A connection to the services' Redis.
async fn redis_at(url: &str) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?)
}

/// Posts `body` to `path` with optional extra headers; the status, 0 without an answer.
async fn post(
    http: &reqwest::Client,
    addr: &str,
    path: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> u16 {
    let mut request = http
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.map_or(0, |r| r.status().as_u16())
}

/// An idempotent batch of 9,000 messages (more values than one Lua `unpack` takes), posted
/// twice with one key: what each answer said and what was queued. Needs the API to run with
/// `SLUICE__INGEST__BATCH_MAX_MESSAGES` of 9,000 or more.
pub async fn big_idempotent(t: &Targets) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let key = format!("big-idempotent-{}", uuid::Uuid::now_v7());
    let (before, counted_before) = queued_and_counted(t).await?;
    let mut answers = Vec::new();
    for _ in 0..2 {
        let body = batch_of(9_000, "big");
        answers.push(post(&http, &t.ingest.0, "/messages/batch", Some(&key), body).await);
    }
    let (after, counted_after) = queued_and_counted(t).await?;
    Ok(format!(
        "answers {answers:?}; queued {} messages, accepted_total +{}",
        after.saturating_sub(before),
        counted_after.saturating_sub(counted_before)
    ))
}

/// 32 connections posting batches of 1,000 until each is refused with 429: how far past its
/// bound the queue went. Run it against an API with no worker draining, alone.
pub async fn queue_bound(t: &Targets) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let clients: Vec<_> = (0..32)
        .map(|client| {
            let (http, addr) = (http.clone(), t.ingest.0.clone());
            tokio::spawn(async move {
                let (mut queued, started) = (0u64, Instant::now());
                while started.elapsed() < Duration::from_secs(60) {
                    let body = batch_of(1_000, &format!("bound {client}"));
                    match post(&http, &addr, "/messages/batch", None, body).await {
                        202 => queued += 1_000,
                        429 => break,
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                queued
            })
        })
        .collect();
    let mut answered = 0;
    for client in clients {
        answered += client.await?;
    }
    let (queued, counted) = queued_and_counted(t).await?;
    Ok(format!(
        "{answered} messages answered 202; pending_messages {queued}; accepted_total {counted}"
    ))
}

/// 2,000 single messages and 10 batches of 1,000 whose clients hang up as soon as they have
/// sent: what was queued against what `accepted_total` counted.
pub async fn hangups(t: &Targets) -> anyhow::Result<String> {
    let (before, counted_before) = queued_and_counted(t).await?;
    let single = br#"{"user_id": 1, "channel_id": 1, "content": "hung up"}"#;
    for chunk in 0..20 {
        let mut streams = Vec::new();
        for _ in 0..100 {
            streams.push(send(&t.ingest.0, "/messages", "", single).await?);
        }
        drop(streams);
        if chunk % 2 == 0 {
            let body = batch_of(1_000, "hung up");
            drop(send(&t.ingest.0, "/messages/batch", "", &body).await?);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, counted_after) = queued_and_counted(t).await?;
    Ok(format!(
        "pending_messages +{}, accepted_total +{}",
        after.saturating_sub(before),
        counted_after.saturating_sub(counted_before)
    ))
}

/// 128 connections reading `GET /messages` with a channel and a user that never posted there
/// for 10 s, while `GET /ready` is asked every 100 ms: what readiness said, and what the reads
/// were answered. With `--postgres`, the channel is first given a million rows, and the user a
/// million in another channel, so that neither filter alone is selective.
pub async fn slow_reads(t: &Targets) -> anyhow::Result<String> {
    if let Some(url) = &t.postgres_url {
        seed_channel(url).await?;
    }
    let http = reqwest::Client::new();
    let stop = Instant::now() + Duration::from_secs(10);
    let readers: Vec<_> = (0..128)
        .map(|_| {
            let (http, addr) = (http.clone(), t.ingest.0.clone());
            tokio::spawn(async move {
                let mut answers = std::collections::BTreeMap::<u16, u64>::new();
                while Instant::now() < stop {
                    let url = format!("http://{addr}/messages?channel_id=999999&user_id=1");
                    let status = http
                        .get(url)
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16());
                    *answers.entry(status).or_default() += 1;
                }
                answers
            })
        })
        .collect();
    let mut ready = std::collections::BTreeMap::<u16, u64>::new();
    let mut slowest = Duration::ZERO;
    while Instant::now() < stop {
        let started = Instant::now();
        let status = http
            .get(format!("http://{}/ready", t.ingest.0))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        slowest = slowest.max(started.elapsed());
        *ready.entry(status).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut reads = std::collections::BTreeMap::<u16, u64>::new();
    for reader in readers {
        for (status, n) in reader.await? {
            *reads.entry(status).or_default() += n;
        }
    }
    Ok(format!(
        "/ready answered {ready:?} (slowest {slowest:.0?}); the reads {reads:?}"
    ))
}

/// Gives channel 999999 a million rows of users 2 to 1,001, and user 1 a million rows in
/// channel 999998 (once), straight into PostgreSQL.
async fn seed_channel(url: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let have: i64 = client
        .query_one(
            "SELECT count(*) FROM messages WHERE channel_id = 999999",
            &[],
        )
        .await?
        .get(0);
    if have < 1_000_000 {
        client
            .batch_execute(
                "INSERT INTO messages (id, user_id, channel_id, content, created_at) \
                 SELECT gen_random_uuid(), 2 + i % 1000, 999999, 'seed', now() \
                 FROM generate_series(1, 1000000) i; \
                 INSERT INTO messages (id, user_id, channel_id, content, created_at) \
                 SELECT gen_random_uuid(), 1, 999998, 'seed', now() \
                 FROM generate_series(1, 1000000) i; \
                 ANALYZE messages",
            )
            .await?;
    }
    Ok(())
}

/// An entry whose payload is an object, a raw entry that is not UTF-8 and 25 entries of 2 MB
/// of garbage in `dead_messages`, then one page of 25 through the gateway: the answer, its
/// size, and the gateway's memory.
pub async fn dead_letter_shapes(t: &Targets) -> anyhow::Result<String> {
    let Some(token) = &t.admin_token else {
        return Ok("skipped: no --admin-token".into());
    };
    let mut redis = redis_at(&t.redis_url).await?;
    let list = format!("{}dead_messages", t.key_prefix);
    let garbage = vec![0x80u8; 2 << 20];
    for _ in 0..25 {
        let _: () = redis.lpush(&list, &garbage).await?;
    }
    let _: () = redis.lpush(&list, b"\xc3\x28 not UTF-8".as_slice()).await?;
    let _: () = redis
        .lpush(&list, r#"{"payload":{"an":"object"},"reason":"r"}"#)
        .await?;
    let before = super::mib(t.gateway.1);
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/admin/dead-letters?limit=25",
            t.gateway.0
        ))
        .bearer_auth(token)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    let page: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let listed = page["dead_letters"].as_array().map_or(0, Vec::len);
    let peak = super::mib(t.gateway.1);
    let _: () = redis.ltrim(&list, 27, -1).await?;
    Ok(format!(
        "{status} in {:.0?}: {listed} entries, {} KiB; gateway RSS {before:.0} -> {peak:.0} MiB",
        started.elapsed(),
        body.len() / 1024
    ))
}

/// 20,000 requests with a wrong admin token, then 20,000 with the right one, on 8 kept-alive
/// connections: the ingest API's CPU per request for each, and how many lines it logged.
pub async fn admin_guess(t: &Targets) -> anyhow::Result<String> {
    let Some(token) = &t.admin_token else {
        return Ok("skipped: no --admin-token".into());
    };
    let wrong = "x".repeat(token.len());
    let mut out = Vec::new();
    for (name, token) in [("wrong", wrong.as_str()), ("right", token.as_str())] {
        let cpu = cpu_seconds(t.ingest.1)?;
        let started = Instant::now();
        let statuses = admin_calls(&t.ingest.0, token, 20_000).await?;
        let used = cpu_seconds(t.ingest.1)? - cpu;
        out.push(format!(
            "{name} token: {statuses:?} in {:.1} s, {:.1} µs of ingest CPU per request",
            started.elapsed().as_secs_f64(),
            used * 1e6 / 20_000.0
        ));
    }
    Ok(out.join("; "))
}

/// `n` calls of `GET /admin/dead-letters?limit=1` with `token`, 8 at a time: their statuses.
async fn admin_calls(
    addr: &str,
    token: &str,
    n: usize,
) -> anyhow::Result<std::collections::BTreeMap<u16, u64>> {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/admin/dead-letters?limit=1");
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, token) = (http.clone(), url.clone(), token.to_owned());
            tokio::spawn(async move {
                let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
                for _ in 0..n / 8 {
                    let sent = http.get(&url).bearer_auth(&token).send().await;
                    let status = match sent {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let _ = r.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    *statuses.entry(status).or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    let mut all = std::collections::BTreeMap::new();
    for caller in callers {
        for (status, count) in caller.await? {
            *all.entry(status).or_default() += count;
        }
    }
    Ok(all)
}

/// A light client posting one message every 5 ms for 10 s: alone; while 3 connections post
/// 8 MB batches (1,000 messages of 2,000 four-byte characters) that fail validation (the last
/// message is empty), back to back; and while they post valid ones under idempotency keys.
/// Its latency each time.
pub async fn heavy_batches(t: &Targets) -> anyhow::Result<String> {
    let alone = light_client(&t.ingest.0, Duration::from_secs(10)).await?;
    let (invalid, refused) = under_batches(t, false).await?;
    let (valid, queued) = under_batches(t, true).await?;
    Ok(format!(
        "light client alone: {alone}; with {refused} invalid 8 MB batches posted meanwhile: \
         {invalid}; with {queued} valid ones: {valid}"
    ))
}

/// The light client's figures while 3 connections post 8 MB batches (valid and idempotent, or
/// not valid), and how many batches they posted.
async fn under_batches(t: &Targets, valid: bool) -> anyhow::Result<(String, u64)> {
    let stop = Instant::now() + Duration::from_secs(11);
    let mut body = batch_of(1_000, &"😀".repeat(2_000));
    if !valid {
        // `...}]` → `...},{"user_id":1,"channel_id":1,"content":""}]`: the last message fails.
        body.pop();
        body.extend_from_slice(br#",{"user_id":1,"channel_id":1,"content":""}]"#);
    }
    let attackers: Vec<_> = (0..3)
        .map(|attacker| {
            let (addr, body) = (t.ingest.0.clone(), body.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut sent = 0;
                while Instant::now() < stop {
                    let key = format!("heavy-{attacker}-{sent}-{}", uuid::Uuid::now_v7());
                    post(&http, &addr, "/messages/batch", Some(&key), body.clone()).await;
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let figures = light_client(&t.ingest.0, Duration::from_secs(10)).await?;
    let mut batches = 0;
    for attacker in attackers {
        batches += attacker.await?;
    }
    Ok((figures, batches))
}

/// One message every 5 ms on one kept-alive connection for `how_long`: p50, p99 and max.
async fn light_client(addr: &str, how_long: Duration) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/messages");
    let body = r#"{"user_id": 1, "channel_id": 1, "content": "light"}"#;
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    let (started, mut samples, mut failed) = (Instant::now(), Vec::new(), 0);
    while started.elapsed() < how_long {
        ticker.tick().await;
        let sent = Instant::now();
        let ok = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 202);
        samples.push(sent.elapsed().as_secs_f64() * 1e3);
        failed += u32::from(!ok);
    }
    let s = summarize(&samples).unwrap_or(sluice_client::summary::Summary {
        count: 0,
        p50: 0.0,
        p99: 0.0,
        max: 0.0,
    });
    Ok(format!(
        "{} posts, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {failed} not 202",
        s.count, s.p50, s.p99, s.max
    ))
}
