//! Connections to Redis and PostgreSQL, built the same way by every service.
//!
//! - [`redis_manager`]: a shared, multiplexed, self-reconnecting Redis connection with bounded
//!   connect and response times. Cheap to clone; every non-blocking command goes through it.
//! - [`redis_dedicated`]: a connection of its own for blocking commands (`BLMOVE`), which would
//!   stall every other caller of a shared multiplexed connection.
//! - [`postgres_pool`]: a bounded pool that connects lazily, so a service starts even while
//!   PostgreSQL is down and recovers when it comes back.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisResult};

use crate::settings::{PostgresSettings, RedisSettings};

/// A self-reconnecting Redis connection. It connects lazily, so this succeeds while Redis is
/// down; commands then fail fast until it is back.
pub fn redis_manager(settings: &RedisSettings) -> RedisResult<ConnectionManager> {
    let client = Client::open(settings.url.as_str())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_response_timeout(Some(settings.response_timeout()))
        // Reconnection is retried on the next command; a command must not wait out a long
        // series of attempts.
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
}

/// A connection of its own, for blocking commands. `response_timeout` must exceed the longest
/// block the caller asks Redis for.
pub async fn redis_dedicated(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> RedisResult<MultiplexedConnection> {
    let client = Client::open(settings.url.as_str())?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout()))
        .set_response_timeout(Some(response_timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Why a PostgreSQL pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The URL does not parse.
    #[error("invalid postgres.url: {0}")]
    Url(#[from] tokio_postgres::Error),
    /// The pool builder refused its settings.
    #[error(transparent)]
    Build(#[from] deadpool_postgres::BuildError),
}

/// A PostgreSQL connection pool of `pool_size` connections, created on demand.
pub fn postgres_pool(settings: &PostgresSettings) -> Result<Pool, PoolError> {
    let mut pg: tokio_postgres::Config = settings.url.parse()?;
    let connect_timeout = Duration::from_millis(settings.connect_timeout_ms);
    pg.connect_timeout(connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name("sluice");
    }
    let manager = Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(connect_timeout))
        .wait_timeout(Some(connect_timeout * 2))
        .build()
        .map_err(PoolError::from)
}
