//! Failovers under load (issues 11 and 21), on a Redis Cluster (three primaries, three
//! replicas) and on a primary with one replica under three Sentinels: every service follows
//! the primary by itself, and a loop SIGKILLs the primary holding Sluice's keys while clients
//! post, waits for the failover, and starts the killed server again as a replica; every
//! second kill comes 300 ms after the replica was partitioned from the primary. With
//! `redis.ack_replicas` = 1 no message answered 202 may be lost, no message may become two
//! rows, and the counters must equal the rows; without, the losses are counted and printed
//! (`FAILOVER …` lines, which `scripts/failover` gathers over 20 runs per topology).
//!
//! The clients do what the docs tell clients to do: a key per message, and a 503 (or no answer)
//! retried with the same key until 202. Every row must then be accounted for: its id was
//! answered 202, or (without acknowledgements only) it is an earlier attempt of a message whose
//! client got no 202 for it and retried: a failover without acknowledgements can lose the key's
//! record after a worker took that attempt from the old primary, and the retry queues the
//! message again under a new id, as proto-docs/guarantees.md says.
//!
//! `SLUICE_FAILOVER_RUNS` sets the kills per test (2 plain kills by default, as
//! `./scripts/test` runs them; `scripts/failover` sets it, which also partitions every second).

use std::collections::HashSet;
use std::time::Duration;

use sluice_core::Keys;
use sluice_core::connect::{self, RedisConnection};
use sluice_core::settings::RedisSettings;
use sluice_tests::servers::{RedisCluster, RedisSentinels, Wire};
use sluice_tests::tls::Certificates;
use uuid::Uuid;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::stack::{Options, Posted, Stack, get_json, produce_posted};

/// How long clients post before each kill, and after the failover.
const AROUND: Duration = Duration::from_millis(500);

/// What PostgreSQL and Redis hold once the pipeline is idle.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) rows: usize,
    pub(crate) missing: HashSet<Uuid>,
    /// Rows whose id no client was answered 202 for, each with its content.
    pub(crate) unexpected: Vec<(Uuid, String)>,
    pub(crate) total_messages: i64,
}

impl Outcome {
    /// The unexpected rows that are not an earlier attempt of a message whose client got no
    /// 202 for it and retried under the same `Idempotency-Key`. Without acknowledgements a
    /// failover may lose the key's record while a worker already took (and inserted) that
    /// attempt from the old primary; the retry then queues the message again, under a new id
    /// (proto-docs/guarantees.md). Such a row is accounted for; any other is not.
    fn unaccounted(&self, posted: &[Posted]) -> Vec<&(Uuid, String)> {
        let retried: HashSet<&str> = posted
            .iter()
            .filter(|p| p.retried)
            .map(|p| p.content.as_str())
            .collect();
        self.unexpected
            .iter()
            .filter(|(_, content)| !retried.contains(content.as_str()))
            .collect()
    }
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

/// Waits until nothing is pending or in a processing list and the rows and `total_messages`
/// have stopped moving (and, when `exact`, agree), then compares the rows with every message
/// posted so far.
pub(crate) async fn settle(
    stack: &Stack,
    redis: &mut RedisConnection,
    keys: &Keys,
    posted: &[Posted],
    exact: bool,
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
        let rows = sluice_tests::row_count(&client).await;
        let now = (rows, get(redis, &keys.total_messages).await);
        // Every processing list empty too: a worker may sit out a backoff with a batch in hand.
        let in_flight = get(redis, &keys.in_flight).await;
        if pending == 0 && in_flight == 0 && now == last && (now.0 == now.1 || !exact) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not idle: pending {pending}, in flight {in_flight}, rows and total {now:?}"
        );
        last = now;
    }
    let stored: Vec<(Uuid, String)> = client
        .query("SELECT id, content FROM messages", &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let stored_set: HashSet<Uuid> = stored.iter().map(|(id, _)| *id).collect();
    assert_eq!(stored_set.len(), stored.len(), "no id stored twice");
    let accepted: HashSet<Uuid> = posted.iter().map(|p| p.id).collect();
    Outcome {
        rows: stored.len(),
        missing: accepted.difference(&stored_set).copied().collect(),
        unexpected: stored
            .into_iter()
            .filter(|(id, _)| !accepted.contains(id))
            .collect(),
        total_messages: get(redis, &keys.total_messages).await,
    }
}

/// The Redis servers of one test, and how to kill the primary holding Sluice's keys.
enum Topology {
    Cluster(RedisCluster),
    Sentinel(RedisSentinels),
}

impl Topology {
    /// Over TLS with `tls` (the servers, their replication, the cluster bus, the sentinels).
    async fn start(cluster: bool, tls: bool) -> Self {
        let wire = if tls {
            Wire::tls(Arc::new(Certificates::make().expect("certificates")))
        } else {
            Wire::default()
        };
        if cluster {
            let cluster = RedisCluster::start_on(wire).await;
            Self::Cluster(cluster.expect("a 6-node cluster"))
        } else {
            let group = RedisSentinels::start_on(wire).await;
            Self::Sentinel(group.expect("a primary, a replica, 3 sentinels"))
        }
    }

    /// The first sentinel watches another Redis.
    async fn with_decoy() -> Self {
        let group = RedisSentinels::start_with_decoy().await;
        Self::Sentinel(group.expect("a primary, a replica, 3 sentinels"))
    }

    fn wire(&self) -> &Wire {
        match self {
            Self::Cluster(cluster) => cluster.wire(),
            Self::Sentinel(group) => group.wire(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Cluster(_) => "cluster",
            Self::Sentinel(_) => "sentinel",
        }
    }

    /// The test's own settings (the services get the same as variables).
    fn settings(&self) -> RedisSettings {
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
        let certs = self.wire().certificates();
        let tls = RedisSettings {
            // The primary the sentinels name is reached as this URL's scheme says.
            url: self.wire().url(6379).into(),
            tls_ca_file: certs.map(|c| path(&c.ca)).unwrap_or_default(),
            tls_cert_file: certs.map(|c| path(&c.client.0)).unwrap_or_default(),
            tls_key_file: certs.map(|c| path(&c.client.1)).unwrap_or_default(),
            ..RedisSettings::default()
        };
        match self {
            Self::Cluster(cluster) => RedisSettings {
                cluster_nodes: cluster.nodes().into(),
                ..tls
            },
            Self::Sentinel(group) => RedisSettings {
                sentinels: group.sentinels().into(),
                sentinel_primary: RedisSentinels::NAME.into(),
                ..tls
            },
        }
    }

    /// SIGKILLs the primary holding `key`, waits for its replica to take over, and starts the
    /// killed server again as a replica. With `cut`, the replica is partitioned from the
    /// primary that long before the kill: it lacks what the primary took meanwhile.
    async fn kill_primary(&mut self, key: &str, cut: Option<Duration>) -> anyhow::Result<()> {
        match self {
            Self::Sentinel(group) => group.kill_primary(cut).await.map(drop),
            Self::Cluster(cluster) => {
                let primary = cluster.primary_of(key).await?;
                let replica = cluster.replica_of(primary).await?;
                cluster.kill_partitioned(primary, replica, cut).await?;
                cluster.until_primary(replica, key).await?;
                cluster.restart(primary).await
            }
        }
    }
}

/// In the long loops (`SLUICE_FAILOVER_RUNS` set, as `scripts/failover` sets it), odd runs
/// partition the replica from the primary 300 ms before the kill (a network failure just before
/// the crash). On loopback a replica is otherwise microseconds behind, and what the primary
/// wrote to the link survives it in the replica's socket, so a plain kill rarely finds anything
/// unreplicated; a partitioned replica lacks all the primary took meanwhile. The short run of
/// `./scripts/test` kills plainly, to keep its time down.
fn cut(run: usize) -> Option<Duration> {
    let long = std::env::var_os("SLUICE_FAILOVER_RUNS").is_some();
    (long && run % 2 == 1).then_some(Duration::from_millis(300))
}

/// The number of kills: `SLUICE_FAILOVER_RUNS`, or 2.
pub(crate) fn runs() -> usize {
    std::env::var("SLUICE_FAILOVER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Starts `topology` and a stack on it (two workers), with `ack_replicas`.
async fn stack_on(topology: &Topology, ack_replicas: u32) -> (Stack, RedisSettings) {
    let settings = topology.settings();
    let acks = ack_replicas.to_string();
    let tls = topology.wire().settings();
    let mut extra = vec![
        ("REDIS__ACK_REPLICAS", acks.as_str()),
        ("WORKER__DEAD_AFTER_MS", "2000"),
    ];
    extra.extend(tls.iter().map(|(k, v)| (*k, v.as_str())));
    // The services reach the primary the sentinels name as this URL's scheme says.
    extra.push(("REDIS__URL", settings.url.expose()));
    match topology {
        Topology::Cluster(_) => {
            extra.push(("REDIS__CLUSTER_NODES", settings.cluster_nodes.expose()))
        }
        Topology::Sentinel(_) => {
            extra.push(("REDIS__SENTINELS", settings.sentinels.expose()));
            extra.push(("REDIS__SENTINEL_PRIMARY", RedisSentinels::NAME));
        }
    }
    let options = Options {
        // The stack's own checks and clean-up only: the keys are on the topology's servers.
        redis_url: Some(sluice_tests::redis_url()),
        extra: &extra,
        ..Options::default()
    };
    let tls = if topology.wire().certificates().is_some() {
        "_tls"
    } else {
        ""
    };
    let tag = format!("failover_{}_{ack_replicas}{tls}", topology.name());
    let stack = Stack::start_with(&tag, 2, options).await;
    let settings = RedisSettings {
        key_prefix: stack.keys.prefix().to_owned(),
        ..settings
    };
    (stack, settings)
}

/// Kills the primary `runs()` times under load, then checks every id answered 202: with
/// acknowledgements none may be lost and the counters must be exact; without, the losses are
/// printed. With `tls`, every hop to and between the Redis servers is TLS.
async fn kill_loop(cluster: bool, ack_replicas: u32, tls: bool) {
    let _machine = crate::MACHINE.read().await;
    let mut topology = Topology::start(cluster, tls).await;
    let (stack, settings) = stack_on(&topology, ack_replicas).await;
    let keys = Keys::new(&settings.effective_key_prefix());
    let mut redis = connect::redis_manager(&settings).expect("client");
    let mut accepted: Vec<Vec<Posted>> = Vec::new();
    if let Topology::Cluster(cluster) = &topology {
        accepted.push(graceful_failover(cluster, &stack, &keys).await);
    }
    for run in 0..runs() {
        let load = Load::start(&stack, &format!("run{run}")).await;
        let killed = topology
            .kill_primary(&keys.pending_messages, cut(run))
            .await;
        accepted.push(load.stop().await);
        killed.expect("failover");
    }
    let all: Vec<Posted> = accepted.iter().flatten().cloned().collect();
    let outcome = settle(&stack, &mut redis, &keys, &all, ack_replicas > 0).await;
    report(topology.name(), ack_replicas, &accepted, &outcome);
    if ack_replicas > 0 {
        // A retry finds its key's record: nothing is ever queued twice.
        assert_eq!(outcome.unexpected, [], "no row but accepted ones");
    }
    let unaccounted = outcome.unaccounted(&all);
    assert!(
        unaccounted.is_empty(),
        "rows of no message any client retried: {unaccounted:?}"
    );
    if ack_replicas > 0 {
        assert!(
            outcome.missing.is_empty(),
            "{} acknowledged messages lost",
            outcome.missing.len()
        );
        assert_eq!(
            outcome.total_messages, outcome.rows as i64,
            "counters exact: {outcome:?}"
        );
    }
    assert_waits_for_persistence(&stack).await;
    stack.stop().await;
}

/// One `FAILOVER …` line per kill (the cluster's graceful failover is run 0 there), and one
/// for the whole loop.
fn report(topology: &str, acks: u32, accepted: &[Vec<Posted>], outcome: &Outcome) {
    for (run, posted) in accepted.iter().enumerate() {
        let lost = posted
            .iter()
            .filter(|p| outcome.missing.contains(&p.id))
            .count();
        let retried = posted.iter().filter(|p| p.retried).count();
        let kill = match (topology, run) {
            ("cluster", 0) => "graceful",
            _ if cut(run - usize::from(topology == "cluster")).is_some() => "partitioned",
            _ => "kill",
        };
        eprintln!(
            "FAILOVER topology={topology} ack_replicas={acks} run={run} kill={kill} accepted={} \
             lost={lost} retried={retried}",
            posted.len()
        );
    }
    eprintln!(
        "FAILOVER topology={topology} ack_replicas={acks} total accepted={} lost={} rows={} \
         total_messages={} duplicated={}",
        accepted.iter().map(Vec::len).sum::<usize>(),
        outcome.missing.len(),
        outcome.rows,
        outcome.total_messages,
        outcome.unexpected.len()
    );
    for (id, content) in &outcome.unexpected {
        eprintln!("FAILOVER duplicate row {id} of {content:?}, whose client retried");
    }
}

/// A graceful `CLUSTER FAILOVER` under load loses nothing, acknowledgements or not: the replica
/// takes over once it has caught up. Returns what the clients saw.
async fn graceful_failover(cluster: &RedisCluster, stack: &Stack, keys: &Keys) -> Vec<Posted> {
    let primary = cluster
        .primary_of(&keys.pending_messages)
        .await
        .expect("primary");
    let replica = cluster.replica_of(primary).await.expect("replica");
    let load = Load::start(stack, "graceful").await;
    cluster
        .failover(replica, &keys.pending_messages)
        .await
        .expect("failover");
    load.stop().await
}

/// Eight clients posting from [`AROUND`] before a failover to [`AROUND`] after it.
pub(crate) struct Load {
    running: Arc<AtomicBool>,
    clients: tokio::task::JoinHandle<Vec<Posted>>,
}

impl Load {
    /// Starts the clients; returns once they have posted for [`AROUND`].
    pub(crate) async fn start(stack: &Stack, label: &str) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let (url, label, on) = (
            stack.ingest_url.clone(),
            label.to_owned(),
            Arc::clone(&running),
        );
        let more = move |_| on.load(Ordering::Relaxed);
        let clients = tokio::spawn(async move { produce_posted(&url, &label, 8, more).await });
        tokio::time::sleep(AROUND).await;
        Self { running, clients }
    }

    /// Lets the clients post for [`AROUND`] more, then stops them; returns what each message's
    /// client saw.
    pub(crate) async fn stop(self) -> Vec<Posted> {
        tokio::time::sleep(AROUND).await;
        self.running.store(false, Ordering::Relaxed);
        self.clients.await.expect("load")
    }
}

/// After the kills, `Prefer: wait` still answers 201: the waiting rides the batch events, which
/// the ingest API's subscription found again on the new primary.
pub(crate) async fn assert_waits_for_persistence(stack: &Stack) {
    let waited = reqwest::Client::new()
        .post(format!("{}/messages", stack.ingest_url))
        .header("prefer", "wait=10")
        .json(&serde_json::json!({"user_id": 1, "channel_id": 1, "content": "after the kills"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(waited.status().as_u16(), 201, "persisted, and told so");
    // The gateway reads the same counters through its own connection.
    let stats = get_json(&format!("http://127.0.0.1:{}/stats", stack.gateway_port)).await;
    assert!(
        stats["total_messages"].as_i64().is_some_and(|n| n > 0),
        "{stats}"
    );
}

/// With acknowledgements, over TLS: servers that speak only TLS and require client
/// certificates, replication and the sentinels' links over TLS.
#[tokio::test]
async fn sentinel_kills_over_tls_lose_no_acknowledged_message() {
    kill_loop(false, 1, true).await;
}

/// With acknowledgements, over TLS, the cluster bus included.
#[tokio::test]
async fn cluster_kills_over_tls_lose_no_acknowledged_message() {
    kill_loop(true, 1, true).await;
}

#[tokio::test]
async fn sentinel_kills_without_acknowledgements() {
    kill_loop(false, 0, false).await;
}

#[tokio::test]
async fn cluster_kills_without_acknowledgements() {
    kill_loop(true, 0, false).await;
}

/// One sentinel of three watches a decoy, another primary under the same name, and is the
/// first asked. Every process follows the majority: through a failover under load, nothing is
/// ever written to the decoy, and every acknowledged message is persisted once.
#[tokio::test]
async fn a_sentinel_naming_a_decoy_is_outvoted() {
    let _machine = crate::MACHINE.read().await;
    let mut topology = Topology::with_decoy().await;
    let (stack, settings) = stack_on(&topology, 1).await;
    let keys = Keys::new(&settings.effective_key_prefix());
    let mut redis = connect::redis_manager(&settings).expect("client");
    let load = Load::start(&stack, "decoy").await;
    let killed = topology.kill_primary(&keys.pending_messages, None).await;
    let posted = load.stop().await;
    killed.expect("failover");
    let outcome = settle(&stack, &mut redis, &keys, &posted, true).await;
    report("sentinel-decoy", 1, &[posted], &outcome);
    assert!(outcome.missing.is_empty(), "{outcome:?}");
    assert_eq!(outcome.unexpected, [], "no row but accepted ones");
    assert_eq!(outcome.total_messages, outcome.rows as i64);
    let Topology::Sentinel(group) = &topology else {
        unreachable!("a Sentinel topology")
    };
    let decoy = format!("redis://127.0.0.1:{}", group.decoy_port().expect("a decoy"));
    let mut decoy = sluice_tests::redis_at(&decoy).await.expect("the decoy");
    let written: u64 = redis::cmd("DBSIZE")
        .query_async(&mut decoy)
        .await
        .expect("DBSIZE");
    assert_eq!(written, 0, "nothing was written to the decoy");
    stack.stop().await;
}
