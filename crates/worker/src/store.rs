//! The PostgreSQL side: one statement, one round trip, one transaction per batch, fenced by
//! the worker's lease.
//!
//! Every insert holds the worker's row of `sluice_worker_leases` `FOR SHARE` and inserts
//! nothing unless the token still matches. A worker reclaiming a dead peer's batch deletes the
//! peer's lease first, which waits for any insert of the peer in flight; after that the peer
//! can commit nothing, so the reclaimer sees every row the peer will ever have inserted.

use deadpool_postgres::Pool;
use sluice_core::connect;
use sluice_core::primary::Server;
use sluice_core::server_columns;
use sluice_proto::message::Envelope;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

/// Why a batch could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had from the pool.
    #[error("no PostgreSQL connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The statement failed.
    #[error("PostgreSQL refused the statement: {0}")]
    Query(#[from] tokio_postgres::Error),
}

impl StoreError {
    /// Whether the rows themselves are at fault (a data exception or a constraint violation),
    /// so retrying the same rows can never succeed; anything else (connection lost, server
    /// restarting, out of disk) is worth retrying.
    pub fn rows_rejected(&self) -> bool {
        let Self::Query(e) = self else { return false };
        e.code().is_some_and(|code| {
            let class = &code.code()[..2];
            (class == "22" || class == "23") && *code != SqlState::UNIQUE_VIOLATION
        })
    }
}

/// The lease that lets a worker insert.
#[derive(Debug, Clone)]
pub struct Lease {
    /// Worker id.
    pub worker_id: String,
    /// Random token; replaced at each registration.
    pub token: Uuid,
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// False when the lease was revoked: nothing was inserted.
    pub leased: bool,
    /// Rows this statement added.
    pub inserted: u64,
    /// Rows of the batch that were already in the table before this statement (only computed
    /// for resumed batches).
    pub existing: u64,
    /// The server that committed it; `None` when no statement ran (nothing to insert).
    pub server: Option<Server>,
}

/// The lease every statement holds `FOR SHARE`.
macro_rules! lease_cte {
    () => {
        "
WITH lease AS (
    SELECT 1 FROM sluice_worker_leases WHERE worker_id = $6 AND token = $7 FOR SHARE
)"
    };
}

/// The inserts of the statements that skip ids already stored: the batch's ids into
/// `message_ids`, then the rows whose id that added (one per id, should the batch hold an id
/// twice).
macro_rules! skipping_inserts {
    () => {
        ", ids AS (
    INSERT INTO message_ids (id)
    SELECT unnest($1::uuid[]) WHERE EXISTS (SELECT 1 FROM lease)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), ins AS (
    INSERT INTO messages (id, user_id, channel_id, content, created_at, key_id)
    SELECT DISTINCT ON (m.id) m.*
    FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::text[], $5::timestamptz[], $8::text[])
        AS m(id, user_id, channel_id, content, created_at, key_id)
    WHERE m.id IN (SELECT id FROM ids)
    ORDER BY m.id
    -- A row stored without its id in message_ids (by a worker of before migration 4, during
    -- a rolling upgrade) is still skipped.
    ON CONFLICT (id, created_at) DO NOTHING
    RETURNING 1
)"
    };
}

/// The fast path for a freshly taken batch: no `ON CONFLICT`, whose speculative insertion
/// costs PostgreSQL about a quarter more per row. A fresh batch only holds an id already in the
/// table after a redelivery, rare enough to pay for with a failed statement and a retry of
/// [`INSERT`]. Every id goes into `message_ids` too, whose primary key is the id alone
/// (migration 4): an id is never two rows, whatever `created_at` says.
const INSERT_FRESH: &str = concat!(
    lease_cte!(),
    ", ids AS (
    INSERT INTO message_ids (id)
    SELECT unnest($1::uuid[]) WHERE EXISTS (SELECT 1 FROM lease)
), ins AS (
    INSERT INTO messages (id, user_id, channel_id, content, created_at, key_id)
    SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::text[], $5::timestamptz[],
                         $8::text[])
    WHERE EXISTS (SELECT 1 FROM lease)
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM lease), (SELECT count(*) FROM ins), 0::int8, ",
    server_columns!()
);

/// Skips ids already in the table: a row goes in only when its id is new to `message_ids`.
const INSERT: &str = concat!(
    lease_cte!(),
    skipping_inserts!(),
    "
SELECT EXISTS (SELECT 1 FROM lease), (SELECT count(*) FROM ins), 0::int8, ",
    server_columns!()
);

/// The same, also counting the batch's ids that were already there: for a batch resumed from
/// a processing list, whose earlier insert may have committed without being counted.
const INSERT_RESUMED: &str = concat!(
    lease_cte!(),
    ", existing AS (
    -- The bounds on created_at let PostgreSQL look in the batch's partitions only.
    SELECT count(*) AS n FROM (
        SELECT id FROM message_ids WHERE id = ANY($1::uuid[])
        UNION
        SELECT id FROM messages
        WHERE id = ANY($1::uuid[])
          AND created_at BETWEEN (SELECT min(c) FROM unnest($5::timestamptz[]) c)
                             AND (SELECT max(c) FROM unnest($5::timestamptz[]) c)
    ) e
)",
    skipping_inserts!(),
    "
SELECT EXISTS (SELECT 1 FROM lease), (SELECT count(*) FROM ins), (SELECT n FROM existing), ",
    server_columns!()
);

/// Which of the statements an insert runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// [`INSERT_FRESH`], then [`INSERT`] if an id was there already.
    Fresh,
    /// [`INSERT_RESUMED`].
    Resumed,
    /// [`INSERT`]: rows another server committed, inserted again where missing.
    Restore,
}

/// Inserts `envelopes` in one statement under `lease`. Ids already in the table are skipped, so
/// a message never becomes two rows.
#[tracing::instrument(name = "postgres.insert_batch", skip_all, fields(size = envelopes.len(), resumed), err(level = "debug"))]
pub async fn insert(
    pool: &Pool,
    lease: &Lease,
    envelopes: &[&Envelope],
    resumed: bool,
) -> Result<Inserted, StoreError> {
    let kind = if resumed { Kind::Resumed } else { Kind::Fresh };
    insert_as(pool, lease, envelopes, kind).await
}

/// Inserts again, under `lease`, the rows of `envelopes` the server lacks: a batch committed
/// on a server that another has replaced since (a failover, a restart), which asynchronous
/// replication or `synchronous_commit = off` may have lost. `inserted` is the rows restored;
/// they were counted when first committed.
#[tracing::instrument(name = "postgres.restore_batch", skip_all, fields(size = envelopes.len()), err(level = "debug"))]
pub async fn restore(
    pool: &Pool,
    lease: &Lease,
    envelopes: &[&Envelope],
) -> Result<Inserted, StoreError> {
    insert_as(pool, lease, envelopes, Kind::Restore).await
}

async fn insert_as(
    pool: &Pool,
    lease: &Lease,
    envelopes: &[&Envelope],
    kind: Kind,
) -> Result<Inserted, StoreError> {
    let n = envelopes.len();
    let mut ids: Vec<Uuid> = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let mut channels = Vec::with_capacity(n);
    let mut contents = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut senders: Vec<Option<&str>> = Vec::with_capacity(n);
    for e in envelopes {
        ids.push(e.id);
        users.push(e.user_id.get());
        channels.push(e.channel_id.get());
        contents.push(e.content.as_str());
        created.push(e.created_at);
        senders.push(e.key_id.as_deref());
    }
    let client = pool.get().await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
        &ids,
        &users,
        &channels,
        &contents,
        &created,
        &lease.worker_id,
        &lease.token,
        &senders,
    ];
    let row = match run(&client, kind, &params).await {
        Ok(row) => row,
        Err(e) => return Err(connect::forget_read_only(pool, client, e).into()),
    };
    let count =
        |i: usize| -> Result<u64, StoreError> { Ok(row.try_get::<_, i64>(i)?.max(0) as u64) };
    Ok(Inserted {
        leased: row.try_get(0)?,
        inserted: count(1)?,
        existing: count(2)?,
        server: Some(Server::from_row(&row, 3)?),
    })
}

/// Runs the statement of `kind`.
async fn run(
    client: &deadpool_postgres::Client,
    kind: Kind,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
    let sql = match kind {
        Kind::Fresh => INSERT_FRESH,
        Kind::Resumed => INSERT_RESUMED,
        Kind::Restore => INSERT,
    };
    let statement = client.prepare_cached(sql).await?;
    match client.query_one(&statement, params).await {
        Err(e) if kind == Kind::Fresh && e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tracing::debug!("a redelivered message in a fresh batch; inserting the rest");
            let statement = client.prepare_cached(INSERT).await?;
            client.query_one(&statement, params).await
        }
        other => other,
    }
}

/// Inserts like [`insert`], but when PostgreSQL rejects the rows themselves, bisects the batch
/// to commit every acceptable row and returns the rejected ones with PostgreSQL's reason.
pub async fn insert_isolating(
    pool: &Pool,
    lease: &Lease,
    envelopes: &[&Envelope],
    resumed: bool,
) -> Result<(Inserted, Vec<(Uuid, String)>), StoreError> {
    let mut total = Inserted {
        leased: true,
        inserted: 0,
        existing: 0,
        server: None,
    };
    let mut rejected = Vec::new();
    // Work list of slices still to insert; a rejected slice is split in two.
    let mut pending = vec![envelopes];
    while let Some(slice) = pending.pop() {
        if slice.is_empty() {
            continue;
        }
        match insert(pool, lease, slice, resumed).await {
            Ok(done) => {
                if !done.leased {
                    return Ok((
                        Inserted {
                            leased: false,
                            ..total
                        },
                        rejected,
                    ));
                }
                total.inserted += done.inserted;
                total.existing += done.existing;
                total.server = done.server;
            }
            Err(e) if e.rows_rejected() => {
                if let [single] = slice {
                    tracing::warn!(id = %single.id, error = %e, "PostgreSQL rejects a message; dead-lettering it");
                    rejected.push((single.id, db_reason(&e)));
                } else {
                    let (left, right) = slice.split_at(slice.len() / 2);
                    pending.push(right);
                    pending.push(left);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok((total, rejected))
}

/// PostgreSQL's own message for a rejected row.
fn db_reason(e: &StoreError) -> String {
    match e {
        StoreError::Query(q) => q.as_db_error().map_or_else(
            || q.to_string(),
            |db| format!("{} ({})", db.message(), db.code().code()),
        ),
        other => other.to_string(),
    }
}

/// Registers (or re-registers) a worker: a fresh token replaces any previous one, fencing off
/// an older process that used the same id.
#[tracing::instrument(name = "postgres.register_lease", skip(pool), err(level = "debug"))]
pub async fn register(pool: &Pool, worker_id: &str) -> Result<Lease, StoreError> {
    let lease = Lease {
        worker_id: worker_id.to_owned(),
        token: Uuid::now_v7(),
    };
    let client = pool.get().await?;
    let done = client
        .execute(
            "INSERT INTO sluice_worker_leases (worker_id, token) VALUES ($1, $2)
             ON CONFLICT (worker_id) DO UPDATE SET token = EXCLUDED.token, acquired_at = now()",
            &[&lease.worker_id, &lease.token],
        )
        .await;
    if let Err(e) = done {
        return Err(connect::forget_read_only(pool, client, e).into());
    }
    Ok(lease)
}

/// Revokes a worker's lease; waits for any insert of that worker in flight to finish.
#[tracing::instrument(name = "postgres.revoke_lease", skip(pool), err(level = "debug"))]
pub async fn revoke(pool: &Pool, worker_id: &str) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let done = client
        .execute(
            "DELETE FROM sluice_worker_leases WHERE worker_id = $1",
            &[&worker_id],
        )
        .await;
    if let Err(e) = done {
        return Err(connect::forget_read_only(pool, client, e).into());
    }
    Ok(())
}
