//! TLS to Redis: the whole pipeline through a private Redis that speaks only TLS and requires
//! a client certificate, and the clients it must refuse.

use std::time::Duration;

use sluice_tests::process::Service;
use sluice_tests::servers::PostgresServer;
use sluice_tests::tls::{Certificates, TlsRedis};

use crate::stack::{Options, Stack, produce};

#[tokio::test]
async fn the_pipeline_runs_exactly_once_through_a_redis_that_speaks_only_tls() {
    let _machine = crate::MACHINE.read().await;
    let certs = Certificates::make().expect("certificates");
    let redis = TlsRedis::start(&certs).await.expect("a TLS redis-server");
    let url = redis.url();
    let settings = certs.redis_settings();
    let extra: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stack = Stack::start_with(
        "tls-redis",
        2,
        Options {
            redis_url: Some(url),
            extra: &extra,
            ..Options::default()
        },
    )
    .await;
    let accepted = produce(&stack.ingest_url, 2_000, 8).await;
    assert_eq!(accepted.len(), 2_000);
    stack
        .assert_exactly_once(&accepted, Duration::from_secs(30))
        .await;
    // The gateway reads the counters over TLS too.
    let stats_url = format!("http://127.0.0.1:{}/stats", stack.gateway_port);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stats: serde_json::Value = reqwest::get(&stats_url)
            .await
            .expect("stats")
            .json()
            .await
            .expect("json");
        if stats["total_messages"] == 2_000 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_or_has_no_certificate_is_refused() {
    let certs = Certificates::make().expect("certificates");
    let redis = TlsRedis::start(&certs).await.expect("a TLS redis-server");
    let url = redis.url();
    let stranger = certs.stranger_ca.to_string_lossy().into_owned();
    let client = (
        certs.client.0.to_string_lossy().into_owned(),
        certs.client.1.to_string_lossy().into_owned(),
    );
    let plain = format!("redis://127.0.0.1:{}", redis.port);
    for (case, says, env) in [
        (
            "a CA that did not sign the server's certificate",
            (
                " over TLS; retrying every tick",
                "invalid peer certificate: UnknownIssuer",
                "redis.tls_ca_file must hold the CA",
            ),
            vec![
                ("SLUICE__REDIS__URL", url.as_str()),
                ("SLUICE__REDIS__TLS_CA_FILE", stranger.as_str()),
                ("SLUICE__REDIS__TLS_CERT_FILE", client.0.as_str()),
                ("SLUICE__REDIS__TLS_KEY_FILE", client.1.as_str()),
            ],
        ),
        (
            "no client certificate",
            (
                " over TLS; retrying every tick",
                "received fatal alert: CertificateRequired",
                "set redis.tls_cert_file and redis.tls_key_file",
            ),
            vec![
                ("SLUICE__REDIS__URL", url.as_str()),
                ("SLUICE__REDIS__TLS_CA_FILE", &certs.redis_settings()[0].1),
            ],
        ),
        (
            "a plain client",
            (
                "; retrying every tick",
                "Connection reset by peer",
                "use a rediss:// URL",
            ),
            vec![("SLUICE__REDIS__URL", plain.as_str())],
        ),
    ] {
        let port = sluice_tests::process::free_port();
        let listen = format!("127.0.0.1:{port}");
        let env: Vec<(String, String)> = env
            .into_iter()
            .chain([("SLUICE__GATEWAY__LISTEN", listen.as_str())])
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut gateway = Service::start("sluice-gateway", &env, &[]).expect("starts");
        let health = format!("http://{listen}/health");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let redis_state = loop {
            let state = match reqwest::get(&health).await {
                Ok(answer) => answer.json::<serde_json::Value>().await.ok(),
                Err(_) => None,
            };
            let state = state.and_then(|h| h["redis"].as_str().map(str::to_owned));
            if state.as_deref().is_some_and(|s| s != "unknown")
                || tokio::time::Instant::now() > deadline
                || !gateway.is_running()
            {
                break state;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            redis_state.as_deref(),
            Some("down"),
            "{case}:\n{}",
            gateway.logs()
        );
        let (hop, why, check) = says;
        let line = format!(
            "cannot read stats from Redis at 127.0.0.1:{}{hop}",
            redis.port
        );
        // On a busy host the first failure can be a bare timeout; the outage is then logged
        // again once a later tick learns its cause.
        let named = |logs: &str| {
            logs.lines()
                .any(|l| l.contains(&line) && l.contains(why) && l.contains(check))
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !named(&gateway.logs()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let logs = gateway.logs();
        assert!(
            named(&logs),
            "{case}: one line names the address, the hop, why and the setting to check:\n{logs}"
        );
        gateway.stop(Duration::from_secs(10)).await.expect("stops");
    }
}

#[tokio::test]
async fn the_pipeline_runs_exactly_once_through_a_postgresql_that_takes_only_tls() {
    let _machine = crate::MACHINE.read().await;
    let certs = Certificates::make().expect("certificates");
    let (cert, key) = &certs.server;
    let pg = PostgresServer::start_tls(cert, key)
        .await
        .expect("PostgreSQL with TLS");
    let with = |query: &str| format!("{}?{query}", pg.admin_url());
    let ca = certs.ca.to_string_lossy().into_owned();
    let stranger = certs.stranger_ca.to_string_lossy().into_owned();
    for (case, url, says) in [
        ("plain", with("sslmode=disable"), "no pg_hba.conf entry"),
        (
            "a CA that did not sign it",
            with(&format!("sslmode=verify-ca&sslrootcert={stranger}")),
            "UnknownIssuer",
        ),
    ] {
        let e = sluice_tests::connect(&url).await.expect_err(case);
        assert!(format!("{e:#}").contains(says), "{case}: {e:#}");
    }
    let e = sluice_tests::connect(&with("sslmode=verify-full"))
        .await
        .expect_err("no CA");
    assert!(format!("{e:#}").contains("needs sslrootcert"), "{e:#}");
    // A worker that does not trust the server says so, and which setting to check.
    let untrusting = with(&format!("sslmode=verify-full&sslrootcert={stranger}"));
    let prefix = sluice_tests::unique_prefix("tls-pg-refused");
    let env = vec![
        ("SLUICE__POSTGRES__URL".to_owned(), untrusting),
        ("SLUICE__REDIS__KEY_PREFIX".to_owned(), prefix.clone()),
    ];
    let mut worker = Service::start("sluice-worker", &env, &[]).expect("starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let says = "postgres.url's sslrootcert must hold the CA";
    while !worker.logs().contains(says) {
        let logs = worker.logs();
        assert!(
            tokio::time::Instant::now() < deadline,
            "no line names the setting:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(worker.logs().contains("UnknownIssuer"));
    worker.stop(Duration::from_secs(10)).await.expect("stops");
    sluice_tests::delete_prefix(&prefix).await.expect("clean");

    let admin = with(&format!("sslmode=verify-full&sslrootcert={ca}"));
    let stack = Stack::start_with(
        "tls-postgres",
        2,
        Options {
            postgres_admin_url: Some(admin),
            ..Options::default()
        },
    )
    .await;
    let accepted = produce(&stack.ingest_url, 2_000, 8).await;
    stack
        .assert_exactly_once(&accepted, Duration::from_secs(30))
        .await;
    let client = stack.db.client().await.expect("client");
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1",
            &[&stack.db.name],
        )
        .await
        .expect("pg_stat_ssl");
    let (encrypted, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        encrypted >= 3 && plain == 0,
        "{encrypted} encrypted, {plain} plain"
    );
    stack.stop().await;
}
