//! Redis Cluster (issue 11): every service on the `redis` crate's cluster client, every key in
//! one slot (`{<prefix>}`), and the pipeline exactly once through a graceful `CLUSTER FAILOVER`
//! and through a SIGKILL of the primary that holds Sluice's slot, both under load.

use std::collections::HashSet;
use std::time::Duration;

use sluice_core::Keys;
use sluice_core::connect::{self, RedisConnection};
use sluice_core::settings::RedisSettings;
use sluice_tests::servers::RedisCluster;
use uuid::Uuid;

use crate::stack::{Options, Stack, produce_as};

/// What PostgreSQL and Redis hold once the pipeline is idle.
#[derive(Debug)]
struct Outcome {
    rows: usize,
    missing: usize,
    unexpected: usize,
    total_messages: i64,
}

async fn get(redis: &mut RedisConnection, key: &str) -> i64 {
    redis::cmd("GET")
        .arg(key)
        .query_async::<Option<i64>>(redis)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// Waits until nothing is pending and `total_messages` has stopped moving, then compares the
/// rows with every id accepted so far.
async fn settle(
    stack: &Stack,
    redis: &mut RedisConnection,
    keys: &Keys,
    accepted: &[Uuid],
) -> Outcome {
    let client = stack.db.client().await.expect("client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = (-1, -1);
    loop {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let pending: i64 = redis::cmd("LLEN")
            .arg(&keys.pending_messages)
            .query_async(redis)
            .await
            .unwrap_or(-1);
        let rows: i64 = client
            .query_one("SELECT count(*) FROM messages", &[])
            .await
            .expect("count")
            .get(0);
        let now = (rows, get(redis, &keys.total_messages).await);
        if pending == 0 && now == last && now.0 == now.1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not idle: pending {pending}, rows and total {now:?}"
        );
        last = now;
    }
    let stored: Vec<Uuid> = client
        .query("SELECT id FROM messages", &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let stored_set: HashSet<Uuid> = stored.iter().copied().collect();
    assert_eq!(stored_set.len(), stored.len(), "no id stored twice");
    let accepted: HashSet<Uuid> = accepted.iter().copied().collect();
    Outcome {
        rows: stored.len(),
        missing: accepted.difference(&stored_set).count(),
        unexpected: stored_set.difference(&accepted).count(),
        total_messages: get(redis, &keys.total_messages).await,
    }
}

#[tokio::test]
async fn exactly_once_through_a_failover_and_a_killed_primary() {
    let _machine = crate::MACHINE.read().await;
    let mut cluster = RedisCluster::start().await.expect("a 6-node cluster");
    let nodes = cluster.nodes();
    let first = format!("redis://127.0.0.1:{}", cluster.ports[0]);
    let extra = [
        ("REDIS__CLUSTER_NODES", nodes.as_str()),
        ("WORKER__DEAD_AFTER_MS", "2000"),
    ];
    let options = Options {
        redis_url: Some(first),
        extra: &extra,
        ..Options::default()
    };
    let stack = Stack::start_with("cluster", 2, options).await;
    let settings = RedisSettings {
        key_prefix: stack.keys.prefix().to_owned(),
        cluster_nodes: nodes,
        ..RedisSettings::default()
    };
    let keys = Keys::new(&settings.effective_key_prefix());
    assert!(
        keys.total_messages.starts_with('{'),
        "{}",
        keys.total_messages
    );
    let mut redis = connect::redis_manager(&settings).expect("cluster client");

    // A graceful failover under load loses nothing: the replica takes over once caught up.
    let primary = cluster
        .primary_of(&keys.pending_messages)
        .await
        .expect("primary");
    let replica = cluster.replica_of(primary).await.expect("replica");
    let url = stack.ingest_url.clone();
    let load = tokio::spawn(async move { produce_as(&url, "failover", 3_000, 8).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster
        .failover(replica, &keys.pending_messages)
        .await
        .expect("failover");
    let mut accepted = load.await.expect("load");
    assert_eq!(accepted.len(), 3_000);
    let after_failover = settle(&stack, &mut redis, &keys, &accepted).await;
    eprintln!("after CLUSTER FAILOVER: {after_failover:?}");
    assert_eq!(
        (after_failover.missing, after_failover.unexpected),
        (0, 0),
        "{after_failover:?}"
    );
    assert_eq!(after_failover.total_messages, after_failover.rows as i64);

    // SIGKILL of the primary now holding the slot, under load. Replication is asynchronous: what
    // it acknowledged and had not yet sent to its replica is gone, and is counted here.
    let url = stack.ingest_url.clone();
    let load = tokio::spawn(async move { produce_as(&url, "kill", 3_000, 8).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    cluster.kill(replica).await.expect("SIGKILL");
    cluster
        .until_primary(primary, &keys.pending_messages)
        .await
        .expect("the old primary takes over again");
    accepted.extend(load.await.expect("load"));
    assert_eq!(accepted.len(), 6_000);
    let after_kill = settle(&stack, &mut redis, &keys, &accepted).await;
    eprintln!("after SIGKILL of the primary: {after_kill:?}");
    assert_eq!(after_kill.unexpected, 0, "{after_kill:?}");
    assert_eq!(
        after_kill.total_messages, after_kill.rows as i64,
        "counters exact: {after_kill:?}"
    );
    assert!(after_kill.missing <= 3_000, "{after_kill:?}");
    // The gateway reads the same counters through its own cluster connection.
    let stats: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{}/stats", stack.gateway_port))
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
    assert_eq!(
        stats["total_messages"], after_kill.total_messages,
        "{stats}"
    );
    // Waiting for persistence rides the batch events, which a cluster delivers on every node.
    let waited = reqwest::Client::new()
        .post(format!("{}/messages", stack.ingest_url))
        .header("prefer", "wait=10")
        .json(&serde_json::json!({"user_id": 1, "channel_id": 1, "content": "after the kill"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(waited.status().as_u16(), 201, "persisted, and told so");
    stack.stop().await;
}
