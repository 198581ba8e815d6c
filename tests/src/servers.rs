//! Private Redis and PostgreSQL servers on spare ports, for fault tests that stop and restart
//! them without disturbing the shared servers other tests use.
//!
//! Redis runs as the deploy configuration runs it (AOF on, `appendfsync everysec`). PostgreSQL
//! is a fresh `initdb` cluster with trust authentication; when the tests run as root it runs as
//! the `postgres` user, since PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::process::free_port;
use crate::tls::Certificates;

/// How a test reaches its private Redis servers: plain, or TLS only ([`Wire::tls`]).
#[derive(Debug, Clone, Default)]
pub struct Wire(Option<Arc<Certificates>>);

impl Wire {
    /// Every server listens on TLS only (`--port 0 --tls-port`), with the server certificate
    /// of `certs`, and requires a client certificate the CA signed; replication, the cluster
    /// bus and the sentinels' links are over TLS too.
    pub fn tls(certs: Arc<Certificates>) -> Self {
        Self(Some(certs))
    }

    /// The certificates, when the servers speak TLS.
    pub fn certificates(&self) -> Option<&Certificates> {
        self.0.as_deref()
    }

    /// `redis://127.0.0.1:<port>`, or `rediss://` over TLS.
    pub fn url(&self, port: u16) -> String {
        let scheme = if self.0.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{port}")
    }

    /// `redis-server` flags to listen on `port`.
    fn server_args(&self, port: u16) -> Vec<String> {
        let Some(certs) = &self.0 else {
            return vec!["--port".into(), port.to_string()];
        };
        let path = |p: &Path| p.to_string_lossy().into_owned();
        [
            ("--port", "0".to_owned()),
            ("--tls-port", port.to_string()),
            ("--tls-cert-file", path(&certs.server.0)),
            ("--tls-key-file", path(&certs.server.1)),
            ("--tls-ca-cert-file", path(&certs.ca)),
            ("--tls-replication", "yes".to_owned()),
            ("--tls-cluster", "yes".to_owned()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
    }

    /// The lines of a sentinel's configuration that make it listen on `port`.
    fn sentinel_config(&self, port: u16) -> String {
        let Some(certs) = &self.0 else {
            return format!("port {port}\n");
        };
        format!(
            "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
             tls-ca-cert-file {}\ntls-replication yes\n",
            certs.server.0.display(),
            certs.server.1.display(),
            certs.ca.display()
        )
    }

    /// `redis-cli` flags to reach the servers.
    fn cli_args(&self) -> Vec<String> {
        let Some(certs) = &self.0 else {
            return Vec::new();
        };
        let path = |p: &Path| p.to_string_lossy().into_owned();
        vec![
            "--tls".into(),
            "--cacert".into(),
            path(&certs.ca),
            "--cert".into(),
            path(&certs.client.0),
            "--key".into(),
            path(&certs.client.1),
        ]
    }

    /// The `REDIS__TLS_*` settings a service needs to reach the servers.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        self.0
            .as_ref()
            .map(|c| c.redis_settings())
            .unwrap_or_default()
    }

    /// A client for the server on `port`.
    fn client(&self, port: u16) -> anyhow::Result<redis::Client> {
        let mut settings = sluice_core::settings::RedisSettings {
            url: self.url(port).into(),
            ..Default::default()
        };
        if let Some(certs) = &self.0 {
            let path = |p: &Path| p.to_string_lossy().into_owned();
            settings.tls_ca_file = path(&certs.ca);
            settings.tls_cert_file = path(&certs.client.0);
            settings.tls_key_file = path(&certs.client.1);
        }
        Ok(sluice_core::tls::RedisTls::new(&settings).client(settings.url.expose())?)
    }
}

fn scratch_dir(kind: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "sluice-{kind}-{}",
        crate::unique_prefix("d")
            .trim_end_matches(':')
            .replace(':', "-")
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A private `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with AOF on, in a fresh directory.
    pub async fn start() -> anyhow::Result<Self> {
        let mut server = Self {
            port: free_port(),
            dir: scratch_dir("redis")?,
            child: None,
        };
        server.launch().await?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let child = spawn_redis(&Wire::default(), self.port, &self.dir, &[])?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if ping(&self.url()).await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "private redis-server did not start; see {}",
                    self.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Graceful stop: SIGTERM, which makes Redis fsync its AOF before exiting.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGTERM)?;
            }
            tokio::time::timeout(Duration::from_secs(10), child.wait()).await??;
        }
        Ok(())
    }

    /// Starts it again on the same port and data, after [`RedisServer::stop`].
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.launch().await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private PostgreSQL cluster.
#[derive(Debug)]
pub struct PostgresServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PostgresServer {
    /// `initdb`s a cluster in a fresh directory and starts it.
    pub async fn start() -> anyhow::Result<Self> {
        let server = Self::init().await?;
        server.start_again().await?;
        Ok(server)
    }

    /// The same with `ssl = on`, the server certificate and key given, and `hostssl` the only
    /// way in: a client without TLS is refused.
    pub async fn start_tls(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let server = Self::init().await?;
        let data = server.dir.join("data");
        std::fs::copy(cert, data.join("server.crt"))?;
        std::fs::copy(key, data.join("server.key"))?;
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\n",
        )?;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))?;
        std::io::Write::write_all(
            &mut conf,
            b"ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
        )?;
        if is_root() {
            run(Command::new("chown").arg("-R").arg("postgres:").arg(&data)).await?;
        }
        run(Command::new("chmod")
            .arg("600")
            .arg(data.join("server.key")))
        .await?;
        server.start_again().await?;
        Ok(server)
    }

    /// A server on a spare port with an empty directory its owner may write, no cluster yet.
    async fn unmade() -> anyhow::Result<Self> {
        let server = Self {
            port: free_port(),
            dir: scratch_dir("postgres")?,
            bin: postgres_bin_dir()?,
        };
        if is_root() {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(&server.dir))
            .await?;
        }
        Ok(server)
    }

    async fn init() -> anyhow::Result<Self> {
        let server = Self::unmade().await?;
        let data = server.dir.join("data");
        server
            .as_owner(&server.bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .status_ok()
            .await
            .context("initdb")?;
        Ok(server)
    }

    /// [`PostgresServer::start`] with `lines` added to `postgresql.conf`.
    pub async fn start_with(lines: &[String]) -> anyhow::Result<Self> {
        let server = Self::init().await?;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(server.dir.join("data").join("postgresql.conf"))?;
        for line in lines {
            std::io::Write::write_all(&mut conf, format!("{line}\n").as_bytes())?;
        }
        server.start_again().await?;
        Ok(server)
    }

    /// A streaming standby of `primary`, on a port of its own, started.
    pub async fn standby_of(primary: &PostgresServer) -> anyhow::Result<Self> {
        let mut server = Self::unmade().await?;
        server.follow(primary).await?;
        Ok(server)
    }

    /// Replaces this server's data with a base backup of `primary` (`pg_basebackup -R`: a
    /// standby streaming from it) and starts it on its port.
    pub async fn follow(&mut self, primary: &PostgresServer) -> anyhow::Result<()> {
        let data = self.dir.join("data");
        if data.exists() {
            std::fs::remove_dir_all(&data)?;
        }
        self.as_owner(&self.bin.join("pg_basebackup"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(&data)
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .status_ok()
            .await
            .context("pg_basebackup")?;
        self.start_again().await
    }

    /// Ends recovery: the standby becomes a primary.
    pub async fn promote(&self) -> anyhow::Result<()> {
        self.pg_ctl()
            .args(["promote", "-w", "-t", "30"])
            .status_ok()
            .await
            .context("pg_ctl promote")
    }

    /// The pid of a standby's WAL receiver.
    pub async fn wal_receiver_pid(&self) -> anyhow::Result<Pid> {
        let admin = crate::connect(&self.admin_url()).await?;
        for _ in 0..100 {
            let row = admin
                .query_opt("SELECT pid FROM pg_stat_wal_receiver", &[])
                .await?;
            if let Some(pid) = row.and_then(|r| r.get::<_, Option<i32>>(0)) {
                return Ok(Pid::from_raw(pid));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("no WAL receiver on {}", self.port)
    }

    /// SIGKILLs the postmaster and every process it started at once, as a host that dies, and
    /// waits until they are gone.
    pub fn kill_all(&self) -> anyhow::Result<()> {
        let pidfile = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))?;
        let postmaster: i32 = pidfile.lines().next().unwrap_or_default().trim().parse()?;
        let mut doomed = vec![postmaster];
        doomed.extend(crate::process::children_of(postmaster));
        for pid in &doomed {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        for _ in 0..200 {
            if !std::path::Path::new(&format!("/proc/{postmaster}")).exists() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("the postmaster {postmaster} outlived SIGKILL")
    }

    /// The admin URL (`postgres` database).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn as_owner(&self, program: &Path) -> Command {
        if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = self.as_owner(&self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(self.dir.join("data"));
        cmd
    }

    /// Starts (or restarts after [`PostgresServer::stop`]) the server and waits for it.
    pub async fn start_again(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        self.pg_ctl()
            .args(["start", "-w", "-t", "30", "-o", &options, "-l"])
            .arg(self.dir.join("postgres.log"))
            .status_ok()
            .await
            .context("pg_ctl start")
    }

    /// Fast shutdown: disconnects every client, then stops.
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.pg_ctl()
            .args(["stop", "-m", "fast", "-w", "-t", "30"])
            .status_ok()
            .await
            .context("pg_ctl stop")
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let mut cmd = if is_root() {
            let mut cmd = std::process::Command::new("runuser");
            cmd.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            cmd
        } else {
            std::process::Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn ping(url: &str) -> bool {
    ping_with(redis::Client::open(url).map_err(anyhow::Error::from)).await
}

async fn ping_with(client: anyhow::Result<redis::Client>) -> bool {
    let Ok(client) = client else {
        return false;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no PostgreSQL server binaries (/usr/lib/postgresql)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .context("no pg_ctl under /usr/lib/postgresql/*/bin")
}

trait StatusOk {
    async fn status_ok(&mut self) -> anyhow::Result<()>;
}

impl StatusOk for Command {
    async fn status_ok(&mut self) -> anyhow::Result<()> {
        let out = self.stdin(Stdio::null()).output().await?;
        if !out.status.success() {
            bail!(
                "{:?} failed ({}): {}{}",
                self.as_std().get_program(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

async fn run(cmd: &mut Command) -> anyhow::Result<()> {
    cmd.status_ok().await
}

/// A private Redis Cluster on loopback: three primaries and three replicas of `redis-server`
/// in cluster mode (AOF on, `appendfsync everysec`, node timeout 2 s), joined by
/// `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes' ports on 127.0.0.1.
    pub ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Option<Child>>,
    wire: Wire,
}

impl RedisCluster {
    /// Starts six nodes and creates the cluster; returns once every node reports it `ok`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(Wire::default()).await
    }

    /// How the nodes are reached.
    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    /// [`Self::start`], the nodes (and their bus) reached as `wire` says.
    pub async fn start_on(wire: Wire) -> anyhow::Result<Self> {
        let dir = scratch_dir("cluster")?;
        let mut cluster = Self {
            ports: Vec::new(),
            dir,
            children: Vec::new(),
            wire,
        };
        for _ in 0..6 {
            let port = free_port();
            cluster.ports.push(port);
            cluster.children.push(Some(cluster.launch(port)?));
        }
        for port in &cluster.ports {
            wait_for(&cluster.wire, *port, Duration::from_secs(10)).await?;
        }
        let addresses: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new("redis-cli")
            .args(cluster.wire.cli_args())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .await
            .context("redis-cli --cluster create")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !cluster.all_ok().await {
            if tokio::time::Instant::now() > deadline {
                bail!("the cluster did not reach cluster_state:ok");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(cluster)
    }

    fn launch(&self, port: u16) -> anyhow::Result<Child> {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir)?;
        spawn_redis(
            &self.wire,
            port,
            &dir,
            &["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"],
        )
    }

    /// Starts the killed node on `port` again, with what it kept on disk (its `nodes.conf`):
    /// it rejoins the cluster as a replica of the node that took its place. Returns once it has
    /// synced.
    pub async fn restart(&mut self, port: u16) -> anyhow::Result<()> {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .context("no such node")?;
        self.children[i] = Some(self.launch(port)?);
        wait_synced(&self.wire, port, Duration::from_secs(30)).await
    }

    /// The nodes' URLs, comma-separated: the value of `redis.cluster_nodes`.
    pub fn nodes(&self) -> String {
        self.ports
            .iter()
            .map(|p| self.wire.url(*p))
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn all_ok(&self) -> bool {
        for (port, child) in self.ports.iter().zip(&self.children) {
            if child.is_none() {
                continue;
            }
            match cli(&self.wire, *port, &["CLUSTER", "INFO"]).await {
                Ok(info) if info.contains("cluster_state:ok") => {}
                _ => return false,
            }
        }
        true
    }

    /// The port of the primary serving `key`'s slot, as the live nodes see it.
    pub async fn primary_of(&self, key: &str) -> anyhow::Result<u16> {
        let alive = self.alive().next().context("no live node")?;
        let slot = cli(&self.wire, alive, &["CLUSTER", "KEYSLOT", key]).await?;
        let slot: u16 = slot.trim().parse()?;
        let nodes = cli(&self.wire, alive, &["CLUSTER", "NODES"]).await?;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else {
                continue;
            };
            if !flags.contains("master") || flags.contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((a, b)) => {
                    a.parse::<u16>().is_ok_and(|a| a <= slot)
                        && b.parse::<u16>().is_ok_and(|b| slot <= b)
                }
                None => range.parse::<u16>().is_ok_and(|s| s == slot),
            });
            if serves {
                let port = address.split(['@', ':']).nth(1).context("node address")?;
                return Ok(port.parse()?);
            }
        }
        bail!("no live primary serves slot {slot}")
    }

    /// A replica of the primary on `primary` that has finished its first sync (waits up to
    /// 10 s for one: replicas attach a moment after the cluster reports `ok`).
    pub async fn replica_of(&self, primary: u16) -> anyhow::Result<u16> {
        let id = cli(&self.wire, primary, &["CLUSTER", "MYID"]).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let replicas = cli(&self.wire, primary, &["CLUSTER", "REPLICAS", id.trim()]).await?;
            let port = replicas
                .lines()
                .filter(|line| line.contains("connected"))
                .find_map(|line| line.split_whitespace().nth(1))
                .and_then(|address| address.split(['@', ':']).nth(1))
                .and_then(|port| port.parse::<u16>().ok());
            if let Some(port) = port {
                let info = cli(&self.wire, port, &["INFO", "replication"]).await?;
                if info.contains("master_link_status:up") {
                    return Ok(port);
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the primary on {primary} has no synced replica after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A graceful failover: the replica on `replica` takes over once it has caught up. Returns
    /// once the cluster is `ok` again with it as primary.
    pub async fn failover(&self, replica: u16, key: &str) -> anyhow::Result<()> {
        cli(&self.wire, replica, &["CLUSTER", "FAILOVER"]).await?;
        self.until_primary(replica, key).await
    }

    /// SIGKILL to the primary on `primary`. With `cut`, its replica on `replica` is first
    /// partitioned from it ([`partition`]) for that long, and healed just after the kill.
    pub async fn kill_partitioned(
        &mut self,
        primary: u16,
        replica: u16,
        cut: Option<Duration>,
    ) -> anyhow::Result<()> {
        let at = |port: u16| {
            self.ports
                .iter()
                .position(|p| *p == port)
                .context("no such node")
        };
        let replica = at(replica)?;
        if let Some(cut) = cut {
            partition(&self.wire, primary, self.children[replica].as_ref()).await?;
            tokio::time::sleep(cut).await;
        }
        self.kill(primary).await?;
        if cut.is_some() {
            heal(self.children[replica].as_ref())?;
        }
        Ok(())
    }

    /// SIGKILL to the node on `port`: no chance to replicate or fsync anything more.
    pub async fn kill(&mut self, port: u16) -> anyhow::Result<()> {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .context("no such node")?;
        if let Some(mut child) = self.children[i].take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Waits until `key`'s slot is served by the node on `port` and the cluster is `ok`.
    pub async fn until_primary(&self, port: u16, key: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if self.primary_of(key).await.ok() == Some(port) && self.all_ok().await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("node {port} did not take over within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn alive(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports
            .iter()
            .zip(&self.children)
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Partitions a replica from its primary on `primary`, as a network failure would: the replica
/// is stopped (`SIGSTOP`), so it reads nothing more, and the primary drops the link
/// (`CLIENT KILL TYPE replica`, as its `repl-timeout` would, sooner), so whatever it takes from
/// now on exists on the primary alone. [`heal`] resumes the replica. (Cutting the link alone
/// does nothing on loopback: the replica is back within a millisecond with a partial resync.)
async fn partition(wire: &Wire, primary: u16, replica: Option<&Child>) -> anyhow::Result<()> {
    signal(replica, Signal::SIGSTOP)?;
    cli(wire, primary, &["CLIENT", "KILL", "TYPE", "replica"])
        .await
        .map(drop)
}

/// Resumes a replica [`partition`] stopped.
fn heal(replica: Option<&Child>) -> anyhow::Result<()> {
    signal(replica, Signal::SIGCONT)
}

/// Sends `signal` to a server's process.
fn signal(child: Option<&Child>, signal: Signal) -> anyhow::Result<()> {
    let pid = child.and_then(Child::id).context("no such live server")?;
    kill(Pid::from_raw(i32::try_from(pid)?), signal)?;
    Ok(())
}

/// Waits until the replica on `port` reports its link to its primary up.
async fn wait_synced(wire: &Wire, port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(info) = cli(wire, port, &["INFO", "replication"]).await
            && info.contains("master_link_status:up")
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the replica on {port} did not sync within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A private primary with one replica, watched by three Redis Sentinels on loopback (quorum
/// 2, `down-after-milliseconds` 3000, `failover-timeout` 2000 so that the next failover may
/// start 4 s after the last), the primary named [`RedisSentinels::NAME`]. Every server
/// as [`RedisServer`] runs (AOF on, `appendfsync everysec`).
///
/// [`RedisSentinels::start_with_decoy`] points the first sentinel at another Redis instead, a
/// primary of its own under the same name, as a misconfigured sentinel would.
#[derive(Debug)]
pub struct RedisSentinels {
    /// The data servers' ports: the first started as primary.
    pub ports: Vec<u16>,
    /// The sentinels' ports.
    pub sentinel_ports: Vec<u16>,
    dir: PathBuf,
    servers: Vec<Option<Child>>,
    sentinels: Vec<Child>,
    wire: Wire,
    /// The decoy's port and process, watched by the first sentinel.
    decoy: Option<Box<(u16, Child)>>,
}

impl RedisSentinels {
    /// The name the sentinels monitor the primary under.
    pub const NAME: &'static str = "sluice";

    /// Starts the primary, its replica and the sentinels; returns once the replica has synced
    /// and every sentinel knows both.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_group(false, Wire::default()).await
    }

    /// Like [`Self::start`], but the first sentinel watches a decoy: another Redis, a primary
    /// under the same name, empty. The other two still make a majority for the real primary.
    pub async fn start_with_decoy() -> anyhow::Result<Self> {
        Self::start_group(true, Wire::default()).await
    }

    /// How the servers and sentinels are reached.
    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    /// [`Self::start`], every server and sentinel reached as `wire` says.
    pub async fn start_on(wire: Wire) -> anyhow::Result<Self> {
        Self::start_group(false, wire).await
    }

    /// The decoy's port, when there is one.
    pub fn decoy_port(&self) -> Option<u16> {
        self.decoy.as_ref().map(|decoy| decoy.0)
    }

    /// The sentinels that watch the real primary.
    fn watching(&self) -> &[u16] {
        &self.sentinel_ports[usize::from(self.decoy.is_some())..]
    }

    async fn start_group(decoy: bool, wire: Wire) -> anyhow::Result<Self> {
        let dir = scratch_dir("sentinel")?;
        let ports = vec![free_port(), free_port()];
        let mut group = Self {
            ports: ports.clone(),
            sentinel_ports: Vec::new(),
            dir,
            servers: vec![None, None],
            sentinels: Vec::new(),
            decoy: None,
            wire,
        };
        if decoy {
            let port = free_port();
            let child = group.launch(port, None)?;
            wait_for(&group.wire, port, Duration::from_secs(10)).await?;
            let sentinel = free_port();
            group.sentinels.push(group.launch_sentinel(sentinel, port)?);
            group.sentinel_ports.push(sentinel);
            group.decoy = Some(Box::new((port, child)));
        }
        group.servers[0] = Some(group.launch(ports[0], None)?);
        wait_for(&group.wire, ports[0], Duration::from_secs(10)).await?;
        group.servers[1] = Some(group.launch(ports[1], Some(ports[0]))?);
        wait_synced(&group.wire, ports[1], Duration::from_secs(10)).await?;
        for _ in group.sentinel_ports.len()..3 {
            let port = free_port();
            group.sentinels.push(group.launch_sentinel(port, ports[0])?);
            group.sentinel_ports.push(port);
        }
        group.until_known().await?;
        Ok(group)
    }

    fn launch(&self, port: u16, primary: Option<u16>) -> anyhow::Result<Child> {
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir)?;
        let primary = primary.map(|p| p.to_string());
        let mut extra = vec![];
        if let Some(primary) = &primary {
            extra.extend(["--replicaof", "127.0.0.1", primary.as_str()]);
        }
        spawn_redis(&self.wire, port, &dir, &extra)
    }

    fn launch_sentinel(&self, port: u16, primary: u16) -> anyhow::Result<Child> {
        let dir = self.dir.join(format!("sentinel-{port}"));
        std::fs::create_dir_all(&dir)?;
        let name = Self::NAME;
        let config = dir.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "{}bind 127.0.0.1\ndir {}\n\
                 sentinel monitor {name} 127.0.0.1 {primary} 2\n\
                 sentinel down-after-milliseconds {name} 3000\n\
                 sentinel failover-timeout {name} 2000\n\
                 sentinel parallel-syncs {name} 1\n",
                self.wire.sentinel_config(port),
                dir.display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("sentinel.log"))?;
        Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server --sentinel")
    }

    /// Waits until every sentinel names the same primary and counts its replica.
    async fn until_known(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut known = 0;
            for port in self.watching() {
                let replicas = cli(&self.wire, *port, &["SENTINEL", "REPLICAS", Self::NAME]).await;
                if replicas.is_ok_and(|r| r.contains("slave")) {
                    known += 1;
                }
            }
            if known == self.watching().len() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the sentinels did not all see the replica within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The sentinels' URLs, comma-separated (the decoy's first): the value of
    /// `redis.sentinels`.
    pub fn sentinels(&self) -> String {
        self.sentinel_ports
            .iter()
            .map(|p| self.wire.url(*p))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the primary, as the first sentinel watching it that answers names it.
    pub async fn primary(&self) -> anyhow::Result<u16> {
        for port in self.watching() {
            let args = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::NAME];
            if let Ok(address) = cli(&self.wire, *port, &args).await
                && let Some(port) = address.lines().nth(1)
            {
                return Ok(port.trim().parse()?);
            }
        }
        bail!("no sentinel answers")
    }

    /// SIGKILLs the primary, waits until the sentinels have promoted the replica and it
    /// accepts writes, then starts the killed server again as the new primary's replica (as
    /// the sentinels would make it) and waits for it to sync. Returns the new primary's port.
    /// With `cut`, the replica is partitioned from the primary ([`partition`]) that long before
    /// the kill, and healed just after it: it lacks what the primary took meanwhile.
    pub async fn kill_primary(&mut self, cut: Option<Duration>) -> anyhow::Result<u16> {
        let old = self.primary().await?;
        let i = self
            .ports
            .iter()
            .position(|p| *p == old)
            .context("unknown primary")?;
        let new = self.ports[1 - i];
        // The scenario is a primary dying under a replica that follows it, not one still
        // loading or syncing (the sentinels would promote it all the same, stale).
        wait_synced(&self.wire, new, Duration::from_secs(30)).await?;
        if let Some(cut) = cut {
            partition(&self.wire, old, self.servers[1 - i].as_ref()).await?;
            tokio::time::sleep(cut).await;
        }
        if let Some(mut child) = self.servers[i].take() {
            child.kill().await?;
        }
        if cut.is_some() {
            heal(self.servers[1 - i].as_ref())?;
        }
        self.until_promoted(new).await?;
        self.servers[i] = Some(self.launch(old, Some(new))?);
        wait_synced(&self.wire, old, Duration::from_secs(30)).await?;
        Ok(new)
    }

    /// Waits until every sentinel names `new` the primary and it accepts writes.
    async fn until_promoted(&self, new: u16) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut agree = cli(&self.wire, new, &["ROLE"])
                .await
                .is_ok_and(|r| r.starts_with("master"));
            for port in self.watching() {
                let args = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::NAME];
                let named = cli(&self.wire, *port, &args).await.ok();
                agree &=
                    named.and_then(|a| a.lines().nth(1)?.trim().parse::<u16>().ok()) == Some(new);
            }
            if agree {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the sentinels did not all promote {new} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for RedisSentinels {
    fn drop(&mut self) {
        let decoy = self.decoy.iter_mut().map(|decoy| &mut decoy.1);
        for child in self
            .servers
            .iter_mut()
            .flatten()
            .chain(&mut self.sentinels)
            .chain(decoy)
        {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            // The servers' and sentinels' logs say what went wrong.
            eprintln!("sentinel group's files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `redis-server` on 127.0.0.1:`port` as the deploy configuration runs it (AOF on,
/// `appendfsync everysec`), data and log in `dir`, plus `extra` flags.
fn spawn_redis(wire: &Wire, port: u16, dir: &Path, extra: &[&str]) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join("redis.log"))?;
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1"])
        .args(wire.server_args(port))
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting redis-server")
}

/// `redis-cli -p <port> <args>`'s output.
async fn cli(wire: &Wire, port: u16, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(wire.cli_args())
        .args(args)
        .output()
        .await
        .context("redis-cli")?;
    if !out.status.success() {
        bail!(
            "redis-cli {args:?} on {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn wait_for(wire: &Wire, port: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !ping_with(wire.client(port)).await {
        if tokio::time::Instant::now() > deadline {
            bail!("{} did not answer", wire.url(port));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
