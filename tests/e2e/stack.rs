//! Starting a whole Sluice stack from the real binaries.

use std::time::Duration;

use sluice_core::Keys;
use sluice_tests::TestDb;
use sluice_tests::process::{Service, free_port, wait_http_ok};

pub struct Stack {
    pub keys: Keys,
    pub db: TestDb,
    pub ingest: Service,
    pub gateway: Service,
    pub workers: Vec<Service>,
    pub ingest_url: String,
    pub gateway_port: u16,
}

impl Stack {
    /// Ingest, gateway and `workers` workers, all up and answering.
    pub async fn start(tag: &str, workers: usize) -> Stack {
        let db = TestDb::create(tag).await.expect("database");
        let prefix = sluice_tests::unique_prefix(tag);
        let ingest_port = free_port();
        let gateway_port = free_port();
        let ingest_listen = format!("127.0.0.1:{ingest_port}");
        let gateway_listen = format!("127.0.0.1:{gateway_port}");
        let env = sluice_tests::env_for(
            &prefix,
            &db,
            &[
                ("INGEST__LISTEN", &ingest_listen),
                ("GATEWAY__LISTEN", &gateway_listen),
            ],
        );
        let workers: Vec<Service> = (0..workers)
            .map(|_| Service::start("sluice-worker", &env, &[]).expect("worker starts"))
            .collect();
        let mut ingest = Service::start("sluice-ingest", &env, &[]).expect("ingest starts");
        let mut gateway = Service::start("sluice-gateway", &env, &[]).expect("gateway starts");
        let ingest_url = format!("http://{ingest_listen}");
        wait_http_ok(
            &mut ingest,
            &format!("{ingest_url}/health"),
            Duration::from_secs(20),
        )
        .await
        .expect("ingest up");
        wait_http_ok(
            &mut gateway,
            &format!("http://{gateway_listen}/health"),
            Duration::from_secs(20),
        )
        .await
        .expect("gateway up");
        // /ready needs the schema the workers create.
        wait_http_ok(
            &mut ingest,
            &format!("{ingest_url}/ready"),
            Duration::from_secs(30),
        )
        .await
        .expect("ingest ready");
        Stack {
            keys: Keys::new(&prefix),
            db,
            ingest,
            gateway,
            workers,
            ingest_url,
            gateway_port,
        }
    }

    pub async fn row_count(&self) -> i64 {
        let client = self.db.client().await.expect("client");
        client
            .query_one("SELECT count(*) FROM messages", &[])
            .await
            .expect("count")
            .get(0)
    }

    /// Polls until `rows` rows are persisted, at most `timeout`.
    pub async fn wait_rows(&self, rows: i64, timeout: Duration) -> i64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let n = self.row_count().await;
            if n >= rows || tokio::time::Instant::now() > deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM to every process; each must exit 0.
    pub async fn stop(mut self) {
        for service in self
            .workers
            .iter_mut()
            .chain([&mut self.ingest, &mut self.gateway])
        {
            let status = service.stop(Duration::from_secs(15)).await.expect("exits");
            assert!(
                status.success(),
                "clean exit, got {status}; log:\n{}",
                service.logs()
            );
        }
        sluice_tests::delete_prefix(self.keys.prefix())
            .await
            .expect("keys deleted");
        self.db.drop_db().await.expect("database dropped");
    }
}
