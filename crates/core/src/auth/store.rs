//! The `api_keys` table: made, listed, revoked, and what changed since a server last looked.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use sluice_proto::keys::{CreatedKey, KeyInfo, NewKey, Scope};

use super::mint;

/// Longest name.
pub const NAME_MAX: usize = 64;
/// Largest rate and burst a key may be given.
pub const LIMIT_MAX: u32 = 1_000_000;
/// Longest life a key may be given, in days.
pub const EXPIRES_MAX_DAYS: u32 = 3_650;

/// Why a key operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The request is not acceptable; what is wrong, per field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Another key has the name.
    #[error("a key named {0:?} exists already; names are never reused, even revoked")]
    NameTaken(String),
    /// No key has the name.
    #[error("no key is named {0:?}")]
    NoSuchKey(String),
    /// PostgreSQL failed or is unreachable.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
}

/// One row of `api_keys`.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its name.
    pub name: String,
    /// `slk_…`.
    pub prefix: String,
    /// SHA-256 of the key, hex.
    pub hash: String,
    /// What it may do (scopes this build does not know are dropped).
    pub scopes: Vec<Scope>,
    /// The one user it may post as.
    pub user_id: Option<i64>,
    /// The channels it may use.
    pub channels: Option<Vec<i64>>,
    /// Messages a second, when limited.
    pub rate: Option<i32>,
    /// Messages at once, when limited.
    pub burst: Option<i32>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last accepted.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Row {
    fn from_sql(row: &tokio_postgres::Row) -> Self {
        let scopes: Vec<String> = row.get("scopes");
        Self {
            name: row.get("name"),
            prefix: row.get("prefix"),
            hash: row.get("hash"),
            scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
            user_id: row.get("user_id"),
            channels: row.get("channels"),
            rate: row.get("rate"),
            burst: row.get("burst"),
            created_at: row.get("created_at"),
            expires_at: row.get("expires_at"),
            revoked_at: row.get("revoked_at"),
            last_used_at: row.get("last_used_at"),
            updated_at: row.get("updated_at"),
        }
    }

    /// Its rate limit, when it has one.
    pub fn limit(&self) -> Option<super::Limit> {
        let rate = u32::try_from(self.rate?).ok()?;
        let burst = self.burst.and_then(|b| u32::try_from(b).ok());
        Some(super::Limit::new(rate, burst.unwrap_or(rate)))
    }

    /// What may be shown of it.
    pub fn info(self) -> KeyInfo {
        let limit = self.limit();
        KeyInfo {
            name: self.name,
            prefix: self.prefix,
            scopes: self.scopes,
            user_id: self.user_id,
            channels: self.channels,
            rate: limit.map(|l| l.rate),
            burst: limit.map(|l| l.burst),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        }
    }
}

const COLUMNS: &str = "name, prefix, hash, scopes, user_id, channels, rate, burst, created_at, \
                       expires_at, revoked_at, last_used_at, updated_at";

fn postgres(e: impl std::fmt::Display) -> KeyError {
    KeyError::Postgres(e.to_string())
}

/// A write that failed on `client`: a server turned read-only (a demoted primary) loses its
/// connections first ([`crate::connect::forget_read_only`]), so the retry finds the primary.
fn written(pool: &Pool, client: deadpool_postgres::Object, e: tokio_postgres::Error) -> KeyError {
    postgres(crate::connect::forget_read_only(pool, client, e))
}

/// Checks a request for a new key.
fn validate(new: &NewKey) -> Result<(), KeyError> {
    let invalid = |field, reason: &str| KeyError::Invalid {
        field,
        reason: reason.to_owned(),
    };
    let name_ok = (1..=NAME_MAX).contains(&new.name.len())
        && new
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(invalid(
            "name",
            "must be 1 to 64 letters, digits, '-', '_' or '.'",
        ));
    }
    if new.scopes.is_empty() {
        return Err(invalid(
            "scopes",
            "must name at least one of messages:write, messages:read, stats:read, admin",
        ));
    }
    if new
        .expires_in_days
        .is_some_and(|d| !(1..=EXPIRES_MAX_DAYS).contains(&d))
    {
        return Err(invalid("expires_in_days", "must be between 1 and 3650"));
    }
    if new.user_id.is_some_and(|id| id < 1) {
        return Err(invalid("user_id", "must be a positive integer"));
    }
    if let Some(channels) = &new.channels
        && (channels.is_empty() || channels.len() > 1_000 || channels.iter().any(|c| *c < 1))
    {
        return Err(invalid(
            "channels",
            "must be 1 to 1000 positive integers (leave it out for any channel)",
        ));
    }
    let limit_range = 1..=LIMIT_MAX;
    if new.rate.is_some_and(|r| !limit_range.contains(&r)) {
        return Err(invalid(
            "rate",
            "must be between 1 and 1000000 messages a second",
        ));
    }
    match (new.rate, new.burst) {
        (None, Some(_)) => Err(invalid("burst", "needs a rate")),
        (_, Some(b)) if !limit_range.contains(&b) => {
            Err(invalid("burst", "must be between 1 and 1000000 messages"))
        }
        _ => Ok(()),
    }
}

/// Makes a key; the answer holds it, shown this once.
pub async fn create(pool: &Pool, new: &NewKey) -> Result<CreatedKey, KeyError> {
    validate(new)?;
    let minted = mint();
    let mut scopes: Vec<&str> = new.scopes.iter().map(|s| s.name()).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let days = new.expires_in_days.map(f64::from);
    let client = pool.get().await.map_err(postgres)?;
    let sql = format!(
        "INSERT INTO api_keys (name, prefix, hash, scopes, expires_at, user_id, channels, rate, \
         burst) VALUES ($1, $2, $3, $4, now() + make_interval(days => $5::float8::int), $6, $7, \
         $8, $9) \
         ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
    );
    let channels = new.channels.as_ref().map(|c| {
        let mut c = c.clone();
        c.sort_unstable();
        c.dedup();
        c
    });
    let rate = new.rate.and_then(|r| i32::try_from(r).ok());
    let burst = new.burst.or(new.rate).and_then(|b| i32::try_from(b).ok());
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
        &new.name,
        &minted.prefix,
        &minted.hash,
        &scopes,
        &days,
        &new.user_id,
        &channels,
        &rate,
        &burst,
    ];
    let row = client
        .query_opt(&sql, &params)
        .await
        .map_err(|e| written(pool, client, e))?
        .ok_or_else(|| KeyError::NameTaken(new.name.clone()))?;
    Ok(CreatedKey {
        key: minted.key,
        info: Row::from_sql(&row).info(),
    })
}

/// Every key, newest first.
pub async fn list(pool: &Pool) -> Result<Vec<KeyInfo>, KeyError> {
    let client = pool.get().await.map_err(postgres)?;
    let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, name");
    let rows = client.query(&sql, &[]).await.map_err(postgres)?;
    Ok(rows.iter().map(|r| Row::from_sql(r).info()).collect())
}

/// Revokes the key named `name` (again: no change); what is kept of it.
pub async fn revoke(pool: &Pool, name: &str) -> Result<KeyInfo, KeyError> {
    let client = pool.get().await.map_err(postgres)?;
    let sql = format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), \
         updated_at = clock_timestamp() WHERE name = $1 RETURNING {COLUMNS}"
    );
    let row = client
        .query_opt(&sql, &[&name])
        .await
        .map_err(|e| written(pool, client, e))?
        .ok_or_else(|| KeyError::NoSuchKey(name.to_owned()))?;
    Ok(Row::from_sql(&row).info())
}

/// The keys changed after `since` (all, the first time), with 5 s of overlap: a change
/// committed late with an earlier `updated_at` is still seen.
pub async fn changed_since(
    pool: &Pool,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<Row>, KeyError> {
    let client = pool.get().await.map_err(postgres)?;
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys \
         WHERE $1::timestamptz IS NULL OR updated_at > $1::timestamptz - interval '5 seconds'"
    );
    let rows = client.query(&sql, &[&since]).await.map_err(postgres)?;
    Ok(rows.iter().map(Row::from_sql).collect())
}

/// Records that the keys with these prefixes were accepted just now.
pub async fn mark_used(pool: &Pool, prefixes: &[String]) -> Result<(), KeyError> {
    let client = pool.get().await.map_err(postgres)?;
    client
        .execute(
            "UPDATE api_keys SET last_used_at = now() WHERE prefix = ANY($1)",
            &[&prefixes],
        )
        .await
        .map_err(|e| written(pool, client, e))?;
    Ok(())
}
