//! Connections to Redis and PostgreSQL, built the same way by every service.
//!
//! - [`redis_manager`]: a shared, multiplexed, self-reconnecting Redis connection with bounded
//!   connect and response times. Cheap to clone; every non-blocking command goes through it.
//! - [`redis_dedicated`]: a connection of its own for blocking commands (`BLMOVE`), which would
//!   stall every other caller of a shared multiplexed connection.
//! - [`pubsub_clients`]: where subscriptions connect.
//! - [`postgres_pool`]: a bounded pool that connects lazily, so a service starts even while
//!   PostgreSQL is down and recovers when it comes back.
//!
//! With `redis.cluster_nodes` set, the Redis connections are the `redis` crate's cluster
//! client, which follows the slot map through failovers. With `redis.sentinels` set, they go to
//! the primary the sentinels name, and ask them again once it is lost ([`SentinelConnection`]).
//! [`RedisConnection`] lets every caller use any kind the same way.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use std::sync::{Arc, Mutex};

use crate::sentinel::{Address, Sentinels};
use crate::tls::RedisTls;
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, Value,
};

use crate::settings::{PostgresSettings, RedisSettings};

/// A connection to a single Redis or to a Redis Cluster. Cheap to clone: clones share one
/// multiplexed connection (per node).
#[derive(Clone)]
pub enum RedisConnection {
    /// One server, `redis.url`, reconnecting by itself.
    Single(ConnectionManager),
    /// One server, one connection that its owner replaces after an error.
    Direct(MultiplexedConnection),
    /// A cluster, `redis.cluster_nodes`.
    Cluster(ClusterConnection),
    /// The primary the sentinels name, `redis.sentinels`.
    Sentinel(SentinelConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Direct(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Direct(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
        }
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Direct(_) => "RedisConnection::Direct",
            Self::Cluster(_) => "RedisConnection::Cluster",
            Self::Sentinel(_) => "RedisConnection::Sentinel",
        })
    }
}

/// A multiplexed connection to the primary a majority of the sentinels names
/// ([`crate::sentinel`]). Clones share it. A command that fails because the connection is lost
/// (the primary died, or was demoted and answers `READONLY`) drops it, and the next command
/// asks the sentinels where the primary is now, so a failover costs the commands in flight and
/// no more. Every [`crate::sentinel::RECHECK_EVERY`] a task asks them again and drops a
/// connection to a server the majority no longer names.
#[derive(Clone)]
pub struct SentinelConnection(Arc<SentinelState>);

struct SentinelState {
    /// Held while connecting, so that one caller asks the sentinels and the others wait.
    sentinels: tokio::sync::Mutex<Sentinels>,
    config: AsyncConnectionConfig,
    db: i64,
    /// The connection, and the primary it reaches.
    current: Mutex<Option<(MultiplexedConnection, Address)>>,
    /// Whether the re-check task runs (it starts with the first connection, on its runtime).
    rechecking: std::sync::atomic::AtomicBool,
}

impl SentinelConnection {
    fn new(settings: &RedisSettings, response_timeout: Duration) -> RedisResult<Self> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout()))
            .set_response_timeout(Some(response_timeout));
        Ok(Self(Arc::new(SentinelState {
            sentinels: tokio::sync::Mutex::new(Sentinels::new(settings)?),
            config,
            db: settings
                .url
                .expose()
                .into_connection_info()?
                .redis_settings()
                .db(),
            current: Mutex::new(None),
            rechecking: std::sync::atomic::AtomicBool::new(false),
        })))
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        Some(self.0.current.lock().ok()?.as_ref()?.0.clone())
    }

    /// The connection to the primary, asking the sentinels for it when there is none.
    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let sentinels = self.0.sentinels.lock().await;
        // Another caller may have connected while this one waited for the sentinels.
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let (conn, address) = sentinels.primary(&self.0.config).await?;
        tracing::debug!(primary = ?address, "connected to the primary the sentinels name");
        if let Ok(mut current) = self.0.current.lock() {
            *current = Some((conn.clone(), address));
        }
        if !self
            .0
            .rechecking
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tokio::spawn(recheck(Arc::downgrade(&self.0)));
        }
        Ok(conn)
    }

    /// Drops the connection after an error that means it no longer reaches the primary.
    fn forget_if_lost<T>(&self, result: &RedisResult<T>) {
        let Err(e) = result else { return };
        if lost_primary(e)
            && let Ok(mut current) = self.0.current.lock()
        {
            *current = None;
        }
    }

    fn get_db(&self) -> i64 {
        self.0.db
    }
}

/// Asks the sentinels every [`crate::sentinel::RECHECK_EVERY`] where the primary is, and drops
/// the connection of `state` when a majority names another server; ends with the connection's
/// last clone.
async fn recheck(state: std::sync::Weak<SentinelState>) {
    loop {
        tokio::time::sleep(crate::sentinel::RECHECK_EVERY).await;
        let Some(state) = state.upgrade() else { return };
        let sentinels = state.sentinels.lock().await.clone();
        let Ok(named) = sentinels.primary_address().await else {
            continue;
        };
        if let Ok(mut current) = state.current.lock()
            && current.as_ref().is_some_and(|(_, at)| *at != named)
        {
            tracing::warn!(
                primary = ?named,
                "the sentinels name another primary now; leaving the one this process used"
            );
            *current = None;
        }
    }
}

/// Whether `e` says the connection does not reach a primary any more.
fn lost_primary(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let result = conn.req_packed_command(cmd).await;
            self.forget_if_lost(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.forget_if_lost(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        SentinelConnection::get_db(self)
    }
}

/// The cluster client for `settings`, commands bounded by `response_timeout`.
fn cluster(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> RedisResult<(ClusterClient, ClusterConfig)> {
    let tls = RedisTls::new(settings);
    let mut builder = ClusterClient::builder(settings.cluster_node_urls());
    if let Some(certificates) = tls.certificates()? {
        builder = builder.certs(certificates);
    }
    if tls.insecure() {
        builder = builder.tls(redis::TlsMode::Insecure);
    }
    let client = builder
        .connection_timeout(settings.connect_timeout())
        .response_timeout(response_timeout)
        // A command retries on MOVED and on a lost node (a failover) within three times its
        // own budget, then fails like any other Redis error; it never waits without bound.
        .retries(3)
        .overall_response_timeout(Some(response_timeout * 3))
        .build()?;
    let config = ClusterConfig::new()
        .set_connection_timeout(settings.connect_timeout())
        .set_response_timeout(response_timeout);
    Ok((client, config))
}

/// Where this process's Redis and PostgreSQL are, as messages name them.
static SERVERS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();

/// Records where this process's Redis and PostgreSQL are (`Redis at host:port`, never a
/// password), so every message about them can say which; [`crate::cli::start`] does it.
pub fn name_servers(settings: &crate::Settings) {
    let _ = SERVERS.set((settings.redis.describe(), settings.postgres.describe()));
    REDIS_TLS.store(
        settings.redis.uses_tls(),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Whether this process reaches Redis over TLS, for [`redis_hint`].
static REDIS_TLS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What to check when a call to this process's Redis failed with `error`, when it is a TLS
/// failure ([`crate::tls::hint`]): logged beside the error.
pub fn redis_hint(error: &str) -> Option<&'static str> {
    let tls = REDIS_TLS.load(std::sync::atomic::Ordering::Relaxed);
    crate::tls::hint(crate::tls::Hop::Redis { tls }, error)
}

/// [`redis_hint`] for PostgreSQL.
pub fn postgres_hint(error: &str) -> Option<&'static str> {
    crate::tls::hint(crate::tls::Hop::Postgres, error)
}

/// `Redis at host:port`, or `Redis` in a process that has not named its servers.
pub fn redis_name() -> &'static str {
    SERVERS.get().map_or("Redis", |(redis, _)| redis.as_str())
}

/// `PostgreSQL at host:port`, or `PostgreSQL` in a process that has not named its servers.
pub fn postgres_name() -> &'static str {
    SERVERS
        .get()
        .map_or("PostgreSQL", |(_, postgres)| postgres.as_str())
}

/// Why a call bounded by [`within`] has no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallFailed {
    /// Redis refused a write for `maxmemory` (`OOM`): it is there, and has no room.
    #[error("Redis is full (maxmemory)")]
    Full,
    /// Redis answered with an error, or the connection failed.
    #[error("{0}")]
    Failed(RedisError),
    /// No answer within the bound.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Awaits a Redis call for at most `timeout`. A failure is counted in the
/// `redis_errors_total{operation = what}` metric and returned as what it means to a caller:
/// [`CallFailed::Full`] or [`CallFailed::Unavailable`].
pub async fn within<T>(
    timeout: Duration,
    what: &'static str,
    call: impl std::future::Future<Output = RedisResult<T>>,
) -> Result<T, CallFailed> {
    let failed = match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(e)) if e.code() == Some("OOM") => CallFailed::Full,
        Ok(Err(e)) => CallFailed::Failed(e),
        Err(_) => CallFailed::TimedOut(timeout),
    };
    crate::metric::redis_error(what);
    Err(failed)
}

/// A self-reconnecting Redis connection. It connects lazily, so this succeeds while Redis is
/// down; commands then fail fast until it is back.
pub fn redis_manager(settings: &RedisSettings) -> RedisResult<RedisConnection> {
    redis_manager_within(settings, settings.response_timeout())
}

/// [`redis_manager`] with its own bound on a command's answer, for a connection whose commands
/// may take longer than `redis.response_timeout_ms` (a push followed by `WAIT`).
pub fn redis_manager_within(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> RedisResult<RedisConnection> {
    if !settings.cluster_node_urls().is_empty() {
        let (client, config) = cluster(settings, response_timeout)?;
        return Ok(RedisConnection::Cluster(
            client.get_pending_async_connection_with_config(config),
        ));
    }
    if !settings.sentinel_urls().is_empty() {
        return SentinelConnection::new(settings, response_timeout).map(RedisConnection::Sentinel);
    }
    let client = RedisTls::new(settings).client(settings.url.expose())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_response_timeout(Some(response_timeout))
        // Reconnection is retried on the next command; a command must not wait out a long
        // series of attempts.
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config).map(RedisConnection::Single)
}

/// A connection of its own, for blocking commands. `response_timeout` must exceed the longest
/// block the caller asks Redis for.
pub async fn redis_dedicated(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> RedisResult<RedisConnection> {
    if !settings.cluster_node_urls().is_empty() {
        let (client, config) = cluster(settings, response_timeout)?;
        return Ok(RedisConnection::Cluster(
            client.get_async_connection_with_config(config).await?,
        ));
    }
    let client = if settings.sentinel_urls().is_empty() {
        RedisTls::new(settings).client(settings.url.expose())?
    } else {
        Sentinels::new(settings)?.primary_client().await?
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_response_timeout(Some(response_timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map(RedisConnection::Direct)
}

/// Where subscriptions connect: the one server, each cluster node in turn (a PUBLISH reaches
/// subscribers on every node of a cluster, so any live node will do), or the primary the
/// sentinels name at the time.
pub enum Subscriptions {
    /// One server, or the nodes of a cluster.
    Nodes(Vec<Client>),
    /// The sentinels.
    Sentinel(Box<Sentinels>),
}

impl Subscriptions {
    /// Where the `attempt`-th subscription connects.
    pub async fn client(&mut self, attempt: usize) -> RedisResult<Client> {
        match self {
            Self::Nodes(clients) => clients
                .get(attempt % clients.len().max(1))
                .cloned()
                .ok_or_else(|| {
                    RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "no Redis to subscribe on",
                    ))
                }),
            Self::Sentinel(sentinels) => sentinels.primary_client().await,
        }
    }
}

/// Where the subscriptions of a process connect (see [`Subscriptions`]).
pub fn pubsub_clients(settings: &RedisSettings) -> RedisResult<Subscriptions> {
    if !settings.sentinel_urls().is_empty() {
        return Ok(Subscriptions::Sentinel(Box::new(Sentinels::new(settings)?)));
    }
    let tls = RedisTls::new(settings);
    let nodes = settings.cluster_node_urls();
    if nodes.is_empty() {
        return Ok(Subscriptions::Nodes(vec![
            tls.client(settings.url.expose())?,
        ]));
    }
    let clients = nodes
        .into_iter()
        .map(|node| tls.client(node))
        .collect::<RedisResult<_>>()?;
    Ok(Subscriptions::Nodes(clients))
}

/// Why a PostgreSQL pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The URL does not parse, or its TLS files cannot be used.
    #[error("invalid postgres.url: {0}")]
    Url(String),
    /// The pool builder refused its settings.
    #[error(transparent)]
    Build(#[from] deadpool_postgres::BuildError),
}

/// A PostgreSQL connection pool of `pool_size` connections, created on demand.
pub fn postgres_pool(settings: &PostgresSettings) -> Result<Pool, PoolError> {
    postgres_pool_sized(settings, settings.pool_size, None)
}

/// After `error` on `client`, a connection of `pool`: when the server refuses writes
/// (SQLSTATE 25006: a primary demoted to a standby, or a standby promoted in its place while
/// this connection stayed on the old one), drops `client` and every idle connection, so the
/// next ones connect anew and, with `target_session_attrs=read-write`, reach the writable
/// primary. Returns the error, which callers retry like any unavailable database.
pub fn forget_read_only(
    pool: &Pool,
    client: deadpool_postgres::Object,
    error: tokio_postgres::Error,
) -> tokio_postgres::Error {
    if error.code() == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION) {
        drop(deadpool_postgres::Object::take(client));
        let dropped = pool.retain(|_, _| false).removed.len();
        tracing::info!(
            dropped = dropped + 1,
            "PostgreSQL refused a write (read-only): reconnecting to find the primary"
        );
    }
    error
}

/// A pool of `size` connections to `settings.url`, created on demand; with a
/// `statement_timeout`, PostgreSQL cancels any statement of theirs that runs longer (SQLSTATE
/// 57014, `query_canceled`). For a pool kept apart from the main one: reads that must not take
/// the connections writes need, or a readiness probe that must not wait behind either.
pub fn postgres_pool_sized(
    settings: &PostgresSettings,
    size: usize,
    statement_timeout: Option<Duration>,
) -> Result<Pool, PoolError> {
    let target = crate::tls::postgres::target(settings.url.expose()).map_err(PoolError::Url)?;
    let mut pg = target.config;
    let connect_timeout = Duration::from_millis(settings.connect_timeout_ms);
    pg.connect_timeout(connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name("sluice");
    }
    if let Some(timeout) = statement_timeout {
        let option = format!("-c statement_timeout={}", timeout.as_millis());
        let options = match pg.get_options() {
            Some(given) => format!("{given} {option}"),
            None => option,
        };
        pg.options(&options);
    }
    let manager = Manager::from_config(
        pg,
        target.tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(connect_timeout))
        .wait_timeout(Some(connect_timeout * 2))
        .build()
        .map_err(PoolError::from)
}
