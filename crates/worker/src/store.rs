//! The PostgreSQL side: one statement, one round trip, one transaction per batch.

use deadpool_postgres::Pool;
use sluice_core::message::Envelope;
use uuid::Uuid;

/// Why a batch could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had from the pool.
    #[error("no PostgreSQL connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The statement failed.
    #[error("PostgreSQL refused the batch: {0}")]
    Query(#[from] tokio_postgres::Error),
}

const INSERT: &str = "INSERT INTO messages (id, user_id, channel_id, content, created_at) \
     SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::text[], $5::timestamptz[]) \
     ON CONFLICT (id) DO NOTHING";

/// Inserts `envelopes` in one statement and returns how many rows were new. Ids already in the
/// table (a redelivered message) are skipped, so a message never becomes two rows.
#[tracing::instrument(name = "postgres.insert_batch", skip_all, fields(size = envelopes.len()), err(level = "debug"))]
pub async fn insert(pool: &Pool, envelopes: &[&Envelope]) -> Result<u64, StoreError> {
    if envelopes.is_empty() {
        return Ok(0);
    }
    let n = envelopes.len();
    let mut ids: Vec<Uuid> = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let mut channels = Vec::with_capacity(n);
    let mut contents = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    for e in envelopes {
        ids.push(e.id);
        users.push(e.user_id.get());
        channels.push(e.channel_id.get());
        contents.push(e.content.as_str());
        created.push(e.created_at);
    }
    let client = pool.get().await?;
    let statement = client.prepare_cached(INSERT).await?;
    let inserted = client
        .execute(&statement, &[&ids, &users, &channels, &contents, &created])
        .await?;
    Ok(inserted)
}
