//! Finding the Redis primary through Sentinel, so that every process of the fleet finds the
//! same one.
//!
//! A client that takes the first sentinel's answer follows any one sentinel that is wrong: one
//! of three pointing at another Redis (a decoy, or another fleet's) was enough for an ingest
//! API to push 4,345 acknowledged messages there after a reconnect, while the workers drained
//! the real primary. So [`Sentinels::primary`] asks every configured sentinel at once and takes
//! the address a majority of them (of all configured, answering or not) names, then asks the
//! server there for its `ROLE`, which must be `master`. No majority, no connection: the caller
//! answers 503 and asks again, rather than guess.
//!
//! What remains possible, as with any Sentinel client: a majority of the sentinels wrong alike;
//! and a primary cut off from the others that still takes writes until it is demoted (Redis's
//! `min-replicas-to-write` makes it refuse them; `redis.ack_replicas` keeps them unacknowledged).
//! [`crate::connect`] asks again every [`RECHECK_EVERY`] and leaves a primary the majority no
//! longer names, so no process stays on a stale one longer than that.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionInfo, IntoConnectionInfo, RedisError, RedisResult,
};

use crate::settings::RedisSettings;
use crate::tls::RedisTls;

/// How often a process asks the sentinels again where the primary is, and leaves the one it
/// is connected to if a majority names another.
pub const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// The configured sentinels, and how to reach the primary they name.
#[derive(Debug, Clone)]
pub struct Sentinels {
    sentinels: Vec<ConnectionInfo>,
    name: String,
    /// `redis.url`: the primary's credentials and database (its host is the sentinels' to say).
    primary: ConnectionInfo,
    config: AsyncConnectionConfig,
    /// How a `rediss://` sentinel or primary is reached.
    tls: RedisTls,
}

/// `host:port` of a primary, as the sentinels name it.
pub type Address = (String, u16);

impl Sentinels {
    /// The sentinels of `settings` (`redis.sentinels`), asked for `redis.sentinel_primary`,
    /// each call bounded by the connect and response timeouts.
    pub fn new(settings: &RedisSettings) -> RedisResult<Self> {
        Ok(Self {
            sentinels: settings
                .sentinel_urls()
                .into_iter()
                .map(IntoConnectionInfo::into_connection_info)
                .collect::<RedisResult<_>>()?,
            name: settings.sentinel_primary.clone(),
            primary: settings.url.expose().into_connection_info()?,
            tls: RedisTls::new(settings),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(settings.connect_timeout()))
                .set_response_timeout(Some(settings.response_timeout())),
        })
    }

    /// The address a majority of the configured sentinels names for the primary.
    pub async fn primary_address(&self) -> RedisResult<Address> {
        let answers = join_all(self.sentinels.iter().map(|s| self.ask(s))).await;
        let mut named: BTreeMap<&Address, usize> = BTreeMap::new();
        for address in answers.iter().flatten() {
            *named.entry(address).or_default() += 1;
        }
        let majority = self.sentinels.len() / 2 + 1;
        if let Some((address, _)) = named.iter().find(|(_, n)| **n >= majority) {
            return Ok((*address).clone());
        }
        let said: Vec<String> = self
            .sentinels
            .iter()
            .zip(&answers)
            .map(|(sentinel, answer)| match answer {
                Ok((host, port)) => format!("{} names {host}:{port}", sentinel.addr()),
                Err(e) => format!("{}: {e}", sentinel.addr()),
            })
            .collect();
        Err(RedisError::from((
            redis::ErrorKind::Io,
            "no majority of the sentinels names one primary",
            format!("{:?} ({}): {}", self.name, majority, said.join("; ")),
        )))
    }

    /// One sentinel's answer.
    async fn ask(&self, sentinel: &ConnectionInfo) -> RedisResult<Address> {
        let mut conn = self
            .tls
            .client(sentinel.clone())?
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let named: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.name)
            .query_async(&mut conn)
            .await?;
        named.ok_or_else(|| {
            RedisError::from((
                redis::ErrorKind::Io,
                "the sentinel knows no primary of that name",
                self.name.clone(),
            ))
        })
    }

    /// A client for `address` with `redis.url`'s credentials and database.
    fn client_at(&self, (host, port): &Address) -> RedisResult<Client> {
        let addr = self.tls.addr_like(&self.primary, host.clone(), *port);
        self.tls.client(self.primary.clone().set_addr(addr))
    }

    /// A connection to the primary a majority names, which says it is one (`ROLE`), with
    /// `config`'s timeouts; and its address.
    pub async fn primary(
        &self,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<(MultiplexedConnection, Address)> {
        let address = self.primary_address().await?;
        let mut conn = self
            .client_at(&address)?
            .get_multiplexed_async_connection_with_config(config)
            .await?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        let role = role
            .first()
            .and_then(|r| redis::from_redis_value::<String>(r.clone()).ok());
        if role.as_deref() != Some("master") {
            return Err(RedisError::from((
                redis::ErrorKind::Io,
                "the server the sentinels name is not a primary",
                format!("{}:{} says it is {role:?}", address.0, address.1),
            )));
        }
        Ok((conn, address))
    }

    /// A client for the primary, checked as [`Self::primary`] checks it.
    pub async fn primary_client(&self) -> RedisResult<Client> {
        let (_, address) = self.primary(&self.config).await?;
        self.client_at(&address)
    }
}
