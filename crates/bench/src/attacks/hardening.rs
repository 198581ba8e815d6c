//! The attacks of the second hardening pass: through `Prefer: wait`, idempotency, batch
//! bodies, dead letters and the edges of the HTTP parser.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_proto::events::DeadLetter;
use sluice_proto::message::{MessageRequest, NewMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{POST_HEAD, Targets, mib};

/// A request with a JSON body on a fresh connection, not waiting for the answer.
pub(super) async fn send(
    addr: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    Ok(stream)
}

/// The status of the answer on `stream`, `0` when none came within `timeout`.
async fn status(stream: &mut TcpStream, timeout: Duration) -> u16 {
    let mut buf = vec![0u8; 8192];
    match tokio::time::timeout(timeout, stream.read(&mut buf)).await {
        Ok(Ok(n)) if n >= 12 => std::str::from_utf8(&buf[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// `GET /health` of the ingest API: how long it took, and the body.
async fn health(addr: &str) -> (Duration, serde_json::Value) {
    let started = Instant::now();
    let body = async {
        reqwest::get(format!("http://{addr}/health"))
            .await?
            .json::<serde_json::Value>()
            .await
    };
    let body = tokio::time::timeout(Duration::from_secs(60), body).await;
    let value = body.ok().and_then(Result::ok).unwrap_or_default();
    (started.elapsed(), value)
}

/// Sockets the process has open.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
            .count()
    })
}

pub(super) fn batch_of(messages: usize, content: &str) -> Vec<u8> {
    let one = serde_json::json!({"user_id": 1, "channel_id": 1, "content": content});
    serde_json::to_vec(&vec![one; messages]).unwrap_or_default()
}

/// 600 waiting requests whose clients hang up after 2 s: how soon the API is itself again.
pub async fn hangup_waits(t: &Targets) -> anyhow::Result<String> {
    let (addr, pid) = (&t.ingest.0, t.ingest.1);
    let before = sockets(pid);
    let body = batch_of(10, "wait");
    let mut clients = Vec::new();
    for _ in 0..600 {
        clients.push(send(addr, "/messages/batch", "Prefer: wait=30\r\n", &body).await?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(clients);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (took, body) = health(addr).await;
    let waiting = body["connections"]["waiting_ids"].to_string();
    Ok(format!(
        "600 waiting batches hung up: 1 s later GET /health took {} ms, waiting_ids {waiting}, ingest sockets {before} -> {}",
        took.as_millis(),
        sockets(pid)
    ))
}

/// 12 waiting 8 MB batches whose clients stay: does another client's 8 MB batch fit?
pub async fn waiting_bodies(t: &Targets) -> anyhow::Result<String> {
    let (addr, pid) = (&t.ingest.0, t.ingest.1);
    let body = batch_of(1_000, &"\u{1F600}".repeat(2_000));
    let mut waiting = Vec::new();
    for _ in 0..12 {
        waiting.push(send(addr, "/messages/batch", "Prefer: wait=30\r\n", &body).await?);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut other = send(addr, "/messages/batch", "", &body).await?;
    let other = status(&mut other, Duration::from_secs(30)).await;
    let (_, health) = health(addr).await;
    let rss = mib(pid);
    drop(waiting);
    Ok(format!(
        "12 waiting 8 MB batches held: another client's 8 MB batch got {other}, buffered_bytes {}, ingest RSS {rss:.0} MiB",
        health["connections"]["buffered_bytes"]
    ))
}

/// 20 concurrent 8 MB batches (1,000 × 2,000 emoji): statuses and the peak RSS.
pub async fn batch_memory(t: &Targets) -> anyhow::Result<String> {
    let (addr, pid) = (t.ingest.0.clone(), t.ingest.1);
    let body: Arc<[u8]> = batch_of(1_000, &"\u{1F600}".repeat(2_000)).into();
    let before = mib(pid);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (addr, body) = (addr.clone(), Arc::clone(&body));
        tasks.push(tokio::spawn(async move {
            let mut stream = send(&addr, "/messages/batch", "", &body).await.ok()?;
            Some(status(&mut stream, Duration::from_secs(60)).await)
        }));
    }
    let mut peak = before;
    while !tasks.iter().all(tokio::task::JoinHandle::is_finished) {
        peak = peak.max(mib(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut statuses = std::collections::BTreeMap::new();
    for task in tasks {
        *statuses.entry(task.await?.unwrap_or(0)).or_insert(0) += 1;
    }
    Ok(format!(
        "20 concurrent 8 MB batches: {statuses:?}; ingest RSS {before:.0} -> peak {peak:.0} MiB"
    ))
}

/// One waiting request and 20 waiting retries of its `Idempotency-Key`: when each is answered.
pub async fn concurrent_waits(t: &Targets) -> anyhow::Result<String> {
    let addr = &t.ingest.0;
    let key = format!(
        "Idempotency-Key: attack-{}\r\nPrefer: wait=20\r\n",
        uuid::Uuid::now_v7()
    );
    let body = br#"{"user_id": 1, "channel_id": 1, "content": "waited"}"#;
    let started = Instant::now();
    let timed = |mut stream: TcpStream| async move {
        let status = status(&mut stream, Duration::from_secs(30)).await;
        (status, started.elapsed().as_secs_f64())
    };
    let first = tokio::spawn(timed(send(addr, "/messages", &key, body).await?));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut retries = Vec::new();
    for _ in 0..20 {
        retries.push(tokio::spawn(timed(
            send(addr, "/messages", &key, body).await?,
        )));
    }
    let (status, at) = first.await?;
    let mut answers = Vec::new();
    for retry in retries {
        answers.push(retry.await?);
    }
    let earliest = answers.iter().map(|a| a.1).fold(f64::MAX, f64::min);
    let statuses: std::collections::BTreeSet<u16> = answers.iter().map(|a| a.0).collect();
    Ok(format!(
        "original answered {status} at {at:.2} s; 20 retries {statuses:?}, the first at {earliest:.2} s"
    ))
}

/// 200 batches of 1,000 messages, each under its own `Idempotency-Key`: what their answers
/// cost Redis, and what the API counts.
pub async fn idempotency_batches(t: &Targets) -> anyhow::Result<String> {
    let mut redis = redis::Client::open(t.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let body = batch_of(1_000, "k");
    let run = uuid::Uuid::now_v7();
    let client = reqwest::Client::new();
    for i in 0..200 {
        client
            .post(format!("http://{}/messages/batch", t.ingest.0))
            .header("content-type", "application/json")
            .header("idempotency-key", format!("{run}-{i}"))
            .body(body.clone())
            .send()
            .await?;
    }
    let key = format!("{}idempotency:{run}-199", t.key_prefix);
    let one: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .query_async(&mut redis)
        .await?;
    let counted: Option<u64> = redis::cmd("GET")
        .arg(format!("{}idempotency_bytes", t.key_prefix))
        .query_async(&mut redis)
        .await?;
    Ok(format!(
        "200 batch answers: MEMORY USAGE of one {} B; idempotency_bytes {}",
        one.unwrap_or(0),
        counted.map_or("absent".into(), |n| n.to_string())
    ))
}

/// An unreadable entry at the oldest end of 100,000 dead letters (about 70 MB): what
/// `requeue?limit=1` does twice; then all requeued at once, and the longest Redis call it made.
pub async fn dead_letters(t: &Targets) -> anyhow::Result<String> {
    let Some(token) = t.admin_token.as_deref() else {
        return Ok("skipped: give --admin-token (the ingest API's ingest.admin_token)".into());
    };
    let mut redis = redis::Client::open(t.redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let list = format!("{}dead_messages", t.key_prefix);
    fill_dead_letters(&mut redis, &list, 100_000).await?;
    // An entry requeue cannot read, at the oldest end: does `limit=1` get past it?
    let _: () = redis::cmd("RPUSH")
        .arg(&list)
        .arg("not json")
        .query_async(&mut redis)
        .await?;
    let admin = reqwest::Client::new();
    let url = format!("http://{}/admin/dead-letters/requeue", t.ingest.0);
    let limited = format!("{url}?limit=1");
    let mut once = Vec::new();
    for _ in 0..2 {
        once.push(
            admin
                .post(&limited)
                .bearer_auth(token)
                .send()
                .await?
                .text()
                .await?,
        );
    }
    let threshold: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("slowlog-log-slower-than")
        .query_async(&mut redis)
        .await?;
    redis::pipe()
        .cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(1_000)
        .cmd("SLOWLOG")
        .arg("RESET")
        .exec_async(&mut redis)
        .await?;
    let started = Instant::now();
    let answer = admin
        .post(&url)
        .bearer_auth(token)
        .send()
        .await?
        .text()
        .await?;
    let took = started.elapsed();
    let slowest = slowest_call(&mut redis).await?;
    if let Some(old) = threshold.get(1) {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("slowlog-log-slower-than")
            .arg(old)
            .query_async(&mut redis)
            .await?;
    }
    let _: () = redis::cmd("DEL").arg(&list).query_async(&mut redis).await?;
    Ok(format!(
        "an unreadable entry oldest, limit=1 twice: {}; then the 100,000 others: {answer} in {:.2} s, slowest Redis call {slowest}",
        once.join(" then "),
        took.as_secs_f64()
    ))
}

/// `count` dead letters, each holding a real envelope of 500 characters.
async fn fill_dead_letters(
    redis: &mut redis::aio::MultiplexedConnection,
    list: &str,
    count: usize,
) -> anyhow::Result<()> {
    let message = MessageRequest::new(1, 1, "d".repeat(500));
    let body = serde_json::to_vec(&message)?;
    for _ in 0..count / 1_000 {
        let mut pipe = redis::pipe();
        for _ in 0..1_000 {
            let envelope = sluice_core::clock::envelope(NewMessage::from_json(&body)?);
            let letter = DeadLetter::new(
                &envelope.to_json(),
                "attack".into(),
                chrono::Utc::now(),
                "attack",
                usize::MAX,
            );
            pipe.cmd("LPUSH")
                .arg(list)
                .arg(serde_json::to_string(&letter)?)
                .ignore();
        }
        pipe.exec_async(redis).await?;
    }
    Ok(())
}

/// The longest call in `SLOWLOG` (those over 1 ms), described.
async fn slowest_call(redis: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<String> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(1_000)
        .query_async(redis)
        .await?;
    let micros = entries
        .iter()
        .filter_map(|e| match e {
            redis::Value::Array(fields) => match fields.get(2) {
                Some(redis::Value::Int(us)) => Some(*us),
                _ => None,
            },
            _ => None,
        })
        .max();
    Ok(match micros {
        Some(us) => format!(
            "{:.1} ms ({} calls over 1 ms)",
            us as f64 / 1_000.0,
            entries.len()
        ),
        None => "under 1 ms (none over 1 ms)".into(),
    })
}

/// `Expect: 100-continue` announcing 100 MB, and bodies with a `Content-Encoding`.
pub async fn edges(t: &Targets) -> anyhow::Result<String> {
    let addr = &t.ingest.0;
    let mut expect = TcpStream::connect(addr).await?;
    let head = format!("{POST_HEAD}Expect: 100-continue\r\nContent-Length: 104857600\r\n\r\n");
    let started = Instant::now();
    expect.write_all(head.as_bytes()).await?;
    let expect = status(&mut expect, Duration::from_secs(5)).await;
    let took = started.elapsed();
    let body = br#"{"user_id": 1, "channel_id": 1, "content": "encoded"}"#;
    let mut codings = Vec::new();
    for coding in ["gzip", "bogus"] {
        let extra = format!("Content-Encoding: {coding}\r\n");
        let mut stream = send(addr, "/messages", &extra, body).await?;
        codings.push(format!(
            "{coding}: {}",
            status(&mut stream, Duration::from_secs(5)).await
        ));
    }
    Ok(format!(
        "Expect with 100 MB: {expect} after {} ms; plain bodies marked {}",
        took.as_millis(),
        codings.join(", ")
    ))
}
