//! API keys on the wire: what `POST /admin/keys` takes and answers, what `GET /admin/keys`
//! lists. A key is shown once, when it is made; afterwards only its name and its public
//! prefix are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// `POST /messages`, `POST /messages/batch`.
    #[serde(rename = "messages:write")]
    MessagesWrite,
    /// `GET /messages`.
    #[serde(rename = "messages:read")]
    MessagesRead,
    /// The stats, history, alerts, workers, batches, WebSocket and SSE.
    #[serde(rename = "stats:read")]
    StatsRead,
    /// The admin endpoints: dead letters and keys.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope, in the order documents list them.
    pub const ALL: [Scope; 4] = [
        Scope::MessagesWrite,
        Scope::MessagesRead,
        Scope::StatsRead,
        Scope::Admin,
    ];

    /// Its name, as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::MessagesWrite => "messages:write",
            Self::MessagesRead => "messages:read",
            Self::StatsRead => "stats:read",
            Self::Admin => "admin",
        }
    }

    /// The scope a name spells.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.name() == name)
    }
}

/// `POST /admin/keys`: a new key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A name to tell it by: 1 to 64 letters, digits, `-`, `_` or `.`; unique.
    pub name: String,
    /// What it may do; at least one.
    pub scopes: Vec<Scope>,
    /// Days until it expires (1 to 3,650); none: it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
    /// The one `user_id` it may post as; none: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// The `channel_id`s it may post into and read (1 to 1,000); none: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<i64>>,
    /// Messages a second it may post, across every ingest API together (1 to 1,000,000);
    /// none: not limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// Messages it may post at once after a quiet spell (1 to 1,000,000; `rate` when left
    /// out); only with `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// A key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    /// Its name.
    pub name: String,
    /// The key's public start (`slk_` and 8 characters), as logs show it.
    pub prefix: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The one `user_id` it may post as, when bound to one.
    pub user_id: Option<i64>,
    /// The `channel_id`s it may post into and read, when bound to some.
    pub channels: Option<Vec<i64>>,
    /// Messages a second it may post, fleet-wide, when limited.
    pub rate: Option<u32>,
    /// Messages it may post at once, when limited.
    pub burst: Option<u32>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When a server last accepted it (recorded every few seconds, not per request).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops being accepted.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer to `POST /admin/keys`: the key, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    /// The key. Sluice keeps only its hash: it cannot be shown again.
    pub key: String,
    /// What is kept of it.
    #[serde(flatten)]
    pub info: KeyInfo,
}

/// The answer to `GET /admin/keys`: every key, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyList {
    /// The keys.
    pub keys: Vec<KeyInfo>,
}
