//! HTTPS and `wss://` on the listeners: the whole pipeline with TLS on every hop, the worker's
//! metrics behind mutual TLS, and a certificate renewed under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sluice_client::feed::{self, Event};
use sluice_client::tls::Tls;
use sluice_tests::process::{Service, free_port};
use sluice_tests::servers::PostgresServer;
use sluice_tests::tls::{Certificates, TlsRedis};
use uuid::Uuid;

use crate::stack::{Options, Stack};

/// Every hop over TLS: clients to the ingest API (HTTPS), the dashboard's feed (`wss://`),
/// the services to Redis (TLS with a client certificate) and to PostgreSQL
/// (`sslmode=verify-full`). Every id answered 202 is stored once, the counters are exact, and
/// a plain or untrusting client is refused with an answer that says why.
#[tokio::test]
async fn the_pipeline_runs_exactly_once_with_tls_on_every_hop() {
    let _machine = crate::MACHINE.read().await;
    let certs = Certificates::make().expect("certificates");
    let redis = TlsRedis::start(&certs).await.expect("a TLS redis-server");
    let (cert, key) = &certs.server;
    let pg = PostgresServer::start_tls(cert, key)
        .await
        .expect("PostgreSQL with TLS");
    let admin = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        pg.admin_url(),
        certs.ca.display()
    );
    let redis_settings = certs.redis_settings();
    let extra: Vec<(&str, &str)> = redis_settings
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let stack = Stack::start_with(
        "https",
        2,
        Options {
            redis_url: Some(redis.url()),
            postgres_admin_url: Some(admin),
            extra: &extra,
            https: Some(&certs),
            ..Options::default()
        },
    )
    .await;
    assert!(stack.ingest_url.starts_with("https://"));
    let mut accepted = stack.produce(1_000, 8).await;
    accepted.extend(send_with_the_cli(&stack, &certs, 1_000));
    stack
        .assert_exactly_once(&accepted, Duration::from_secs(30))
        .await;

    let tls = Tls::new(Some(&certs.ca)).expect("the CA");
    let gateway = sluice_client::Client::with_tls(stack.gateway_url.clone(), None, None, &tls)
        .expect("a client");
    // The gateway reads the counters every 500 ms.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gateway
        .stats()
        .await
        .expect("stats over HTTPS")
        .total_messages
        != 2_000
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "total_messages never reached 2,000"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_the_feed_comes_over_wss(&gateway).await;
    assert_plain_and_untrusting_clients_are_refused(&stack).await;
    stack.stop().await;
}

/// `sluice send --ingest https://… --cacert CA --ids FILE`: the ids it was answered with.
fn send_with_the_cli(stack: &Stack, certs: &Certificates, messages: u64) -> Vec<Uuid> {
    let ids = certs.dir.join("ids.txt");
    let output =
        std::process::Command::new(sluice_tests::process::binary("sluice").expect("sluice"))
            .args(["send", "--ingest", &stack.ingest_url, "--cacert"])
            .arg(&certs.ca)
            .args(["--messages", &messages.to_string(), "--ids"])
            .arg(&ids)
            .output()
            .expect("sluice send runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ids = std::fs::read_to_string(&ids).expect("the ids");
    let ids: Vec<Uuid> = ids.lines().map(|l| l.parse().expect("an id")).collect();
    assert_eq!(ids.len() as u64, messages);
    ids
}

/// The feed a dashboard reads connects over `wss://` and brings stats.
async fn assert_the_feed_comes_over_wss(gateway: &sluice_client::Client) {
    assert!(gateway.ws_url("/ws/stats").starts_with("wss://"));
    let mut events = feed::subscribe(gateway, false);
    let first = tokio::time::timeout(Duration::from_secs(10), events.recv()).await;
    assert!(matches!(first, Ok(Some(Event::Connected))), "{first:?}");
    let stats = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(Event::Stats(stats)) => return stats,
                Some(_) => continue,
                None => panic!("the feed ended"),
            }
        }
    })
    .await
    .expect("stats over wss://");
    assert_eq!(stats.total_messages, 2_000);
}

/// A plain-HTTP client is told to use HTTPS; a client that does not trust the CA is refused
/// by its own TLS check, with a message that says so.
async fn assert_plain_and_untrusting_clients_are_refused(stack: &Stack) {
    let plain = stack.ingest_url.replace("https://", "http://");
    let answer = reqwest::get(format!("{plain}/health"))
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "https_required", "{body}");

    let stranger =
        sluice_client::Client::new(stack.gateway_url.clone(), None, None).expect("client");
    let e = stranger
        .stats()
        .await
        .expect_err("an untrusted certificate");
    let said = e.to_string();
    assert!(
        said.contains("UnknownIssuer") && said.contains("--cacert"),
        "{said}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !stack.gateway.logs().contains("TLS handshakes failed") {
        let logs = stack.gateway.logs();
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server logs it:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The worker's metrics listener with `worker.tls.client_ca_file`: a client without a
/// certificate the CA signed cannot connect; one with it reads `/metrics`.
#[tokio::test]
async fn the_worker_metrics_listener_requires_a_client_certificate_when_told_to() {
    let certs = Certificates::make().expect("certificates");
    let db = sluice_tests::TestDb::create("mtls")
        .await
        .expect("database");
    let listen = format!("127.0.0.1:{}", free_port());
    let ca = certs.ca.to_string_lossy().into_owned();
    let mut extra: Vec<(&str, &str)> = vec![
        ("WORKER__LISTEN", &listen),
        ("WORKER__TLS__CLIENT_CA_FILE", &ca),
    ];
    let https = certs.listener_settings();
    extra.extend(https.iter().map(|(k, v)| (*k, v.as_str())));
    let env = sluice_tests::env_for(&sluice_tests::unique_prefix("mtls"), &db, &extra);
    let mut worker = Service::start("sluice-worker", &env, &[]).expect("starts");
    let url = format!(
        "https://localhost:{}/metrics",
        listen.rsplit(':').next().unwrap_or_default()
    );

    let anonymous = crate::stack::http_client(Some(&certs));
    let with_cert = client_with_certificate(&certs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        if let Ok(answer) = with_cert.get(&url).send().await {
            break answer.text().await.expect("a body");
        }
        assert!(
            worker.is_running() && tokio::time::Instant::now() < deadline,
            "{}",
            worker.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(metrics.contains("sluice_messages_persisted"), "{metrics}");
    let e = anonymous
        .get(&url)
        .send()
        .await
        .expect_err("no client certificate");
    let said = sluice_client::api::explain(&e);
    assert!(
        said.contains("CertificateRequired") || said.contains("certificate"),
        "{said}"
    );
    worker.stop(Duration::from_secs(10)).await.expect("stops");
    db.drop_db().await.expect("dropped");
}

/// A reqwest client that trusts the test CA and presents the client certificate it signed.
fn client_with_certificate(certs: &Certificates) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&certs.ca).expect("CA"))
        .expect("added");
    let chain = vec![CertificateDer::from_pem_file(&certs.client.0).expect("cert")];
    let key = PrivateKeyDer::from_pem_file(&certs.client.1).expect("key");
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("a client config");
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// cert-manager renews the ingest API's certificate while clients post, on connections kept
/// alive and on new ones: the renewed certificate is served within seconds, and no request
/// fails.
#[tokio::test]
async fn a_renewed_certificate_is_served_under_load_without_a_failed_request() {
    let _machine = crate::MACHINE.read().await;
    let certs = Certificates::make().expect("certificates");
    let stack = Stack::start_with(
        "renew",
        1,
        Options {
            https: Some(&certs),
            ..Options::default()
        },
    )
    .await;
    let load = Load::start(&stack, &certs);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let renewed = certs.renew_server().expect("renewed");
    let renewed = CertificateDer::from_pem_slice(renewed.as_bytes()).expect("PEM");
    let addr = stack.ingest_url.trim_start_matches("https://").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while served_certificate(&addr, &certs).await != renewed {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate is not served within 5 s; log:\n{}",
            stack.ingest.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (accepted, failed) = load.stop().await;
    assert_eq!(failed, 0, "requests failed during the renewal");
    assert!(accepted.len() > 100, "the load ran: {}", accepted.len());
    stack
        .assert_exactly_once(&accepted, Duration::from_secs(30))
        .await;
    assert!(
        stack
            .ingest
            .logs()
            .contains("serving the renewed TLS certificate")
    );
    stack.stop().await;
}

/// The certificate a fresh connection to `addr` is served.
async fn served_certificate(addr: &str, certs: &Certificates) -> CertificateDer<'static> {
    let tls = Tls::new(Some(&certs.ca)).expect("the CA");
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let stream = tls.connect("localhost", stream).await.expect("a handshake");
    let (_, session) = stream.get_ref();
    session.peer_certificates().expect("a certificate")[0]
        .clone()
        .into_owned()
}

/// Posts from clients that keep their connections and from clients that open one per request.
struct Load {
    running: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Uuid>>>,
}

impl Load {
    fn start(stack: &Stack, certs: &Certificates) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let failed = Arc::new(AtomicU64::new(0));
        let tls = Tls::new(Some(&certs.ca)).expect("the CA");
        let url = format!("{}/messages", stack.ingest_url);
        let tasks = (0..6)
            .map(|client| {
                let keep_alive = client % 2 == 0;
                let http = tls
                    .reqwest()
                    .pool_max_idle_per_host(if keep_alive { 1 } else { 0 })
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("client");
                let (running, failed, url) = (Arc::clone(&running), Arc::clone(&failed), url.clone());
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    while running.load(Ordering::Relaxed) {
                        let body = serde_json::json!({"user_id": client + 1, "channel_id": 1, "content": "renewal"});
                        match http.post(&url).json(&body).send().await {
                            Ok(answer) if answer.status() == 202 => {
                                let answer: serde_json::Value = answer.json().await.expect("JSON");
                                ids.push(answer["message_id"].as_str().expect("id").parse().expect("uuid"));
                            }
                            Ok(_) | Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    ids
                })
            })
            .collect();
        Self {
            running,
            failed,
            tasks,
        }
    }

    /// Stops the clients: the ids accepted, and how many requests failed.
    async fn stop(self) -> (Vec<Uuid>, u64) {
        self.running.store(false, Ordering::Relaxed);
        let mut accepted = Vec::new();
        for task in self.tasks {
            accepted.extend(task.await.expect("a client"));
        }
        (accepted, self.failed.load(Ordering::Relaxed))
    }
}
