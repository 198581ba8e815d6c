//! `[postgres]`: where PostgreSQL is, and how `messages` is partitioned.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;

use super::{Secret, SettingsError, check_url, invalid, url_address};

/// `[postgres]`
#[derive(Debug, Clone, SmartDefault, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSettings {
    /// Connection URL, `postgres://user[:password]@host:port/database`, with libpq's TLS
    /// parameters: `sslmode` (`disable`, `allow`, `prefer` (the default), `require`,
    /// `verify-ca`, `verify-full`), `sslrootcert` (a CA file, or `system`), `sslcert` and
    /// `sslkey`. A primary with standbys: list them all, with
    /// `target_session_attrs=read-write` (`postgres://u@db1:5432,db2:5432/sluice?target_session_attrs=read-write`),
    /// and each new connection goes to whichever is the writable primary.
    #[default("postgres://postgres@127.0.0.1:5432/sluice".into())]
    pub url: Secret,
    /// Connections in each process's pool.
    #[default(8)]
    #[schemars(range(min = 1, max = 1_000))]
    pub pool_size: usize,
    /// How long establishing a connection may take.
    #[default(2_000)]
    #[schemars(range(min = 1, max = 60_000))]
    pub connect_timeout_ms: u64,
    /// Optional URL of a read replica, TLS parameters included: `GET /messages` reads from it
    /// instead of `url`. Empty (the default) reads from `url`.
    pub read_url: Secret,
    /// Span of each partition of `messages`, in hours: a divisor of 24 or a multiple of it.
    /// Partitions are aligned to multiples of the span since 1970-01-01 UTC (24: one per UTC
    /// day).
    #[default(24)]
    #[schemars(range(min = 1, max = 24 * 366))]
    pub partition_hours: u64,
    /// Partitions the workers keep created ahead of the current one.
    #[default(3)]
    #[schemars(range(min = 1, max = 1_000))]
    pub partitions_ahead: u64,
    /// Partitions whose every row is older than this many days are dropped by the workers;
    /// 0 (the default) keeps every row forever.
    #[schemars(range(min = 0, max = 100_000))]
    pub retention_days: u64,
    /// The guarantee this deployment wants when the primary fails over. The workers check it
    /// against what the server reports (`synchronous_commit`, `synchronous_standby_names`) at
    /// start and whenever they reach another server, and warn when they disagree.
    pub replication: Replication,
}

/// [`PostgresSettings::replication`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Replication {
    /// No check (the default): a single server, or a deployment that says nothing.
    #[default]
    Unchecked,
    /// A commit PostgreSQL acknowledges is on a synchronous standby: `synchronous_standby_names`
    /// names one and `synchronous_commit` is `on` or `remote_apply`. A failover to that
    /// standby loses no row a worker counted.
    Synchronous,
    /// Standbys may lag: a failover can lose the last commits. The workers re-check their last
    /// batches on the new primary and insert again what it lacks (`worker.recheck_max_bytes`).
    Asynchronous,
}

impl PostgresSettings {
    /// Where PostgreSQL is, for messages: `PostgreSQL at host:port`; never a password.
    pub fn describe(&self) -> String {
        format!("PostgreSQL at {}", url_address(self.url.expose()))
    }

    /// The settings for the read replica, when `read_url` names one.
    pub fn reader(&self) -> Option<Self> {
        let url = self.read_url.expose().trim();
        (!url.is_empty()).then(|| Self {
            url: url.into(),
            ..self.clone()
        })
    }

    /// [`Self::partition_hours`] as a duration.
    pub fn partition_span(&self) -> Duration {
        Duration::from_secs(self.partition_hours * 3_600)
    }

    /// The URLs, and a span that tiles days.
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        check_postgres_url("postgres.url", self.url.expose())?;
        if let Some(reader) = self.reader() {
            check_postgres_url("postgres.read_url", reader.url.expose())?;
        }
        let hours = self.partition_hours;
        if !24u64.is_multiple_of(hours) && !hours.is_multiple_of(24) {
            return Err(invalid(
                "postgres.partition_hours",
                format!("must divide 24 or be a multiple of 24, got {hours}"),
            ));
        }
        Ok(())
    }
}

/// A URL the PostgreSQL driver accepts.
fn check_postgres_url(key: &str, url: &str) -> Result<(), SettingsError> {
    check_url(key, url, &["postgres", "postgresql"])?;
    crate::tls::postgres::target(url).map_err(|e| invalid(key, e))?;
    Ok(())
}
