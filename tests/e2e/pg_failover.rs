//! PostgreSQL failovers under load (issue 34): a private primary and a streaming standby, the
//! services given both in one multi-host `postgres.url` with
//! `target_session_attrs=read-write`. A loop SIGKILLs the primary (every process of it at
//! once) while eight clients post, promotes the standby, and rebuilds the dead one as the new
//! standby; every second kill (the first of the short form) comes after the standby was cut
//! off the primary's WAL for 300 ms, so the primary commits what no other server has.
//!
//! Synchronous (`synchronous_standby_names = '*'`): the primary acknowledges no commit the
//! standby lacks, so nothing a worker counted can be lost. Asynchronous: the cut loses the
//! commits of those 300 ms on the new primary, and the workers, which keep their last batches,
//! insert them again once they reach it. Either way every id answered 202 must be in
//! PostgreSQL exactly once and `total_messages` must equal the rows. `PG_FAILOVER …` lines
//! report each kill; `scripts/failover postgres` gathers them over 20 kills each.

use std::time::Duration;

use sluice_core::connect;
use sluice_core::settings::RedisSettings;
use sluice_tests::process::Service;
use sluice_tests::standby::PostgresPair;

use crate::failover::{Load, Outcome, assert_waits_for_persistence, runs, settle};
use crate::stack::{Options, Posted, Stack, get_json};

/// How long the standby is cut off before a kill.
const CUT: Duration = Duration::from_millis(300);

/// Even runs (the first of the short form) cut the standby off first; odd ones kill plainly.
fn cut(run: usize) -> Option<Duration> {
    run.is_multiple_of(2).then_some(CUT)
}

/// Rows the workers restored, from their logs.
fn restored(stack: &Stack) -> u64 {
    stack
        .workers
        .iter()
        .flat_map(|w| {
            w.logs()
                .lines()
                .filter(|l| l.contains("checked the last batches on the new server"))
                .filter_map(|l| {
                    let (_, rest) = l.split_once("restored=")?;
                    rest.split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()
                })
                .collect::<Vec<u64>>()
        })
        .sum()
}

fn report(replication: &str, accepted: &[Vec<Posted>], outcome: &Outcome, restored: u64) {
    for (run, posted) in accepted.iter().enumerate() {
        let lost = posted
            .iter()
            .filter(|p| outcome.missing.contains(&p.id))
            .count();
        let kill = if cut(run).is_some() { "cut" } else { "kill" };
        eprintln!(
            "PG_FAILOVER replication={replication} run={run} kill={kill} accepted={} lost={lost}",
            posted.len()
        );
    }
    eprintln!(
        "PG_FAILOVER replication={replication} total accepted={} lost={} restored={restored} \
         rows={} total_messages={} duplicated={}",
        accepted.iter().map(Vec::len).sum::<usize>(),
        outcome.missing.len(),
        outcome.rows,
        outcome.total_messages,
        outcome.unexpected.len()
    );
}

async fn kill_loop(synchronous: bool) {
    let _machine = crate::MACHINE.read().await;
    let mut pair = PostgresPair::start(synchronous)
        .await
        .expect("a primary and a streaming standby");
    let replication = if synchronous {
        "synchronous"
    } else {
        "asynchronous"
    };
    let extra = [
        ("POSTGRES__REPLICATION", replication),
        ("POSTGRES__CONNECT_TIMEOUT_MS", "1000"),
        ("WORKER__DEAD_AFTER_MS", "2000"),
    ];
    let options = Options {
        postgres_admin_url: Some(pair.url("postgres")),
        extra: &extra,
        ..Options::default()
    };
    let stack = Stack::start_with(&format!("pg_failover_{replication}"), 2, options).await;
    let settings = RedisSettings {
        url: stack.redis_url.clone().into(),
        key_prefix: stack.keys.prefix().to_owned(),
        ..RedisSettings::default()
    };
    let mut redis = connect::redis_manager(&settings).expect("client");
    let mut accepted = Vec::new();
    for run in 0..runs() {
        let load = Load::start(&stack, &format!("run{run}")).await;
        let failed = pair.fail_over(cut(run)).await;
        accepted.push(load.stop().await);
        failed.expect("failover");
    }
    let all: Vec<Posted> = accepted.iter().flatten().cloned().collect();
    let outcome = settle(&stack, &mut redis, &stack.keys, &all, true).await;
    let restored = restored(&stack);
    report(replication, &accepted, &outcome, restored);
    assert!(
        outcome.missing.is_empty(),
        "{} acknowledged messages lost",
        outcome.missing.len()
    );
    assert_eq!(outcome.unexpected, [], "no row but accepted ones");
    assert_eq!(
        outcome.total_messages, outcome.rows as i64,
        "counters exact: {outcome:?}"
    );
    if synchronous {
        assert_eq!(restored, 0, "a synchronous standby had every commit");
    } else {
        assert!(
            restored > 0,
            "the cut lost commits, which the workers restored"
        );
    }
    // Every service says which server it reaches now.
    let ready = get_json(&format!("{}/ready", stack.ingest_url)).await;
    let address = format!("127.0.0.1:{}", pair.primary.port);
    assert_eq!(
        ready["postgres_primary"]["address"],
        address.as_str(),
        "{ready}"
    );
    // So does every worker, in the list the dashboard shows.
    let workers = get_json(&format!("{}/workers", stack.gateway_url)).await;
    let servers: Vec<&str> = workers["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["postgres_server"].as_str())
        .collect();
    assert_eq!(servers, [address.as_str(); 2], "{workers}");
    assert_waits_for_persistence(&stack).await;
    stack.stop().await;
}

#[tokio::test]
async fn postgres_kills_with_a_synchronous_standby_lose_nothing() {
    kill_loop(true).await;
}

#[tokio::test]
async fn postgres_kills_with_an_asynchronous_standby_are_repaired() {
    kill_loop(false).await;
}

/// A worker told to expect a synchronous standby, against a server that has none (the shared
/// one), says so at start; told nothing, it says nothing.
#[tokio::test]
async fn a_worker_warns_when_the_server_does_not_give_the_replication_wanted() {
    let wanted = [("POSTGRES__REPLICATION", "synchronous")];
    let options = Options {
        extra: &wanted,
        ..Options::default()
    };
    let stack = Stack::start_with("pg_replication_wanted", 1, options).await;
    let says = "postgres.replication is synchronous, but";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !stack.workers[0].logs().contains(says) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no warning: {}",
            stack.workers[0].logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stack.workers[0]
            .logs()
            .contains("synchronous_standby_names = ''")
    );
    let env: Vec<_> = stack
        .env
        .iter()
        .filter(|(key, _)| key != "SLUICE__POSTGRES__REPLICATION")
        .cloned()
        .collect();
    let unchecked = Service::start("sluice-worker", &env, &[]).expect("starts");
    // Its first probe comes after the start-up check.
    while !unchecked.logs().contains("PostgreSQL server reached") {
        assert!(tokio::time::Instant::now() < deadline + Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !unchecked.logs().contains("postgres.replication"),
        "{}",
        unchecked.logs()
    );
    drop(unchecked);
    stack.stop().await;
}
