//! Test support for every Sluice test, plus (under `e2e/`) the black-box end-to-end tests.
//!
//! Each test isolates itself: [`TestDb`] is a fresh PostgreSQL database and [`unique_prefix`] a
//! fresh Redis key prefix, so tests run in parallel against the one shared Redis and
//! PostgreSQL. Where those servers are is read from `SLUICE_TEST_REDIS_URL` and
//! `SLUICE_TEST_POSTGRES_URL` (an admin connection URL), defaulting to the local ones.
//!
//! - [`TestDb`]: create, connect to and drop a per-test database.
//! - [`settings`]: build real [`Settings`] through the real loader, for in-process services.
//! - [`process`]: start the real binaries and stop them with signals.
//! - [`servers`]: private Redis and PostgreSQL servers that fault tests may stop and restart.

pub mod process;
pub mod servers;
pub mod standby;
pub mod tls;

use anyhow::Context;
use rand::Rng;
use redis::aio::MultiplexedConnection;
use sluice_core::Settings;

/// Redis used by tests.
pub fn redis_url() -> String {
    std::env::var("SLUICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Admin connection to the PostgreSQL server used by tests.
pub fn postgres_admin_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Name prefix of every database a test creates; `scripts/test` drops leftovers.
pub const TEST_DB_PREFIX: &str = "sluice_test_";

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..10)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// The run this test process belongs to: `SLUICE_TEST_RUN` (`./scripts/test` sets it to its
/// pid), else this process's pid. Every database and key prefix a test makes carries it, so a
/// cleanup can tell a run still going from one whose process is gone, and leave the first alone.
pub fn run_id() -> String {
    std::env::var("SLUICE_TEST_RUN")
        .ok()
        .filter(|run| !run.is_empty() && run.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| std::process::id().to_string())
}

/// A key prefix no other test uses: `test:<run>:<tag>:<random>:`.
pub fn unique_prefix(tag: &str) -> String {
    format!("test:{}:{tag}:{}:", run_id(), random_suffix())
}

/// A fresh, empty database, dropped by [`TestDb::drop_db`].
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// URL connecting to it.
    pub url: String,
    /// The server's admin URL, to drop it.
    admin_url: String,
}

impl TestDb {
    /// Creates a database named `sluice_test_<run>_<tag>_<random>` on the shared server.
    pub async fn create(tag: &str) -> anyhow::Result<Self> {
        Self::create_on(&postgres_admin_url(), tag).await
    }

    /// Creates the database on the server `admin_url` connects to.
    pub async fn create_on(admin_url: &str, tag: &str) -> anyhow::Result<Self> {
        let name = format!("{TEST_DB_PREFIX}{}_{tag}_{}", run_id(), random_suffix());
        let admin = connect(admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name}"))?;
        let url = url_with_db(admin_url, &name);
        Ok(Self {
            name,
            url,
            admin_url: admin_url.to_owned(),
        })
    }

    /// A plain client on this database.
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    /// Rows in this database's `messages`.
    pub async fn row_count(&self) -> i64 {
        row_count(&self.client().await.expect("a client")).await
    }

    /// Drops the database, disconnecting whoever is still connected.
    pub async fn drop_db(self) -> anyhow::Result<()> {
        let admin = connect(&self.admin_url).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

/// `url` with its database path replaced by `db`.
fn url_with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Rows in `messages`, as `client` sees them.
pub async fn row_count(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM messages", &[])
        .await
        .expect("count the rows")
        .get(0)
}

/// Connects a plain client and drives its connection in the background.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let target = sluice_core::tls::postgres::target(url).map_err(anyhow::Error::msg)?;
    let (client, connection) = target
        .config
        .connect(target.tls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A Redis connection for the test's own reads and writes.
pub async fn redis() -> anyhow::Result<MultiplexedConnection> {
    redis_at(&redis_url()).await
}

/// A connection to the Redis at `url`, with timeouts generous enough for a machine busy with
/// load tests (the client's default response timeout is 500 ms).
pub async fn redis_at(url: &str) -> anyhow::Result<MultiplexedConnection> {
    redis_with(redis::Client::open(url)?).await
}

/// A connection of `client`'s, for the test's own reads and writes.
pub async fn redis_with(client: redis::Client) -> anyhow::Result<MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(10)))
        .set_response_timeout(Some(std::time::Duration::from_secs(10)));
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

/// Every key under `prefix`.
pub async fn keys_under(
    conn: &mut MultiplexedConnection,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let pattern = format!("{}*", sluice_core::keys::glob_escape(prefix));
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// Deletes every key under `prefix`.
pub async fn delete_prefix(prefix: &str) -> anyhow::Result<()> {
    let mut conn = redis().await?;
    let keys = keys_under(&mut conn, prefix).await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }
    Ok(())
}

/// The variables a test service runs with: its prefix, its database, port 0 for every server,
/// plus `extra` (`("WORKER__BATCH_MAX_SIZE", "10")` style pairs, without the `SLUICE__`).
pub fn env_for(prefix: &str, db: &TestDb, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("SLUICE__REDIS__URL".to_owned(), redis_url()),
        ("SLUICE__REDIS__KEY_PREFIX".to_owned(), prefix.to_owned()),
        ("SLUICE__POSTGRES__URL".to_owned(), db.url.clone()),
        (
            "SLUICE__INGEST__LISTEN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
        (
            "SLUICE__GATEWAY__LISTEN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
    ];
    for (k, v) in extra {
        env.push((format!("SLUICE__{k}"), (*v).to_owned()));
    }
    env
}

/// Real [`Settings`] for an in-process service, loaded through the real loader from
/// [`env_for`].
pub fn settings(prefix: &str, db: &TestDb, extra: &[(&str, &str)]) -> Settings {
    Settings::load(None, env_for(prefix, db, extra)).expect("test settings are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            url_with_db("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(url_with_db("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            url_with_db("postgres://u@h:1/db?sslmode=disable", "x"),
            "postgres://u@h:1/x?sslmode=disable"
        );
    }
}
