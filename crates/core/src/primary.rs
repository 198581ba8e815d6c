//! Which PostgreSQL server a service reaches, and when that changed.
//!
//! With a multi-host `postgres.url` (`postgres://u@db1:5432,db2:5432/db?target_session_attrs=read-write`)
//! each new connection goes to whichever host is the writable primary, so after a failover
//! the services follow by themselves. A server is known by its address and its postmaster's
//! start time: a standby promoted in place of a primary, or a primary restarted after a crash,
//! is another server, and what the last one acknowledged may not be on it (asynchronous
//! replication, `synchronous_commit = off`). The workers re-check their last batches when the
//! server changes; `/ready` says which server answers and since when.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::settings::Replication;

/// The columns that name the server a statement runs on: its address (`host:port`, or `a
/// local socket`) and when its postmaster started. Spelled once for every statement that
/// reports them.
#[macro_export]
macro_rules! server_columns {
    () => {
        "coalesce(host(inet_server_addr()) || ':' || inet_server_port(), 'a local socket'), \
         pg_postmaster_start_time()"
    };
}

/// Asks who the server is, whether it is a standby, and what durability it gives commits.
const WHO: &str = concat!(
    "SELECT ",
    server_columns!(),
    ", pg_is_in_recovery(), current_setting('synchronous_commit'), \
     current_setting('synchronous_standby_names')"
);

/// One PostgreSQL server, as a connection found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `host:port`, or `a local socket`.
    pub address: String,
    /// When its postmaster started: another start is another server.
    pub started_at: DateTime<Utc>,
}

impl Server {
    /// The server in the columns [`server_columns!`] put at `at` and `at + 1` of `row`.
    pub fn from_row(row: &tokio_postgres::Row, at: usize) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            address: row.try_get(at)?,
            started_at: row.try_get(at + 1)?,
        })
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (up since {})",
            self.address,
            self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }
}

/// What [`who`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The server.
    pub server: Server,
    /// A standby (`pg_is_in_recovery()`): it refuses writes.
    pub in_recovery: bool,
    /// Its `synchronous_commit` for this session.
    pub synchronous_commit: String,
    /// Its `synchronous_standby_names`.
    pub synchronous_standby_names: String,
}

impl Found {
    /// Whether a commit it acknowledges is on a synchronous standby too: standbys are named,
    /// and the session waits for them to flush (`on`) or apply (`remote_apply`).
    /// `remote_write` only waits for the standby's operating system, which a crash of both
    /// hosts can lose.
    pub fn commits_on_standby(&self) -> bool {
        !self.synchronous_standby_names.trim().is_empty()
            && matches!(self.synchronous_commit.as_str(), "on" | "remote_apply")
    }
}

/// What `wanted` (`postgres.replication`) makes of what the server reports: a warning when
/// they disagree, `None` when they agree or nothing is wanted.
pub fn judge(wanted: Replication, found: &Found) -> Option<String> {
    let settings = format!(
        "synchronous_commit = {}, synchronous_standby_names = '{}'",
        found.synchronous_commit, found.synchronous_standby_names
    );
    match wanted {
        Replication::Synchronous if !found.commits_on_standby() => Some(format!(
            "postgres.replication is synchronous, but {} acknowledges commits before a standby              has them ({settings}): a failover can lose rows the workers counted. Name a              synchronous standby and set synchronous_commit to on or remote_apply",
            found.server.address
        )),
        Replication::Asynchronous if found.commits_on_standby() => Some(format!(
            "postgres.replication is asynchronous, but {} waits for a synchronous standby              ({settings}): every commit waits for it, and stops while it is away",
            found.server.address
        )),
        _ if found.in_recovery => Some(format!(
            "{} is a standby (in recovery): writes fail until a primary is reached; list the              primary in postgres.url, with target_session_attrs=read-write",
            found.server.address
        )),
        _ => None,
    }
}

/// Asks the server `client` is connected to who it is.
pub async fn who(client: &tokio_postgres::Client) -> Result<Found, tokio_postgres::Error> {
    let row = client.query_one(WHO, &[]).await?;
    Ok(Found {
        server: Server::from_row(&row, 0)?,
        in_recovery: row.try_get(2)?,
        synchronous_commit: row.try_get(3)?,
        synchronous_standby_names: row.try_get(4)?,
    })
}

/// [`who`] on a connection of `pool`. A standby's connection is dropped with the pool's idle
/// ones, so the next probe connects anew and, with `target_session_attrs=read-write`, finds
/// the primary; a connection that failed is dropped by the pool.
pub async fn probe(pool: &deadpool_postgres::Pool) -> Option<Found> {
    let client = pool.get().await.ok()?;
    let found = who(&client).await.ok()?;
    if found.in_recovery {
        drop(deadpool_postgres::Object::take(client));
        pool.retain(|_, _| false);
    }
    Some(found)
}

/// `postgres_primary` in `/ready`: the server the service's connections reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrimaryReport {
    /// `host:port` (the server's own address), or `a local socket`.
    pub address: String,
    /// When this service first reached it (RFC 3339), which after a failover is when it
    /// changed.
    pub since: String,
    /// The server reached before, when it changed while the service ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
}

/// The server a service's connections reach, kept by whatever asks ([`PrimaryWatch::observe`]).
#[derive(Debug, Default)]
pub struct PrimaryWatch {
    state: Mutex<Option<Reached>>,
    /// Servers reached so far: how a caller that looks at every step learns of a change
    /// without taking the lock.
    changes: AtomicU64,
}

/// The server reached last, since when, and the one before it.
#[derive(Debug)]
struct Reached {
    server: Server,
    since: DateTime<Utc>,
    previous: Option<Server>,
}

impl PrimaryWatch {
    /// Notes that `server` answered at `now`. Returns the server it replaced, logged once,
    /// when it is another one.
    pub fn observe(&self, server: &Server, now: DateTime<Utc>) -> Option<Server> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let previous = match state.as_ref() {
            Some(reached) if &reached.server == server => return None,
            Some(reached) => Some(reached.server.clone()),
            None => None,
        };
        match &previous {
            Some(before) => tracing::warn!(
                server = %server,
                previous = %before,
                "PostgreSQL is another server now: a failover or a restart"
            ),
            None => tracing::info!(server = %server, "PostgreSQL server reached"),
        }
        *state = Some(Reached {
            server: server.clone(),
            since: now,
            previous: previous.clone(),
        });
        self.changes.fetch_add(1, Ordering::Release);
        previous
    }

    /// How many servers were reached so far (the first, and each change since).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Whether `server` is the one reached last.
    pub fn is_current(&self, server: &Server) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .as_ref()
            .is_some_and(|reached| &reached.server == server)
    }

    /// The server reached last; `None` before any.
    pub fn current(&self) -> Option<Server> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.as_ref().map(|reached| reached.server.clone())
    }

    /// The server reached last as `workers_postgres_server` holds it: `<since ms> <address>`;
    /// empty before any.
    pub fn registry_field(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.as_ref().map_or_else(String::new, |reached| {
            format!(
                "{} {}",
                reached.since.timestamp_millis(),
                reached.server.address
            )
        })
    }

    /// The server reached last, for `/ready`; `None` before any.
    pub fn report(&self) -> Option<PrimaryReport> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.as_ref().map(|reached| PrimaryReport {
            address: reached.server.address.clone(),
            since: reached.since.to_rfc3339_opts(SecondsFormat::Millis, true),
            previous: reached.previous.as_ref().map(|p| p.address.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(address: &str, started: i64) -> Server {
        Server {
            address: address.into(),
            started_at: DateTime::from_timestamp(started, 0).expect("a time"),
        }
    }

    #[test]
    fn another_address_or_start_is_another_server() {
        let watch = PrimaryWatch::default();
        assert_eq!(watch.report(), None);
        let t0 = DateTime::from_timestamp(1_000, 0).expect("a time");
        let first = server("10.0.0.1:5432", 1);
        assert_eq!(watch.observe(&first, t0), None);
        assert_eq!(
            watch.observe(&first, t0 + chrono::Duration::seconds(5)),
            None
        );
        assert_eq!(watch.changes(), 1);
        assert!(watch.is_current(&first));
        let report = watch.report().expect("reached");
        assert_eq!(report.address, "10.0.0.1:5432");
        assert_eq!(
            report.since, "1970-01-01T00:16:40.000Z",
            "the first time, not the last"
        );
        // A restart in place is another server.
        let restarted = server("10.0.0.1:5432", 2);
        assert_eq!(watch.observe(&restarted, t0), Some(first.clone()));
        let promoted = server("10.0.0.2:5432", 3);
        let later = t0 + chrono::Duration::seconds(60);
        assert_eq!(watch.observe(&promoted, later), Some(restarted));
        assert_eq!(watch.changes(), 3);
        assert!(!watch.is_current(&first));
        let report = watch.report().expect("reached");
        assert_eq!(report.address, "10.0.0.2:5432");
        assert_eq!(report.previous.as_deref(), Some("10.0.0.1:5432"));
        assert_eq!(report.since, "1970-01-01T00:17:40.000Z");
    }

    #[test]
    fn the_wanted_replication_is_judged_against_the_server() {
        let found = |commit: &str, names: &str, in_recovery: bool| Found {
            server: server("db1:5432", 1),
            in_recovery,
            synchronous_commit: commit.into(),
            synchronous_standby_names: names.into(),
        };
        let sync = found("on", "standby1", false);
        let local = found("on", "", false);
        assert_eq!(judge(Replication::Synchronous, &sync), None);
        let warning = judge(Replication::Synchronous, &local).expect("a warning");
        assert!(
            warning.contains("db1:5432") && warning.contains("synchronous_standby_names = ''"),
            "{warning}"
        );
        assert_eq!(judge(Replication::Asynchronous, &local), None);
        assert!(judge(Replication::Asynchronous, &sync).is_some());
        assert_eq!(judge(Replication::Unchecked, &local), None);
        let standby = found("on", "", true);
        assert!(
            judge(Replication::Unchecked, &standby)
                .expect("a warning")
                .contains("standby")
        );
    }

    #[test]
    fn only_named_standbys_flushed_or_applied_hold_a_commit() {
        let found = |commit: &str, names: &str| Found {
            server: server("h:1", 1),
            in_recovery: false,
            synchronous_commit: commit.into(),
            synchronous_standby_names: names.into(),
        };
        assert!(found("on", "standby1").commits_on_standby());
        assert!(found("remote_apply", "ANY 1 (a, b)").commits_on_standby());
        assert!(!found("remote_write", "standby1").commits_on_standby());
        assert!(!found("local", "standby1").commits_on_standby());
        assert!(!found("off", "standby1").commits_on_standby());
        assert!(!found("on", "").commits_on_standby(), "nobody to wait for");
    }
}
