//! The ingest API's reads of PostgreSQL: a page of `GET /messages`, and when the messages of
//! a replayed request were inserted. Each is one query.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use sluice_proto::api::{MessagePage, StoredMessage};

use crate::routes::list::ListQuery;

/// The SQL of a `GET /messages` page and its parameters, in one order. Every combination of
/// filters is a range scan of one index, newest first, that stops after `limit` rows:
/// `(channel_id, user_id, id)`, `(channel_id, id)`, `(user_id, id)` or the primary key
/// (migrations 1, 3 and 5).
pub struct PageQuery {
    channel: Option<i64>,
    user: Option<i64>,
    before: Option<Uuid>,
    limit: i64,
}

impl PageQuery {
    /// The query for `query`'s filters.
    pub fn new(query: &ListQuery) -> Self {
        Self {
            channel: query.channel_id.map(i64::from),
            user: query.user_id.map(i64::from),
            before: query.before,
            limit: query.limit,
        }
    }

    /// The filters given, each with its condition, in parameter order, then the limit.
    fn params(&self) -> Vec<(Option<&'static str>, &(dyn ToSql + Sync))> {
        let mut params: Vec<(Option<&'static str>, &(dyn ToSql + Sync))> = Vec::new();
        if let Some(channel) = &self.channel {
            params.push((Some("channel_id ="), channel));
        }
        if let Some(user) = &self.user {
            params.push((Some("user_id ="), user));
        }
        if let Some(before) = &self.before {
            params.push((Some("id <"), before));
        }
        params.push((None, &self.limit));
        params
    }

    /// The statement, `$1`… in [`Self::params`]' order.
    pub fn sql(&self) -> String {
        let mut conditions = Vec::new();
        for (n, (condition, _)) in self.params().iter().enumerate() {
            if let Some(condition) = condition {
                conditions.push(format!("{condition} ${}", n + 1));
            }
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        format!(
            "SELECT id, user_id, channel_id, content, created_at, inserted_at FROM messages \
             {filter} ORDER BY id DESC LIMIT ${}",
            conditions.len() + 1
        )
    }
}

/// Whether `e` is PostgreSQL cancelling the statement (`statement_timeout`, SQLSTATE 57014).
pub fn cancelled(e: &anyhow::Error) -> bool {
    e.downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
}

#[tracing::instrument(name = "postgres.list_messages", skip_all, err(level = "debug"))]
/// A page of `GET /messages` from `pool` (the read pool: the replica when there is one).
pub async fn page(pool: &Pool, query: &ListQuery) -> anyhow::Result<MessagePage> {
    let page = PageQuery::new(query);
    let sql = page.sql();
    let params: Vec<&(dyn ToSql + Sync)> = page.params().into_iter().map(|(_, p)| p).collect();
    let client = pool.get().await?;
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &params).await?;
    let messages: Vec<StoredMessage> = rows
        .iter()
        .map(|row| {
            Ok(StoredMessage {
                id: row.try_get(0)?,
                user_id: row.try_get(1)?,
                channel_id: row.try_get(2)?,
                content: row.try_get(3)?,
                created_at: row.try_get(4)?,
                inserted_at: row.try_get(5)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let next_before = if messages.len() as i64 == query.limit {
        messages.last().map(|m| m.id)
    } else {
        None
    };
    Ok(MessagePage {
        messages,
        next_before,
    })
}

/// When each of `ids` that PostgreSQL holds was inserted.
#[tracing::instrument(name = "postgres.inserted_at", skip_all, err(level = "debug"))]
pub async fn inserted_at(pool: &Pool, ids: &[Uuid]) -> anyhow::Result<Vec<(Uuid, DateTime<Utc>)>> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, inserted_at FROM messages WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
