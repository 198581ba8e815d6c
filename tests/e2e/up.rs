//! `./scripts/up` as a user runs it: stopped with Ctrl-C (SIGINT to its whole process group, as
//! a terminal sends it), started in the background and stopped with SIGINT or SIGTERM, and
//! started while its addresses are taken.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use sluice_core::Keys;
use sluice_tests::TestDb;
use sluice_tests::process::{binary, free_port};
use tokio::process::{Child, Command};

use crate::stack::produce;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Where one run of the script listens, and what it stores under.
struct Setup {
    env: Vec<(String, String)>,
    ingest: String,
    gateway: String,
    keys: Keys,
    db: TestDb,
    log: PathBuf,
}

impl Setup {
    async fn new(tag: &str) -> Self {
        let db = TestDb::create(tag).await.expect("database");
        let prefix = sluice_tests::unique_prefix(tag);
        let ingest = format!("127.0.0.1:{}", free_port());
        let gateway = format!("127.0.0.1:{}", free_port());
        let bin_dir = binary("sluice-ingest").expect("built");
        let bin_dir = bin_dir
            .parent()
            .expect("dir")
            .to_string_lossy()
            .into_owned();
        let env = [
            ("SLUICE__REDIS__URL", sluice_tests::redis_url()),
            ("SLUICE__REDIS__KEY_PREFIX", prefix.clone()),
            ("SLUICE__POSTGRES__URL", db.url.clone()),
            ("SLUICE__INGEST__LISTEN", ingest.clone()),
            ("SLUICE__GATEWAY__LISTEN", gateway.clone()),
            ("SLUICE_UP_WORKER_PORT", worker_ports().to_string()),
            ("SLUICE_UP_BIN_DIR", bin_dir),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let log =
            std::env::temp_dir().join(format!("sluice-up-{}.log", prefix.trim_end_matches(':')));
        Self {
            env,
            ingest,
            gateway,
            keys: Keys::new(&prefix),
            db,
            log,
        }
    }

    /// `scripts/up --workers N` through `shell` (`None`: run directly), in a process group of its
    /// own, as a terminal runs a foreground job.
    fn start(&self, workers: usize, shell: Option<&str>) -> Child {
        let log = std::fs::File::create(&self.log).expect("log");
        let script = format!("{REPO}/scripts/up --workers {workers}");
        let mut cmd = match shell {
            Some(template) => {
                let mut c = Command::new("bash");
                c.arg("-c").arg(template.replace("{up}", &script));
                c
            }
            None => {
                let mut c = Command::new("bash");
                c.arg("-c").arg(format!("exec {script}"));
                c
            }
        };
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SLUICE")) {
            cmd.env_remove(key);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("scripts/up starts")
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&self, child: &mut Child) {
        let url = format!("http://{}/ready", self.ingest);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            assert!(
                child.try_wait().expect("status").is_none(),
                "exited: {}",
                self.logs()
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "never ready: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn counter(&self, key: &str) -> i64 {
        let mut redis = sluice_tests::redis().await.expect("redis");
        let value: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut redis)
            .await
            .expect("GET");
        value.unwrap_or(0)
    }

    async fn rows(&self) -> i64 {
        self.db.row_count().await
    }

    /// Polls until `rows` rows are persisted, at most 20 s.
    async fn wait_rows(&self, rows: i64) -> i64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let n = self.rows().await;
            if n >= rows || tokio::time::Instant::now() > deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn listening(&self, address: &str) -> bool {
        std::net::TcpStream::connect(address).is_ok()
    }

    async fn cleanup(self) {
        let prefix = self.keys.prefix().to_owned();
        sluice_tests::delete_prefix(&prefix).await.expect("cleanup");
        self.db.drop_db().await.expect("drop");
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A base port with the next two free as well.
fn worker_ports() -> u16 {
    loop {
        let base = free_port();
        if (1..3).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

async fn exits_within(child: &mut Child, timeout: Duration, logs: impl Fn() -> String) -> i32 {
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.expect("status").code().unwrap_or(-1),
        Err(_) => panic!("still running after {timeout:?}: {}", logs()),
    }
}

#[tokio::test]
async fn ctrl_c_stops_every_service_once_and_the_counters_equal_the_rows() {
    let _shared = crate::MACHINE.read().await;
    let setup = Setup::new("up_ctrl_c").await;
    let mut up = setup.start(2, None);
    setup.wait_ready(&mut up).await;
    let accepted = produce(&format!("http://{}", setup.ingest), 2_000, 8).await;
    assert_eq!(accepted.len(), 2_000);
    // Ctrl-C: SIGINT to the whole foreground process group, mid-flow.
    let group = Pid::from_raw(up.id().expect("pid") as i32);
    killpg(group, Signal::SIGINT).expect("SIGINT");
    let code = exits_within(&mut up, Duration::from_secs(30), || setup.logs()).await;
    let logs = setup.logs();
    assert_eq!(code, 0, "{logs}");
    assert!(
        !logs.contains("second signal"),
        "a service got two signals: {logs}"
    );
    assert_eq!(logs.matches("shutdown requested").count(), 4, "{logs}");
    assert!(!setup.listening(&setup.ingest) && !setup.listening(&setup.gateway));

    let total = setup.counter(&setup.keys.total_messages).await;
    let rows = setup.rows().await;
    assert_eq!(total, rows, "total_messages equals the rows after Ctrl-C");
    let mut redis = sluice_tests::redis().await.expect("redis");
    let pending: i64 = redis::cmd("LLEN")
        .arg(&setup.keys.pending_messages)
        .query_async(&mut redis)
        .await
        .expect("LLEN");
    assert_eq!(
        rows + pending,
        2_000,
        "nothing lost: persisted or still queued"
    );
    setup.cleanup().await;
}

#[tokio::test]
async fn started_in_the_background_it_stops_on_sigint_and_on_sigterm() {
    let _shared = crate::MACHINE.read().await;
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let setup = Setup::new("up_background").await;
        // A non-interactive shell starting a job with & makes it ignore SIGINT.
        let pid_file = setup.log.with_extension("pid");
        let template = format!("{{up}} & echo $! > {}; wait", pid_file.display());
        let mut shell = setup.start(1, Some(&template));
        setup.wait_ready(&mut shell).await;
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        kill(Pid::from_raw(pid), signal).expect("signal");
        exits_within(&mut shell, Duration::from_secs(30), || setup.logs()).await;
        let logs = setup.logs();
        assert!(
            logs.contains("stopping: one SIGTERM each"),
            "{signal}: {logs}"
        );
        assert!(
            !setup.listening(&setup.ingest),
            "{signal}: ingest still up: {logs}"
        );
        assert!(
            !setup.listening(&setup.gateway),
            "{signal}: gateway still up"
        );
        let _ = std::fs::remove_file(&pid_file);
        setup.cleanup().await;
    }
}

#[tokio::test]
async fn taken_addresses_are_named_and_nothing_starts() {
    let _shared = crate::MACHINE.read().await;
    let setup = Setup::new("up_taken").await;
    let squatter = TcpListener::bind(&setup.gateway).expect("bind");
    let mut up = setup.start(1, None);
    let code = exits_within(&mut up, Duration::from_secs(30), || setup.logs()).await;
    let logs = setup.logs();
    assert_eq!(code, 1, "{logs}");
    assert!(
        logs.contains(&format!(
            "{} (stats gateway, SLUICE__GATEWAY__LISTEN) is in use",
            setup.gateway
        )),
        "{logs}"
    );
    assert!(!logs.contains("Sluice is running"), "{logs}");
    assert!(!setup.listening(&setup.ingest), "ingest started anyway");
    let mut redis = sluice_tests::redis().await.expect("redis");
    let workers: i64 = redis::cmd("ZCARD")
        .arg(&setup.keys.workers)
        .query_async(&mut redis)
        .await
        .expect("ZCARD");
    assert_eq!(workers, 0, "a worker started anyway");
    drop(squatter);
    assert!(Path::new(REPO).join("scripts/up").exists());
    setup.cleanup().await;
}

/// Runs `drop_test_data` of `scripts/lib.sh` against the test servers.
async fn drop_test_data(args: &str) {
    let postgres = sluice_tests::postgres_admin_url();
    let authority = postgres
        .split_once('@')
        .map_or(postgres.as_str(), |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or(authority);
    let (host, port) = authority.split_once(':').unwrap_or((authority, "5432"));
    let status = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source scripts/lib.sh && drop_test_data {args}"))
        .current_dir(REPO)
        .env("SLUICE_PG_HOST", host)
        .env("SLUICE_PG_PORT", port)
        .env("SLUICE_TEST_REDIS_URL", sluice_tests::redis_url())
        .status()
        .await
        .expect("bash runs");
    assert!(status.success());
}

#[tokio::test]
async fn the_test_cleanup_drops_only_what_runs_that_are_gone_left() {
    let gone = {
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let pid = child.id();
        child.wait().expect("exits");
        pid
    };
    let live = std::process::id();
    let admin = sluice_tests::connect(&sluice_tests::postgres_admin_url())
        .await
        .expect("admin");
    let tag = sluice_tests::unique_prefix("cleanup").replace(':', "_");
    let mut redis = sluice_tests::redis().await.expect("redis");
    for run in [gone, live] {
        let db = format!("sluice_test_{run}_{tag}");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{db}\""))
            .await
            .expect("create");
        let _: () = redis::cmd("SET")
            .arg(format!("test:{run}:{tag}key"))
            .arg(1)
            .query_async(&mut redis)
            .await
            .expect("SET");
    }
    let exists = |run: u32| {
        let admin = &admin;
        let db = format!("sluice_test_{run}_{tag}");
        async move {
            admin
                .query_one(
                    "SELECT count(*) FROM pg_database WHERE datname = $1",
                    &[&db],
                )
                .await
                .expect("query")
                .get::<_, i64>(0)
                == 1
        }
    };
    drop_test_data("").await;
    assert!(!exists(gone).await, "a gone run's database is dropped");
    assert!(exists(live).await, "a running run's database is left alone");
    let keys = |run: u32| format!("test:{run}:{tag}key");
    let left: i64 = redis::cmd("EXISTS")
        .arg(keys(gone))
        .arg(keys(live))
        .query_async(&mut redis)
        .await
        .expect("EXISTS");
    assert_eq!(left, 1, "only the running run's key is left");
    // At its end a run drops its own.
    drop_test_data(&live.to_string()).await;
    assert!(!exists(live).await);
    let left: i64 = redis::cmd("EXISTS")
        .arg(keys(live))
        .query_async(&mut redis)
        .await
        .expect("EXISTS");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_service_that_exits_before_it_is_ready_stops_the_script_without_a_banner() {
    let _shared = crate::MACHINE.read().await;
    let mut setup = Setup::new("up_invalid").await;
    setup
        .env
        .push(("SLUICE__WORKER__BATCH_MAX_SIZE".into(), "abc".into()));
    let mut up = setup.start(2, None);
    let code = exits_within(&mut up, Duration::from_secs(30), || setup.logs()).await;
    let logs = setup.logs();
    assert_eq!(code, 1, "{logs}");
    assert!(
        logs.contains("exited (status 2) before it was ready"),
        "{logs}"
    );
    assert!(logs.contains("SLUICE__WORKER__BATCH_MAX_SIZE"), "{logs}");
    assert!(!logs.contains("Sluice is running"), "{logs}");
    setup.cleanup().await;
}

#[tokio::test]
async fn a_redis_that_does_not_answer_is_named_and_none_is_started_in_its_place() {
    let _shared = crate::MACHINE.read().await;
    let mut setup = Setup::new("up_noredis").await;
    let address = format!("127.0.0.1:{}", free_port());
    setup.env.retain(|(k, _)| k != "SLUICE__REDIS__URL");
    setup
        .env
        .push(("SLUICE__REDIS__URL".into(), format!("redis://{address}")));
    let mut up = setup.start(1, None);
    let code = exits_within(&mut up, Duration::from_secs(30), || setup.logs()).await;
    let logs = setup.logs();
    assert_eq!(code, 1, "{logs}");
    assert!(
        logs.contains(&format!("Redis does not answer at {address}")),
        "{logs}"
    );
    assert!(
        !setup.listening(&address),
        "a Redis was started at {address}"
    );
    setup.cleanup().await;
}

/// The pid `scripts/up` logged for worker `i` last.
fn worker_pid(logs: &str, i: usize) -> i32 {
    let marker = format!("worker {i} started (pid ");
    let start = logs.rfind(&marker).expect("started") + marker.len();
    logs[start..]
        .split(')')
        .next()
        .and_then(|pid| pid.parse().ok())
        .expect("a pid")
}

#[tokio::test]
async fn a_worker_that_stops_is_let_go_one_that_crashes_is_restarted_and_the_stack_serves() {
    let _shared = crate::MACHINE.read().await;
    let mut setup = Setup::new("up_workers").await;
    let token = "up-admin-token-0123456789";
    setup
        .env
        .push(("SLUICE__INGEST__ADMIN_TOKEN".into(), token.into()));
    let mut up = setup.start(2, None);
    setup.wait_ready(&mut up).await;
    // The banner comes once every service answers /ready; only then does the script supervise.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !setup.logs().contains("Sluice is running") {
        assert!(tokio::time::Instant::now() < deadline, "{}", setup.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = setup.logs();
    // The ingest API's admin token turns the gateway's dead-letters page on too.
    let page = format!("dead letters   http://{}/dead-letters.html", setup.gateway);
    assert!(logs.contains(&page), "{logs}");
    let gateway = format!("http://{}", setup.gateway);
    let admin = sluice_client::Client::new(gateway, None, Some(token.to_owned())).expect("client");
    admin
        .dead_letters(1, 0, None)
        .await
        .expect("the gateway's admin answers");
    let (first, second) = (worker_pid(&logs, 1), worker_pid(&logs, 2));
    kill(Pid::from_raw(first), Signal::SIGTERM).expect("SIGTERM");
    kill(Pid::from_raw(second), Signal::SIGKILL).expect("SIGKILL");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while worker_pid(&setup.logs(), 2) == second || !setup.logs().contains("worker 1 stopped") {
        assert!(tokio::time::Instant::now() < deadline, "{}", setup.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = setup.logs();
    assert!(
        logs.contains("worker 1 stopped (status 0) and is not restarted"),
        "{logs}"
    );
    assert!(
        logs.contains("worker 2 exited (status 137); restarting it in 1 s"),
        "{logs}"
    );
    assert!(
        up.try_wait().expect("status").is_none(),
        "the script still runs"
    );
    let response = reqwest::Client::new()
        .post(format!("http://{}/messages", setup.ingest))
        .header("content-type", "application/json")
        .body(r#"{"user_id": 1, "channel_id": 1, "content": "still here"}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 202);
    assert_eq!(
        setup.wait_rows(1).await,
        1,
        "the restarted worker persists it"
    );
    killpg(Pid::from_raw(up.id().expect("pid") as i32), Signal::SIGINT).expect("SIGINT");
    let code = exits_within(&mut up, Duration::from_secs(30), || setup.logs()).await;
    assert_eq!(code, 0, "{}", setup.logs());
    setup.cleanup().await;
}
