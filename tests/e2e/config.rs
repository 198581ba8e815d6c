//! Configuration errors and legacy variables, as a user meets them: on the real binaries.

use std::time::Duration;

use sluice_tests::process::{Service, free_port, wait_http_ok};

async fn exit_with(name: &str, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let mut service = Service::start(name, &env, args).expect("starts");
    let status = service.wait(Duration::from_secs(10)).await.expect("exits");
    (status.code().unwrap_or(-1), service.logs())
}

#[tokio::test]
async fn invalid_settings_exit_non_zero_with_one_clear_line() {
    for binary in ["sluice-ingest", "sluice-worker", "sluice-gateway"] {
        let (code, log) = exit_with(binary, &[("SLUICE__WORKER__BATCH_MAX_SIZE", "0")], &[]).await;
        assert_ne!(code, 0, "{binary}");
        assert_eq!(
            log.trim().lines().count(),
            1,
            "{binary}: one line, got {log:?}"
        );
        assert!(
            log.contains("SLUICE__WORKER__BATCH_MAX_SIZE") && log.contains("got 0"),
            "{log}"
        );
    }
    // A value of the wrong type names its variable too.
    let (code, log) = exit_with(
        "sluice-worker",
        &[("SLUICE__WORKER__BATCH_MAX_SIZE", "abc")],
        &[],
    )
    .await;
    assert_eq!(code, 2, "{log}");
    assert!(
        log.contains("(SLUICE__WORKER__BATCH_MAX_SIZE)") && log.contains("expected an integer"),
        "{log}"
    );
    let (code, log) = exit_with(
        "sluice-gateway",
        &[("SLUICE__GATEWAY__INTERVALMS", "5")],
        &[],
    )
    .await;
    assert_eq!(code, 2, "{log}");
    assert!(
        log.contains("(SLUICE__GATEWAY__INTERVALMS): unknown setting"),
        "{log}"
    );
    let (code, log) = exit_with("sluice-worker", &[("BATCH_TIMEOUT", "later")], &[]).await;
    assert_ne!(code, 0);
    assert!(log.contains("BATCH_TIMEOUT"), "{log}");
    let (code, log) = exit_with("sluice-ingest", &[], &["--config", "/nonexistent.toml"]).await;
    assert_ne!(code, 0);
    assert!(log.contains("nonexistent.toml"), "{log}");
    let (code, log) = exit_with("sluice-gateway", &[], &["--bogus"]).await;
    assert_ne!(code, 0);
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("--bogus") && log.contains("Usage"), "{log}");
}

/// As Redis's protected mode: a server that listens beyond loopback while nothing
/// authenticates its callers refuses to start, saying why and how (for both: `auth.mode = keys`);
/// `auth.mode = none` (or, for the gateway, the older dashboards' JWT secret) lets it.
#[tokio::test]
async fn a_server_reachable_from_other_machines_without_credentials_refuses_to_start() {
    let port = free_port();
    let exposed = format!("0.0.0.0:{port}");
    for (binary, listen) in [
        ("sluice-ingest", "SLUICE__INGEST__LISTEN"),
        ("sluice-gateway", "SLUICE__GATEWAY__LISTEN"),
    ] {
        let (code, log) = exit_with(binary, &[(listen, exposed.as_str())], &[]).await;
        assert_eq!(code, 2, "{binary}: {log}");
        assert_eq!(
            log.trim().lines().count(),
            1,
            "{binary}: one line, got {log:?}"
        );
        for says in [
            listen,
            "reachable from other machines",
            "SLUICE__AUTH__MODE=none",
            "loopback",
        ] {
            assert!(log.contains(says), "{binary} says {says:?}: {log}");
        }
    }
    let (_, log) = exit_with(
        "sluice-gateway",
        &[("SLUICE__GATEWAY__LISTEN", exposed.as_str())],
        &[],
    )
    .await;
    assert!(log.contains("SLUICE__AUTH__MODE=keys"), "{log}");
    // Told so, or with a token, it serves.
    let open = [
        ("SLUICE__INGEST__LISTEN".to_owned(), exposed.clone()),
        ("SLUICE__AUTH__MODE".to_owned(), "none".to_owned()),
    ];
    let mut ingest = Service::start("sluice-ingest", &open, &[]).expect("starts");
    wait_http_ok(
        &mut ingest,
        &format!("http://127.0.0.1:{port}/health"),
        Duration::from_secs(20),
    )
    .await
    .expect("serves with auth.mode none");
    ingest.stop(Duration::from_secs(10)).await.expect("stops");
    let secret = "a-dashboard-secret-of-at-least-32-bytes!";
    let with_token = [
        ("SLUICE__GATEWAY__LISTEN".to_owned(), exposed.clone()),
        (
            "SLUICE__STREAM__AUTH__JWT_SECRET".to_owned(),
            secret.to_owned(),
        ),
    ];
    let mut gateway = Service::start("sluice-gateway", &with_token, &[]).expect("starts");
    wait_http_ok(
        &mut gateway,
        &format!("http://127.0.0.1:{port}/health"),
        Duration::from_secs(20),
    )
    .await
    .expect("serves with a JWT secret");
    gateway.stop(Duration::from_secs(10)).await.expect("stops");
}

#[tokio::test]
async fn every_binary_has_help_listing_its_settings_and_a_version() {
    let binaries = [
        (
            "sluice-ingest",
            "SLUICE__INGEST__MAX_BODY_BYTES  [default: 65536, range: 256 – 67108864]",
        ),
        (
            "sluice-worker",
            "SLUICE__WORKER__BATCH_MAX_SIZE  [default: 5000, range: 1 – 100000]",
        ),
        (
            "sluice-gateway",
            "SLUICE__STREAM__INTERVAL_MS  [default: 500, range: 100 – 60000]",
        ),
    ];
    for (binary, setting) in binaries {
        let (code, help) = exit_with(binary, &[], &["--help"]).await;
        assert_eq!(code, 0, "{binary}: {help}");
        assert!(help.contains(&format!("Usage: {binary}")), "{help}");
        assert!(help.contains("--config <PATH>"), "{help}");
        assert!(help.contains(setting), "{binary}: {help}");
        assert!(help.contains("SLUICE__REDIS__URL  [default: redis://127.0.0.1:6379]"));
        // The one freshness setting every service reads.
        assert!(
            help.contains("SLUICE__WORKER__DEAD_AFTER_MS  [default: 10000, range: 1000 – 3600000]")
        );
        assert!(help.contains("SLUICE__TELEMETRY__FORMAT  [default: pretty]"));
        let (code, version) = exit_with(binary, &[], &["--version"]).await;
        assert_eq!(code, 0, "{binary}");
        assert_eq!(
            version.trim(),
            format!("{binary} {}", env!("CARGO_PKG_VERSION"))
        );
    }
    // Each lists the sections it reads, not the others'.
    let (_, help) = exit_with("sluice-worker", &[], &["--help"]).await;
    assert!(!help.contains("SLUICE__GATEWAY__"), "{help}");
    assert!(!help.contains("SLUICE__STREAM__"), "{help}");
    // The ingest API serves the stream, never the gateway's alerts, CORS or admin token.
    let (_, help) = exit_with("sluice-ingest", &[], &["--help"]).await;
    assert!(!help.contains("SLUICE__GATEWAY__"), "{help}");
    assert!(
        help.contains("SLUICE__STREAM__MAX_CONNECTIONS  ["),
        "{help}"
    );
    for (binary, args) in [("sluice-bench", ["--version"]), ("sluice", ["--version"])] {
        let (code, version) = exit_with(binary, &[], &args).await;
        assert_eq!(code, 0, "{binary}: {version}");
        assert!(version.starts_with(binary), "{version}");
    }
}

#[tokio::test]
async fn legacy_variables_configure_a_real_service() {
    // The old stack's REDIS_HOST/REDIS_PORT: point at a port where nothing listens, and the
    // gateway must report Redis down; SLUICE__REDIS__URL then wins over the alias.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = vec![
        ("REDIS_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("REDIS_PORT".to_owned(), "1".to_owned()),
        ("SLUICE__GATEWAY__LISTEN".to_owned(), listen.clone()),
    ];
    let mut gateway = Service::start("sluice-gateway", &env, &[]).expect("starts");
    wait_http_ok(
        &mut gateway,
        &format!("http://{listen}/health"),
        Duration::from_secs(10),
    )
    .await
    .expect("up");
    let status = reqwest::get(format!("http://{listen}/stats"))
        .await
        .expect("sent")
        .status();
    assert_eq!(status.as_u16(), 503, "REDIS_PORT=1 was used");
    gateway.stop(Duration::from_secs(10)).await.expect("stops");

    let prefix = sluice_tests::unique_prefix("alias");
    let mut env = env;
    env.push(("SLUICE__REDIS__URL".into(), sluice_tests::redis_url()));
    env.push(("SLUICE__REDIS__KEY_PREFIX".into(), prefix.clone()));
    let mut gateway = Service::start("sluice-gateway", &env, &[]).expect("starts");
    wait_http_ok(
        &mut gateway,
        &format!("http://{listen}/stats"),
        Duration::from_secs(10),
    )
    .await
    .expect("SLUICE__REDIS__URL beats the alias");
    gateway.stop(Duration::from_secs(10)).await.expect("stops");
    sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
}

/// Waits up to `within` for `service`'s log to contain `text`; returns the log.
async fn log_until(service: &Service, text: &str, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let log = service.logs();
        if log.contains(text) || tokio::time::Instant::now() > deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connection_errors_name_the_server_and_its_address_but_no_password() {
    let closed = format!("127.0.0.1:{}", free_port());
    let redis_url = format!("redis://:s3cret@{closed}");
    let postgres_url = format!("postgres://postgres:s3cret@{closed}/sluice");
    // A database of its own: with PostgreSQL there, the worker migrates it before it
    // reaches for Redis.
    let db = sluice_tests::TestDb::create("named")
        .await
        .expect("database");
    // A worker whose PostgreSQL is not there, then one whose Redis is not there.
    for (redis, postgres, named) in [
        (
            sluice_tests::redis_url(),
            postgres_url.clone(),
            format!("PostgreSQL at {closed}"),
        ),
        (
            redis_url.clone(),
            db.url.clone(),
            format!("Redis at {closed}"),
        ),
    ] {
        let env = vec![
            ("SLUICE__REDIS__URL".to_owned(), redis),
            ("SLUICE__POSTGRES__URL".to_owned(), postgres),
            (
                "SLUICE__REDIS__KEY_PREFIX".to_owned(),
                sluice_tests::unique_prefix("named"),
            ),
        ];
        let mut worker = Service::start("sluice-worker", &env, &[]).expect("starts");
        let log = log_until(&worker, &named, Duration::from_secs(15)).await;
        let _ = worker.stop(Duration::from_secs(10)).await;
        assert!(log.contains(&named), "the log names {named}: {log}");
        assert!(!log.contains("s3cret"), "{log}");
    }
    db.drop_db().await.expect("dropped");
    // The ingest API, answering 503 when a message cannot reach Redis.
    let listen = format!("127.0.0.1:{}", free_port());
    let env = vec![
        ("SLUICE__REDIS__URL".to_owned(), redis_url),
        ("SLUICE__INGEST__LISTEN".to_owned(), listen.clone()),
    ];
    let mut ingest = Service::start("sluice-ingest", &env, &[]).expect("starts");
    wait_http_ok(
        &mut ingest,
        &format!("http://{listen}/health"),
        Duration::from_secs(20),
    )
    .await
    .expect("up");
    let status = reqwest::Client::new()
        .post(format!("http://{listen}/messages"))
        .header("content-type", "application/json")
        .body(r#"{"user_id": 1, "channel_id": 1, "content": "x"}"#)
        .send()
        .await
        .expect("answered")
        .status();
    assert_eq!(status, 503);
    let named = format!("Redis at {closed} unavailable");
    let log = log_until(&ingest, &named, Duration::from_secs(5)).await;
    let _ = ingest.stop(Duration::from_secs(10)).await;
    assert!(log.contains(&named) && !log.contains("s3cret"), "{log}");
}

/// A listen address another process holds: the server exits with one line naming the address,
/// the setting and its variable.
#[tokio::test]
async fn a_listen_address_in_use_names_the_variable_that_chose_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("address").to_string();
    for (binary, var) in [
        ("sluice-gateway", "SLUICE__GATEWAY__LISTEN"),
        ("sluice-ingest", "SLUICE__INGEST__LISTEN"),
    ] {
        let (code, log) = exit_with(binary, &[(var, addr.as_str())], &[]).await;
        assert_ne!(code, 0, "{binary}: {log}");
        assert!(
            log.contains(&addr) && log.contains(var) && log.contains("another process holds it"),
            "{binary}: {log}"
        );
    }
}

/// A variable with single underscores is not read, and the process says which setting it
/// probably meant; a Python stack's name is said once with the name to use.
#[tokio::test]
async fn a_near_miss_variable_and_a_python_name_are_told_at_start() {
    let port = free_port();
    let env = [
        (
            "SLUICE__GATEWAY__LISTEN".to_owned(),
            format!("127.0.0.1:{port}"),
        ),
        ("SLUICE_GATEWAY_ADMIN_TOKEN".to_owned(), "x".repeat(20)),
        ("REDIS_URL".to_owned(), sluice_tests::redis_url()),
    ];
    let mut gateway = Service::start("sluice-gateway", &env, &[]).expect("starts");
    wait_http_ok(
        &mut gateway,
        &format!("http://127.0.0.1:{port}/health"),
        Duration::from_secs(20),
    )
    .await
    .expect("serves");
    let logs = gateway.logs();
    gateway.stop(Duration::from_secs(10)).await.expect("stops");
    assert!(
        logs.contains("SLUICE_GATEWAY_ADMIN_TOKEN is not read")
            && logs.contains("did you mean SLUICE__GATEWAY__ADMIN_TOKEN?"),
        "{logs}"
    );
    assert!(
        logs.contains("REDIS_URL (the Python stack's name) sets redis.url")
            || logs.contains("REDIS_URL is ignored"),
        "{logs}"
    );
    assert!(
        !logs.contains('\u{1b}'),
        "no colour codes in a log file: {logs}"
    );
}

/// A worker that cannot start for want of PostgreSQL says so on `/ready`: PostgreSQL down,
/// Redis (which answers) up.
#[tokio::test]
async fn a_worker_waiting_for_postgresql_names_it_on_ready() {
    let (port, nowhere) = (free_port(), free_port());
    let prefix = sluice_tests::unique_prefix("ready");
    let env = [
        (
            "SLUICE__WORKER__LISTEN".to_owned(),
            format!("127.0.0.1:{port}"),
        ),
        ("SLUICE__REDIS__URL".to_owned(), sluice_tests::redis_url()),
        ("SLUICE__REDIS__KEY_PREFIX".to_owned(), prefix.clone()),
        (
            "SLUICE__POSTGRES__URL".to_owned(),
            format!("postgres://postgres@127.0.0.1:{nowhere}/sluice"),
        ),
    ];
    let mut worker = Service::start("sluice-worker", &env, &[]).expect("starts");
    let url = format!("http://127.0.0.1:{port}/ready");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let body = loop {
        let answer = reqwest::get(&url).await;
        if let Ok(answer) = answer {
            assert_eq!(answer.status().as_u16(), 503);
            let body: serde_json::Value = answer.json().await.expect("JSON");
            if body["redis"] == "up" {
                break body;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no /ready naming PostgreSQL"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["postgres"], "down", "{body}");
    worker.stop(Duration::from_secs(10)).await.expect("stops");
    sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
}
