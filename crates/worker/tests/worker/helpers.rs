//! A worker with its own key prefix and database.

use redis::aio::MultiplexedConnection;
use sluice_core::{CancellationToken, Keys, Settings};
use sluice_proto::message::{Envelope, MessageRequest, NewMessage};
use sluice_tests::TestDb;
use sluice_worker::{Step, Worker};

pub struct TestWorker {
    pub worker: Worker,
    pub keys: Keys,
    pub db: TestDb,
    pub redis: MultiplexedConnection,
    pub settings: Settings,
    pub shutdown: CancellationToken,
}

pub async fn spawn_worker(extra: &[(&str, &str)]) -> TestWorker {
    let db = TestDb::create("worker").await.expect("database");
    let prefix = sluice_tests::unique_prefix("worker");
    let settings = sluice_tests::settings(&prefix, &db, extra);
    let worker = Worker::new(&settings).expect("worker");
    worker.migrate().await.expect("migrations");
    TestWorker {
        worker,
        keys: Keys::new(&prefix),
        db,
        redis: sluice_tests::redis().await.expect("redis"),
        settings,
        shutdown: CancellationToken::new(),
    }
}

pub fn envelope(i: usize) -> Envelope {
    let message = MessageRequest::new(i as i64 + 1, 1, format!("message {i}"));
    let body = serde_json::to_vec(&message).expect("json");
    sluice_core::clock::envelope(NewMessage::from_json(&body).expect("valid"))
}

impl TestWorker {
    /// LPUSHes raw entries the way the ingest API does.
    pub async fn push_raw(&mut self, entries: &[Vec<u8>]) {
        let _: () = redis::cmd("LPUSH")
            .arg(&self.keys.pending_messages)
            .arg(entries)
            .query_async(&mut self.redis)
            .await
            .expect("LPUSH");
    }

    pub async fn push(&mut self, envelopes: &[Envelope]) {
        let raw: Vec<Vec<u8>> = envelopes.iter().map(Envelope::to_json).collect();
        self.push_raw(&raw).await;
    }

    pub async fn step(&mut self) -> Step {
        self.worker
            .try_execute_task(&self.shutdown)
            .await
            .expect("step succeeds")
    }

    pub async fn row_count(&self) -> i64 {
        self.db.row_count().await
    }

    pub async fn counter(&mut self, key: &str) -> i64 {
        let v: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.redis)
            .await
            .expect("GET");
        v.unwrap_or(0)
    }

    pub async fn llen(&mut self, key: &str) -> i64 {
        redis::cmd("LLEN")
            .arg(key)
            .query_async(&mut self.redis)
            .await
            .expect("LLEN")
    }

    pub async fn hget(&mut self, key: &str, field: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query_async(&mut self.redis)
            .await
            .expect("HGET")
    }

    pub async fn processing_len(&mut self) -> i64 {
        let key = self.keys.processing(self.worker.id());
        self.llen(&key).await
    }

    pub async fn cleanup(self) {
        sluice_tests::delete_prefix(self.keys.prefix())
            .await
            .expect("keys deleted");
        self.db.drop_db().await.expect("database dropped");
    }
}
