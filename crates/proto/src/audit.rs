//! The audit trail on the wire: what `GET /admin/audit` answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One admin action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// When it was done.
    pub at: DateTime<Utc>,
    /// Who: `admin token`, `key <name> (slk_…)` or `jwt:<sub>`.
    pub actor: String,
    /// The client's address, as the server saw it.
    pub address: Option<String>,
    /// What: `keys.create`, `keys.revoke`, `dead_letters.requeue`, `dead_letters.requeue_one`,
    /// `dead_letters.delete_one`, `dead_letters.purge`.
    pub action: String,
    /// What it touched: a key's name, a dead letter's id, or how many.
    pub target: String,
}

/// The answer to `GET /admin/audit`: the most recent actions, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditLog {
    /// The entries.
    pub entries: Vec<AuditEntry>,
}
