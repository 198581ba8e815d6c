//! Loading, layering and checking the settings.

use std::path::Path;
use std::time::Duration;

use super::*;

#[test]
fn connection_descriptions_name_the_address_and_never_the_password() {
    let mut redis = RedisSettings {
        url: "redis://user:s3cret@cache.internal:6390/2".into(),
        ..RedisSettings::default()
    };
    assert_eq!(redis.describe(), "Redis at cache.internal:6390");
    redis.cluster_nodes = "redis://:pw@10.0.0.1:7000, redis://10.0.0.2:7001".into();
    assert_eq!(
        redis.describe(),
        "Redis Cluster at 10.0.0.1:7000, 10.0.0.2:7001"
    );
    let postgres = PostgresSettings {
        url: "postgres://app:p%40ss@db.internal:5433/sluice?sslmode=disable".into(),
        ..PostgresSettings::default()
    };
    assert_eq!(postgres.describe(), "PostgreSQL at db.internal:5433");
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::load(None, env(pairs))
}

#[test]
fn defaults_match_the_documented_contract() {
    let s = load(&[]).expect("defaults are valid");
    assert_eq!(s.redis.url.expose(), "redis://127.0.0.1:6379");
    assert_eq!(s.redis.key_prefix, "");
    assert_eq!(
        s.postgres.url.expose(),
        "postgres://postgres@127.0.0.1:5432/sluice"
    );
    assert_eq!(s.ingest.listen.to_string(), "127.0.0.1:8000");
    assert_eq!(s.gateway.listen.to_string(), "127.0.0.1:8001");
    assert_eq!(s.stream.interval_ms, 500);
    assert_eq!(s.ingest.max_body_bytes, 65_536);
}

#[test]
fn sluice_variables_set_nested_keys() {
    let s = load(&[
        ("SLUICE__REDIS__KEY_PREFIX", "tenant-a:"),
        ("SLUICE__WORKER__BATCH_MAX_SIZE", "250"),
        ("SLUICE__WORKER__BATCH_MAX_WAIT_MS", "40"),
        ("SLUICE__GATEWAY__LISTEN", "0.0.0.0:9001"),
        ("SLUICE__TELEMETRY__FORMAT", "json"),
    ])
    .expect("valid");
    assert_eq!(s.redis.key_prefix, "tenant-a:");
    assert_eq!(s.worker.batch_max_size, 250);
    assert_eq!(s.worker.batch_max_wait_ms, 40);
    assert_eq!(s.gateway.listen.to_string(), "0.0.0.0:9001");
    assert_eq!(s.telemetry.format, LogFormat::Json);
}

#[test]
fn sentinels_name_a_primary_and_exclude_a_cluster() {
    let sentinels = (
        "SLUICE__REDIS__SENTINELS",
        "redis://s1:26379, redis://:pw@s2:26379",
    );
    let s = load(&[sentinels, ("SLUICE__REDIS__SENTINEL_PRIMARY", "main")]).expect("valid");
    assert_eq!(
        s.redis.sentinel_urls(),
        ["redis://s1:26379", "redis://:pw@s2:26379"]
    );
    assert_eq!(
        s.redis.describe(),
        r#"Redis primary "main" of Sentinel at s1:26379, s2:26379"#
    );
    assert_eq!(
        s.redis.effective_key_prefix(),
        "",
        "one server: no hash tag"
    );
    let both = load(&[
        sentinels,
        ("SLUICE__REDIS__CLUSTER_NODES", "redis://a:7000"),
    ]);
    let e = both.expect_err("refused").to_string();
    assert!(
        e.contains("SLUICE__REDIS__SENTINELS") && e.contains("not both"),
        "{e}"
    );
    let unnamed = load(&[sentinels, ("SLUICE__REDIS__SENTINEL_PRIMARY", " ")]);
    let e = unnamed.expect_err("refused").to_string();
    assert!(e.contains("SLUICE__REDIS__SENTINEL_PRIMARY"), "{e}");
    let e = load(&[("SLUICE__REDIS__SENTINELS", "s1:26379")]).expect_err("refused");
    assert!(e.to_string().contains("redis://"), "{e}");
}

#[test]
fn acknowledgements_are_off_by_default_and_add_their_wait_to_the_bound() {
    let off = load(&[]).expect("valid");
    assert_eq!(off.redis.acks(), None);
    assert_eq!(off.redis.confirmed_timeout(), off.redis.response_timeout());
    let on = load(&[
        ("SLUICE__REDIS__ACK_REPLICAS", "2"),
        ("SLUICE__REDIS__ACK_TIMEOUT_MS", "250"),
    ])
    .expect("valid");
    assert_eq!(on.redis.acks(), Some((2, Duration::from_millis(250))));
    assert_eq!(on.redis.confirmed_timeout(), Duration::from_millis(1_250));
    let e = load(&[("SLUICE__REDIS__ACK_TIMEOUT_MS", "0")]).expect_err("refused");
    assert!(
        e.to_string().contains("SLUICE__REDIS__ACK_TIMEOUT_MS"),
        "{e}"
    );
}

#[test]
fn cluster_mode_tags_every_key_with_one_hash_tag() {
    let single = load(&[("SLUICE__REDIS__KEY_PREFIX", "t:")]).expect("valid");
    assert_eq!(single.redis.effective_key_prefix(), "t:");
    let nodes = (
        "SLUICE__REDIS__CLUSTER_NODES",
        "redis://a:7000, redis://b:7001,",
    );
    let cluster = load(&[nodes]).expect("valid");
    assert_eq!(
        cluster.redis.cluster_node_urls(),
        ["redis://a:7000", "redis://b:7001"]
    );
    assert_eq!(cluster.redis.effective_key_prefix(), "{sluice}");
    let tagged = load(&[nodes, ("SLUICE__REDIS__KEY_PREFIX", "t:")]).expect("valid");
    assert_eq!(tagged.redis.effective_key_prefix(), "{t:}");
    let own = load(&[nodes, ("SLUICE__REDIS__KEY_PREFIX", "app:{t1}:")]).expect("valid");
    assert_eq!(own.redis.effective_key_prefix(), "app:{t1}:");
    let e = load(&[("SLUICE__REDIS__CLUSTER_NODES", "http://a:1")]).expect_err("refused");
    assert!(
        e.to_string().contains("SLUICE__REDIS__CLUSTER_NODES"),
        "{e}"
    );
}

#[test]
fn partitions_and_the_read_replica_are_checked() {
    let s = load(&[
        ("SLUICE__POSTGRES__PARTITION_HOURS", "6"),
        ("SLUICE__POSTGRES__RETENTION_DAYS", "30"),
        (
            "SLUICE__POSTGRES__READ_URL",
            "postgres://reader@replica:5432/sluice",
        ),
    ])
    .expect("valid");
    assert_eq!(s.postgres.partition_span(), Duration::from_secs(6 * 3600));
    let reader = s.postgres.reader().expect("a replica");
    assert_eq!(reader.url.expose(), "postgres://reader@replica:5432/sluice");
    assert_eq!(reader.pool_size, s.postgres.pool_size);
    assert!(load(&[]).expect("defaults").postgres.reader().is_none());
    let message = |pairs| load(pairs).expect_err("refused").to_string();
    let e = message(&[("SLUICE__POSTGRES__PARTITION_HOURS", "5")]);
    assert!(
        e.contains("SLUICE__POSTGRES__PARTITION_HOURS") && e.contains("divide 24"),
        "{e}"
    );
    let e = message(&[("SLUICE__POSTGRES__READ_URL", "mysql://x")]);
    assert!(e.contains("SLUICE__POSTGRES__READ_URL"), "{e}");
}

#[test]
fn numeric_looking_prefix_stays_a_string() {
    let s = load(&[("SLUICE__REDIS__KEY_PREFIX", "42")]).expect("valid");
    assert_eq!(s.redis.key_prefix, "42");
}

#[test]
fn legacy_aliases_apply() {
    let s = load(&[
        ("REDIS_URL", "redis://10.0.0.5:6380/2"),
        ("DATABASE_URL", "postgres://app@db:5432/chat"),
        ("BATCH_SIZE", "300"),
        ("BATCH_TIMEOUT", "0.25"),
    ])
    .expect("valid");
    assert_eq!(s.redis.url.expose(), "redis://10.0.0.5:6380/2");
    assert_eq!(s.postgres.url.expose(), "postgres://app@db:5432/chat");
    assert_eq!(s.worker.batch_max_size, 300);
    assert_eq!(s.worker.batch_max_wait_ms, 250);
}

#[test]
fn redis_host_and_port_build_a_url() {
    let s = load(&[("REDIS_HOST", "cache"), ("REDIS_PORT", "6390")]).expect("valid");
    assert_eq!(s.redis.url.expose(), "redis://cache:6390");
    let s = load(&[("REDIS_PORT", "6390")]).expect("valid");
    assert_eq!(s.redis.url.expose(), "redis://127.0.0.1:6390");
    let s = load(&[("REDIS_HOST", "::1")]).expect("valid");
    assert_eq!(s.redis.url.expose(), "redis://[::1]:6379");
}

#[test]
fn redis_url_beats_host_and_port() {
    let s = load(&[("REDIS_URL", "redis://a:1"), ("REDIS_HOST", "b")]).expect("valid");
    assert_eq!(s.redis.url.expose(), "redis://a:1");
}

#[test]
fn sluice_variables_beat_aliases() {
    let s = load(&[
        ("REDIS_URL", "redis://old:6379"),
        ("SLUICE__REDIS__URL", "redis://new:6379"),
        ("BATCH_SIZE", "10"),
        ("SLUICE__WORKER__BATCH_MAX_SIZE", "20"),
    ])
    .expect("valid");
    assert_eq!(s.redis.url.expose(), "redis://new:6379");
    assert_eq!(s.worker.batch_max_size, 20);
}

#[test]
fn file_layer_sits_between_defaults_and_environment() {
    let dir = std::env::temp_dir().join(format!("sluice-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        "[worker]\nbatch_max_size = 77\nbatch_max_wait_ms = 9\n[redis]\nkey_prefix = \"f:\"\n",
    )
    .expect("write");
    let s = Settings::load(
        Some(&path),
        env(&[("SLUICE__WORKER__BATCH_MAX_SIZE", "88")]),
    )
    .expect("valid");
    assert_eq!(
        s.worker.batch_max_size, 88,
        "environment wins over the file"
    );
    assert_eq!(s.worker.batch_max_wait_ms, 9, "file wins over defaults");
    assert_eq!(s.redis.key_prefix, "f:");
    // Aliases are environment too: they beat the file.
    let s = Settings::load(Some(&path), env(&[("BATCH_SIZE", "5")])).expect("valid");
    assert_eq!(s.worker.batch_max_size, 5);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_config_file_is_an_error() {
    let err = Settings::load(Some(Path::new("/nonexistent/sluice.toml")), env(&[]))
        .expect_err("must fail");
    assert!(err.to_string().contains("sluice.toml"), "{err}");
}

#[test]
fn out_of_range_values_name_the_setting_and_variable() {
    let err = load(&[("SLUICE__WORKER__BATCH_MAX_SIZE", "0")]).expect_err("must fail");
    let line = err.to_string();
    assert!(line.contains("worker.batch_max_size"), "{line}");
    assert!(line.contains("SLUICE__WORKER__BATCH_MAX_SIZE"), "{line}");
    assert!(line.contains("got 0"), "{line}");
    assert!(!line.contains('\n'));

    let err = load(&[("SLUICE__STREAM__INTERVAL_MS", "5")]).expect_err("must fail");
    assert!(err.to_string().contains("stream.interval_ms"), "{err}");
}

#[test]
fn dead_after_must_cover_four_heartbeats() {
    for bad in ["0", "1", "999"] {
        let err = load(&[("SLUICE__WORKER__DEAD_AFTER_MS", bad)]).expect_err(bad);
        let line = err.to_string();
        assert!(line.contains("SLUICE__WORKER__DEAD_AFTER_MS"), "{line}");
        assert!(line.contains("between 1000 and"), "{line}");
    }
    let ok = load(&[("SLUICE__WORKER__DEAD_AFTER_MS", "1000")]).expect("four beats");
    assert_eq!(ok.worker.dead_after_ms, 1_000);
}

#[test]
fn wrong_types_and_unknown_keys_are_errors() {
    // Whatever the mistake, the message names the variable to fix.
    for (var, value, says) in [
        (
            "SLUICE__WORKER__BATCH_MAX_SIZE",
            "lots",
            "expected an integer",
        ),
        ("SLUICE__WORKER__BATCH_MAXSIZE", "5", "unknown setting"),
        (
            "SLUICE__INGEST__LISTEN",
            "localhost",
            "invalid socket address",
        ),
        (
            "SLUICE__GATEWAY__ALERTS__ANOMALY_Z_HIGH",
            "x",
            "floating point",
        ),
    ] {
        let err = load(&[(var, value)]).expect_err("must fail").to_string();
        assert!(
            err.contains(&format!("({var})")) && err.contains(says),
            "{err}"
        );
    }
    let err = load(&[("SLUICE__WORKER__BATCH_MAX_SIZE", "lots")]).expect_err("must fail");
    assert!(err.to_string().contains("batch_max_size"), "{err}");
    let err = load(&[("SLUICE__WORKER__BATCH_MAXSIZE", "5")]).expect_err("must fail");
    assert!(err.to_string().contains("batch_maxsize"), "{err}");
    let err = load(&[("SLUICE__INGEST__LISTEN", "localhost")]).expect_err("must fail");
    assert!(err.to_string().contains("listen"), "{err}");
}

#[test]
fn bad_urls_are_errors() {
    let err = load(&[("SLUICE__REDIS__URL", "127.0.0.1:6379")]).expect_err("must fail");
    assert!(err.to_string().contains("redis.url"), "{err}");
    let err = load(&[("DATABASE_URL", "mysql://x")]).expect_err("must fail");
    assert!(err.to_string().contains("postgres.url"), "{err}");
}

#[test]
fn bad_aliases_name_the_variable() {
    let err = load(&[("BATCH_TIMEOUT", "soon")]).expect_err("must fail");
    assert!(err.to_string().contains("BATCH_TIMEOUT"), "{err}");
    let err = load(&[("BATCH_SIZE", "-3")]).expect_err("must fail");
    assert!(err.to_string().contains("BATCH_SIZE"), "{err}");
    let err = load(&[("REDIS_PORT", "99999")]).expect_err("must fail");
    assert!(err.to_string().contains("REDIS_PORT"), "{err}");
}

#[test]
fn the_stream_settings_old_gateway_names_still_set_them() {
    let s = load(&[
        ("SLUICE__GATEWAY__INTERVAL_MS", "250"),
        ("SLUICE__GATEWAY__AUTH__JWT_SECRET", &"k".repeat(32)),
        ("SLUICE__GATEWAY__MAX_CONNECTIONS", "7"),
        ("SLUICE__STREAM__MAX_CONNECTIONS", "9"),
        ("SLUICE__GATEWAY__WRITE_TIMEOUT_MS", "1234"),
    ])
    .expect("valid");
    assert_eq!(s.stream.interval_ms, 250);
    assert_eq!(s.stream.auth.jwt_secret.expose(), "k".repeat(32));
    assert_eq!(s.stream.max_connections, 9, "the new name wins");
    assert_eq!(s.gateway.write_timeout_ms, 1_234, "a gateway setting stays");
    let e = load(&[("SLUICE__GATEWAY__INTERVAL_MS", "5")]).expect_err("refused");
    assert!(e.to_string().contains("SLUICE__STREAM__INTERVAL_MS"), "{e}");

    let dir = tempdir("moved");
    let path = dir.join("sluice.toml");
    let file = "[gateway]\ninterval_ms = 300\nlisten = \"127.0.0.1:9\"\n[gateway.auth]\n\
                jwt_secret = \"0123456789abcdef0123456789abcdef\"\n[stream]\nclient_queue = 8\n";
    std::fs::write(&path, file).expect("write");
    let s =
        Settings::load(Some(&path), env(&[("SLUICE__STREAM__INTERVAL_MS", "400")])).expect("valid");
    assert_eq!(
        s.stream.interval_ms, 400,
        "the environment beats the file's old name"
    );
    assert_eq!(s.stream.client_queue, 8);
    assert_eq!(s.stream.auth.jwt_secret.expose().len(), 32);
    assert_eq!(s.gateway.listen.to_string(), "127.0.0.1:9");
    let s = Settings::load(Some(&path), env(&[])).expect("valid");
    assert_eq!(s.stream.interval_ms, 300);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_ranged_value_that_is_not_a_number_is_refused() {
    let dir = tempdir("nan");
    let path = dir.join("sluice.toml");
    std::fs::write(&path, "[gateway.alerts]\nanomaly_z_high = nan\n").expect("write");
    let e = Settings::load(Some(&path), env(&[])).expect_err("refused");
    assert!(
        e.to_string()
            .contains("SLUICE__GATEWAY__ALERTS__ANOMALY_Z_HIGH"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
    let e = load(&[("SLUICE__GATEWAY__ALERTS__ANOMALY_Z_HIGH", "inf")]).expect_err("refused");
    assert!(e.to_string().contains("between 0.1 and 100"), "{e}");
}

#[test]
fn a_send_buffer_is_the_kernels_or_at_least_a_page() {
    for (value, ok) in [("0", true), ("1", false), ("4095", false), ("4096", true)] {
        let s = load(&[("SLUICE__GATEWAY__SEND_BUFFER_BYTES", value)]);
        assert_eq!(s.is_ok(), ok, "{value}: {s:?}");
    }
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-settings-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn redis_tls_files_go_with_rediss_urls_and_a_certificate_with_its_key() {
    let dir = tempdir("tls");
    let pem = dir.join("ca.crt");
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").expect("write");
    let pem = pem.to_str().expect("utf-8");
    let tls = ("SLUICE__REDIS__URL", "rediss://cache.internal:6380");
    let s = load(&[tls, ("SLUICE__REDIS__TLS_CA_FILE", pem)]).expect("valid");
    assert!(s.redis.uses_tls());
    assert_eq!(s.redis.describe(), "Redis at cache.internal:6380 over TLS");
    let message = |pairs: &[(&str, &str)]| load(pairs).expect_err("refused").to_string();
    let e = message(&[("SLUICE__REDIS__TLS_CA_FILE", pem)]);
    assert!(
        e.contains("SLUICE__REDIS__TLS_CA_FILE") && e.contains("rediss://"),
        "{e}"
    );
    let e = message(&[tls, ("SLUICE__REDIS__TLS_CERT_FILE", pem)]);
    assert!(
        e.contains("SLUICE__REDIS__TLS_KEY_FILE") && e.contains("both"),
        "{e}"
    );
    let e = message(&[tls, ("SLUICE__REDIS__TLS_CA_FILE", "/nonexistent/ca.crt")]);
    assert!(e.contains("cannot read \"/nonexistent/ca.crt\""), "{e}");
    // A sentinel or a cluster node may be the one hop that is encrypted.
    let sentinel = ("SLUICE__REDIS__SENTINELS", "rediss://s1:26379");
    assert!(load(&[sentinel, ("SLUICE__REDIS__TLS_CA_FILE", pem)]).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_listener_serves_https_with_a_certificate_and_its_key_and_checks_clients_only_then() {
    let dir = tempdir("listener-tls");
    let pem = dir.join("server.crt");
    std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\n").expect("write");
    let pem = pem.to_str().expect("utf-8");
    for section in ["INGEST", "GATEWAY", "WORKER"] {
        let cert = format!("SLUICE__{section}__TLS__CERT_FILE");
        let key = format!("SLUICE__{section}__TLS__KEY_FILE");
        let ca = format!("SLUICE__{section}__TLS__CLIENT_CA_FILE");
        let s = load(&[(&cert, pem), (&key, pem), (&ca, pem)]).expect("valid");
        assert!(s.ingest.tls.enabled() || s.gateway.tls.enabled() || s.worker.tls.enabled());
        let message = |pairs: &[(&str, &str)]| load(pairs).expect_err("refused").to_string();
        let e = message(&[(&cert, pem)]);
        assert!(e.contains(&key) && e.contains("both"), "{e}");
        let e = message(&[(&ca, pem)]);
        assert!(e.contains(&ca) && e.contains("HTTPS only"), "{e}");
        let e = message(&[(&cert, pem), (&key, "/nonexistent/server.key")]);
        assert!(e.contains(&key) && e.contains("cannot read"), "{e}");
    }
    assert!(!Settings::default().ingest.tls.enabled());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_secret_may_come_from_the_file_its_file_variable_names() {
    let dir = tempdir("secrets");
    let token = dir.join("token");
    std::fs::write(&token, "from-a-mounted-secret-0123\n").expect("write");
    let url = dir.join("url");
    std::fs::write(&url, "postgres://app:p%40ss@db:5432/sluice").expect("write");
    let (token, url) = (token.to_str().expect("utf-8"), url.to_str().expect("utf-8"));
    let s = load(&[
        ("SLUICE__INGEST__ADMIN_TOKEN_FILE", token),
        ("SLUICE__POSTGRES__URL_FILE", url),
    ])
    .expect("valid");
    assert_eq!(
        s.ingest.admin_token.expose(),
        "from-a-mounted-secret-0123",
        "one line break dropped"
    );
    assert_eq!(
        s.postgres.url.expose(),
        "postgres://app:p%40ss@db:5432/sluice"
    );
    let e = load(&[
        ("SLUICE__INGEST__ADMIN_TOKEN_FILE", token),
        ("SLUICE__INGEST__ADMIN_TOKEN", "direct-0123456789abcdef"),
    ])
    .expect_err("both")
    .to_string();
    assert!(e.contains("not both"), "{e}");
    let e = load(&[("SLUICE__STREAM__AUTH__JWT_SECRET_FILE", "/nonexistent/jwt")])
        .expect_err("unreadable")
        .to_string();
    assert!(
        e.contains("SLUICE__STREAM__AUTH__JWT_SECRET_FILE") && e.contains("/nonexistent/jwt"),
        "{e}"
    );
    // Only secrets take a file: anything else is an unknown setting, as before.
    let e = load(&[("SLUICE__WORKER__BATCH_MAX_SIZE_FILE", token)]).expect_err("unknown");
    assert!(e.to_string().contains("unknown setting"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_server_beyond_loopback_needs_credentials_or_auth_mode_none() {
    let with = |pairs: &[(&str, &str)]| load(pairs).expect("valid");
    let exposed = |s: &Settings| {
        s.check_exposure(&["ingest", "gateway"])
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(exposed(&with(&[])), None, "loopback by default");
    assert_eq!(
        exposed(&with(&[("SLUICE__INGEST__LISTEN", "[::1]:8000")])),
        None
    );
    for listen in ["0.0.0.0:8000", "[::]:8000", "10.1.2.3:8000"] {
        let e = exposed(&with(&[("SLUICE__INGEST__LISTEN", listen)])).expect("refused");
        assert!(
            e.contains("SLUICE__INGEST__LISTEN") && e.contains("SLUICE__AUTH__MODE=none"),
            "{e}"
        );
        let open = with(&[
            ("SLUICE__INGEST__LISTEN", listen),
            ("SLUICE__AUTH__MODE", "none"),
        ]);
        assert_eq!(exposed(&open), None);
        assert!(
            open.auth
                .describe(open.ingest.listen, false)
                .contains("reachable from other machines")
        );
    }
    // The worker does not serve callers: its sections are not checked.
    let worker = with(&[("SLUICE__INGEST__LISTEN", "0.0.0.0:8000")]);
    assert!(
        worker
            .check_exposure(&["redis", "postgres", "worker"])
            .is_ok()
    );
    let gateway = [("SLUICE__GATEWAY__LISTEN", "0.0.0.0:8001")];
    assert!(
        exposed(&with(&gateway))
            .expect("refused")
            .contains("SLUICE__AUTH__MODE=keys")
    );
    let keys = with(&[gateway[0], ("SLUICE__AUTH__MODE", "keys")]);
    assert_eq!(exposed(&keys), None, "the gateway checks keys too");
    let secret = ("SLUICE__STREAM__AUTH__JWT_SECRET", "k".repeat(32));
    let protected = with(&[gateway[0], (secret.0, secret.1.as_str())]);
    assert_eq!(exposed(&protected), None);
    assert!(
        load(&[("SLUICE__AUTH__MODE", "off")]).is_err(),
        "auto or none only"
    );
}

#[test]
fn tokens_are_taken_only_beside_keys_and_with_a_long_enough_secret() {
    let error = |pairs: &[(&str, &str)]| load(pairs).err().map(|e| e.to_string());
    let secret = "k".repeat(32);
    let e = error(&[("SLUICE__AUTH__JWT__SECRET", &secret)]).expect("refused");
    assert!(e.contains("SLUICE__AUTH__MODE=keys"), "{e}");
    let keys = ("SLUICE__AUTH__MODE", "keys");
    assert_eq!(error(&[keys, ("SLUICE__AUTH__JWT__SECRET", &secret)]), None);
    let e = error(&[keys, ("SLUICE__AUTH__JWT__SECRET", "short")]).expect("refused");
    assert!(e.contains("at least 32 bytes"), "{e}");
    let e = error(&[keys, ("SLUICE__AUTH__JWT__AUDIENCE", "sluice")]).expect("refused");
    assert!(e.contains("public_key_file"), "{e}");
    let both = [
        keys,
        ("SLUICE__AUTH__JWT__SECRET", &secret),
        ("SLUICE__STREAM__AUTH__JWT_SECRET", &secret),
    ];
    assert!(error(&both).expect("refused").contains("set twice"));
}

#[test]
fn a_redis_url_whose_path_is_not_a_database_number_names_its_setting() {
    let e = load(&[(
        "SLUICE__REDIS__URL",
        "redis://:pw@cache.internal:6379/sluice",
    )])
    .expect_err("refused")
    .to_string();
    assert!(
        e.contains("SLUICE__REDIS__URL") && e.contains("database number") && !e.contains("pw"),
        "{e}"
    );
    for fine in [
        "redis://h:6379",
        "redis://h:6379/",
        "redis://h:6379/3",
        "rediss://u:p@h/0?x=1",
    ] {
        assert!(load(&[("SLUICE__REDIS__URL", fine)]).is_ok(), "{fine}");
    }
}

#[test]
fn a_primary_with_standbys_is_one_multi_host_url() {
    let url = "postgres://sluice@db1:5432,db2:5433/sluice?target_session_attrs=read-write";
    let s = load(&[
        ("SLUICE__POSTGRES__URL", url),
        (
            "SLUICE__POSTGRES__READ_URL",
            "postgres://r@db2:5433,db3/sluice?sslmode=disable",
        ),
        ("SLUICE__POSTGRES__REPLICATION", "synchronous"),
    ])
    .expect("valid");
    assert_eq!(s.postgres.replication, Replication::Synchronous);
    let target = crate::tls::postgres::target(s.postgres.url.expose()).expect("parsed");
    assert_eq!(target.config.get_hosts().len(), 2);
    assert_eq!(target.config.get_ports(), [5432, 5433]);
    assert_eq!(
        target.config.get_target_session_attrs(),
        tokio_postgres::config::TargetSessionAttrs::ReadWrite
    );
    let reader = s.postgres.reader().expect("a read replica");
    let target = crate::tls::postgres::target(reader.url.expose()).expect("parsed");
    assert_eq!(target.config.get_hosts().len(), 2);
    assert_eq!(Replication::default(), Replication::Unchecked);
    let err = load(&[("SLUICE__POSTGRES__REPLICATION", "sometimes")]).expect_err("invalid");
    assert!(err.to_string().contains("replication"), "{err}");
}
