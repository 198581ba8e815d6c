//! The ingest API's reads of PostgreSQL: a page of `GET /messages`, and when the messages of
//! a replayed request were inserted. Each is one query.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::routes::list::{ListQuery, MessagePage, StoredMessage};

#[tracing::instrument(name = "postgres.list_messages", skip_all, err(level = "warn"))]
/// A page of `GET /messages` from `pool` (the read replica when there is one).
pub async fn page(pool: &Pool, query: &ListQuery) -> anyhow::Result<MessagePage> {
    let channel = query.channel_id.map(i64::from);
    let user = query.user_id.map(i64::from);
    let mut conditions = Vec::new();
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(channel) = &channel {
        params.push(channel);
        conditions.push(format!("channel_id = ${}", params.len()));
    }
    if let Some(user) = &user {
        params.push(user);
        conditions.push(format!("user_id = ${}", params.len()));
    }
    if let Some(before) = &query.before {
        params.push(before);
        conditions.push(format!("id < ${}", params.len()));
    }
    params.push(&query.limit);
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT id, user_id, channel_id, content, created_at, inserted_at FROM messages \
         {filter} ORDER BY id DESC LIMIT ${}",
        params.len()
    );
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
