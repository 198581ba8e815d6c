//! A short run of every benchmark scenario against real services, so the harness never rots.
//! Seconds, not minutes; no figures are asserted, only that each scenario measures something.

use std::time::Duration;

use sluice_bench::cost::Meter;
use sluice_bench::fanout::{self, FanoutConfig};
use sluice_bench::pipeline::{self, E2eLoad, Stores};
use sluice_client::send;

use crate::stack::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_benchmark_scenario_runs() {
    let _shared = crate::MACHINE.read().await;
    let stack = Stack::start("benchsmoke", 2).await;
    let addr = stack.ingest_url.trim_start_matches("http://").to_owned();
    let second = Duration::from_secs(1);

    let r = pipeline::ingest(&addr, 4, second, None, Default::default())
        .await
        .expect("ingest");
    assert!(r.messages > 0 && r.failed == 0, "{r:?}");
    assert!(r.latency_ms.is_some());

    let http = sluice_bench::http_ceiling::http_noop_ceiling(1, 4, second)
        .await
        .expect("the no-op HTTP ceiling");
    assert!(http > 0.0, "{http}");

    let r = pipeline::ingest(&addr, 2, second, Some(10), Default::default())
        .await
        .expect("ingest-batch");
    assert!(
        r.requests > 0 && r.messages == r.requests * 10 && r.failed == 0,
        "{r:?}"
    );

    let plan = send::SendPlan {
        addr: addr.clone(),
        messages: 200,
        concurrency: 4,
        rate: Some(1_000.0),
        keep_ids: true,
        tls: None,
        key: None,
    };
    let r = send::run(&plan, |_, _| {}).await.expect("send");
    assert_eq!((r.succeeded, r.failed), (200, 0));
    let distinct: std::collections::HashSet<_> = r.ids.iter().collect();
    assert_eq!(distinct.len(), 200, "one id per accepted message");

    let stores = Stores {
        redis_url: stack.redis_url.clone(),
        key_prefix: stack.keys.prefix().to_owned(),
        postgres_url: stack.db.url.clone(),
    };
    let load = |rate_per_sec, batch, wait_secs| E2eLoad {
        rate_per_sec,
        duration: Duration::from_secs(2),
        connections: 4,
        batch,
        wait_secs,
        idempotent: false,
    };
    // Metered (`cost`): this process, which runs the load and the stack's tasks, and the
    // PostgreSQL server.
    let postmaster = pipeline::postgres_server_pid(&stores)
        .await
        .expect("the PostgreSQL server's pid");
    let meter =
        Meter::new(vec![("tests".into(), vec![std::process::id()])]).with_postgres(postmaster);
    let r = pipeline::e2e(&addr, &stores, load(300.0, None, None), Some(&meter))
        .await
        .expect("e2e");
    assert!(r.accepted >= 500 && r.failed == 0, "{r:?}");
    let cost = r.cost.as_ref().expect("a metered run reports its cost");
    let names: Vec<&str> = cost.parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["tests", "PostgreSQL"], "{cost:?}");
    assert_eq!(cost.messages, r.accepted, "{cost:?}");
    assert!(
        cost.parts[0].cpu_seconds > 0.0 && cost.load_tool.cpu_seconds > 0.0,
        "two seconds of load cost this process CPU: {cost:?}"
    );
    let sum: f64 = cost.parts.iter().map(|p| p.us_per_message).sum();
    assert!((cost.sluice_us_per_message - sum).abs() < 1e-9, "{cost:?}");
    assert!(r.commit_latency_ms.is_some() && r.queue_bounded, "{r:?}");
    // Every accepted message's batch event was heard, and its stages add up: queue and insert
    // cover POST → commit, each at most the whole.
    let stages = &r.stages_ms;
    assert_eq!(stages.messages, r.accepted, "{stages:?}");
    let (commit, queue, insert) = (
        stages.commit.expect("commit"),
        stages.queue.expect("queue"),
        stages.insert.expect("insert"),
    );
    assert!(stages.record.is_some(), "{stages:?}");
    assert!(
        queue.max <= commit.max * 1.001 && insert.max <= commit.max * 1.001,
        "{stages:?}"
    );

    let r = pipeline::e2e(&addr, &stores, load(2_000.0, Some(20), None), None)
        .await
        .expect("e2e with batches");
    assert!(r.accepted >= 3_000 && r.failed == 0, "{r:?}");
    assert!(r.cost.is_none(), "unmetered");

    // With Idempotency-Keys, as `sluice send` posts.
    let keyed = E2eLoad {
        idempotent: true,
        ..load(300.0, None, None)
    };
    let r = pipeline::e2e(&addr, &stores, keyed, None)
        .await
        .expect("e2e with Idempotency-Keys");
    assert!(r.accepted >= 500 && r.failed == 0, "{r:?}");

    // Waited requests: every one answered 201 once persisted.
    let r = pipeline::e2e(&addr, &stores, load(300.0, None, Some(5)), None)
        .await
        .expect("e2e waiting for persistence");
    assert!(r.accepted >= 500 && r.failed == 0, "{r:?}");
    assert!(r.answer_latency_ms.is_some(), "{r:?}");

    let worker = sluice_tests::process::binary("sluice-worker").expect("worker binary");
    let r = pipeline::drain(&stores, 2_000, 1, &worker, &stack.env)
        .await
        .expect("drain");
    assert!(r.messages_per_sec > 0.0, "{r:?}");

    let lpush = pipeline::redis_lpush_ceiling("127.0.0.1", redis_port(&stack.redis_url), 10_000)
        .await
        .expect("redis-benchmark (scripts/test installs redis-tools)");
    assert!(lpush > 0.0);
    let copy = pipeline::copy_ceiling(&stack.db.url, 2_000)
        .await
        .expect("COPY");
    assert!(copy > 0.0);

    let r = fanout::run(&FanoutConfig {
        url: format!("ws://127.0.0.1:{}/ws/stats", stack.gateway_port),
        clients: 10,
        connect_batch: 10,
        warmup: Duration::from_millis(500),
        duration: Duration::from_millis(1500),
        gateway_pid: Some(u32::try_from(stack.gateway.pid().expect("pid")).expect("pid")),
        redis_url: None,
    })
    .await
    .expect("fanout");
    assert!(
        r.established == 10 && r.messages > 0 && r.skew_ms.is_some(),
        "{r:?}"
    );
    assert!(r.gateway_cpu_percent.is_some() && r.gateway_rss_bytes.is_some());
    stack.stop().await;
}

fn redis_port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(6379)
}
