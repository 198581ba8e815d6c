//! 2,000 concurrent dashboards on one gateway: every one gets its stats on time, and the
//! gateway's Redis load is the same as with 10.

use std::time::Duration;

use sluice_bench::fanout::{self, FanoutConfig, FanoutReport};
use sluice_tests::process::{Service, free_port, wait_http_ok};
use sluice_tests::servers::RedisServer;

async fn fan_out(url: &str, clients: usize, pid: u32, redis: &str) -> FanoutReport {
    fanout::run(&FanoutConfig {
        url: url.to_owned(),
        clients,
        connect_batch: 250,
        warmup: Duration::from_secs(2),
        duration: Duration::from_secs(5),
        gateway_pid: Some(pid),
        redis_url: Some(redis.to_owned()),
    })
    .await
    .expect("fan-out runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_dashboards_get_their_stats_on_time_without_more_redis_load() {
    let _alone = crate::MACHINE.write().await;
    sluice_core::cli::raise_open_files_limit();
    // A private Redis, so every command it counts comes from the gateway.
    let redis = RedisServer::start().await.expect("private Redis");
    let listen = format!("127.0.0.1:{}", free_port());
    let env = vec![
        ("SLUICE__REDIS__URL".to_owned(), redis.url()),
        ("SLUICE__GATEWAY__LISTEN".to_owned(), listen.clone()),
    ];
    let mut gateway = Service::start("sluice-gateway", &env, &[]).expect("gateway starts");
    wait_http_ok(
        &mut gateway,
        &format!("http://{listen}/health"),
        Duration::from_secs(20),
    )
    .await
    .expect("gateway up");
    let pid = u32::try_from(gateway.pid().expect("pid")).expect("pid");
    let url = format!("ws://{listen}/ws/stats");

    let few = fan_out(&url, 10, pid, &redis.url()).await;
    let many = fan_out(&url, 2_000, pid, &redis.url()).await;
    println!("10 clients: {few:?}\n2000 clients: {many:?}");

    assert_eq!((many.established, many.failed), (2_000, 0));
    // 5 s at 500 ms is 10 ticks; every client got at least 9 of them.
    assert!(
        many.min_messages_per_client >= 9,
        "a client got only {} stats",
        many.min_messages_per_client
    );
    let skew = many.skew_ms.expect("samples");
    assert!(
        skew.max < 500.0,
        "a stats message arrived after the next tick: {skew:?}"
    );
    let (few_rate, many_rate) = (
        few.redis_commands_per_sec.expect("measured"),
        many.redis_commands_per_sec.expect("measured"),
    );
    assert!(few_rate > 0.0, "the gateway reads Redis");
    // The windows are not aligned with the gateway's ticks, so either may hold one read more
    // or less (7 commands in 5 s); a per-client cost would add hundreds per second.
    assert!(
        many_rate <= few_rate * 1.25 + 2.0,
        "Redis load grew with the clients: {few_rate:.2}/s with 10, {many_rate:.2}/s with 2000"
    );
    gateway.stop(Duration::from_secs(10)).await.expect("stops");
    drop(redis);
}
