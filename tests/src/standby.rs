//! A private PostgreSQL primary and a streaming standby on loopback, for failover tests: the
//! primary is SIGKILLed (the postmaster and every backend at once, as a host that dies), the
//! standby promoted (`pg_ctl promote`), and the dead one rebuilt as the new primary's standby
//! (`pg_basebackup`), so a loop can kill again.

use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};

use crate::servers::PostgresServer;

/// A primary and its standby. Synchronous: the primary names every standby synchronous
/// (`synchronous_standby_names = '*'`), so a commit it acknowledges is on the standby.
#[derive(Debug)]
pub struct PostgresPair {
    /// The writable one.
    pub primary: PostgresServer,
    /// The one replaying the primary's WAL.
    pub standby: PostgresServer,
    /// Whether commits wait for the standby.
    pub synchronous: bool,
}

impl PostgresPair {
    /// `initdb`s a primary, starts it, and makes a streaming standby of it.
    pub async fn start(synchronous: bool) -> anyhow::Result<Self> {
        let names = if synchronous { "*" } else { "" };
        let primary = PostgresServer::start_with(&[
            format!("synchronous_standby_names = '{names}'"),
            // The walsender notices a standby gone within a second, not a minute.
            "wal_sender_timeout = '2s'".to_owned(),
        ])
        .await?;
        let standby = PostgresServer::standby_of(&primary).await?;
        let pair = Self {
            primary,
            standby,
            synchronous,
        };
        pair.until_streaming().await?;
        Ok(pair)
    }

    /// The URL of `database` that lists both servers, for the writable one:
    /// `postgres://postgres@127.0.0.1:P1,127.0.0.1:P2/db?target_session_attrs=read-write`.
    pub fn url(&self, database: &str) -> String {
        let (a, b) = (
            self.primary.port.min(self.standby.port),
            self.primary.port.max(self.standby.port),
        );
        format!(
            "postgres://postgres@127.0.0.1:{a},127.0.0.1:{b}/{database}?target_session_attrs=read-write"
        )
    }

    /// Waits until the primary streams to the standby (synchronously, when it should).
    pub async fn until_streaming(&self) -> anyhow::Result<()> {
        let admin = crate::connect(&self.primary.admin_url()).await?;
        let wanted = if self.synchronous { "sync" } else { "async" };
        for _ in 0..300 {
            let rows = admin
                .query(
                    "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'",
                    &[],
                )
                .await?;
            if rows.iter().any(|r| r.get::<_, String>(0) == wanted) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "the standby on {} never streamed ({wanted})",
            self.standby.port
        )
    }

    /// Cuts the standby off the primary's WAL (SIGSTOPs its WAL receiver) for `cut`, as a
    /// network failure would, then SIGKILLs the primary, lets the receiver go on (it finds the
    /// primary gone), and promotes the standby. What the primary committed during the cut is on
    /// no other server: asynchronous replication loses it; a synchronous primary committed
    /// nothing meanwhile. Without `cut`, a plain kill. The dead server is rebuilt as the new
    /// primary's standby.
    pub async fn fail_over(&mut self, cut: Option<Duration>) -> anyhow::Result<()> {
        let receiver = match cut {
            Some(cut) => {
                let pid = self.standby.wal_receiver_pid().await?;
                kill(pid, Signal::SIGSTOP)?;
                // The primary's end of the link goes too: nothing it writes from now on is in
                // a socket the standby will read once it runs again.
                let admin = crate::connect(&self.primary.admin_url()).await?;
                admin
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_replication",
                        &[],
                    )
                    .await?;
                tokio::time::sleep(cut).await;
                Some(pid)
            }
            None => None,
        };
        self.primary.kill_all()?;
        if let Some(pid) = receiver {
            kill(pid, Signal::SIGCONT)?;
        }
        self.standby
            .promote()
            .await
            .context("promoting the standby")?;
        std::mem::swap(&mut self.primary, &mut self.standby);
        self.standby
            .follow(&self.primary)
            .await
            .context("rebuilding the standby")?;
        self.until_streaming().await
    }
}
