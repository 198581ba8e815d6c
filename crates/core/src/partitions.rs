//! The partitions of `messages` (migration 3): created ahead of time, dropped past retention.
//!
//! `messages` is partitioned by range of `created_at`, in spans of `postgres.partition_hours`
//! aligned to multiples of the span since 1970-01-01 UTC. [`maintain`] makes sure the span in
//! progress and the next `partitions_ahead` exist, creating only what no partition covers yet
//! (so neither `messages_legacy`, the table a migrated database had, nor partitions made under
//! an earlier span ever overlap), and drops every partition whose rows are all older than
//! `retention_days`. Workers run it at start and every [`MAINTENANCE_PERIOD`]; any number may
//! run it at once: a transaction-level advisory lock lets one work while the others skip.
//!
//! `messages_default` takes the rows no range covers, so an insert never fails for lack of a
//! partition; [`maintain`] reports how many rows it holds (normally none).
//!
//! Each partition of `messages` has its twin in `message_ids` (migration 4), named alike
//! (`message_ids_20261129`) and covering the UUIDv7 ids of the same span ([`Range::ids`]): they
//! are created and dropped together.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio_postgres::GenericClient;

use crate::settings::PostgresSettings;

/// How often workers run [`maintain`].
pub const MAINTENANCE_PERIOD: Duration = Duration::from_secs(600);

/// Arbitrary constant naming the partition maintenance among the database's advisory locks.
pub const PARTITION_LOCK_KEY: i64 = 0x5e_1c_e0_02;

/// The partition that takes rows no range covers.
pub const DEFAULT_PARTITION: &str = "messages_default";

/// What the settings ask of the partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Span of one partition.
    pub span: TimeDelta,
    /// Spans kept created after the current one.
    pub ahead: u32,
    /// Rows older than this may be dropped; `None` keeps them forever.
    pub retention: Option<TimeDelta>,
}

impl Plan {
    /// The plan `postgres.partition_hours`, `partitions_ahead` and `retention_days` describe.
    pub fn from_settings(settings: &PostgresSettings) -> Self {
        let days = i64::try_from(settings.retention_days).unwrap_or(0);
        Self {
            span: TimeDelta::from_std(settings.partition_span()).unwrap_or(TimeDelta::days(1)),
            ahead: u32::try_from(settings.partitions_ahead).unwrap_or(u32::MAX),
            retention: (days > 0).then(|| TimeDelta::days(days)),
        }
    }

    /// Start of the span holding `t`.
    pub fn span_start(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let span = self.span.num_seconds();
        let start = t.timestamp().div_euclid(span) * span;
        DateTime::from_timestamp(start, 0).unwrap_or(t)
    }

    /// The ranges that should exist at `now`: the current span and `ahead` more.
    pub fn wanted(&self, now: DateTime<Utc>) -> Vec<Range> {
        let first = self.span_start(now);
        (0..=i32::try_from(self.ahead).unwrap_or(i32::MAX))
            .map(|i| {
                let from = first + self.span * i;
                Range {
                    from,
                    to: from + self.span,
                }
            })
            .collect()
    }
}

/// A half-open range of `created_at`: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Inclusive lower bound.
    pub from: DateTime<Utc>,
    /// Exclusive upper bound.
    pub to: DateTime<Utc>,
}

impl Range {
    /// The partition name for this range: `messages_20261129` for a range starting at
    /// midnight, `messages_20261129_0600` otherwise.
    pub fn name(&self) -> String {
        if self.from.format("%H%M%S").to_string() == "000000" {
            format!("messages_{}", self.from.format("%Y%m%d"))
        } else {
            format!("messages_{}", self.from.format("%Y%m%d_%H%M"))
        }
    }
}

impl Range {
    /// The same span as a range of UUIDv7 ids: the smallest id of each bound's millisecond.
    pub fn ids(&self) -> (uuid::Uuid, uuid::Uuid) {
        (uuid_floor(self.from), uuid_floor(self.to))
    }
}

/// The smallest UUIDv7 of the millisecond of `t` (what migration 4's `sluice_uuid_floor` gives).
pub fn uuid_floor(t: DateTime<Utc>) -> uuid::Uuid {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    uuid::Uuid::from_bytes(bytes)
}

/// The `message_ids` partition twinned with the `messages` partition `name`.
pub fn ids_twin(name: &str) -> String {
    format!(
        "message_ids{}",
        name.strip_prefix("messages").unwrap_or(name)
    )
}

/// A partition of `messages` as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Table name.
    pub name: String,
    /// Lower bound; `None` for `MINVALUE` (and for the default partition).
    pub from: Option<DateTime<Utc>>,
    /// Upper bound; `None` for `MAXVALUE` (and for the default partition).
    pub to: Option<DateTime<Utc>>,
    /// Whether this is the default partition.
    pub default: bool,
}

/// The parts of `range` that no partition in `existing` covers, in order.
pub fn gaps(range: Range, existing: &[Partition]) -> Vec<Range> {
    let mut covered: Vec<(DateTime<Utc>, DateTime<Utc>)> = existing
        .iter()
        .filter(|p| !p.default)
        .map(|p| {
            (
                p.from.unwrap_or(DateTime::<Utc>::MIN_UTC),
                p.to.unwrap_or(DateTime::<Utc>::MAX_UTC),
            )
        })
        .filter(|(from, to)| *from < range.to && *to > range.from)
        .collect();
    covered.sort();
    let mut out = Vec::new();
    let mut cursor = range.from;
    for (from, to) in covered {
        if from > cursor {
            out.push(Range {
                from: cursor,
                to: from,
            });
        }
        cursor = cursor.max(to);
    }
    if cursor < range.to {
        out.push(Range {
            from: cursor,
            to: range.to,
        });
    }
    out
}

/// The partitions whose every row is older than the retention at `now`.
pub fn expired<'a>(
    plan: &Plan,
    existing: &'a [Partition],
    now: DateTime<Utc>,
) -> Vec<&'a Partition> {
    let Some(retention) = plan.retention else {
        return Vec::new();
    };
    existing
        .iter()
        .filter(|p| !p.default && p.to.is_some_and(|to| to <= now - retention))
        .collect()
}

/// What one [`maintain`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Another process held the lock: this run did nothing.
    pub skipped: bool,
    /// Partitions created.
    pub created: Vec<String>,
    /// Partitions dropped past retention.
    pub dropped: Vec<String>,
    /// Ranges that could not be created, with PostgreSQL's reason (e.g. rows for them already
    /// sit in the default partition).
    pub failed: Vec<(String, String)>,
    /// Rows in the default partition.
    pub default_rows: i64,
}

/// The partitions of `messages` in order of their ranges, the default one last; bounds are
/// read back as timestamps by PostgreSQL itself.
pub async fn list(client: &impl GenericClient) -> Result<Vec<Partition>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.relname::text,
                    (regexp_match(b.bound, 'FROM \\(''([^'']*)''\\)'))[1]::timestamptz,
                    (regexp_match(b.bound, 'TO \\(''([^'']*)''\\)'))[1]::timestamptz,
                    b.bound = 'DEFAULT'
             FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid
             CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
             WHERE i.inhparent = 'messages'::regclass
             ORDER BY 4, 2 NULLS FIRST",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Partition {
            name: r.get(0),
            from: r.get(1),
            to: r.get(2),
            default: r.get(3),
        })
        .collect())
}

/// Creates the missing partitions of `plan` at `now` and drops the expired ones, in one
/// transaction under [`PARTITION_LOCK_KEY`]; skips if another process holds it.
#[tracing::instrument(name = "postgres.maintain_partitions", skip_all, err(level = "debug"))]
pub async fn maintain(
    client: &mut tokio_postgres::Client,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<Maintenance, tokio_postgres::Error> {
    let mut tx = client.transaction().await?;
    // Bounds print (and parse back) in UTC; a drop waits at most 5 s for inserts to finish.
    tx.batch_execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL lock_timeout = '5s'")
        .await?;
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1)",
            &[&PARTITION_LOCK_KEY],
        )
        .await?
        .get(0);
    if !locked {
        return Ok(Maintenance {
            skipped: true,
            ..Maintenance::default()
        });
    }
    let existing = list(&tx).await?;
    let mut done = Maintenance::default();
    for range in plan
        .wanted(now)
        .into_iter()
        .flat_map(|r| gaps(r, &existing))
    {
        create(&mut tx, range, &mut done).await?;
    }
    for partition in expired(plan, &existing, now) {
        let twin = quote_ident(&ids_twin(&partition.name));
        let name = quote_ident(&partition.name);
        tx.batch_execute(&format!("DROP TABLE {name}; DROP TABLE IF EXISTS {twin}"))
            .await?;
        done.dropped.push(partition.name.clone());
    }
    done.default_rows = tx
        .query_one(&format!("SELECT count(*) FROM {DEFAULT_PARTITION}"), &[])
        .await?
        .get(0);
    tx.commit().await?;
    Ok(done)
}

/// Creates one partition and its twin of `message_ids` inside a savepoint, so a refusal (rows
/// for it already in a default partition) is recorded and the rest goes on.
async fn create(
    tx: &mut tokio_postgres::Transaction<'_>,
    range: Range,
    done: &mut Maintenance,
) -> Result<(), tokio_postgres::Error> {
    let name = range.name();
    let (first_id, end_id) = range.ids();
    let sql = format!(
        "CREATE TABLE {} PARTITION OF messages FOR VALUES FROM ('{}') TO ('{}');
         CREATE TABLE IF NOT EXISTS {} PARTITION OF message_ids FOR VALUES FROM ('{first_id}') TO ('{end_id}')",
        quote_ident(&name),
        range.from.to_rfc3339(),
        range.to.to_rfc3339(),
        quote_ident(&ids_twin(&name)),
    );
    let savepoint = tx.savepoint("partition").await?;
    match savepoint.batch_execute(&sql).await {
        Ok(()) => {
            savepoint.commit().await?;
            done.created.push(name);
        }
        Err(e) => {
            // Only PostgreSQL refusing the statement is recorded; a lost connection fails the run.
            let Some(reason) = e.as_db_error().map(|d| d.message().to_owned()) else {
                return Err(e);
            };
            savepoint.rollback().await?;
            done.failed.push((name, reason));
        }
    }
    Ok(())
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("timestamp")
    }

    fn part(name: &str, from: Option<&str>, to: Option<&str>) -> Partition {
        Partition {
            name: name.into(),
            from: from.map(at),
            to: to.map(at),
            default: false,
        }
    }

    fn plan(hours: i64, ahead: u32, retention_days: Option<i64>) -> Plan {
        Plan {
            span: TimeDelta::hours(hours),
            ahead,
            retention: retention_days.map(TimeDelta::days),
        }
    }

    #[test]
    fn id_bounds_are_the_first_uuidv7_of_their_millisecond() {
        let t = at("2026-12-02T00:00:00Z");
        // What migration 4's sluice_uuid_floor gives for the same instant.
        assert_eq!(
            uuid_floor(t).to_string(),
            "01a2340d-0c00-0000-0000-000000000000"
        );
        let now = Utc::now();
        let id = uuid::Uuid::now_v7();
        assert!(uuid_floor(now) <= id, "an id made now is in now's range");
        assert!(id < uuid_floor(now + TimeDelta::seconds(1)));
        assert_eq!(ids_twin("messages_20261202"), "message_ids_20261202");
        assert_eq!(ids_twin("messages_legacy"), "message_ids_legacy");
    }

    #[test]
    fn spans_align_to_the_epoch_in_utc() {
        let now = at("2026-11-29T18:47:12Z");
        let daily = plan(24, 2, None).wanted(now);
        assert_eq!(daily.len(), 3);
        assert_eq!(daily[0].from, at("2026-11-29T00:00:00Z"));
        assert_eq!(daily[2].to, at("2026-12-02T00:00:00Z"));
        assert_eq!(daily[0].name(), "messages_20261129");
        let hourly = plan(6, 0, None).wanted(now);
        assert_eq!(hourly[0].from, at("2026-11-29T18:00:00Z"));
        assert_eq!(hourly[0].name(), "messages_20261129_1800");
        // Weekly spans start on the epoch's weekday, a Thursday.
        assert_eq!(
            plan(168, 0, None).span_start(now),
            at("2026-11-26T00:00:00Z")
        );
    }

    #[test]
    fn only_what_no_partition_covers_is_created() {
        let day = Range {
            from: at("2026-11-29T00:00:00Z"),
            to: at("2026-11-30T00:00:00Z"),
        };
        assert_eq!(gaps(day, &[]), vec![day]);
        // The legacy table covers everything up to 06:00; an hourly partition 12:00–13:00.
        let existing = [
            part("messages_legacy", None, Some("2026-11-29T06:00:00Z")),
            part(
                "messages_20261129_1200",
                Some("2026-11-29T12:00:00Z"),
                Some("2026-11-29T13:00:00Z"),
            ),
            Partition {
                default: true,
                ..part(DEFAULT_PARTITION, None, None)
            },
        ];
        let left = gaps(day, &existing);
        assert_eq!(
            left,
            vec![
                Range {
                    from: at("2026-11-29T06:00:00Z"),
                    to: at("2026-11-29T12:00:00Z")
                },
                Range {
                    from: at("2026-11-29T13:00:00Z"),
                    to: day.to
                },
            ]
        );
        assert_eq!(left[0].name(), "messages_20261129_0600");
        let covered = [part(
            "messages_20261128",
            Some("2026-11-28T00:00:00Z"),
            Some("2026-12-01T00:00:00Z"),
        )];
        assert!(gaps(day, &covered).is_empty());
    }

    #[test]
    fn retention_drops_only_partitions_wholly_past_it() {
        let now = at("2026-11-29T18:00:00Z");
        let existing = [
            part("messages_legacy", None, Some("2026-11-01T00:00:00Z")),
            part(
                "messages_20261121",
                Some("2026-11-21T00:00:00Z"),
                Some("2026-11-22T00:00:00Z"),
            ),
            part(
                "messages_20261122",
                Some("2026-11-22T00:00:00Z"),
                Some("2026-11-23T00:00:00Z"),
            ),
            Partition {
                default: true,
                ..part(DEFAULT_PARTITION, None, None)
            },
        ];
        let names = |p: Vec<&Partition>| p.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        // Seven days back is 2026-11-22T18:00: the 22nd still holds rows younger than that.
        assert_eq!(
            names(expired(&plan(24, 3, Some(7)), &existing, now)),
            ["messages_legacy", "messages_20261121"]
        );
        assert!(expired(&plan(24, 3, None), &existing, now).is_empty());
    }
}
