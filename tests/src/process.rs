//! Starting the real Sluice binaries for black-box tests, and stopping them with signals.
//!
//! Binaries are looked up in `SLUICE_BIN_DIR`, else in the cargo target directory this test
//! executable was built in (`target/<profile>/`). `./scripts/test` builds them first.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Where a binary named `name` is.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("SLUICE_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            // target/<profile>/deps/<test-exe> → target/<profile>
            let exe = std::env::current_exe()?;
            exe.parent()
                .and_then(|deps| deps.parent())
                .map(PathBuf::from)
                .context("cannot locate the target directory")?
        }
    };
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found; build the binaries first (cargo build --workspace --bins) or set \
             SLUICE_BIN_DIR",
            path.display()
        );
    }
    Ok(path)
}

/// The processes whose parent is `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.filter_map(Result::ok)
        .filter_map(|p| p.stat().ok())
        .filter(|stat| stat.ppid == pid)
        .map(|stat| stat.pid)
        .collect()
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it right away).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port is available")
}

/// A running Sluice binary. Killed with SIGKILL if dropped while still running.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts binary `name` with `env` added to the environment (and nothing inherited that
    /// could change its settings: `SLUICE__*` and the legacy aliases are cleared). Its stdout
    /// and stderr go to a log file read by [`Service::logs`].
    pub fn start(name: &str, env: &[(String, String)], args: &[&str]) -> anyhow::Result<Self> {
        let log = std::env::temp_dir().join("sluice-tests").join(format!(
            "{name}-{}-{}.log",
            std::process::id(),
            crate::unique_prefix("l")
                .trim_end_matches(':')
                .replace(':', "-")
        ));
        std::fs::create_dir_all(log.parent().context("log dir")?)?;
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(binary(name)?);
        for (key, _) in std::env::vars() {
            if key.starts_with("SLUICE__")
                || matches!(
                    key.as_str(),
                    "REDIS_URL"
                        | "REDIS_HOST"
                        | "REDIS_PORT"
                        | "DATABASE_URL"
                        | "BATCH_SIZE"
                        | "BATCH_TIMEOUT"
                )
            {
                cmd.env_remove(key);
            }
        }
        // `env` may set `RUST_LOG` itself.
        cmd.env(
            "RUST_LOG",
            std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> anyhow::Result<i32> {
        let pid = self.child.id().context("process already reaped")?;
        Ok(i32::try_from(pid)?)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        kill(Pid::from_raw(self.pid()?), signal)
            .with_context(|| format!("signalling {}", self.name))
    }

    /// Waits for the process to exit, at most `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .with_context(|| {
                format!(
                    "{} did not exit within {timeout:?}; log:\n{}",
                    self.name,
                    self.logs()
                )
            })?
            .map_err(Into::into)
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        self.wait(timeout).await
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the process printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Polls `url` until it answers 200, at most `timeout`; fails with the service's log.
pub async fn wait_http_ok(
    service: &mut Service,
    url: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if http_get_status(url).await.is_ok_and(|status| status == 200) {
            return Ok(());
        }
        if !service.is_running() {
            bail!(
                "{} exited during start-up; log:\n{}",
                service.name,
                service.logs()
            );
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{url} not up within {timeout:?}; log:\n{}", service.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Minimal HTTP/1.1 GET returning the status code, so this library needs no HTTP client.
async fn http_get_status(url: &str) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").context("http:// URL")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    let status = std::str::from_utf8(&head[9..12])?.parse()?;
    Ok(status)
}
