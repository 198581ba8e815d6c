//! The audit trail: every admin action (a key made or revoked; dead letters requeued, deleted,
//! purged) is one log line and one row of `audit_log`, with who did it, from where, and what it
//! touched. `GET /admin/audit` answers the most recent.
//!
//! The log line is written first and always; the row within [`WRITE_TIMEOUT`], else a warning
//! says it is missing (the action itself is done by then and is not undone).

use std::time::Duration;

use deadpool_postgres::Pool;
use sluice_proto::audit::AuditEntry;

use crate::Actor;

/// Longest wait for the row.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Most entries one call lists.
pub const MAX_LIST: i64 = 1_000;

/// What an admin did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A key made.
    KeyCreated,
    /// A key revoked.
    KeyRevoked,
    /// Dead letters requeued, the oldest first.
    Requeued,
    /// One dead letter requeued.
    RequeuedOne,
    /// One dead letter deleted.
    DeletedOne,
    /// Dead letters purged.
    Purged,
}

impl Action {
    /// Its name in the trail.
    pub fn name(self) -> &'static str {
        match self {
            Self::KeyCreated => "keys.create",
            Self::KeyRevoked => "keys.revoke",
            Self::Requeued => "dead_letters.requeue",
            Self::RequeuedOne => "dead_letters.requeue_one",
            Self::DeletedOne => "dead_letters.delete_one",
            Self::Purged => "dead_letters.purge",
        }
    }
}

/// Records `action` on `target` by `actor`: the log line, then the row.
pub async fn record(pool: &Pool, actor: &Actor, action: Action, target: &str) {
    let address = actor.address.map(|a| a.to_string());
    tracing::info!(
        actor = %actor.name,
        address = address.as_deref().unwrap_or("unknown"),
        action = action.name(),
        target,
        "audit: admin action"
    );
    let insert = async {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        client
            .execute(
                "INSERT INTO audit_log (actor, address, action, target) VALUES ($1, $2, $3, $4)",
                &[&actor.name, &address, &action.name(), &target],
            )
            .await
            .map_err(|e| e.to_string())
    };
    let failed = match tokio::time::timeout(WRITE_TIMEOUT, insert).await {
        Ok(Ok(_)) => return,
        Ok(Err(e)) => e,
        Err(_) => format!("no answer within {} s", WRITE_TIMEOUT.as_secs()),
    };
    tracing::warn!(
        action = action.name(),
        target,
        error = failed,
        "audit row not written to PostgreSQL (the log line above stands for it)"
    );
}

/// The `limit` most recent entries, newest first.
pub async fn recent(pool: &Pool, limit: i64) -> Result<Vec<AuditEntry>, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT at, actor, address, action, target FROM audit_log \
             ORDER BY at DESC, id DESC LIMIT $1",
            &[&limit.clamp(1, MAX_LIST)],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|row| AuditEntry {
            at: row.get("at"),
            actor: row.get("actor"),
            address: row.get("address"),
            action: row.get("action"),
            target: row.get("target"),
        })
        .collect())
}
