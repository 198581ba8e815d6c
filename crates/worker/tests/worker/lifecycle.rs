//! Shutdown, restart, outages, and the decay of `current_rps`.

use std::time::Duration;

use sluice_core::Keys;
use sluice_core::stats::StatsReader;
use sluice_core::upkeep::{Turn, Upkeep};
use sluice_worker::registry::{Beat, BeatReply, beat};
use sluice_worker::{Step, Worker};

use crate::helpers::{envelope, spawn_worker};

#[tokio::test]
async fn shutdown_commits_the_batch_in_hand() {
    let mut t = spawn_worker(&[
        ("WORKER__BATCH_MAX_SIZE", "1000"),
        ("WORKER__BATCH_MAX_WAIT_MS", "60000"),
        ("WORKER__IDLE_POLL_MS", "200"),
    ])
    .await;
    let envelopes: Vec<_> = (0..10).map(envelope).collect();
    t.push(&envelopes).await;
    let worker = Worker::new(&t.settings).expect("worker");
    let processing = t.keys.processing(worker.id());
    let shutdown = t.shutdown.clone();
    let run = tokio::spawn(worker.run(shutdown.clone()));
    // The worker takes all ten, then waits a minute for more: interrupt it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while t.llen(&processing).await < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker never took the batch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(t.row_count().await, 0, "still waiting for more messages");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("worker exits promptly")
        .expect("task")
        .expect("clean exit");
    assert_eq!(t.row_count().await, 10);
    assert_eq!(t.llen(&processing).await, 0);
    let total = t.keys.total_messages.clone();
    assert_eq!(t.counter(&total).await, 10);
    t.cleanup().await;
}

#[tokio::test]
async fn a_restarted_worker_resumes_the_batch_left_in_its_processing_list() {
    let mut t = spawn_worker(&[("WORKER__ID", "steady-1")]).await;
    let envelopes: Vec<_> = (0..4).map(envelope).collect();
    // What a crash leaves behind: entries in processing:steady-1 (newest at the head).
    let processing = t.keys.processing("steady-1");
    for e in &envelopes {
        let _: () = redis::cmd("LPUSH")
            .arg(&processing)
            .arg(e.to_json())
            .query_async(&mut t.redis)
            .await
            .expect("LPUSH");
    }
    t.push(&[envelope(9)]).await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 4,
            inserted: 4
        },
        "old batch first"
    );
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 1,
            inserted: 1
        }
    );
    assert_eq!(t.llen(&processing).await, 0);
    assert_eq!(t.row_count().await, 5);
    t.cleanup().await;
}

#[tokio::test]
async fn postgres_down_keeps_the_batch_until_a_peer_reclaims_it() {
    let mut t = spawn_worker(&[("WORKER__DEAD_AFTER_MS", "1000")]).await;
    let envelopes: Vec<_> = (0..5).map(envelope).collect();
    t.push(&envelopes).await;
    let mut settings = t.settings.clone();
    settings.postgres.url = "postgres://postgres@127.0.0.1:1/nowhere".into();
    settings.postgres.connect_timeout_ms = 200;
    let mut broken = Worker::new(&settings).expect("worker");
    broken.heartbeat().await.expect("registered");
    let processing = t.keys.processing(broken.id());
    let err = broken
        .try_execute_task(&t.shutdown)
        .await
        .expect_err("PostgreSQL is unreachable");
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
    assert_eq!(
        t.llen(&processing).await,
        5,
        "the batch stays in the processing list"
    );
    let err = broken
        .try_execute_task(&t.shutdown)
        .await
        .expect_err("still unreachable");
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
    assert_eq!(t.llen(&processing).await, 5, "retrying does not take more");

    // Shutting down (run() skips its loop once cancelled) keeps the batch where it is.
    t.shutdown.cancel();
    broken.run(t.shutdown.clone()).await.expect("clean exit");
    assert_eq!(t.llen(&processing).await, 5);

    // A healthy peer finds the silent worker and takes its batch over, oldest first.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fresh = sluice_core::CancellationToken::new();
    let dead = t.worker.heartbeat().await.expect("heartbeat");
    assert!(
        dead.iter().any(|id| processing.ends_with(id.as_str())),
        "{dead:?}"
    );
    let outcome = t.worker.try_execute_task(&fresh).await.expect("step");
    assert_eq!(
        outcome,
        Step::Committed {
            size: 5,
            inserted: 5
        }
    );
    assert_eq!(t.llen(&processing).await, 0);
    let client = t.db.client().await.expect("client");
    let order: Vec<uuid::Uuid> = client
        .query("SELECT id FROM messages ORDER BY id", &[])
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(order, envelopes.iter().map(|e| e.id).collect::<Vec<_>>());
    t.cleanup().await;
}

#[tokio::test]
async fn a_reclaimed_batch_committed_before_its_worker_died_is_counted_once() {
    let mut t = spawn_worker(&[("WORKER__DEAD_AFTER_MS", "1000")]).await;
    let envelopes: Vec<_> = (0..5).map(envelope).collect();
    // What a worker that died between its PostgreSQL commit and its Redis bookkeeping leaves:
    // its batch in processing:ghost, three of the five rows already inserted, uncounted.
    let ghost = t.keys.processing("ghost");
    for e in &envelopes {
        let _: () = redis::cmd("LPUSH")
            .arg(&ghost)
            .arg(e.to_json())
            .query_async(&mut t.redis)
            .await
            .expect("LPUSH");
    }
    let _: () = redis::cmd("ZADD")
        .arg(&t.keys.workers)
        .arg(1)
        .arg("ghost")
        .query_async(&mut t.redis)
        .await
        .expect("ZADD");
    for (key, value) in [
        (&t.keys.workers_output, "9 99 9.9"),
        (&t.keys.workers_postgres_server, "1 10.0.0.9:5432"),
    ] {
        let _: () = redis::cmd("HSET")
            .arg(key)
            .arg("ghost")
            .arg(value)
            .query_async(&mut t.redis)
            .await
            .expect("HSET");
    }
    let client = t.db.client().await.expect("client");
    for e in &envelopes[..3] {
        client
            .execute(
                "INSERT INTO messages (id, user_id, channel_id, content, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&e.id, &e.user_id.get(), &e.channel_id.get(), &e.content.as_str(), &e.created_at],
            )
            .await
            .expect("insert");
    }
    assert_eq!(
        t.worker.heartbeat().await.expect("heartbeat"),
        vec!["ghost".to_owned()]
    );
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 5,
            inserted: 5
        }
    );
    assert_eq!(t.row_count().await, 5);
    let total = t.keys.total_messages.clone();
    assert_eq!(
        t.counter(&total).await,
        5,
        "committed-but-uncounted rows are counted once"
    );
    assert_eq!(t.llen(&ghost).await, 0);
    let registered: Option<f64> = redis::cmd("ZSCORE")
        .arg(&t.keys.workers)
        .arg("ghost")
        .query_async(&mut t.redis)
        .await
        .expect("ZSCORE");
    assert_eq!(registered, None, "the dead worker left the registry");
    t.worker.heartbeat().await.expect("heartbeat");
    let output: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&t.keys.workers_output)
        .query_async(&mut t.redis)
        .await
        .expect("HGETALL");
    let reports: Vec<&str> = output.values().map(String::as_str).collect();
    assert_eq!(reports.len(), 1, "the ghost's report is gone: {reports:?}");
    // The ghost's server is forgotten; the live worker names the one its batch committed on.
    let servers: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&t.keys.workers_postgres_server)
        .query_async(&mut t.redis)
        .await
        .expect("HGETALL");
    let servers: Vec<&String> = servers.keys().collect();
    assert_eq!(servers, [t.worker.id()], "the ghost's server is gone");
    let report = reports[0]
        .strip_prefix("1 5 ")
        .expect("one batch of 5 rows");
    let rate: f64 = report.parse().expect("a rate");
    assert!(
        rate > 0.0 && rate <= 5.0,
        "5 rows over a second at least: {rate}"
    );
    t.cleanup().await;
}

#[tokio::test]
async fn a_worker_presumed_dead_is_fenced_and_resumes_without_duplicates() {
    let mut t = spawn_worker(&[("WORKER__DEAD_AFTER_MS", "1000")]).await;
    let mut paused = Worker::new(&t.settings).expect("worker");
    paused.heartbeat().await.expect("registered");
    t.push(&[envelope(0)]).await;
    let shutdown = sluice_core::CancellationToken::new();
    let outcome = paused.try_execute_task(&shutdown).await.expect("step");
    assert_eq!(
        outcome,
        Step::Committed {
            size: 1,
            inserted: 1
        }
    );

    // It goes silent; the peer presumes it dead and revokes its lease.
    let _: () = redis::cmd("ZADD")
        .arg(&t.keys.workers)
        .arg(1)
        .arg(paused.id())
        .query_async(&mut t.redis)
        .await
        .expect("ZADD");
    let dead = t.worker.heartbeat().await.expect("heartbeat");
    assert_eq!(dead, vec![paused.id().to_owned()]);
    assert_eq!(
        t.worker.reclaim_dead_peers().await.expect("reclaim"),
        0,
        "nothing in hand to take"
    );
    // Gone by a reclaim, and lost until it beats again.
    let gone_how = t.keys.workers_gone_how.clone();
    let how: Option<String> = t.hget(&gone_how, paused.id()).await;
    assert_eq!(how, Some(format!("reclaimed {}", t.worker.id())));
    let reader = StatsReader::new(t.keys.clone(), Duration::from_millis(1000));
    let stats = reader.read(&mut t.redis).await.expect("stats");
    assert_eq!(stats.workers_lost, 1);
    assert_eq!(stats.lost_worker_ids, [paused.id().to_owned()]);

    // Back again, it takes three messages but may not insert them under the revoked lease.
    let batch: Vec<_> = (1..4).map(envelope).collect();
    t.push(&batch).await;
    let outcome = paused.try_execute_task(&shutdown).await.expect("step");
    assert_eq!(outcome, Step::Fenced);
    assert_eq!(t.row_count().await, 1, "nothing inserted while fenced");
    let processing = t.keys.processing(paused.id());
    assert_eq!(
        t.llen(&processing).await,
        3,
        "the batch stays in the processing list"
    );
    // It registers again and resumes the batch.
    let outcome = paused.try_execute_task(&shutdown).await.expect("step");
    assert_eq!(
        outcome,
        Step::Committed {
            size: 3,
            inserted: 3
        }
    );
    assert_eq!(t.row_count().await, 4);
    let total = t.keys.total_messages.clone();
    assert_eq!(t.counter(&total).await, 4);
    // Its next heartbeat puts it back in the registry: no longer gone, no longer lost.
    paused.heartbeat().await.expect("beat");
    let how: Option<String> = t.hget(&gone_how, paused.id()).await;
    assert_eq!(how, None);
    let stats = reader.read(&mut t.redis).await.expect("stats");
    assert_eq!((stats.workers_lost, stats.workers_late), (0, 0));
    // Its rows are in its own per-second buckets, the same rows as rate_window's.
    let by_worker: std::collections::HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(&t.keys.workers_rate_window)
        .query_async(&mut t.redis)
        .await
        .expect("HGETALL");
    let mine: u64 = by_worker
        .iter()
        .filter(|(field, _)| field.ends_with(&format!(":{}", paused.id())))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(mine, 4);
    // A clean stop is remembered as an exit, not a loss.
    let leave = sluice_worker::lua::unregister::Unregister {
        worker_id: paused.id(),
    };
    sluice_core::lua::call(&mut t.redis, &t.keys, &leave)
        .await
        .expect("unregistered");
    let how: Option<String> = t.hget(&gone_how, paused.id()).await;
    assert_eq!(how.as_deref(), Some("exit"));
    let stats = reader.read(&mut t.redis).await.expect("stats");
    assert_eq!(stats.workers_lost, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn backlog_is_the_queue_plus_every_processing_list() {
    let mut conn = sluice_tests::redis().await.expect("redis");
    let keys = Keys::new(&sluice_tests::unique_prefix("backlog"));
    // Two workers holding 2 and 4 messages (moved there as BLMOVE would, one command each),
    // and 3 messages waiting. Each worker's next heartbeat counts its list into in_flight.
    for (worker, held) in [("w1", 2), ("w2", 4)] {
        for i in 0..held {
            let _: () = redis::cmd("LPUSH")
                .arg(keys.processing(worker))
                .arg(envelope(i).to_json())
                .query_async(&mut conn)
                .await
                .expect("LPUSH");
        }
    }
    for i in 0..3 {
        let _: () = redis::cmd("LPUSH")
            .arg(&keys.pending_messages)
            .arg(envelope(i).to_json())
            .query_async(&mut conn)
            .await
            .expect("LPUSH");
    }
    let fresh = Duration::from_secs(10);
    let reader = StatsReader::new(keys.clone(), fresh);
    let stats = reader.read(&mut conn).await.expect("stats");
    assert_eq!((stats.queue_depth, stats.in_flight), (3, 0), "no beat yet");
    let mut redis = manager();
    for worker in ["w1", "w2"] {
        beat_as(&mut redis, &keys, worker, true).await;
    }
    let stats = reader.read(&mut conn).await.expect("stats");
    assert_eq!((stats.queue_depth, stats.in_flight), (3, 6));
    assert_eq!(stats.backlog, 9);
    assert_eq!(stats.workers_alive, 2);
    // A beat that reports PostgreSQL down counts; one that reports it up again uncounts.
    beat_as(&mut redis, &keys, "w2", false).await;
    assert_eq!(
        reader
            .read(&mut conn)
            .await
            .expect("stats")
            .workers_postgres_down,
        1
    );
    beat_as(&mut redis, &keys, "w2", true).await;
    assert_eq!(
        reader
            .read(&mut conn)
            .await
            .expect("stats")
            .workers_postgres_down,
        0
    );
    // A list emptied behind the workers' backs is uncounted at the owner's next beat.
    let _: () = redis::cmd("DEL")
        .arg(keys.processing("w2"))
        .query_async(&mut conn)
        .await
        .expect("DEL");
    beat_as(&mut redis, &keys, "w2", true).await;
    assert_eq!(reader.read(&mut conn).await.expect("stats").in_flight, 2);
    sluice_tests::delete_prefix(keys.prefix())
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn the_upkeep_gives_each_worker_its_share_of_current_rps_and_counts_errors_and_replicas() {
    let mut conn = sluice_tests::redis().await.expect("redis");
    let prefix = sluice_tests::unique_prefix("shares");
    let keys = Keys::new(&prefix);
    let (now, _): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut conn)
        .await
        .expect("TIME");
    // As the commit script writes them: each batch's rows in both hashes.
    let batches = [
        (now - 3, "w1", 60),
        (now - 10, "w1", 10),
        (now - 3, "w2", 30),
        (now - 40, "w2", 7),
    ];
    for (second, worker, rows) in batches {
        let _: () = redis::pipe()
            .hincr(&keys.rate_window, second, rows)
            .hincr(
                &keys.workers_rate_window,
                format!("{second}:{worker}"),
                rows,
            )
            .query_async(&mut conn)
            .await
            .expect("HINCRBY");
    }
    let _: () = redis::pipe()
        .hincr(
            &keys.errors_window,
            format!("{}:not_replicated", now - 2),
            50,
        )
        .hincr(
            &keys.errors_window,
            format!("{}:redis_unavailable", now - 30),
            5,
        )
        .query_async(&mut conn)
        .await
        .expect("HINCRBY");
    let fresh = Duration::from_secs(10);
    let upkeep = Upkeep::new(keys.clone(), "test-holder", fresh).wanting_replicas(1);
    assert_eq!(
        upkeep.run_once(&mut conn).await.expect("upkeep"),
        Turn::Done
    );
    let stats = StatsReader::new(keys.clone(), fresh)
        .read(&mut conn)
        .await
        .expect("stats");
    let rates: std::collections::HashMap<String, f64> = redis::cmd("HGETALL")
        .arg(&keys.workers_rate)
        .query_async(&mut conn)
        .await
        .expect("HGETALL");
    // Computed in the same call as current_rps, from the same rows: they add up exactly.
    let sum: f64 = rates.values().sum();
    assert!(stats.current_rps > 0.0);
    assert!(
        (sum - stats.current_rps).abs() < 0.011,
        "{rates:?} against {}",
        stats.current_rps
    );
    assert_eq!(
        rates.get("w2"),
        Some(&3.0),
        "its stale bucket is not counted"
    );
    let stale: bool = redis::cmd("HEXISTS")
        .arg(&keys.workers_rate_window)
        .arg(format!("{}:w2", now - 40))
        .query_async(&mut conn)
        .await
        .expect("HEXISTS");
    assert!(!stale, "buckets outside the window are pruned");
    assert_eq!(
        stats.errors_per_second,
        [("not_replicated".to_owned(), 5.0)].into(),
        "50 answers over 10 s; the one outside the window is gone"
    );
    assert_eq!(stats.replicas_wanted, 1);
    // The test Redis is a primary without replicas.
    assert_eq!(stats.replicas_in_sync, Some(0));
    sluice_tests::delete_prefix(keys.prefix())
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn current_rps_averages_the_window_and_decays_to_zero() {
    let mut conn = sluice_tests::redis().await.expect("redis");
    let prefix = sluice_tests::unique_prefix("rate");
    let keys = Keys::new(&prefix);
    let (now, _): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut conn)
        .await
        .expect("TIME");
    // 90 messages three seconds ago, 10 ten seconds ago (the oldest second of the window),
    // 1000 thirty seconds ago (outside it) and 500 in the second in progress (not counted yet).
    let _: () = redis::cmd("HSET")
        .arg(&keys.rate_window)
        .arg(now - 3)
        .arg(90)
        .arg(now - 10)
        .arg(10)
        .arg(now - 30)
        .arg(1000)
        .arg(now)
        .arg(500)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    let fresh = Duration::from_secs(10);
    let reader = StatsReader::new(keys.clone(), fresh);
    let upkeep = Upkeep::new(keys.clone(), "test-holder", fresh);
    let before = reader.read(&mut conn).await.expect("stats");
    assert_eq!(before.current_rps, 0.0, "a read computes nothing");
    assert_eq!(
        upkeep.run_once(&mut conn).await.expect("upkeep"),
        Turn::Done
    );
    let stats = reader.read(&mut conn).await.expect("stats");
    // The upkeep may land in the next second, which moves the window by one second.
    assert!(
        [10.0, 59.0].contains(&stats.current_rps),
        "100 messages over the last 10 complete seconds, or 590 if a second passed: {}",
        stats.current_rps
    );
    let stored: String = redis::cmd("GET")
        .arg(&keys.current_rps)
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(
        stored.parse::<f64>().expect("number"),
        stats.current_rps,
        "the key is refreshed"
    );
    let stale: bool = redis::cmd("HEXISTS")
        .arg(&keys.rate_window)
        .arg(now - 30)
        .query_async(&mut conn)
        .await
        .expect("HEXISTS");
    assert!(!stale, "buckets outside the window are pruned");

    // Move the only bucket out of the window, as 10 idle seconds would.
    let _: () = redis::cmd("DEL")
        .arg(&keys.rate_window)
        .query_async(&mut conn)
        .await
        .expect("DEL");
    let _: () = redis::cmd("HSET")
        .arg(&keys.rate_window)
        .arg(now - 11)
        .arg(90)
        .query_async(&mut conn)
        .await
        .expect("HSET");
    assert_eq!(
        upkeep.run_once(&mut conn).await.expect("upkeep"),
        Turn::Done
    );
    let stats = reader.read(&mut conn).await.expect("stats");
    assert_eq!(stats.current_rps, 0.0);
    let stored: String = redis::cmd("GET")
        .arg(&keys.current_rps)
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(stored, "0.00");
    sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
}

#[tokio::test]
async fn one_process_holds_the_upkeep_lease_until_it_releases_it() {
    let mut conn = sluice_tests::redis().await.expect("redis");
    let prefix = sluice_tests::unique_prefix("lease");
    let keys = Keys::new(&prefix);
    let fresh = Duration::from_secs(10);
    let first = Upkeep::new(keys.clone(), "first", fresh);
    let second = Upkeep::new(keys.clone(), "second", fresh);
    assert_eq!(first.run_once(&mut conn).await.expect("upkeep"), Turn::Done);
    let Turn::HeldElsewhere(left) = second.run_once(&mut conn).await.expect("upkeep") else {
        panic!("the second contender must not do the upkeep while the first holds the lease");
    };
    assert!(
        left > Duration::ZERO && left <= sluice_core::upkeep::LEASE,
        "{left:?}"
    );
    // A worker's beat does not take a held lease either.
    let mut redis = manager();
    let reply = beat_as(&mut redis, &keys, "w1", true).await;
    assert!(!reply.holds_upkeep);
    // Released, it goes to the next to ask: here the worker's beat.
    second.release(&mut conn).await.expect("release");
    assert!(
        matches!(
            second.run_once(&mut conn).await.expect("upkeep"),
            Turn::HeldElsewhere(_)
        ),
        "only the holder's release frees the lease"
    );
    first.release(&mut conn).await.expect("release");
    let reply = beat_as(&mut redis, &keys, "w1", true).await;
    assert!(reply.holds_upkeep);
    assert!(matches!(
        first.run_once(&mut conn).await.expect("upkeep"),
        Turn::HeldElsewhere(_)
    ));
    sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
}

#[tokio::test]
async fn a_peer_with_the_smallest_dead_after_never_presumes_a_running_worker_dead() {
    // The running worker keeps the default dead_after (10 s) and so beats every second; the
    // peer judges it by the smallest value allowed (1 s), and must still wait for four of its
    // beats.
    let mut t = spawn_worker(&[("WORKER__DEAD_AFTER_MS", "1000")]).await;
    let mut running_settings = t.settings.clone();
    running_settings.worker.dead_after_ms = 10_000;
    let running = Worker::new(&running_settings).expect("worker");
    let running_id = running.id().to_owned();
    let run = tokio::spawn(running.run(t.shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut beats = 0;
    while tokio::time::Instant::now() < deadline {
        let dead = t.worker.heartbeat().await.expect("heartbeat");
        assert!(!dead.contains(&running_id), "live peer presumed dead");
        beats += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(beats > 20, "{beats}");
    t.shutdown.cancel();
    run.await.expect("task").expect("clean exit");
    t.cleanup().await;
}

#[tokio::test]
async fn a_worker_is_presumed_dead_past_the_judges_bound_and_four_of_its_own_beats() {
    let mut conn = sluice_tests::redis().await.expect("redis");
    let prefix = sluice_tests::unique_prefix("liveness");
    let keys = Keys::new(&prefix);
    let mut redis = manager();
    // "slow" beats every second (dead_after 10 s); "fast" judges with 1 s, beating every 250 ms.
    beat_judging(&mut redis, &keys, "slow", true, 10_000).await;
    let silent_for = |ms: u64| {
        let mut zadd = redis::cmd("ZADD");
        let now = sluice_core::clock::now().timestamp_millis() as u64;
        zadd.arg(&keys.workers).arg(now - ms).arg("slow");
        zadd
    };
    let _: () = silent_for(1_500)
        .query_async(&mut conn)
        .await
        .expect("ZADD");
    let reply = beat_judging(&mut redis, &keys, "fast", true, 1_000).await;
    assert!(
        reply.dead_peers.is_empty(),
        "1.5 s is one missed beat of slow's: {reply:?}"
    );
    let _: () = silent_for(4_500)
        .query_async(&mut conn)
        .await
        .expect("ZADD");
    assert_eq!(
        beat_judging(&mut redis, &keys, "fast", true, 1_000)
            .await
            .dead_peers,
        ["slow"]
    );
    // A worker that records no period (an earlier release's, beating every 250 ms) is judged
    // by the judge's bound alone.
    let _: () = redis::cmd("HDEL")
        .arg(&keys.workers_heartbeat_ms)
        .arg("slow")
        .query_async(&mut conn)
        .await
        .expect("HDEL");
    let _: () = silent_for(1_500)
        .query_async(&mut conn)
        .await
        .expect("ZADD");
    assert_eq!(
        beat_judging(&mut redis, &keys, "fast", true, 1_000)
            .await
            .dead_peers,
        ["slow"]
    );
    sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
}

/// A connection like a worker's own (beats take one).
fn manager() -> sluice_core::connect::RedisConnection {
    let settings = sluice_core::settings::RedisSettings {
        url: sluice_tests::redis_url().into(),
        ..Default::default()
    };
    sluice_core::connect::redis_manager(&settings).expect("manager")
}

/// Worker `worker`'s queue on the test Redis, its keys under `prefix`.
fn queue_of(worker: &str, prefix: &str) -> sluice_worker::queue::Queue {
    let settings = sluice_core::settings::RedisSettings {
        url: sluice_tests::redis_url().into(),
        key_prefix: prefix.to_owned(),
        ..Default::default()
    };
    sluice_worker::queue::Queue::new(&settings, worker, Duration::from_secs(1)).expect("queue")
}

#[tokio::test]
async fn in_flight_counts_a_batch_from_its_first_message_until_its_commit() {
    let prefix = sluice_tests::unique_prefix("inflight");
    let mut queue = queue_of("w1", &prefix);
    let keys = queue.keys().clone();
    let mut conn = sluice_tests::redis().await.expect("redis");
    for i in 0..5 {
        let _: () = redis::cmd("LPUSH")
            .arg(&keys.pending_messages)
            .arg(envelope(i).to_json())
            .query_async(&mut conn)
            .await
            .expect("LPUSH");
    }
    let reader = StatsReader::new(keys.clone(), Duration::from_secs(10));
    // The batch's first message by BLMOVE, the rest by one take that counts both.
    let first = queue
        .wait_one(Duration::from_secs(1))
        .await
        .expect("BLMOVE");
    assert!(first.is_some());
    let rest = queue.take(10, 1).await.expect("take");
    assert_eq!(rest.len(), 4);
    let stats = reader.read(&mut conn).await.expect("stats");
    assert_eq!(
        (stats.queue_depth, stats.in_flight, stats.backlog),
        (0, 5, 5)
    );
    let recorded = queue
        .record(&sluice_worker::queue::Record {
            inserted: 5,
            event: "{}",
            dead_letters: &[],
            latency: "",
            dead_letters_max: 10,
        })
        .await
        .expect("commit");
    assert!(recorded);
    let stats = reader.read(&mut conn).await.expect("stats");
    assert_eq!((stats.in_flight, stats.total_messages), (0, 5));
    sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
}

/// A take larger than one `LPUSH` chunk of the script (1,000) moves the oldest messages, returns
/// them oldest first, leaves the processing list as one `LMOVE` each would (so a resumed batch
/// reads the same), and leaves the rest queued in order.
#[tokio::test]
async fn a_large_take_moves_the_oldest_in_order_and_leaves_the_rest() {
    let prefix = sluice_tests::unique_prefix("bigtake");
    let mut queue = queue_of("w1", &prefix);
    let keys = queue.keys().clone();
    let mut conn = sluice_tests::redis().await.expect("redis");
    // Pushed as the ingest API does, at the head: message 0 is the oldest, at the tail.
    let all: Vec<Vec<u8>> = (0..2_600).map(|i| envelope(i).to_json()).collect();
    for chunk in all.chunks(500) {
        let _: () = redis::cmd("LPUSH")
            .arg(&keys.pending_messages)
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .expect("LPUSH");
    }
    let taken = queue.take(2_500, 0).await.expect("take");
    assert!(taken == all[..2_500], "the oldest 2,500, oldest first");
    let in_hand = queue.in_hand().await.expect("in hand");
    assert!(in_hand == taken, "the processing list reads back the same");
    let left: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(&keys.pending_messages)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("LRANGE");
    let newest_first: Vec<Vec<u8>> = all[2_500..].iter().rev().cloned().collect();
    assert!(left == newest_first, "the 100 newest stay queued, in order");
    let rest = queue.take(2_500, 0).await.expect("take the rest");
    assert_eq!(rest.len(), 100);
    let len: u64 = redis::cmd("LLEN")
        .arg(&keys.pending_messages)
        .query_async(&mut conn)
        .await
        .expect("LLEN");
    assert_eq!(len, 0);
    sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
}

/// One heartbeat of `worker`, judging peers by the default `dead_after_ms` (10 s): PostgreSQL
/// `up` or not, and an output.
async fn beat_as(
    redis: &mut sluice_core::connect::RedisConnection,
    keys: &Keys,
    worker: &str,
    postgres_up: bool,
) -> BeatReply {
    beat_judging(redis, keys, worker, postgres_up, 10_000).await
}

/// One heartbeat of `worker` set with `dead_after_ms`.
async fn beat_judging(
    redis: &mut sluice_core::connect::RedisConnection,
    keys: &Keys,
    worker: &str,
    postgres_up: bool,
    dead_after_ms: u64,
) -> BeatReply {
    let processing = keys.processing(worker);
    let said = Beat {
        processing: &processing,
        worker_id: worker,
        dead_after_ms,
        postgres_up,
        output: "3 120 12.5",
        postgres_server: "",
    };
    beat(redis, keys, &said).await.expect("beat")
}
