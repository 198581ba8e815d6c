//! Batches: size and time limits, idempotent inserts, counters, events, dead letters.

use std::time::Duration;

use futures_util::StreamExt;
use sluice_proto::events::{BatchEvent, DeadLetter};
use sluice_worker::Step;

use crate::helpers::{envelope, spawn_worker};

#[tokio::test]
async fn a_step_persists_the_batch_and_updates_every_counter() {
    let mut t = spawn_worker(&[("WORKER__BATCH_MAX_SIZE", "100")]).await;
    let client = redis::Client::open(sluice_tests::redis_url()).expect("client");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub
        .subscribe(&t.keys.batch_events)
        .await
        .expect("subscribe");

    let envelopes: Vec<_> = (0..30).map(envelope).collect();
    t.push(&envelopes).await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 30,
            inserted: 30
        }
    );

    assert_eq!(t.row_count().await, 30);
    let (total, batches) = (t.keys.total_messages.clone(), t.keys.total_batches.clone());
    assert_eq!(t.counter(&total).await, 30);
    assert_eq!(t.counter(&batches).await, 1);
    let pending = t.keys.pending_messages.clone();
    assert_eq!(t.llen(&pending).await, 0);
    assert_eq!(t.processing_len().await, 0);

    let message = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .expect("event within 5 s")
        .expect("message");
    let event: BatchEvent =
        serde_json::from_slice(message.get_payload_bytes()).expect("event JSON");
    assert_eq!(event.size, 30);
    assert_eq!(event.inserted, 30);
    assert_eq!(event.worker_id, t.worker.id());
    assert_eq!(
        event.message_ids,
        envelopes.iter().map(|e| e.id).collect::<Vec<_>>()
    );

    // current_rps counts complete seconds: the batch shows once its second has ended, as
    // 30 messages over the 10-second window.
    let fresh = Duration::from_secs(10);
    let reader = sluice_core::stats::StatsReader::new(t.keys.clone(), fresh);
    let upkeep = sluice_core::upkeep::Upkeep::new(t.keys.clone(), "test", fresh);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let stats = loop {
        upkeep.run_once(&mut t.redis).await.expect("upkeep");
        let stats = reader.read(&mut t.redis).await.expect("stats");
        if stats.current_rps > 0.0 || tokio::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(stats.total_messages, 30);
    assert_eq!(stats.current_rps, 3.0, "the batch is in the rate window");
    t.cleanup().await;
}

#[tokio::test]
async fn batches_flush_at_the_size_limit() {
    let mut t = spawn_worker(&[("WORKER__BATCH_MAX_SIZE", "10")]).await;
    let envelopes: Vec<_> = (0..25).map(envelope).collect();
    t.push(&envelopes).await;
    let mut sizes = Vec::new();
    for _ in 0..3 {
        match t.step().await {
            Step::Committed { size, .. } => sizes.push(size),
            other => panic!("messages are waiting, got {other:?}"),
        }
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(t.row_count().await, 25);

    // Rows keep the order they were consumed in: ids are time-ordered.
    let client = t.db.client().await.expect("client");
    let stored: Vec<uuid::Uuid> = client
        .query("SELECT id FROM messages ORDER BY inserted_at, id", &[])
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, envelopes.iter().map(|e| e.id).collect::<Vec<_>>());
    t.cleanup().await;
}

#[tokio::test]
async fn a_batch_waits_for_late_messages_until_the_deadline() {
    let mut t = spawn_worker(&[
        ("WORKER__BATCH_MAX_SIZE", "100"),
        ("WORKER__BATCH_MAX_WAIT_MS", "3000"),
    ])
    .await;
    t.push(&[envelope(0)]).await;
    let late = envelope(1);
    let mut producer = sluice_tests::redis().await.expect("redis");
    let pending = t.keys.pending_messages.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _: () = redis::cmd("LPUSH")
            .arg(&pending)
            .arg(late.to_json())
            .query_async(&mut producer)
            .await
            .expect("LPUSH");
    });
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 2,
            inserted: 2
        },
        "the message pushed 100 ms after the first joins its batch"
    );
    t.cleanup().await;
}

/// Sizes of the batches a worker commits while 10 messages (awaited or not) arrive every
/// 50 ms for 2.5 s: 200 a second, which brings 50 within 250 ms.
async fn batches_under_steady_intake(awaited: bool) -> Vec<usize> {
    let mut t = spawn_worker(&[
        ("WORKER__BATCH_FILL_SIZE", "50"),
        ("WORKER__BATCH_FILL_MAX_WAIT_MS", "1000"),
        ("WORKER__IDLE_POLL_MS", "50"),
    ])
    .await;
    let mut producer = sluice_tests::redis().await.expect("redis");
    let pending = t.keys.pending_messages.clone();
    let pushing = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        for round in 0..50 {
            tick.tick().await;
            let entries: Vec<Vec<u8>> = (0..10)
                .map(|i| envelope(round * 10 + i).awaited(awaited).to_json())
                .collect();
            let _: () = redis::cmd("LPUSH")
                .arg(&pending)
                .arg(entries)
                .query_async(&mut producer)
                .await
                .expect("LPUSH");
        }
    });
    let mut sizes = Vec::new();
    while !pushing.is_finished() {
        if let Step::Committed { size, .. } = t.step().await {
            sizes.push(size);
        }
    }
    while let Step::Committed { size, .. } = t.step().await {
        sizes.push(size);
    }
    assert_eq!(sizes.iter().sum::<usize>(), 500, "{sizes:?}");
    assert_eq!(t.row_count().await, 500);
    t.cleanup().await;
    sizes
}

#[tokio::test]
async fn a_steady_intake_fills_batches_unless_a_sender_waits_for_the_commit() {
    // Once the rate is known (two batches), each batch waits to hold 50, bar the last.
    let filled = batches_under_steady_intake(false).await;
    let steady = &filled[2..filled.len() - 1];
    assert!(
        !steady.is_empty() && steady.iter().all(|&n| n >= 50),
        "{filled:?}"
    );
    // The same intake, every sender waiting: each batch goes in with what is there.
    let awaited = batches_under_steady_intake(true).await;
    assert!(awaited.len() >= 20, "{awaited:?}");
    assert!(awaited.iter().all(|&n| n < 50), "{awaited:?}");
}

#[tokio::test]
async fn idle_step_takes_nothing() {
    let mut t = spawn_worker(&[("WORKER__IDLE_POLL_MS", "50")]).await;
    assert_eq!(t.step().await, Step::Idle);
    assert_eq!(t.processing_len().await, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn a_redelivered_message_never_becomes_a_second_row() {
    let mut t = spawn_worker(&[]).await;
    let e = envelope(0);
    t.push(&[e.clone(), e.clone()]).await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 2,
            inserted: 1
        }
    );
    t.push(&[e]).await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 1,
            inserted: 0
        }
    );
    assert_eq!(t.row_count().await, 1);
    let total = t.keys.total_messages.clone();
    assert_eq!(
        t.counter(&total).await,
        1,
        "total_messages counts rows, not deliveries"
    );
    t.cleanup().await;
}

#[tokio::test]
async fn an_id_is_one_row_whatever_created_at_a_copy_claims() {
    let mut t = spawn_worker(&[]).await;
    let e = envelope(0);
    t.push(std::slice::from_ref(&e)).await;
    t.step().await;
    // A forged copy (a dead letter edited and requeued): the same id, another created_at, in
    // the same partition and in one a day later; and both in one batch.
    let mut later = e.clone();
    later.created_at += chrono::TimeDelta::seconds(1);
    let mut next_day = e.clone();
    next_day.created_at += chrono::TimeDelta::days(1);
    t.push(&[later.clone()]).await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 1,
            inserted: 0
        }
    );
    t.push(&[next_day, later]).await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 2,
            inserted: 0
        }
    );
    let fresh = envelope(1);
    let mut twin = fresh.clone();
    twin.created_at += chrono::TimeDelta::seconds(1);
    t.push(&[fresh, twin]).await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 2,
            inserted: 1
        },
        "an id twice in one batch is one row"
    );
    assert_eq!(t.row_count().await, 2);
    t.cleanup().await;
}

#[tokio::test]
async fn poison_goes_to_dead_messages_and_its_batch_mates_commit() {
    let mut t = spawn_worker(&[]).await;
    let good = envelope(0);
    t.push_raw(&[
        good.to_json(),
        b"{\"garbage\": true}".to_vec(),
        envelope(1).to_json(),
    ])
    .await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 3,
            inserted: 2
        }
    );
    assert_eq!(t.row_count().await, 2);
    let (dead, letters) = (t.keys.dead_messages.clone(), t.keys.dead_letters.clone());
    assert_eq!(t.counter(&letters).await, 1);
    let entries: Vec<String> = redis::cmd("LRANGE")
        .arg(&dead)
        .arg(0)
        .arg(-1)
        .query_async(&mut t.redis)
        .await
        .expect("LRANGE");
    assert_eq!(entries.len(), 1);
    let letter: DeadLetter = serde_json::from_str(&entries[0]).expect("dead letter JSON");
    assert_eq!(letter.payload, "{\"garbage\": true}");
    assert!(!letter.reason.is_empty());
    t.cleanup().await;
}

#[tokio::test]
async fn dead_letters_keep_exact_bytes_and_the_list_stays_within_its_bound() {
    let mut t = spawn_worker(&[("WORKER__DEAD_LETTERS_MAX", "2")]).await;
    let poison: Vec<Vec<u8>> = vec![
        b"\xff\xfe not UTF-8".to_vec(),
        b"{\"second\": 2}".to_vec(),
        b"{\"third\": 3}".to_vec(),
    ];
    let mut entries = poison.clone();
    entries.push(envelope(0).to_json());
    t.push_raw(&entries).await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 4,
            inserted: 1
        }
    );
    let (dead, letters, trimmed) = (
        t.keys.dead_messages.clone(),
        t.keys.dead_letters.clone(),
        t.keys.dead_letters_trimmed.clone(),
    );
    assert_eq!(t.counter(&letters).await, 3, "every dead letter is counted");
    assert_eq!(
        t.counter(&trimmed).await,
        1,
        "the oldest was dropped and counted"
    );
    let kept: Vec<String> = redis::cmd("LRANGE")
        .arg(&dead)
        .arg(0)
        .arg(-1)
        .query_async(&mut t.redis)
        .await
        .expect("LRANGE");
    let kept: Vec<Vec<u8>> = kept
        .iter()
        .map(|e| serde_json::from_str::<DeadLetter>(e).expect("json").bytes())
        .collect();
    assert_eq!(kept, [poison[2].clone(), poison[1].clone()], "newest first");

    // A batch whose only poison is not UTF-8: its exact bytes survive in payload_hex.
    t.push_raw(&[poison[0].clone()]).await;
    t.step().await;
    let newest: String = redis::cmd("LINDEX")
        .arg(&dead)
        .arg(0)
        .query_async(&mut t.redis)
        .await
        .expect("LINDEX");
    let letter: DeadLetter = serde_json::from_str(&newest).expect("json");
    assert_eq!(letter.bytes(), poison[0]);
    assert_eq!(
        letter.payload_hex.as_deref(),
        Some("fffe206e6f74205554462d38")
    );
    assert_eq!(t.counter(&trimmed).await, 2);
    t.cleanup().await;
}

#[tokio::test]
async fn rows_postgres_rejects_are_isolated_and_dead_lettered() {
    let mut t = spawn_worker(&[]).await;
    let client = t.db.client().await.expect("client");
    client
        .batch_execute(
            "ALTER TABLE messages ADD CONSTRAINT test_reject CHECK (content <> 'message 3')",
        )
        .await
        .expect("constraint");
    let envelopes: Vec<_> = (0..10).map(envelope).collect();
    t.push(&envelopes).await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 10,
            inserted: 9
        }
    );
    assert_eq!(t.row_count().await, 9);
    let (dead, letters, total) = (
        t.keys.dead_messages.clone(),
        t.keys.dead_letters.clone(),
        t.keys.total_messages.clone(),
    );
    assert_eq!(t.counter(&letters).await, 1);
    assert_eq!(t.counter(&total).await, 9);
    let entries: Vec<String> = redis::cmd("LRANGE")
        .arg(&dead)
        .arg(0)
        .arg(-1)
        .query_async(&mut t.redis)
        .await
        .expect("LRANGE");
    let letter: DeadLetter = serde_json::from_str(&entries[0]).expect("dead letter JSON");
    assert!(letter.reason.contains("test_reject"), "{}", letter.reason);
    let original: sluice_proto::message::Envelope =
        serde_json::from_str(&letter.payload).expect("the payload is the envelope");
    assert_eq!(original, envelopes[3]);
    t.cleanup().await;
}

#[tokio::test]
async fn without_the_replicas_required_nothing_is_inserted_and_the_batch_stays_in_hand() {
    // The shared test Redis has no replica: the take is never confirmed.
    let mut t = spawn_worker(&[
        ("REDIS__ACK_REPLICAS", "1"),
        ("REDIS__ACK_TIMEOUT_MS", "50"),
    ])
    .await;
    let envelopes: Vec<_> = (0..5).map(envelope).collect();
    t.push(&envelopes).await;
    for _ in 0..2 {
        let failed = t.worker.try_execute_task(&t.shutdown).await;
        assert!(
            matches!(
                failed,
                Err(sluice_worker::worker::StepError::NotReplicated {
                    confirmed: 0,
                    wanted: 1
                })
            ),
            "{failed:?}"
        );
        // Taken into the processing list, then resumed from it: never inserted, never lost.
        assert_eq!(t.processing_len().await, 5);
        assert_eq!(t.row_count().await, 0);
    }
    let total = t.keys.total_messages.clone();
    assert_eq!(t.counter(&total).await, 0);
    t.cleanup().await;
}

#[tokio::test]
async fn a_huge_poison_entry_becomes_a_dead_letter_of_bounded_size() {
    let mut t = spawn_worker(&[("WORKER__DEAD_LETTER_MAX_BYTES", "4096")]).await;
    // 10 MB of bytes that are not UTF-8, as a client with Redis access might push.
    let garbage = vec![0x80u8; 10 << 20];
    t.push_raw(&[garbage.clone(), envelope(0).to_json()]).await;
    assert_eq!(
        t.step().await,
        Step::Committed {
            size: 2,
            inserted: 1
        }
    );
    let newest: Vec<u8> = redis::cmd("LINDEX")
        .arg(&t.keys.dead_messages)
        .arg(0)
        .query_async(&mut t.redis)
        .await
        .expect("LINDEX");
    // 4 KiB kept, as text (U+FFFD, 3 bytes each) and hex (2 bytes each), with the JSON around.
    assert!(newest.len() < 24 * 1024, "{} bytes", newest.len());
    let letter: DeadLetter = serde_json::from_slice(&newest).expect("json");
    assert_eq!(letter.payload_bytes, Some(10 << 20));
    assert_eq!(letter.bytes(), garbage[..4096]);
    t.cleanup().await;
}
