//! `spawn_app`: an ingest server on port 0 with its own key prefix and database.

use redis::aio::MultiplexedConnection;
use sluice_core::{CancellationToken, Keys, schema};
use sluice_ingest::Application;
use sluice_tests::TestDb;

pub struct TestApp {
    pub address: String,
    pub keys: Keys,
    pub db: TestDb,
    pub redis: MultiplexedConnection,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

/// Starts an ingest server with its own prefix and a migrated database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Like [`spawn_app`] with extra `SECTION__KEY` settings.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let db = TestDb::create("ingest").await.expect("test database");
    let mut client = deadpool_client(&db).await;
    schema::migrate(&mut client)
        .await
        .expect("migrations apply");
    let prefix = sluice_tests::unique_prefix("ingest");
    let (address, shutdown) = start(&prefix, &db, extra);
    TestApp {
        address,
        keys: Keys::new(&prefix),
        db,
        redis: sluice_tests::redis().await.expect("redis"),
        http: reqwest::Client::new(),
        shutdown,
    }
}

/// Starts an ingest server on `prefix` and `db`; returns its address and its shutdown.
fn start(prefix: &str, db: &TestDb, extra: &[(&str, &str)]) -> (String, CancellationToken) {
    let settings = sluice_tests::settings(prefix, db, extra);
    let shutdown = CancellationToken::new();
    let app = Application::build(&settings, shutdown.clone()).expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    (address, shutdown)
}

async fn deadpool_client(db: &TestDb) -> deadpool_postgres::Client {
    let settings = sluice_core::settings::PostgresSettings {
        url: db.url.clone().into(),
        ..Default::default()
    };
    let pool = sluice_core::connect::postgres_pool(&settings).expect("pool");
    pool.get().await.expect("postgres connection")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The typed client of this API, calling `/admin` with `token`.
    pub fn admin(&self, token: &str) -> sluice_client::Client {
        sluice_client::Client::new(self.address.clone(), None, Some(token.to_owned()))
            .expect("a client")
    }

    /// POSTs `body` as JSON to `/messages`.
    pub async fn post_json(&self, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url("/messages"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }

    /// Another ingest server on this one's keys and database, with `extra` settings: its
    /// address, and the token that stops it.
    pub fn spawn_peer(&self, extra: &[(&str, &str)]) -> (String, CancellationToken) {
        start(self.keys.prefix(), &self.db, extra)
    }

    /// `LLEN pending_messages` and `accepted_total`.
    pub async fn queued_and_counted(&mut self) -> (u64, u64) {
        redis::pipe()
            .cmd("LLEN")
            .arg(&self.keys.pending_messages)
            .cmd("GET")
            .arg(&self.keys.accepted_total)
            .query_async::<(u64, Option<u64>)>(&mut self.redis)
            .await
            .map(|(len, total)| (len, total.unwrap_or(0)))
            .expect("LLEN, GET")
    }

    /// The raw entries of `pending_messages`, oldest (next to be consumed) first.
    pub async fn pending(&mut self) -> Vec<String> {
        let mut items: Vec<String> = redis::cmd("LRANGE")
            .arg(&self.keys.pending_messages)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.redis)
            .await
            .expect("LRANGE");
        items.reverse();
        items
    }

    /// Stops the server and removes its keys and database.
    pub async fn cleanup(self) {
        self.shutdown.cancel();
        sluice_tests::delete_prefix(self.keys.prefix())
            .await
            .expect("keys deleted");
        self.db.drop_db().await.expect("database dropped");
    }
}

/// Asserts `response` has `status` and the JSON error `code`, and returns the error body.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "error responses are JSON"
    );
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}
