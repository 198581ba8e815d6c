//! Issue 9 end to end: the richer stats, the history, the alert rules deduplicated across
//! gateways, the old stack's URL on the ingest API, and every `sluice` subcommand, all against
//! the real binaries, Redis and PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sluice_proto::message::MessageRequest;
use sluice_tests::process::{Service, binary, free_port, wait_http_ok};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use crate::stack::{Options, Stack};

const ADMIN_TOKEN: &str = "watch-test-admin-token";

/// Fast alerts and worker timeouts, so the tests take seconds.
const FAST: &[(&str, &str)] = &[
    ("WORKER__DEAD_AFTER_MS", "2000"),
    ("GATEWAY__ALERTS__NO_LIVE_WORKERS_FOR_SECS", "1"),
    ("GATEWAY__ALERTS__RESOLVE_AFTER_SECS", "1"),
    ("INGEST__ADMIN_TOKEN", ADMIN_TOKEN),
];

async fn get(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

async fn post(url: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 202);
    response.json().await.expect("json")
}

fn message(i: usize) -> Value {
    json!(MessageRequest::new(1, 2, format!("watch {i}")))
}

/// Polls `check` every 100 ms until it returns Some, at most `timeout`.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A second gateway on the stack's keys.
async fn second_gateway(stack: &Stack) -> (Service, u16) {
    let port = free_port();
    let mut env = stack.env.clone();
    env.push((
        "SLUICE__GATEWAY__LISTEN".into(),
        format!("127.0.0.1:{port}"),
    ));
    let mut gateway = Service::start("sluice-gateway", &env, &[]).expect("starts");
    wait_http_ok(
        &mut gateway,
        &format!("http://127.0.0.1:{port}/health"),
        Duration::from_secs(20),
    )
    .await
    .expect("second gateway up");
    (gateway, port)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(url: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    let hello = ws.next().await.expect("frame").expect("ok");
    assert!(hello.to_text().expect("text").contains("\"connected\""));
    ws
}

/// Every `alert` message a socket receives within `window`.
async fn alerts_within(ws: &mut Ws, window: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(text) = frame {
            let value: Value = serde_json::from_str(&text).expect("json");
            if value["type"] == "alert" {
                out.push(value);
            }
        }
    }
    out
}

fn transitions(alerts: &[Value], rule: &str) -> Vec<String> {
    alerts
        .iter()
        .filter(|a| a["rule"] == rule)
        .map(|a| a["state"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn the_new_fields_are_exact_and_an_alert_fires_and_resolves_once_across_gateways() {
    let _machine = crate::MACHINE.read().await;
    let options = Options {
        extra: FAST,
        ..Options::default()
    };
    let mut stack = Stack::start_with("watch-alerts", 2, options).await;
    let (_second, second_port) = second_gateway(&stack).await;
    let gw = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    let ws_url = |base: &str| format!("{}/ws/stats?topics=alerts", base.replace("http", "ws"));
    // Three evaluators: the gateway, a second gateway, and the ingest API's stream (the old URL).
    let mut sockets = vec![
        subscribe(&ws_url(&gw(stack.gateway_port, ""))).await,
        subscribe(&ws_url(&gw(second_port, ""))).await,
        subscribe(&ws_url(&stack.ingest_url)).await,
    ];

    for i in 0..300 {
        post(&format!("{}/messages", stack.ingest_url), message(i)).await;
    }
    let batch: Vec<Value> = (300..400).map(message).collect();
    post(
        &format!("{}/messages/batch", stack.ingest_url),
        json!(batch),
    )
    .await;
    assert_eq!(stack.wait_rows(400, Duration::from_secs(30)).await, 400);
    let stats_url = gw(stack.gateway_port, "/stats");
    // The rates count complete seconds, so the last accepts show once their second is over.
    let stats = eventually(Duration::from_secs(5), "the counts settle", || async {
        let s = get(&stats_url).await;
        let counted = s["accepted_per_second"].as_f64().is_some_and(|r| r > 0.0);
        (s["accepted_total"] == 400 && s["total_messages"] == 400 && s["in_flight"] == 0 && counted)
            .then_some(s)
    })
    .await;
    assert_eq!(stats["queue_depth"], 0);
    assert_eq!(stats["workers_alive"], 2);
    assert_eq!(stats["dead_letters"], 0);
    assert_eq!(stats["oldest_pending_age_ms"], 0);
    for q in ["p50", "p95", "p99"] {
        let ms = stats["commit_latency_ms"][q].as_f64().expect("a latency");
        assert!(ms > 0.0 && ms < 5_000.0, "{q} = {ms}");
    }
    // The old stack's URL serves the same stats, from a reading of its own (at most one
    // interval behind the gateway's).
    let old_url = format!("{}/stats", stack.ingest_url);
    eventually(
        Duration::from_secs(5),
        "the ingest API's stats settle",
        || async {
            let old = get(&old_url).await;
            (old["total_messages"] == 400 && old["accepted_total"] == 400).then_some(old)
        },
    )
    .await;

    // Workers gone, messages waiting: no_live_workers fires once, wherever one listens.
    for worker in &mut stack.workers {
        worker
            .signal(nix::sys::signal::Signal::SIGTERM)
            .expect("signal");
    }
    for worker in &mut stack.workers {
        worker.wait(Duration::from_secs(20)).await.expect("exits");
    }
    for i in 0..20 {
        post(&format!("{}/messages", stack.ingest_url), message(i)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let waiting = get(&stats_url).await;
    assert_eq!(waiting["workers_alive"], 0);
    assert_eq!(waiting["queue_depth"], 20);
    assert_eq!(waiting["backlog"], 20, "nothing in flight without workers");
    let age = waiting["oldest_pending_age_ms"].as_u64().expect("age");
    assert!(
        (1_000..30_000).contains(&age),
        "oldest message age {age} ms"
    );
    let mut fired = Vec::new();
    for ws in &mut sockets {
        fired.push(alerts_within(ws, Duration::from_secs(6)).await);
    }
    for alerts in &fired {
        assert_eq!(
            transitions(alerts, "no_live_workers"),
            ["firing"],
            "{alerts:?}"
        );
        let alert = alerts
            .iter()
            .find(|a| a["rule"] == "no_live_workers")
            .expect("alert");
        assert_eq!(alert["severity"], "critical");
        assert!(alert["resolved_at"].is_null() && alert["started_at"].is_string());
    }
    let active = get(&gw(second_port, "/alerts")).await;
    assert_eq!(active["active"][0]["rule"], "no_live_workers", "{active}");

    // A worker returns and drains the queue: the alert resolves once.
    let _worker = stack.spawn("sluice-worker");
    assert_eq!(stack.wait_rows(420, Duration::from_secs(30)).await, 420);
    for ws in &mut sockets {
        let alerts = alerts_within(ws, Duration::from_secs(6)).await;
        assert_eq!(
            transitions(&alerts, "no_live_workers"),
            ["resolved"],
            "{alerts:?}"
        );
    }
    let list = get(&gw(stack.gateway_port, "/alerts")).await;
    assert_eq!(list["active"], json!([]), "{list}");
    let recent: Vec<Value> = list["recent"].as_array().expect("recent").clone();
    assert_eq!(
        transitions(&recent, "no_live_workers"),
        ["resolved", "firing"],
        "recent is newest first, one of each: {list}"
    );
    stack.stop().await;
}

#[tokio::test]
async fn history_has_one_sample_per_second_however_many_processes_read() {
    let _machine = crate::MACHINE.read().await;
    let stack = Stack::start("watch-history", 2).await;
    let (_second, second_port) = second_gateway(&stack).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut redis = stack.redis().await;
    let samples: Vec<String> = redis::cmd("LRANGE")
        .arg(&stack.keys.history_1s)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .expect("LRANGE");
    let seconds: Vec<u64> = samples
        .iter()
        .map(|s| {
            serde_json::from_str::<Vec<Value>>(s).expect("a JSON array")[0]
                .as_u64()
                .expect("t")
        })
        .collect();
    assert!(seconds.len() >= 4, "{seconds:?}");
    assert!(
        seconds.windows(2).all(|w| w[0] == w[1] + 1),
        "exactly one sample per second, newest first: {seconds:?}"
    );
    let url = format!("http://127.0.0.1:{second_port}/stats/history?window=1m");
    let history = get(&url).await;
    assert_eq!(history["type"], "history");
    assert_eq!(history["resolution_secs"], 1);
    let t: Vec<u64> = serde_json::from_value(history["t"].clone()).expect("t");
    assert!(t.windows(2).all(|w| w[1] == w[0] + 1), "{t:?}");
    for series in [
        "persisted_per_second",
        "accepted_per_second",
        "queue_depth",
        "in_flight",
        "commit_latency_p99_ms",
        "workers_alive",
    ] {
        assert_eq!(
            history[series].as_array().map(Vec::len),
            Some(t.len()),
            "{series}"
        );
    }
    assert_eq!(
        history["workers_alive"].as_array().and_then(|w| w.last()),
        Some(&json!(2))
    );
    let day = get(&format!(
        "http://127.0.0.1:{second_port}/stats/history?window=24h"
    ))
    .await;
    assert_eq!(day["resolution_secs"], 60);
    // The minutes since the stack started (one or two), the last one in progress.
    let minutes: Vec<u64> = serde_json::from_value(day["t"].clone()).expect("t");
    let now_minute = *t.last().expect("a second") / 60 * 60;
    assert!(
        (1..=2).contains(&minutes.len())
            && minutes.iter().all(|m| m % 60 == 0)
            && minutes.last() >= Some(&now_minute),
        "the minute in progress last: {day}"
    );
    let bad = reqwest::get(format!(
        "http://127.0.0.1:{second_port}/stats/history?window=2h"
    ))
    .await
    .expect("sent");
    assert_eq!(bad.status().as_u16(), 400);
    let body: Value = bad.json().await.expect("json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("1m, 5m, 1h, 24h"),
        "{body}"
    );
    // Over WebSocket too.
    let ws_url = format!(
        "ws://127.0.0.1:{}/ws/stats?topics=alerts",
        stack.gateway_port
    );
    let mut ws = subscribe(&ws_url).await;
    ws.send(Message::text(r#"{"type":"get_history","window":"5m"}"#))
        .await
        .expect("send");
    let reply = ws.next().await.expect("frame").expect("ok");
    let reply: Value = serde_json::from_str(reply.to_text().expect("text")).expect("json");
    assert_eq!(
        (reply["type"].as_str(), reply["window"].as_str()),
        (Some("history"), Some("5m"))
    );
    ws.send(Message::text(
        r#"{"type":"get_history","window":"forever"}"#,
    ))
    .await
    .expect("send");
    let reply = ws.next().await.expect("frame").expect("ok");
    assert!(reply.to_text().expect("text").contains("invalid_window"));
    stack.stop().await;
}

async fn sluice(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("sluice").expect("sluice built"))
        .args(args)
        .env_remove("SLUICE_ADMIN_TOKEN")
        .env_remove("SLUICE_TOKEN")
        .output()
        .await
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_dead_letter_fires_its_alert_and_sluice_dead_letters_manages_it() {
    let _machine = crate::MACHINE.read().await;
    let options = Options {
        extra: FAST,
        ..Options::default()
    };
    let stack = Stack::start_with("watch-dead", 1, options).await;
    let gateway = format!("http://127.0.0.1:{}", stack.gateway_port);
    let mut redis = stack.redis().await;
    let _: () = redis::cmd("LPUSH")
        .arg(&stack.keys.pending_messages)
        .arg("not an envelope")
        .query_async(&mut redis)
        .await
        .expect("LPUSH");
    let list = eventually(Duration::from_secs(10), "the dead-letter alert", || async {
        let list = get(&format!("{gateway}/alerts")).await;
        (list["active"][0]["rule"] == "dead_letters_increased").then_some(list)
    })
    .await;
    assert_eq!(list["active"][0]["value"], 1.0, "{list}");
    assert_eq!(get(&format!("{gateway}/stats")).await["dead_letters"], 1);

    let ingest = stack.ingest_url.as_str();
    let (ok, _, err) = sluice(&["dead-letters", "list", "--ingest", ingest]).await;
    assert!(!ok && err.contains("admin token"), "{err}");
    let (ok, _, err) = sluice(&[
        "dead-letters",
        "list",
        "--ingest",
        ingest,
        "--admin-token",
        "wrong",
    ])
    .await;
    assert!(!ok && err.contains("401"), "{err}");
    let with_token = ["--ingest", ingest, "--admin-token", ADMIN_TOKEN];
    let (ok, out, err) = sluice(&[&["dead-letters", "list"][..], &with_token].concat()).await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with("1 dead letter(s)") && out.contains("not an envelope"),
        "{out}"
    );
    let (ok, out, _) =
        sluice(&[&["dead-letters", "list", "--json"][..], &with_token].concat()).await;
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).expect("json")["total"],
        1
    );
    // One by its id, as the list prints it first on its line: refused without --yes, since
    // requeued unchanged it comes straight back.
    let id = first_dead_letter_id(&with_token).await;
    let (ok, _, err) = sluice(&[&["dead-letters", "requeue", &id][..], &with_token].concat()).await;
    assert!(
        !ok && err.contains("comes straight back")
            && err.contains("--yes")
            && err.lines().count() == 1,
        "{err}"
    );
    let (ok, out, err) =
        sluice(&[&["dead-letters", "requeue", &id, "--yes"][..], &with_token].concat()).await;
    assert!(
        ok && out.trim() == format!("requeued 1 ({id})"),
        "{out}{err}"
    );
    eventually(Duration::from_secs(10), "dead again", || async {
        (get(&format!("{gateway}/stats")).await["dead_letters"] == 1).then_some(())
    })
    .await;
    let (ok, out, err) = sluice(
        &[
            &[
                "dead-letters",
                "requeue",
                "--reason",
                "NOT A VALID MESSAGE ENVELOPE",
                "--yes",
            ][..],
            &with_token,
        ]
        .concat(),
    )
    .await;
    assert!(ok && out.trim() == "requeued 1", "{out}{err}");
    // The worker dead-letters it again.
    eventually(Duration::from_secs(10), "dead again", || async {
        (get(&format!("{gateway}/stats")).await["dead_letters"] == 1).then_some(())
    })
    .await;
    let (ok, _, err) = sluice(&[&["dead-letters", "purge"][..], &with_token].concat()).await;
    assert!(!ok && err.contains("--yes"), "{err}");
    let (ok, out, _) =
        sluice(&[&["dead-letters", "purge", "--yes"][..], &with_token].concat()).await;
    assert!(ok && out.trim() == "purged 1", "{out}");
    // Another, deleted by its id: only with --yes.
    let _: () = redis::cmd("LPUSH")
        .arg(&stack.keys.pending_messages)
        .arg("not an envelope either")
        .query_async(&mut redis)
        .await
        .expect("LPUSH");
    eventually(Duration::from_secs(10), "a new dead letter", || async {
        (get(&format!("{gateway}/stats")).await["dead_letters"] == 1).then_some(())
    })
    .await;
    let id = first_dead_letter_id(&with_token).await;
    let (ok, _, err) = sluice(&[&["dead-letters", "delete", &id][..], &with_token].concat()).await;
    assert!(!ok && err.contains("--yes"), "{err}");
    let (ok, out, err) =
        sluice(&[&["dead-letters", "delete", &id, "--yes"][..], &with_token].concat()).await;
    assert!(
        ok && out.trim() == format!("deleted 1 ({id})"),
        "{out}{err}"
    );
    stack.stop().await;
}

/// The id `sluice dead-letters list` prints first on the newest letter's line.
async fn first_dead_letter_id(with_token: &[&str]) -> String {
    let (ok, out, err) = sluice(&[&["dead-letters", "list"][..], with_token].concat()).await;
    assert!(ok, "{err}");
    let line = out.lines().nth(1).expect("a letter");
    let id = line.split_whitespace().next().expect("an id").to_owned();
    assert!(
        id.len() == 40 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "an id first: {line}"
    );
    id
}

#[tokio::test]
async fn sluice_send_counts_what_it_never_sent_when_the_api_goes_away() {
    let _machine = crate::MACHINE.read().await;
    let mut stack = Stack::start("send-gone", 1).await;
    let ingest = stack.ingest_url.clone();
    let send = tokio::spawn(async move {
        let args = [
            "send", "--ingest", &ingest, "-n", "50000", "-c", "4", "--rate", "5000", "--json",
        ];
        sluice(&args).await
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stack.ingest.stop(Duration::from_secs(15)).await;
    let (ok, out, err) = send.await.expect("send ran");
    assert!(!ok, "an incomplete run exits non-zero: {out}{err}");
    assert!(
        err.contains("not accepted") && err.contains("not sent"),
        "{err}"
    );
    let report: Value = serde_json::from_str(&out).expect("the JSON report");
    let count = |k: &str| report[k].as_u64().expect(k);
    assert_eq!(
        count("succeeded") + count("refused") + count("unanswered") + count("not_sent"),
        50_000,
        "every message is accounted for: {report}"
    );
    assert!(
        count("succeeded") > 0 && count("not_sent") > 10_000,
        "{report}"
    );
    assert_eq!(count("failed"), 50_000 - count("succeeded"));
    stack.stop().await;
}

#[tokio::test]
async fn sluice_send_stats_alerts_and_watch_work_against_a_live_stack() {
    let _machine = crate::MACHINE.read().await;
    let stack = Stack::start("watch-cli", 1).await;
    let gateway = format!("http://127.0.0.1:{}", stack.gateway_port);
    let ingest = stack.ingest_url.clone();
    let (ok, out, err) = sluice(&["send", "--ingest", &ingest, "-n", "200", "-c", "4"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("200 accepted")
            && out.contains("0 refused, 0 sent without an answer, 0 not sent"),
        "{out}"
    );
    // --ids keeps every accepted id, one per line, for a check of where they ended up; the
    // help shows the defaults and the presets.
    let ids = std::env::temp_dir().join(format!("sluice-send-ids-{}", std::process::id()));
    let path = ids.to_str().expect("utf-8");
    let (ok, out, err) = sluice(&[
        "send", "--ingest", &ingest, "-n", "100", "-c", "2", "--ids", path,
    ])
    .await;
    assert!(ok && out.contains("100 accepted"), "{out}{err}");
    let written = std::fs::read_to_string(&ids).expect("ids written");
    std::fs::remove_file(&ids).ok();
    let parsed: Vec<uuid::Uuid> = written
        .lines()
        .map(|l| l.parse().expect("a uuid"))
        .collect();
    assert_eq!(parsed.len(), 100, "{written}");
    let (ok, help, _) = sluice(&["send", "--help"]).await;
    assert!(
        ok && help.contains("[default: 1000, or the preset's]") && help.contains("--stress"),
        "{help}"
    );
    assert_eq!(stack.wait_rows(300, Duration::from_secs(20)).await, 300);
    tokio::time::sleep(Duration::from_millis(700)).await;

    let (ok, out, _) = sluice(&["stats", "--json", "--gateway", &gateway]).await;
    assert!(ok);
    let stats: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (
            stats["total_messages"].as_u64(),
            stats["accepted_total"].as_u64()
        ),
        (Some(300), Some(300))
    );
    let (ok, out, _) = sluice(&["stats", "--gateway", &gateway]).await;
    assert!(ok && out.contains("total messages  300"), "{out}");
    let (ok, out, _) = sluice(&["alerts", "--json", "--gateway", &gateway]).await;
    assert!(ok && serde_json::from_str::<Value>(&out).expect("json")["active"].is_array());
    let (ok, out, _) = sluice(&["alerts", "--gateway", &gateway]).await;
    assert!(ok && out.starts_with("active ("), "{out}");
    let (ok, _, err) = sluice(&["stats", "--gateway", "http://127.0.0.1:1"]).await;
    // One line: the address and the cause in words, not reqwest's chain.
    assert!(
        !ok && err.trim()
            == "sluice: cannot reach http://127.0.0.1:1: connection refused \
             (nothing listens there: is the service running, on that port?)",
        "{err}"
    );

    // --plain: one line per tick.
    let mut watch = Command::new(binary("sluice").expect("built"))
        .args(["watch", "--plain", "--gateway", &gateway])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("watch");
    let stdout = watch.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut ticks = HashSet::new();
    while ticks.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
            .await
            .expect("a line per tick")
            .expect("read")
            .expect("open");
        if line.starts_with('#') {
            continue;
        }
        assert!(
            line.contains(" total=300 ") && line.contains(" workers=1 "),
            "{line}"
        );
        ticks.insert(line.split(' ').next().unwrap_or_default().to_owned());
    }
    watch.kill().await.expect("killed");

    // Full screen, in a real terminal.
    let session = format!("sluice-watch-{}", std::process::id());
    let command = format!(
        "{} watch --gateway {gateway}",
        binary("sluice").expect("built").display()
    );
    let tmux = |args: Vec<String>| async move {
        Command::new("tmux")
            .args(&args)
            .output()
            .await
            .expect("tmux runs")
    };
    let started = tmux(vec![
        "new-session".into(),
        "-d".into(),
        "-s".into(),
        session.clone(),
        "-x".into(),
        "80".into(),
        "-y".into(),
        "24".into(),
        command,
    ])
    .await;
    assert!(
        started.status.success(),
        "tmux: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let screen = eventually(Duration::from_secs(10), "the full-screen view", || {
        let session = session.clone();
        async move {
            let out = tmux(vec![
                "capture-pane".into(),
                "-p".into(),
                "-t".into(),
                session,
            ])
            .await;
            let screen = String::from_utf8_lossy(&out.stdout).into_owned();
            let full = screen.contains("│300") && screen.contains("workers (1)");
            (screen.contains("live") && full).then_some(screen)
        }
    })
    .await;
    // At 80×24: the cards, the sparkline with its span and scale, the workers and the batches
    // (loaded at start: the 300 messages were persisted before the view opened).
    for label in [
        "total messages",
        "persisted/s, last ",
        " · max ",
        "workers alive",
        "commit p99",
        "no active alert",
        "workers (1)",
        "recent batches",
    ] {
        assert!(screen.contains(label), "{label} missing:\n{screen}");
    }
    assert!(
        screen
            .lines()
            .any(|l| l.contains("│up ") && l.contains("/s")),
        "a live worker, marked up:\n{screen}"
    );
    assert_eq!(screen.lines().count(), 24, "{screen}");
    let saved = binary("sluice")
        .expect("built")
        .with_file_name("watch-80x24.txt");
    std::fs::write(saved, &screen).expect("the screen saved beside the binary");
    tmux(vec![
        "send-keys".into(),
        "-t".into(),
        session.clone(),
        "q".into(),
    ])
    .await;
    eventually(Duration::from_secs(5), "q quits", || {
        let session = session.clone();
        async move {
            let out = tmux(vec!["has-session".into(), "-t".into(), session]).await;
            (!out.status.success()).then_some(())
        }
    })
    .await;
    stack.stop().await;
}
