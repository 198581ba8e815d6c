//! Starting a whole Sluice stack from the real binaries, loading it, and checking that
//! everything accepted was persisted exactly once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sluice_core::Keys;
use sluice_tests::TestDb;
use sluice_tests::process::{Service, free_port};
use sluice_tests::tls::Certificates;
use uuid::Uuid;

/// Where the stack's Redis and PostgreSQL are, extra `SECTION__KEY` settings, and HTTPS.
#[derive(Default)]
pub struct Options<'a> {
    pub redis_url: Option<String>,
    pub postgres_admin_url: Option<String>,
    pub extra: &'a [(&'a str, &'a str)],
    /// The ingest API and the gateway serve HTTPS with `server`'s certificate, trusted by the
    /// stack's own client ([`Stack::http`]).
    pub https: Option<&'a Certificates>,
    /// `RUST_LOG` of every process, instead of the suite's.
    pub rust_log: Option<&'a str>,
}

pub struct Stack {
    pub keys: Keys,
    pub db: TestDb,
    pub ingest: Service,
    pub gateway: Service,
    pub workers: Vec<Service>,
    pub ingest_url: String,
    /// The gateway's base URL.
    pub gateway_url: String,
    pub gateway_port: u16,
    /// An HTTP client that trusts the stack's certificate when it serves HTTPS.
    pub http: reqwest::Client,
    pub redis_url: String,
    /// How the stack reaches a `rediss://` Redis, for the test's own connections.
    pub redis_tls: sluice_core::tls::RedisTls,
    pub env: Vec<(String, String)>,
}

impl Stack {
    /// Ingest, gateway and `workers` workers on the shared servers, all up and answering.
    pub async fn start(tag: &str, workers: usize) -> Stack {
        Self::start_with(tag, workers, Options::default()).await
    }

    /// The same, on the servers and with the settings `options` names.
    pub async fn start_with(tag: &str, workers: usize, options: Options<'_>) -> Stack {
        let admin = options
            .postgres_admin_url
            .unwrap_or_else(sluice_tests::postgres_admin_url);
        let redis_url = options.redis_url.unwrap_or_else(sluice_tests::redis_url);
        let db = TestDb::create_on(&admin, tag).await.expect("database");
        let prefix = sluice_tests::unique_prefix(tag);
        let ingest_listen = format!("127.0.0.1:{}", free_port());
        let gateway_port = free_port();
        let gateway_listen = format!("127.0.0.1:{gateway_port}");
        let mut extra = vec![
            ("INGEST__LISTEN", ingest_listen.as_str()),
            ("GATEWAY__LISTEN", gateway_listen.as_str()),
            ("REDIS__URL", redis_url.as_str()),
        ];
        let https = options.https.map(Certificates::listener_settings);
        for (key, value) in https.iter().flatten() {
            extra.push((key, value.as_str()));
        }
        extra.extend_from_slice(options.extra);
        let mut env = sluice_tests::env_for(&prefix, &db, &extra);
        env.extend(
            options
                .rust_log
                .map(|filter| ("RUST_LOG".to_owned(), filter.to_owned())),
        );
        let redis_tls =
            sluice_core::tls::RedisTls::new(&sluice_tests::settings(&prefix, &db, &extra).redis);
        let workers: Vec<Service> = (0..workers)
            .map(|_| Service::start("sluice-worker", &env, &[]).expect("worker starts"))
            .collect();
        let mut ingest = Service::start("sluice-ingest", &env, &[]).expect("ingest starts");
        let mut gateway = Service::start("sluice-gateway", &env, &[]).expect("gateway starts");
        let http = http_client(options.https);
        // The certificate names `localhost`.
        let (scheme, host) = match options.https {
            Some(_) => ("https", "localhost"),
            None => ("http", "127.0.0.1"),
        };
        let ingest_url = format!(
            "{scheme}://{host}:{}",
            ingest_listen.rsplit(':').next().unwrap_or_default()
        );
        let gateway_url = format!("{scheme}://{host}:{gateway_port}");
        wait_ok(&http, &mut ingest, &format!("{ingest_url}/health"), 20).await;
        wait_ok(&http, &mut gateway, &format!("{gateway_url}/health"), 20).await;
        // /ready needs PostgreSQL to answer.
        wait_ok(&http, &mut ingest, &format!("{ingest_url}/ready"), 30).await;
        if !workers.is_empty() {
            wait_schema(&db).await;
        }
        Stack {
            keys: Keys::new(&prefix),
            db,
            ingest,
            gateway,
            workers,
            ingest_url,
            gateway_url,
            gateway_port,
            http,
            redis_url,
            redis_tls,
            env,
        }
    }

    /// [`produce`] through the stack's own client.
    pub async fn produce(&self, total: usize, concurrency: usize) -> Vec<Uuid> {
        produce_posted_with(
            &self.http,
            &self.ingest_url,
            "message",
            concurrency,
            move |i| i < total,
        )
        .await
        .into_iter()
        .map(|posted| posted.id)
        .collect()
    }

    /// Starts one more process of `binary` with the stack's settings.
    pub fn spawn(&self, binary: &str) -> Service {
        Service::start(binary, &self.env, &[]).expect("starts")
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let client = self
            .redis_tls
            .client(self.redis_url.as_str())
            .expect("a client");
        sluice_tests::redis_with(client).await.expect("redis")
    }

    pub async fn row_count(&self) -> i64 {
        self.db.row_count().await
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

    /// Asserts the guarantee: every accepted id is in PostgreSQL exactly once, no other rows,
    /// `total_messages` equals the row count, and no message is left in any list.
    pub async fn assert_exactly_once(&self, accepted: &[Uuid], timeout: Duration) {
        let expected: HashSet<Uuid> = accepted.iter().copied().collect();
        assert_eq!(
            expected.len(),
            accepted.len(),
            "the API never hands out an id twice"
        );
        let rows = self.wait_rows(accepted.len() as i64, timeout).await;
        // Let the workers finish recording their last batches.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut redis = self.redis().await;
        let total = loop {
            let total: Option<i64> = redis::cmd("GET")
                .arg(&self.keys.total_messages)
                .query_async(&mut redis)
                .await
                .expect("GET");
            let total = total.unwrap_or(0);
            if total >= rows || tokio::time::Instant::now() > deadline {
                break total;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let client = self.db.client().await.expect("client");
        let stored: Vec<Uuid> = client
            .query("SELECT id FROM messages", &[])
            .await
            .expect("ids")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let stored_set: HashSet<Uuid> = stored.iter().copied().collect();
        let missing = expected.difference(&stored_set).count();
        let unexpected = stored_set.difference(&expected).count();
        assert_eq!(
            (missing, unexpected),
            (0, 0),
            "accepted ids missing / rows never accepted"
        );
        assert_eq!(stored.len(), accepted.len(), "each id once");
        assert_eq!(
            total,
            stored.len() as i64,
            "total_messages equals the row count"
        );
        let pending: i64 = redis::cmd("LLEN")
            .arg(&self.keys.pending_messages)
            .query_async(&mut redis)
            .await
            .expect("LLEN");
        assert_eq!(pending, 0, "pending_messages is empty");
        let lists =
            sluice_tests::keys_under(&mut redis, &format!("{}processing:", self.keys.prefix()))
                .await
                .expect("SCAN");
        for key in &lists {
            let len: i64 = redis::cmd("LLEN")
                .arg(key)
                .query_async(&mut redis)
                .await
                .expect("LLEN");
            assert_eq!(len, 0, "{key} is empty");
        }
    }

    /// SIGTERM to every process; each must exit 0. Then drops the keys and the database.
    pub async fn stop(mut self) {
        for service in self
            .workers
            .iter_mut()
            .chain([&mut self.ingest, &mut self.gateway])
        {
            if !service.is_running() {
                continue;
            }
            let status = service.stop(Duration::from_secs(15)).await.expect("exits");
            assert!(
                status.success(),
                "clean exit, got {status}; log:\n{}",
                service.logs()
            );
        }
        let mut redis = self.redis().await;
        let keys = sluice_tests::keys_under(&mut redis, self.keys.prefix())
            .await
            .expect("SCAN");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut redis)
                .await
                .expect("DEL");
        }
        self.db.drop_db().await.expect("database dropped");
    }
}

/// POSTs `total` messages from `concurrency` clients and returns the ids answered 202. A
/// request answered otherwise (429, 503, connection refused while the API restarts) is retried
/// after a short pause with the same `Idempotency-Key`, as a careful client would; only 202
/// answers count as accepted.
pub async fn produce(ingest_url: &str, total: usize, concurrency: usize) -> Vec<Uuid> {
    produce_as(ingest_url, "message", total, concurrency).await
}

/// [`produce`] with Idempotency-Keys `<label>-<i>`, so that several runs against one stack
/// never share a key.
pub async fn produce_as(
    ingest_url: &str,
    label: &str,
    total: usize,
    concurrency: usize,
) -> Vec<Uuid> {
    produce_while(ingest_url, label, concurrency, move |i| i < total).await
}

/// Like [`produce_as`], but message `i` is posted only while `more(i)` holds (a count, or a
/// flag another task clears to end a load of unknown length).
pub async fn produce_while(
    ingest_url: &str,
    label: &str,
    concurrency: usize,
    more: impl Fn(usize) -> bool + Send + Sync + 'static,
) -> Vec<Uuid> {
    produce_posted(ingest_url, label, concurrency, more)
        .await
        .into_iter()
        .map(|posted| posted.id)
        .collect()
}

/// One message as its client saw it.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The id it was answered 202 with.
    pub id: Uuid,
    /// Its content, unique to it.
    pub content: String,
    /// Whether an attempt before the one answered 202 got another answer (503, or none at all):
    /// that attempt may have been queued too, under an id the client never learnt, if a
    /// failover without acknowledgements then lost its `Idempotency-Key` record.
    pub retried: bool,
}

/// The JSON body `url` answers with, whatever its status.
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

/// Like [`produce_while`], with each message's content and whether it was retried.
pub async fn produce_posted(
    ingest_url: &str,
    label: &str,
    concurrency: usize,
    more: impl Fn(usize) -> bool + Send + Sync + 'static,
) -> Vec<Posted> {
    produce_posted_with(&http_client(None), ingest_url, label, concurrency, more).await
}

/// [`produce_posted`] through `http`.
pub async fn produce_posted_with(
    http: &reqwest::Client,
    ingest_url: &str,
    label: &str,
    concurrency: usize,
    more: impl Fn(usize) -> bool + Send + Sync + 'static,
) -> Vec<Posted> {
    let (next, more) = (Arc::new(AtomicUsize::new(0)), Arc::new(more));
    let url = format!("{ingest_url}/messages");
    let tasks: Vec<_> = (0..concurrency)
        .map(|client| {
            let (http, next, url, more) = (
                http.clone(),
                Arc::clone(&next),
                url.clone(),
                Arc::clone(&more),
            );
            let label = label.to_owned();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if !more(i) {
                        return ids;
                    }
                    let content = format!("{label} message {i} from client {client}");
                    let body = serde_json::json!({
                        "user_id": client + 1,
                        "channel_id": i % 7 + 1,
                        "content": content,
                    })
                    .to_string();
                    let key = format!("{label}-{i}");
                    let (id, retried) = post_until_accepted(&http, &url, body, key).await;
                    ids.push(Posted {
                        id,
                        content,
                        retried,
                    });
                }
            })
        })
        .collect();
    let mut accepted = Vec::new();
    for task in tasks {
        accepted.extend(task.await.expect("producer"));
    }
    accepted
}

/// POSTs one message until it is answered 202 (retrying 429, 503 and connection errors with
/// the same `Idempotency-Key` for up to 60 s); returns its id, and whether an attempt got
/// another answer than 202 or 429 first (one that may have queued it).
async fn post_until_accepted(
    http: &reqwest::Client,
    url: &str,
    body: String,
    key: String,
) -> (Uuid, bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut retried = false;
    loop {
        let sent = http
            .post(url)
            .header("content-type", "application/json")
            .header("idempotency-key", &key)
            .body(body.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status().as_u16();
            if status == 202 {
                let answer: serde_json::Value = response.json().await.expect("JSON");
                let id = answer["message_id"].as_str().expect("id");
                return (id.parse::<Uuid>().expect("uuid"), retried);
            }
            assert!(matches!(status, 429 | 503), "unexpected status {status}");
            // A 429 is refused before any push; a 503 may follow one.
            retried |= status == 503;
        } else {
            retried = true;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message {key} never accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client with a 10 s timeout that trusts `https`'s CA, when given.
pub fn http_client(https: Option<&Certificates>) -> reqwest::Client {
    let tls = sluice_client::tls::Tls::new(https.map(|c| c.ca.as_path())).expect("the CA");
    tls.reqwest()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Polls `url` until it answers 200, at most `secs` seconds; fails with the service's log.
async fn wait_ok(http: &reqwest::Client, service: &mut Service, url: &str, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let answer = http.get(url).send().await;
        if answer.is_ok_and(|a| a.status() == 200) {
            return;
        }
        assert!(
            service.is_running(),
            "exited during start-up; log:\n{}",
            service.logs()
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} not up within {secs} s; log:\n{}",
            service.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the workers have created the schema (tests query `messages` right away; the
/// ingest API's readiness does not depend on it).
async fn wait_schema(db: &TestDb) {
    let client = db.client().await.expect("client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = client
            .query_one("SELECT to_regclass('messages') IS NOT NULL", &[])
            .await
            .expect("query");
        if row.get::<_, bool>(0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the workers never created the schema"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
