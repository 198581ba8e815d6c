-- `messages` becomes a table partitioned by range of created_at, so that B-tree maintenance
-- touches only the current partition's indexes and retention drops whole partitions
-- (postgres.partition_hours, postgres.retention_days; the workers create partitions ahead).
--
-- A partitioned table's unique keys must contain its partition key, so the primary key becomes
-- (id, created_at). A message keeps both its id and its created_at across every redelivery
-- (both travel in the envelope the ingest API queued), so it still can never become two rows.
--
-- The rows already stored stay where they are: the old table becomes the partition
-- messages_legacy for everything created before the next UTC midnight after its newest row
-- (and after now). Its primary key is rebuilt on (id, created_at) and attaching it checks every
-- created_at, with the table locked meanwhile (about 30 s for 20 million rows here); an empty
-- old table is dropped instead. messages_default takes any row no partition covers, so no insert ever fails for
-- lack of a partition.

ALTER TABLE messages RENAME TO messages_legacy;
ALTER TABLE messages_legacy RENAME CONSTRAINT messages_pkey TO messages_legacy_pkey;
ALTER INDEX messages_channel_id_id_idx RENAME TO messages_legacy_channel_id_id_idx;
ALTER INDEX messages_user_id_id_idx RENAME TO messages_legacy_user_id_id_idx;

CREATE TABLE messages (
    id          uuid        NOT NULL,
    -- Named as migration 1 named them: attaching the old table matches constraints by name.
    user_id     bigint      NOT NULL CONSTRAINT messages_user_id_check CHECK (user_id > 0),
    channel_id  bigint      NOT NULL CONSTRAINT messages_channel_id_check CHECK (channel_id > 0),
    content     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE INDEX messages_channel_id_id_idx ON messages (channel_id, id DESC);
CREATE INDEX messages_user_id_id_idx ON messages (user_id, id DESC);

DO $$
DECLARE
    newest timestamptz;
    cutoff timestamptz;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM messages_legacy) THEN
        DROP TABLE messages_legacy;
        RETURN;
    END IF;
    -- Its primary key becomes (id, created_at), as on every partition: built here once.
    ALTER TABLE messages_legacy DROP CONSTRAINT messages_legacy_pkey;
    ALTER TABLE messages_legacy ADD CONSTRAINT messages_legacy_pkey PRIMARY KEY (id, created_at);
    SELECT max(created_at) INTO newest FROM messages_legacy;
    cutoff := date_trunc('day', greatest(now(), newest) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
              + interval '1 day';
    EXECUTE format(
        'ALTER TABLE messages ATTACH PARTITION messages_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
        cutoff);
END $$;

CREATE TABLE messages_default PARTITION OF messages DEFAULT;
