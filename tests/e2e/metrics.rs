//! Prometheus metrics as a scraper sees them: each live service's `/metrics` counts what
//! happened, and `promtool` accepts the expositions, the rules and the scrape config.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sluice_proto::message::MessageRequest;
use sluice_tests::process::free_port;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use crate::stack::{Options, Stack};

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus");

async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.expect("scraped");
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let content_type = response.headers()["content-type"].to_str().expect("ascii");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.expect("text")
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Runs promtool with `args`, `stdin` on its standard input; its exit status and output.
async fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package; ./scripts/test installs it)");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .await
        .expect("written");
    drop(input);
    let out = child.wait_with_output().await.expect("exits");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

async fn eventually_scrape(url: &str, series: &str, want: f64) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(url).await;
        if sample(&text, series) == Some(want) || tokio::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_service_counts_what_happened_and_promtool_accepts_the_exposition() {
    let _shared = crate::MACHINE.read().await;
    let worker_port = free_port();
    let worker_listen = format!("127.0.0.1:{worker_port}");
    let stack = Stack::start_with(
        "metrics",
        1,
        Options {
            extra: &[("WORKER__LISTEN", worker_listen.as_str())],
            ..Options::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    for i in 0..20 {
        let body = MessageRequest::new(1, 2, format!("m{i}"));
        let r = http
            .post(format!("{}/messages", stack.ingest_url))
            .json(&body)
            .send()
            .await;
        assert_eq!(r.expect("sent").status().as_u16(), 202);
    }
    let batch: Vec<_> = (0..10)
        .map(|i| MessageRequest::new(3, 4, format!("b{i}")))
        .collect();
    let r = http
        .post(format!("{}/messages/batch", stack.ingest_url))
        .json(&batch)
        .send()
        .await;
    assert_eq!(r.expect("sent").status().as_u16(), 202);
    // Unknown URLs and methods never become label values.
    for path in ["/nope-1", "/nope-2?x=1"] {
        let r = http
            .get(format!("{}{path}", stack.ingest_url))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 404);
    }
    assert_eq!(stack.wait_rows(30, Duration::from_secs(30)).await, 30);

    let gateway = format!("127.0.0.1:{}", stack.gateway_port);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{gateway}/ws/stats"))
        .await
        .expect("ws");
    for _ in 0..2 {
        ws.next().await.expect("frame").expect("ok");
    }
    let live = scrape(&format!("http://{gateway}/metrics")).await;
    assert_eq!(sample(&live, "sluice_ws_connections"), Some(1.0), "{live}");
    ws.send(Message::Close(None)).await.expect("close sent");
    while ws.next().await.is_some() {}

    let ingest = scrape(&format!("{}/metrics", stack.ingest_url)).await;
    assert_eq!(
        sample(&ingest, "sluice_messages_accepted_total"),
        Some(30.0),
        "{ingest}"
    );
    let posts = r#"sluice_http_requests_total{route="/messages",method="POST",status="202"}"#;
    assert_eq!(sample(&ingest, posts), Some(20.0), "{ingest}");
    let batches =
        r#"sluice_http_requests_total{route="/messages/batch",method="POST",status="202"}"#;
    assert_eq!(sample(&ingest, batches), Some(1.0), "{ingest}");
    let unmatched = r#"sluice_http_requests_total{route="unmatched",method="GET",status="404"}"#;
    assert_eq!(sample(&ingest, unmatched), Some(2.0), "{ingest}");
    assert!(!ingest.contains("nope"), "a URL became a label: {ingest}");
    let timed = r#"sluice_http_request_duration_seconds_count{route="/messages",method="POST",status="202"}"#;
    assert_eq!(sample(&ingest, timed), Some(20.0), "{ingest}");

    let worker_url = format!("http://{worker_listen}/metrics");
    let worker = eventually_scrape(&worker_url, "sluice_commit_latency_seconds_count", 30.0).await;
    assert_eq!(
        sample(&worker, "sluice_messages_persisted_total"),
        Some(30.0),
        "{worker}"
    );
    assert_eq!(
        sample(&worker, "sluice_dead_letters_total"),
        Some(0.0),
        "{worker}"
    );
    assert_eq!(
        sample(&worker, "sluice_batch_size_sum"),
        Some(30.0),
        "{worker}"
    );
    assert_eq!(
        sample(&worker, "sluice_commit_latency_seconds_count"),
        Some(30.0),
        "{worker}"
    );
    assert!(
        sample(&worker, "sluice_batch_insert_duration_seconds_count").is_some_and(|n| n >= 1.0)
    );
    let ready = reqwest::get(format!("http://{worker_listen}/ready"))
        .await
        .expect("ready");
    assert_eq!(ready.status().as_u16(), 200);

    let gateway_url = format!("http://{gateway}/metrics");
    let gateway_text = eventually_scrape(&gateway_url, "sluice_ws_connections", 0.0).await;
    assert_eq!(
        sample(&gateway_text, "sluice_ws_connections"),
        Some(0.0),
        "{gateway_text}"
    );
    assert_eq!(
        sample(&gateway_text, r#"sluice_ws_closed_total{reason="client"}"#),
        Some(1.0),
        "{gateway_text}"
    );
    assert!(sample(&gateway_text, "sluice_ws_messages_sent_total").is_some_and(|n| n >= 2.0));
    assert_eq!(sample(&gateway_text, "sluice_redis_up"), Some(1.0));
    assert_eq!(sample(&gateway_text, "sluice_workers_alive"), Some(1.0));

    for (service, text) in [
        ("ingest", &ingest),
        ("worker", &worker),
        ("gateway", &gateway_text),
    ] {
        let (ok, out) = promtool(&["check", "metrics"], Some(text)).await;
        assert!(
            ok && out.trim().is_empty(),
            "{service}: promtool says {out}\n{text}"
        );
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_rules_config_and_dashboard_are_valid() {
    let dir = Path::new(DEPLOY);
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (ok, out) = promtool(&["check", "config", &file("prometheus.yml")], None).await;
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["check", "rules", &file("rules.yml")], None).await;
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", &file("rules_test.yml")], None).await;
    assert!(ok, "{out}");
    // The inhibit rule that holds the anomaly (a symptom) while a cause fires.
    let amtool = Command::new("amtool")
        .args(["check-config", &file("alertmanager.yml")])
        .output()
        .await
        .expect("amtool runs (Debian's prometheus-alertmanager; ./scripts/test installs it)");
    let out = String::from_utf8_lossy(&amtool.stdout);
    assert!(
        amtool.status.success() && out.contains("1 inhibit rules"),
        "{out}"
    );

    // Every query of the Grafana dashboard parses as PromQL: promtool checks them as rules.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(file("grafana-dashboard.json")).expect("read"),
    )
    .expect("JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_owned())
        .collect();
    assert!(exprs.len() >= 12, "{exprs:?}");
    let rules: String = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "      - record: dashboard:query{i}\n        expr: {}\n",
                json!(e)
            )
        })
        .collect();
    let path = std::env::temp_dir().join(format!("sluice-dashboard-{}.yml", std::process::id()));
    std::fs::write(
        &path,
        format!("groups:\n  - name: dashboard\n    rules:\n{rules}"),
    )
    .expect("write");
    let (ok, out) = promtool(&["check", "rules", &path.to_string_lossy()], None).await;
    let _ = std::fs::remove_file(&path);
    assert!(ok, "{out}");
}
